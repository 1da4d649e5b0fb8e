"""Reach into a test server's database (to age rows in time, which an API cannot do)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.support.server import ServerProcess
from threadline.config import Settings
from threadline.storage.database import create_engine


def database_url(server: ServerProcess) -> str:
    url = server.env.get("THREADLINE_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{(server.data_dir / 'threadline.db').resolve()}"


def _engine(server: ServerProcess) -> sa.Engine:
    # The server's own engine setup: on SQLite that loads sqlite-vec, which deleting chunks needs.
    return create_engine(Settings(data_dir=server.data_dir, database_url=database_url(server)))


def execute_sql(server: ServerProcess, sql: str, **params: Any) -> None:
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def query_sql(server: ServerProcess, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = _engine(server)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()
