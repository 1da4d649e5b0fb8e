"""Run steps repository."""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.runs import RunStep
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper

s = tables.run_steps
_steps = Mapper(RunStep, s)


def _step(row: Any) -> RunStep:
    return _steps.load(row)


class RunStepRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, step: RunStep) -> None:
        self.conn.execute(s.insert().values(**_steps.dump(step)))

    def get(self, run_id: str, step_id: str) -> RunStep | None:
        row = self.conn.execute(sa.select(s).where(s.c.id == step_id, s.c.run_id == run_id)).first()
        return None if row is None else _step(row)

    def update(self, step: RunStep) -> None:
        values = _steps.dump(step, without=("id",))
        self.conn.execute(s.update().where(s.c.id == step.id).values(**values))

    def list(self, run_id: str, params: ListParams) -> Page[RunStep]:
        return fetch_page(self.conn, s, [s.c.run_id == run_id], params, _step)

    def all_for_run(self, run_id: str) -> builtins.list[RunStep]:
        """Every step of a run, oldest first (prompt building, usage totals)."""
        rows = self.conn.execute(sa.select(s).where(s.c.run_id == run_id).order_by(s.c.id)).all()
        return [_step(row) for row in rows]

    def in_progress_for_run(self, run_id: str) -> builtins.list[RunStep]:
        query = sa.select(s).where(s.c.run_id == run_id, s.c.status == "in_progress").order_by(s.c.id)
        return [_step(row) for row in self.conn.execute(query).all()]
