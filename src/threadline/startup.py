"""What ``threadline serve`` checks and says before it listens: it opens the database, applies
migrations, loads the models file and the embeddings settings — so a bad configuration fails here, as
one line, instead of inside the server — then logs one start-up summary and the warnings for
configurations that will surprise."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import sqlalchemy as sa

from threadline.config import Settings
from threadline.executor.code_interpreter import availability
from threadline.llm.embeddings import embedding_model_from_settings
from threadline.llm.providers import ProviderRouter
from threadline.observability.logs import fields
from threadline.storage.database import Database, check_database_url
from threadline.storage.migrate import current_revision, require_vector_index, upgrade
from threadline.storage.scope import ALL_PROJECTS
from threadline.storage.uow import UnitOfWork

log = logging.getLogger("threadline.startup")


def threadline_version() -> str:
    try:
        return version("threadline")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def masked_database_url(settings: Settings) -> str:
    return sa.make_url(settings.effective_database_url).render_as_string(hide_password=True)


def _masked_http_url(url: str) -> str:
    """scheme://host[:port]/path: credentials and query strings stay out of logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True, slots=True)
class Checked:
    migrated_from: str | None
    migrated_to: str | None
    providers: list[str]
    code_interpreter: str  # the summary's line
    code_interpreter_problem: str | None  # a warning when it cannot run or lacks the data stack
    stored_keys: int  # live project and admin keys in the database (the CLI, the Admin API)
    projects: int
    keys_created: bool  # whether a key was ever created: then keys are required, even all revoked


def check(settings: Settings, *, migrate: bool = True) -> Checked:
    """Open the database (and migrate it), load the models file and the embeddings model. Raises
    the configuration's error (StartupError, ModelsFileInvalid, ValueError, a driver error)."""
    check_database_url(settings.effective_database_url)
    db = Database(settings)
    try:
        before = current_revision(db.engine)
        if migrate:
            upgrade(db.engine)
        after = current_revision(db.engine)
        if sa.inspect(db.engine).has_table("api_keys"):  # not before migration 0004
            stored_keys, projects, keys_created = db.transaction_sync(_key_counts, scope=ALL_PROJECTS)
        else:
            stored_keys, projects, keys_created = 0, 0, False
        router = ProviderRouter.from_settings(settings)
        providers = router.provider_names
        embedder = embedding_model_from_settings(settings)
        try:
            if embedder is not None:
                require_vector_index(db.engine)
        finally:

            async def close() -> None:
                await router.aclose()
                if embedder is not None:
                    await embedder.aclose()

            asyncio.run(close())
    finally:
        db.close()
    code_interpreter, problem = availability(settings)
    return Checked(before, after, providers, code_interpreter, problem, stored_keys, projects, keys_created)


def _key_counts(uow: UnitOfWork) -> tuple[int, int, bool]:
    return len(uow.keys.all_keys()), len(uow.keys.all_projects()), uow.keys.any_key()


def log_summary(settings: Settings, checked: Checked) -> None:
    """One INFO block describing what is about to serve, then one WARNING per surprise."""
    database = masked_database_url(settings)
    if checked.migrated_from == checked.migrated_to:
        migrations = f"at head ({checked.migrated_to})"
    else:
        migrations = f"{checked.migrated_from or 'empty database'} -> {checked.migrated_to} applied"
    keys = len(settings.api_keys)
    if keys or checked.keys_created:
        auth = (
            f"{keys} key{'s' if keys != 1 else ''} in THREADLINE_API_KEYS, {checked.stored_keys} stored; "
            f"{checked.projects} project{'s' if checked.projects != 1 else ''}"
        )
    else:
        auth = "any key accepted for the default project (no keys exist)"
    upstream = _masked_http_url(settings.upstream_base_url) if settings.upstream_base_url else "none"
    models_file = str(settings.models_file) if settings.models_file is not None else "none"
    embeddings = (
        f"on ({settings.embeddings_model} at {_masked_http_url(settings.embeddings_base_url)})"
        if settings.embeddings_model
        else "off (keyword search only)"
    )
    if settings.executor:
        executor = f"on, in each API process (up to {settings.run_max_concurrent} concurrent runs each)"
    else:
        executor = "off (--no-executor: `threadline worker` processes execute runs)"
    if not settings.metrics:
        metrics = "off"
    elif settings.metrics_port:
        metrics = f"http://{settings.host}:{settings.metrics_port}/metrics"
    else:
        metrics = "/metrics on the API port"
    listen = f"http://{settings.host}:{settings.port}"
    processes = f"{settings.workers} API process{'es' if settings.workers != 1 else ''}"
    lines = [
        f"threadline {threadline_version()} starting",
        f"  database:    {database} (data dir {settings.data_dir.resolve()})",
        f"  migrations:  {migrations}",
        f"  auth:        {auth}",
        f"  upstream:    {upstream}; models file {models_file}; providers: "
        f"{', '.join(checked.providers) or 'none'}",
        f"  embeddings:  {embeddings}",
        f"  executor:    {executor}",
        f"  code_interp: {checked.code_interpreter}",
        f"  metrics:     {metrics}",
        f"  listen:      {listen} ({processes})",
    ]
    log.info(
        "\n".join(lines),
        extra=fields(
            version=threadline_version(),
            database=database,
            data_dir=str(settings.data_dir.resolve()),
            migrations_from=checked.migrated_from,
            migrations_to=checked.migrated_to,
            api_keys=keys,
            stored_keys=checked.stored_keys,
            projects=checked.projects,
            upstream=upstream,
            models_file=models_file,
            providers=checked.providers,
            embeddings=bool(settings.embeddings_model),
            executor=settings.executor,
            code_interpreter=checked.code_interpreter,
            workers=settings.workers,
            listen=listen,
            metrics=metrics,
        ),
    )
    for warning in warnings(settings, checked):
        log.warning(warning)


def warnings(settings: Settings, checked: Checked) -> list[str]:
    found: list[str] = []
    if not checked.providers:
        found.append(
            "no upstream model provider is configured: runs will fail until THREADLINE_UPSTREAM_BASE_URL "
            "or a models file (THREADLINE_MODELS_FILE) is set"
        )
    if checked.code_interpreter_problem is not None:
        found.append(checked.code_interpreter_problem)
    if settings.workers > 1 and not settings.database_url.startswith("postgres"):
        found.append(
            f"serve --workers {settings.workers} on SQLite: the processes share one writer; "
            "use PostgreSQL to scale out"
        )
    return found
