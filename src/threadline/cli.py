"""``threadline serve | migrate``: the only place that reads flags and env vars into Settings."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from threadline.config import Settings, settings_from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description="OpenAI Assistants API server")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (THREADLINE_DATA_DIR)")
        p.add_argument("--database-url", help="sqlite:///... or postgresql://... (THREADLINE_DATABASE_URL)")
        p.add_argument("--log-level", help="debug|info|warning|error (THREADLINE_LOG_LEVEL)")

    serve = sub.add_parser("serve", help="serve the API under /v1 (applies migrations first)")
    common(serve)
    serve.add_argument("--host", help="bind address (THREADLINE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (THREADLINE_PORT, default 8000)")
    serve.add_argument("--api-keys", help="comma-separated accepted keys (THREADLINE_API_KEYS)")
    serve.add_argument(
        "--upstream-base-url", help="OpenAI-compatible base URL (THREADLINE_UPSTREAM_BASE_URL)"
    )
    serve.add_argument("--upstream-api-key", help="key for the upstream (THREADLINE_UPSTREAM_API_KEY)")
    serve.add_argument("--models-file", type=Path, help="TOML model->provider map (THREADLINE_MODELS_FILE)")
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    common(migrate)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {key: value for key, value in vars(args).items() if key != "command" and value is not None}
    if isinstance(overrides.get("api_keys"), str):
        overrides["api_keys"] = tuple(k.strip() for k in overrides["api_keys"].split(",") if k.strip())
    return settings_from_env(**overrides)


def serve(settings: Settings) -> None:
    import uvicorn

    from threadline.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
    )


def migrate(settings: Settings) -> None:
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade

    db = Database(settings)
    try:
        upgrade(db.engine)
    finally:
        db.close()
    print(f"migrated {settings.effective_database_url.split('@')[-1]}")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        migrate(settings)
    else:  # pragma: no cover - argparse rejects unknown commands
        sys.exit(2)


if __name__ == "__main__":
    main()
