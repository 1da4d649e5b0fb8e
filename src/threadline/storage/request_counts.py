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


def _upsert(insert: sqlite.Insert | postgresql.Insert) -> sa.Insert:
    return insert.on_conflict_do_update(
        index_elements=[c.c.project_id, c.c.minute],
        set_={"requests": c.c.requests + insert.excluded.requests},
    )


_UPSERT = {"sqlite": _upsert(sqlite.insert(c)), "postgresql": _upsert(postgresql.insert(c))}  # built once


class RequestCountRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, minute: int, counts: Mapping[str, int]) -> None:
        if not counts:
            return
        rows = [{"project_id": project, "minute": minute, "requests": n} for project, n in counts.items()]
        self.conn.execute(_UPSERT[self.conn.dialect.name], rows)

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
