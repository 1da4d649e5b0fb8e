"""Completions usage per project, model and UTC day: one upsert when a run ends, read in day buckets."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from threadline.storage import tables

u = tables.usage_daily
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: int
    project_id: str | None  # None when not grouped by project
    model: str | None  # None when not grouped by model
    input_tokens: int
    output_tokens: int
    model_requests: int
    runs: int


def day_of(timestamp: int) -> int:
    return timestamp - timestamp % DAY_S


def _upsert(insert: sqlite.Insert | postgresql.Insert) -> sa.Insert:
    """Add a run's counts to its (project, day, model) row, creating the row the first time."""
    counters = ("input_tokens", "output_tokens", "model_requests", "runs")
    return insert.on_conflict_do_update(
        index_elements=list(u.primary_key.columns),
        set_={name: u.c[name] + insert.excluded[name] for name in counters},
    )


# Built once per dialect: the upsert's construction cost more CPU than its execution on SQLite
# (≈ 0.9 ms of a run's ≈ 15 ms in the runs profile).
_UPSERT = {"sqlite": _upsert(sqlite.insert(u)), "postgresql": _upsert(postgresql.insert(u))}


class UsageRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self, project_id: str, model: str, at: int, input_tokens: int, output_tokens: int, model_requests: int
    ) -> None:
        values = {
            "project_id": project_id,
            "day": day_of(at),
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "model_requests": model_requests,
            "runs": 1,
        }
        self.conn.execute(_UPSERT[self.conn.dialect.name], values)

    def totals(
        self,
        start_day: int,
        end_day: int,
        *,
        project_ids: Sequence[str] = (),
        models: Sequence[str] = (),
        by_project: bool,
        by_model: bool,
    ) -> builtins.list[UsageRow]:
        """Sums per day in ``[start_day, end_day)``, grouped as asked, ordered by day."""
        keys: list[sa.ColumnElement[object]] = [u.c.day]
        if by_project:
            keys.append(u.c.project_id)
        if by_model:
            keys.append(u.c.model)
        query = (
            sa.select(
                *keys,
                sa.func.sum(u.c.input_tokens),
                sa.func.sum(u.c.output_tokens),
                sa.func.sum(u.c.model_requests),
                sa.func.sum(u.c.runs),
            )
            .where(u.c.day >= start_day, u.c.day < end_day)
            .group_by(*keys)
            .order_by(*keys)
        )
        if project_ids:
            query = query.where(u.c.project_id.in_(list(project_ids)))
        if models:
            query = query.where(u.c.model.in_(list(models)))
        rows = []
        for row in self.conn.execute(query):
            values = list(row)
            day = values.pop(0)
            project = values.pop(0) if by_project else None
            model = values.pop(0) if by_model else None
            rows.append(UsageRow(int(day), project, model, *(int(v or 0) for v in values)))
        return rows
