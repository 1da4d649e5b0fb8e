"""``threadline serve | worker | migrate``: the only place that reads flags and env vars into Settings.

Every flag has an environment variable, ``THREADLINE_<FLAG>`` (dashes as underscores); a flag wins
over its variable. ``serve --workers N`` runs N API processes under uvicorn's supervisor: they are
spawned from an import string, so the CLI serialises the Settings it built into one variable,
``THREADLINE_SETTINGS_JSON``, and ``api_process_app`` (the factory each process calls) reads it back —
still here, so this module stays the only reader of the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from threadline.config import Settings, settings_from_env, settings_from_json, settings_to_json

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from threadline.storage.uow import UnitOfWork

log = logging.getLogger("threadline")

SETTINGS_JSON_ENV = "THREADLINE_SETTINGS_JSON"
EVENT_LOOPS = {"auto", "asyncio", "uvloop"}


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="data directory (THREADLINE_DATA_DIR)")
    p.add_argument("--database-url", help="sqlite:///... or postgresql://... (THREADLINE_DATABASE_URL)")
    p.add_argument(
        "--log-level",
        help="debug|info|warning|error; debug also prints tracebacks of start-up errors "
        "(THREADLINE_LOG_LEVEL)",
    )
    p.add_argument("--log-format", choices=["text", "json"], help="log lines (THREADLINE_LOG_FORMAT)")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one INFO line per request (THREADLINE_ACCESS_LOG, default true)",
    )
    p.add_argument(
        "--db-pool-size",
        type=int,
        help="PostgreSQL connections per process, and as many again in overflow (THREADLINE_DB_POOL_SIZE)",
    )
    p.add_argument(
        "--db-statement-timeout-ms",
        type=int,
        help="PostgreSQL statement_timeout per connection (THREADLINE_DB_STATEMENT_TIMEOUT_MS)",
    )


def _model_flags(p: argparse.ArgumentParser) -> None:
    """What executing runs needs: the upstream model provider and run limits."""
    p.add_argument("--upstream-base-url", help="OpenAI-compatible base URL (THREADLINE_UPSTREAM_BASE_URL)")
    p.add_argument("--upstream-api-key", help="key for the upstream (THREADLINE_UPSTREAM_API_KEY)")
    p.add_argument("--models-file", type=Path, help="TOML model->provider map (THREADLINE_MODELS_FILE)")
    p.add_argument(
        "--upstream-timeout-s", type=float, help="upstream request timeout (THREADLINE_UPSTREAM_TIMEOUT_S)"
    )
    p.add_argument(
        "--upstream-max-retries", type=int, help="upstream retries (THREADLINE_UPSTREAM_MAX_RETRIES)"
    )
    p.add_argument("--embeddings-base-url", help="embeddings endpoint (THREADLINE_EMBEDDINGS_BASE_URL)")
    p.add_argument("--embeddings-api-key", help="embeddings key (THREADLINE_EMBEDDINGS_API_KEY)")
    p.add_argument("--embeddings-model", help="embeddings model (THREADLINE_EMBEDDINGS_MODEL)")
    p.add_argument(
        "--run-expiry-s", type=int, help="requires_action runs expire after this (THREADLINE_RUN_EXPIRY_S)"
    )
    p.add_argument(
        "--run-queue-max",
        type=int,
        help="refuse new runs (429) while this many are queued or executing (THREADLINE_RUN_QUEUE_MAX, "
        "default 64; 0: no bound)",
    )
    p.add_argument(
        "--max-streams",
        type=int,
        help="event streams one API process holds open (THREADLINE_MAX_STREAMS, default 1024)",
    )
    p.add_argument(
        "--max-poll-holds",
        type=int,
        help="poll-helper GETs one API process holds (THREADLINE_MAX_POLL_HOLDS, default 1024)",
    )


def _executor_flags(p: argparse.ArgumentParser) -> None:
    """Run executors (embedded in `serve`, or `worker`): leases, polling, concurrency, events."""
    p.add_argument("--run-lease-s", type=float, help="run lease length (THREADLINE_RUN_LEASE_S, default 30)")
    p.add_argument(
        "--run-heartbeat-s",
        type=float,
        help="lease renewal interval (THREADLINE_RUN_HEARTBEAT_S, default 10)",
    )
    p.add_argument(
        "--run-poll-s", type=float, help="poll for queued runs this often (THREADLINE_RUN_POLL_S, default 1)"
    )
    p.add_argument(
        "--run-max-concurrent",
        type=int,
        help="runs one executor executes at once (THREADLINE_RUN_MAX_CONCURRENT, default 256)",
    )
    p.add_argument(
        "--worker-grace-s",
        type=float,
        help="on SIGTERM, running runs may finish this long (THREADLINE_WORKER_GRACE_S, default 10)",
    )
    p.add_argument(
        "--event-bus",
        choices=["auto", "memory", "database"],
        help="how run events reach streams (THREADLINE_EVENT_BUS, default auto)",
    )
    p.add_argument(
        "--event-coalesce-ms",
        type=float,
        help="token deltas of a run merged over this long (THREADLINE_EVENT_COALESCE_MS, default 20)",
    )
    p.add_argument(
        "--event-coalesce-max",
        type=int,
        help="... or over this many deltas (THREADLINE_EVENT_COALESCE_MAX, default 16)",
    )
    p.add_argument(
        "--event-write-delay-s",
        type=float,
        help="testing: delay each append of run events (THREADLINE_EVENT_WRITE_DELAY_S, default 0)",
    )
    p.add_argument(
        "--event-stall-check-s",
        type=float,
        help="a quiet stream re-checks its run after this (THREADLINE_EVENT_STALL_CHECK_S, default 5)",
    )


def _code_interpreter_flags(p: argparse.ArgumentParser) -> None:
    """The code_interpreter sandbox (docs/code-interpreter.md)."""
    flags: list[tuple[str, type, str]] = [
        (
            "--code-interpreter-backend",
            str,
            "auto|bubblewrap|none|unsandboxed (dev only) (THREADLINE_CODE_INTERPRETER_BACKEND, default auto)",
        ),
        (
            "--code-interpreter-python",
            str,
            "the sandbox's Python interpreter (THREADLINE_CODE_INTERPRETER_PYTHON, default the server's own)",
        ),
        (
            "--code-interpreter-memory-mb",
            int,
            "address space of a session (THREADLINE_CODE_INTERPRETER_MEMORY_MB, default 1024)",
        ),
        (
            "--code-interpreter-timeout-s",
            float,
            "wall seconds per code_interpreter call (THREADLINE_CODE_INTERPRETER_TIMEOUT_S, default 60)",
        ),
        (
            "--code-interpreter-max-processes",
            int,
            "processes a session may run (THREADLINE_CODE_INTERPRETER_MAX_PROCESSES, default 64)",
        ),
        (
            "--code-interpreter-max-file-mb",
            int,
            "largest file a session may write (THREADLINE_CODE_INTERPRETER_MAX_FILE_MB, default 100)",
        ),
        (
            "--code-interpreter-cpu-s",
            int,
            "CPU seconds of a session (THREADLINE_CODE_INTERPRETER_CPU_S, default 3600)",
        ),
        (
            "--code-interpreter-idle-s",
            float,
            "an idle session ends after this (THREADLINE_CODE_INTERPRETER_IDLE_S, default 3600)",
        ),
        (
            "--code-interpreter-max-sessions",
            int,
            "live sessions per process (THREADLINE_CODE_INTERPRETER_MAX_SESSIONS, default 16)",
        ),
        (
            "--code-interpreter-output-chars",
            int,
            "characters of output kept per call (THREADLINE_CODE_INTERPRETER_OUTPUT_CHARS, default 20000)",
        ),
    ]
    for flag, kind, help_ in flags:
        p.add_argument(flag, type=kind, help=help_)


def _limits_flags(p: argparse.ArgumentParser, *, api: bool) -> None:
    """Limits on hostile input and faults (docs/limits.md); ingestion ones wherever files are ingested."""
    if api:
        p.add_argument(
            "--project-max-active-runs",
            type=int,
            help="runs queued or executing per project, 429 beyond (THREADLINE_PROJECT_MAX_ACTIVE_RUNS, "
            "default 64)",
        )
        p.add_argument(
            "--project-requests-per-minute",
            type=int,
            help="requests a minute per project, 429 beyond (THREADLINE_PROJECT_REQUESTS_PER_MINUTE, "
            "default 300000)",
        )
        p.add_argument(
            "--project-storage-bytes",
            type=int,
            help="bytes of files per project (THREADLINE_PROJECT_STORAGE_BYTES, default 10 GiB)",
        )
        p.add_argument(
            "--max-json-body-bytes",
            type=int,
            help="largest JSON request body, 413 beyond (THREADLINE_MAX_JSON_BODY_BYTES, default 32 MiB)",
        )
        p.add_argument(
            "--disk-reserve-bytes",
            type=int,
            help="space kept so deletes work on a full disk (THREADLINE_DISK_RESERVE_BYTES, default 16 MiB)",
        )
    p.add_argument(
        "--ingestion-processes",
        type=int,
        help="child processes that parse uploaded files (THREADLINE_INGESTION_PROCESSES, default 1)",
    )
    p.add_argument(
        "--ingestion-memory-bytes",
        type=int,
        help="address space of each ingestion child (THREADLINE_INGESTION_MEMORY_BYTES, default 1 GiB)",
    )
    p.add_argument(
        "--ingestion-cpu-s", type=int, help="CPU seconds per file (THREADLINE_INGESTION_CPU_S, default 120)"
    )
    p.add_argument(
        "--ingestion-timeout-s",
        type=float,
        help="wall seconds per file (THREADLINE_INGESTION_TIMEOUT_S, default 150)",
    )
    p.add_argument(
        "--ingestion-max-tokens",
        type=int,
        help="tokens one file may have (THREADLINE_INGESTION_MAX_TOKENS, default 5000000)",
    )
    p.add_argument(
        "--ingestion-max-attempts",
        type=int,
        help="claims of a file before it is failed (THREADLINE_INGESTION_MAX_ATTEMPTS, default 3)",
    )
    p.add_argument(
        "--stream-checkpoint-s",
        type=float,
        help="save streamed text this often (THREADLINE_STREAM_CHECKPOINT_S, default 1)",
    )


def _metrics_flags(p: argparse.ArgumentParser, *, serve: bool) -> None:
    if serve:
        p.add_argument(
            "--metrics",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Prometheus metrics at GET /metrics (THREADLINE_METRICS, default true)",
        )
        p.add_argument(
            "--unclaimed-run-warning-s",
            type=float,
            help="with --no-executor, warn about runs queued this long (THREADLINE_UNCLAIMED_RUN_WARNING_S, "
            "default 30)",
        )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve metrics on this port instead of /metrics on the API port; the only way a worker "
        "shows them (THREADLINE_METRICS_PORT, default 0: off for worker)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description="OpenAI Assistants API server")
    parser.add_argument("--version", action="version", version=f"threadline {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API under /v1 (applies migrations first)")
    _common_flags(serve)
    serve.add_argument("--host", help="bind address (THREADLINE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (THREADLINE_PORT, default 8000)")
    serve.add_argument(
        "--workers", type=int, help="API processes sharing the port (THREADLINE_WORKERS, default 1)"
    )
    serve.add_argument(
        "--event-loop",
        choices=sorted(EVENT_LOOPS),
        help="the API processes' event loop (THREADLINE_EVENT_LOOP, default auto: uvloop when installed)",
    )
    serve.add_argument(
        "--executor",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="execute runs inside the API process(es); --no-executor serves the API only and leaves "
        "runs to `threadline worker` processes (THREADLINE_EXECUTOR, default true)",
    )
    serve.add_argument("--api-keys", help="comma-separated accepted keys (THREADLINE_API_KEYS)")
    serve.add_argument(
        "--max-upload-bytes", type=int, help="largest accepted file (THREADLINE_MAX_UPLOAD_BYTES)"
    )
    serve.add_argument(
        "--poll-after-ms", type=int, help="poll interval advertised to SDKs (THREADLINE_POLL_AFTER_MS)"
    )
    _model_flags(serve)
    _executor_flags(serve)
    _limits_flags(serve, api=True)
    _code_interpreter_flags(serve)
    _metrics_flags(serve, serve=True)

    worker = sub.add_parser("worker", help="execute runs (and ingest files) only, no HTTP; stop with SIGTERM")
    _common_flags(worker)
    _model_flags(worker)
    _executor_flags(worker)
    _limits_flags(worker, api=False)
    _code_interpreter_flags(worker)
    _metrics_flags(worker, serve=False)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    _common_flags(migrate)
    _key_commands(sub)
    return parser


# Arguments of the key-management commands: what they act on, not settings.
_COMMAND_ARGS = frozenset({"command", "action", "name", "project", "key_id", "days"})


def _key_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Projects and keys, managed offline on the server's database (the same THREADLINE_DATA_DIR /
    THREADLINE_DATABASE_URL), created and migrated if no server has run yet. Safe while servers
    run: they see a new or revoked key within a second."""
    admin = sub.add_parser("admin", help="admin keys (for the Admin API under /v1/organization)")
    admin_sub = admin.add_subparsers(dest="action", required=True)
    create = admin_sub.add_parser("create-key", help="create an admin key; prints it alone on the last line")
    create.add_argument("--name", default="admin", help="a name to recognise it by")
    _common_flags(create)

    projects = sub.add_parser("projects", help="projects: every object and project key belongs to one")
    projects_sub = projects.add_subparsers(dest="action", required=True)
    create = projects_sub.add_parser("create", help="create a project; prints its id")
    create.add_argument("name")
    _common_flags(create)
    _common_flags(projects_sub.add_parser("list", help="one project a line: id, status, name"))

    keys = sub.add_parser("keys", help="project API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser(
        "create", help="create a key for a project; prints it alone on the last line"
    )
    create.add_argument("--project", required=True, help="the project's name or id")
    create.add_argument("--name", default="cli", help="the key's service account name")
    _common_flags(create)
    _common_flags(keys_sub.add_parser("list", help="one key a line: id, project, name, redacted value"))
    revoke = keys_sub.add_parser("revoke", help="revoke a key (by the id `keys list` shows) at once")
    revoke.add_argument("key_id")
    _common_flags(revoke)

    usage = sub.add_parser("usage", help="completions usage per day, project and model (UTC days)")
    usage.add_argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
    _common_flags(usage)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value for key, value in vars(args).items() if key not in _COMMAND_ARGS and value is not None
    }
    if isinstance(overrides.get("api_keys"), str):
        overrides["api_keys"] = tuple(k.strip() for k in overrides["api_keys"].split(",") if k.strip())
    return settings_from_env(**overrides)


def _version() -> str:
    from threadline.startup import threadline_version

    return threadline_version()


def _configure_logging(settings: Settings) -> None:
    from threadline.observability.logs import configure

    configure(settings.log_level, settings.log_format, access_log=settings.access_log)


def api_process_app() -> Starlette:
    """The factory uvicorn calls in each API process of ``serve --workers N``. The parent already
    applied migrations, so the processes do not race to (they would be safe, only slower).

    Also usable under another process manager (``uvicorn --factory threadline.cli:api_process_app``):
    without ``THREADLINE_SETTINGS_JSON`` it reads the ``THREADLINE_*`` variables, and it never
    migrates, so run ``threadline migrate`` first."""
    from threadline.app import create_app

    raw = os.environ.get(SETTINGS_JSON_ENV)
    settings = settings_from_env() if raw is None else settings_from_json(raw)
    _configure_logging(settings)
    return create_app(settings, migrate=False)


def serve(settings: Settings) -> None:
    import shutil
    import tempfile

    import uvicorn

    from threadline.observability import metrics
    from threadline.observability.logs import uvicorn_log_config
    from threadline.processes import serve_workers
    from threadline.startup import check, log_summary

    if settings.event_loop not in EVENT_LOOPS:
        raise ValueError(f"THREADLINE_EVENT_LOOP must be one of {', '.join(sorted(EVENT_LOOPS))}")
    # Migrations, the models file and embeddings are checked before uvicorn starts, so a bad setting
    # is one line from main() instead of a traceback from inside the server's lifespan.
    log_summary(settings, check(settings))
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": uvicorn_log_config(),
        "access_log": False,
        "lifespan": "on",
        "loop": settings.event_loop,
    }
    own_metrics_dir = None
    if settings.workers > 1 and settings.metrics and not os.environ.get(metrics.MULTIPROC_ENV):
        # Each API process writes its numbers to files here and any of them sums them all.
        own_metrics_dir = os.environ[metrics.MULTIPROC_ENV] = tempfile.mkdtemp(prefix="threadline-metrics-")
    if settings.metrics and settings.metrics_port:
        metrics.serve_on_port(settings.host, settings.metrics_port)
    if settings.workers <= 1:
        from threadline.app import create_app

        uvicorn.run(create_app(settings, migrate=False), **options)  # type: ignore[arg-type]
        return
    os.environ[SETTINGS_JSON_ENV] = settings_to_json(settings)
    try:
        serve_workers(f"{__name__}:{api_process_app.__name__}", settings.workers, options)
    finally:
        if own_metrics_dir is not None:  # ours, not one the operator chose: the numbers end with us
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def migrate(settings: Settings) -> None:
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade

    db = Database(settings)
    try:
        upgrade(db.engine)
    finally:
        db.close()
    print(f"migrated {settings.effective_database_url.split('@')[-1]}", flush=True)


def manage_keys(settings: Settings, args: argparse.Namespace) -> None:
    """The ``admin``, ``projects`` and ``keys`` commands (one transaction each)."""
    from threadline.services import projects
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade
    from threadline.storage.scope import ALL_PROJECTS

    def work(uow: UnitOfWork) -> list[str]:
        if args.command == "usage":
            return _usage_lines(uow, args.days)
        if args.command == "admin":
            new = projects.create_admin_key(uow, args.name)
            return [f"created admin key {new.key.id} ({new.key.name})", new.secret]
        if (args.command, args.action) == ("projects", "create"):
            return [projects.create_project(uow, args.name).id]
        if (args.command, args.action) == ("projects", "list"):
            return [f"{p.id}\t{p.status}\t{p.name}" for p in uow.keys.all_projects()]
        if (args.command, args.action) == ("keys", "create"):
            new = projects.create_project_key(uow, args.project, args.name)
            return [f"created key {new.key.id} for project {new.key.project_id}", new.secret]
        if (args.command, args.action) == ("keys", "list"):
            return [
                f"{k.id}\t{k.project_id or '(admin)'}\t{k.name}\t{k.redacted_value}"
                for k in uow.keys.all_keys()
            ]
        if not projects.revoke_key(uow, args.key_id):
            raise ValueError(f"no key with id {args.key_id!r}")
        return [f"revoked {args.key_id}"]

    db = Database(settings)
    try:
        upgrade(db.engine)
        lines = db.transaction_sync(work, scope=ALL_PROJECTS)
    finally:
        db.close()
    for line in lines:
        print(line, flush=True)


def _usage_lines(uow: UnitOfWork, days: int) -> list[str]:
    """One line a day, project and model: tokens in and out, model requests, runs."""
    import time

    from threadline.storage.usage import DAY_S, day_of

    today = day_of(int(time.time()))
    rows = uow.usage.totals(today - (max(days, 1) - 1) * DAY_S, today + DAY_S, by_project=True, by_model=True)
    lines = ["day\tproject\tmodel\tinput_tokens\toutput_tokens\tmodel_requests\truns"]
    for row in rows:
        day = time.strftime("%Y-%m-%d", time.gmtime(row.day))
        lines.append(
            f"{day}\t{row.project_id}\t{row.model}\t{row.input_tokens}\t{row.output_tokens}"
            f"\t{row.model_requests}\t{row.runs}"
        )
    return lines


def _one_line(exc: BaseException) -> str:
    from threadline.domain.errors import ThreadlineError

    text = exc.message if isinstance(exc, ThreadlineError) else str(exc)
    if not isinstance(exc, ThreadlineError | ValueError):  # say what failed when it is not ours
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        _configure_logging(settings)
    except ValueError as exc:
        sys.exit(f"threadline: error: {_one_line(exc)}")
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "worker":
            from threadline.observability import metrics
            from threadline.runtime import serve_worker

            if settings.metrics and settings.metrics_port:
                metrics.serve_on_port(settings.host, settings.metrics_port)
            serve_worker(settings)
        elif args.command == "migrate":
            migrate(settings)
        elif args.command in {"admin", "projects", "keys", "usage"}:
            manage_keys(settings, args)
        else:  # pragma: no cover - argparse rejects unknown commands
            sys.exit(2)
    except Exception as exc:
        # A start-up error (bad models file, missing driver, unreachable database ...): one line an
        # operator can act on; the traceback only when asked for.
        if settings.log_level.lower() == "debug":
            raise
        sys.exit(f"threadline: error: {_one_line(exc)}")


if __name__ == "__main__":
    main()
