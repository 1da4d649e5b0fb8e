"""Apply migrations. Safe to run from several processes at once (N API replicas starting together,
or `threadline migrate` racing a server): each upgrade runs in one transaction that first takes a
database-wide lock, so the second process waits, then finds the schema at head and does nothing.

PostgreSQL: a transaction-scoped advisory lock. SQLite: ``BEGIN IMMEDIATE`` takes the write lock up
front. Without it Python's sqlite3 module runs DDL outside any transaction (it only opens one before
DML), and two processes both see an empty database and both ``CREATE TABLE`` — the loser fails with
"table ... already exists". A waiting SQLite process is bounded by the connection's busy_timeout.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from threadline.storage import pg_vectors

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
        elif connection.dialect.name == "sqlite":
            # The driver has not begun a transaction yet (it begins lazily, before DML only).
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        command.upgrade(alembic_config(connection), revision)
        if connection.dialect.name == "postgresql" and revision == "head":
            # Not a migration: pgvector may be installed on the server after the schema was made.
            pg_vectors.ensure(connection)


def vector_index_ready(engine: Engine) -> bool:
    """Whether embeddings have an index to go to: always on SQLite (sqlite-vec), on PostgreSQL
    when the server has pgvector (``pg_vectors.ensure`` made its table)."""
    if engine.dialect.name == "sqlite":
        return True
    with engine.connect() as connection:
        return pg_vectors.available(connection)


def require_vector_index(engine: Engine) -> None:
    """Refuse to start with an embeddings model that has nowhere to store its vectors."""
    if not vector_index_ready(engine):
        raise ValueError(
            "THREADLINE_EMBEDDINGS_MODEL is set, but this PostgreSQL server has no pgvector extension: "
            "install it (e.g. the postgresql-<version>-pgvector package) and restart, or unset "
            "THREADLINE_EMBEDDINGS_MODEL for keyword-only search"
        )


def head_revision() -> str | None:
    """The newest revision the code knows."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
