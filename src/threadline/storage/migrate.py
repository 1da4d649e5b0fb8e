"""Apply migrations. Safe to run from several processes at once: on PostgreSQL an advisory lock
serialises them; on SQLite the database's own write lock does (busy_timeout waits for it)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

_MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary constant: the advisory-lock key all Threadline processes agree on.
_MIGRATION_LOCK_KEY = 7_311_402_215


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection), revision)
