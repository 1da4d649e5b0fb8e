"""Database handle settings: pool size and statement timeout are applied (PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.support import databases
from threadline.config import Settings
from threadline.storage.database import Database


@pytest.fixture()
def pg_admin_url() -> str:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return databases.admin_url()


def test_postgres_pool_is_sized_by_settings(pg_admin_url: str) -> None:
    db = Database(Settings(database_url=pg_admin_url, db_pool_size=3))
    try:
        pool = db.engine.pool
        assert isinstance(pool, sa.QueuePool)
        assert pool.size() == 3
        assert db._pool._max_workers == 3  # request threads never outnumber pooled connections
    finally:
        db.close()


def test_postgres_statement_timeout_is_applied(pg_admin_url: str) -> None:
    db = Database(Settings(database_url=pg_admin_url, db_statement_timeout_ms=150))
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "150ms"
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            db.transaction_sync(lambda uow: uow.conn.execute(sa.text("SELECT pg_sleep(2)")))
        # The connection that timed out went back to the pool usable.
        assert db.transaction_sync(lambda uow: uow.conn.execute(sa.text("SELECT 1")).scalar()) == 1
    finally:
        db.close()
