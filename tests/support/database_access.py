"""Reach into a test server's database (to age rows in time, which an API cannot do)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.support.server import ServerProcess


def database_url(server: ServerProcess) -> str:
    url = server.env.get("THREADLINE_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{(server.data_dir / 'threadline.db').resolve()}"


def execute_sql(server: ServerProcess, sql: str, **params: Any) -> None:
    engine = sa.create_engine(database_url(server))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()
