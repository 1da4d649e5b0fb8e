"""Migrations applied from empty produce exactly the tables in storage/tables.py, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.support import databases
from threadline.config import Settings
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.tables import metadata


def _not_vector_index(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and (name or "").startswith("chunk_vectors"))


def _diff(db: Database) -> list[object]:
    upgrade(db.engine)
    upgrade(db.engine)  # idempotent: a second run is a no-op
    with db.engine.connect() as conn:
        # The vector index's tables are not reflected at all (SQLAlchemy knows no ``vector`` type).
        opts = {"compare_type": True, "include_name": _not_vector_index}
        context = MigrationContext.configure(conn, opts=opts)
        diffs: list[object] = compare_metadata(context, metadata)
    # Full-text index objects (FTS5 tables, tsvector indexes) are dialect-specific: the migrations
    # create them outside the Core metadata on purpose; so are the vector index's (pgvector's
    # chunk_vectors, made at start when the extension is there; sqlite-vec's, made on first use).
    return [
        d
        for d in diffs
        if not (isinstance(d, tuple) and d[0] in {"remove_table", "remove_index"} and "fts" in str(d[1].name))
    ]


def test_sqlite_migrations_match_tables(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path))
    try:
        assert _diff(db) == []
    finally:
        db.close()


def test_postgres_migrations_match_tables() -> None:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    url = databases.create_database()
    db = Database(Settings(database_url=url))
    try:
        assert _diff(db) == []
    finally:
        db.close()
        databases.drop_database(url)
