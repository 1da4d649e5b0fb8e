"""Requests per project and minute, summed over every process (the per-project rate limit).

Each process adds what it counted since its last flush (a few times a second, not per request) and
reads back the deployment's totals for the current minute."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from threadline.storage import tables

c = tables.request_counts


class RequestCountRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, minute: int, counts: Mapping[str, int]) -> None:
        if not counts:
            return
        dialect_insert = sqlite.insert if self.conn.dialect.name == "sqlite" else postgresql.insert
        rows = [{"project_id": project, "minute": minute, "requests": n} for project, n in counts.items()]
        insert = dialect_insert(c)
        self.conn.execute(
            insert.on_conflict_do_update(
                index_elements=[c.c.project_id, c.c.minute],
                set_={"requests": c.c.requests + insert.excluded.requests},
            ),
            rows,
        )

    def totals(self, minute: int, projects: Iterable[str]) -> dict[str, int]:
        wanted = list(projects)
        if not wanted:
            return {}
        query = sa.select(c.c.project_id, c.c.requests).where(
            c.c.minute == minute, c.c.project_id.in_(wanted)
        )
        return {row.project_id: int(row.requests) for row in self.conn.execute(query)}

    def prune(self, before_minute: int) -> None:
        self.conn.execute(c.delete().where(c.c.minute < before_minute))
