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

log = logging.getLogger("threadline")

SETTINGS_JSON_ENV = "THREADLINE_SETTINGS_JSON"


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
    _metrics_flags(serve, serve=True)

    worker = sub.add_parser("worker", help="execute runs (and ingest files) only, no HTTP; stop with SIGTERM")
    _common_flags(worker)
    _model_flags(worker)
    _executor_flags(worker)
    _metrics_flags(worker, serve=False)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    _common_flags(migrate)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {key: value for key, value in vars(args).items() if key != "command" and value is not None}
    if isinstance(overrides.get("api_keys"), str):
        overrides["api_keys"] = tuple(k.strip() for k in overrides["api_keys"].split(",") if k.strip())
    return settings_from_env(**overrides)


def _version() -> str:
    from threadline.startup import threadline_version

    return threadline_version()


def _configure_logging(settings: Settings) -> None:
    from threadline.observability.logs import configure

    configure(settings.log_level, settings.log_format)


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
    import tempfile

    import uvicorn

    from threadline.observability import metrics
    from threadline.observability.logs import uvicorn_log_config
    from threadline.startup import check, log_summary

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
    }
    if settings.workers > 1 and settings.metrics and not os.environ.get(metrics.MULTIPROC_ENV):
        # Each API process writes its numbers to files here and any of them sums them all.
        os.environ[metrics.MULTIPROC_ENV] = tempfile.mkdtemp(prefix="threadline-metrics-")
    if settings.metrics and settings.metrics_port:
        metrics.serve_on_port(settings.host, settings.metrics_port)
    if settings.workers <= 1:
        from threadline.app import create_app

        uvicorn.run(create_app(settings, migrate=False), **options)  # type: ignore[arg-type]
        return
    os.environ[SETTINGS_JSON_ENV] = settings_to_json(settings)
    uvicorn.run(
        f"{__name__}:{api_process_app.__name__}",
        factory=True,
        workers=settings.workers,
        **options,  # type: ignore[arg-type]
    )


def migrate(settings: Settings) -> None:
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade

    db = Database(settings)
    try:
        upgrade(db.engine)
    finally:
        db.close()
    print(f"migrated {settings.effective_database_url.split('@')[-1]}", flush=True)


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
            from threadline.executor.worker import run_worker
            from threadline.observability import metrics

            if settings.metrics and settings.metrics_port:
                metrics.serve_on_port(settings.host, settings.metrics_port)
            run_worker(settings)
        elif args.command == "migrate":
            migrate(settings)
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
