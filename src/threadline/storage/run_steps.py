"""Run steps repository."""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.run_states import StepStatus
from threadline.domain.runs import RunStep
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

s = tables.run_steps
_steps = Mapper(RunStep, s)
# The run path's statements, built once (see storage/runs.py).
_INSERT = s.insert()
_GET = sa.select(s).where(s.c.id == sa.bindparam("b_step_id"), s.c.run_id == sa.bindparam("b_run_id"))
_UPDATE = s.update().where(s.c.id == sa.bindparam("b_step_id"))
_ALL_FOR_RUN = sa.select(s).where(s.c.run_id == sa.bindparam("b_run_id")).order_by(s.c.id)
_IN_PROGRESS_FOR_RUN = (
    sa.select(s)
    .where(s.c.run_id == sa.bindparam("b_run_id"), s.c.status == StepStatus.IN_PROGRESS)
    .order_by(s.c.id)
)


def _step(row: Any) -> RunStep:
    return _steps.load(row)


class RunStepRepository:
    """Steps live under their run: every call first requires that the scope owns the run
    (storage/scope.py)."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert(self, step: RunStep) -> None:
        self.owner.run(step.run_id)
        self.conn.execute(_INSERT, _steps.dump(step))

    def get(self, run_id: str, step_id: str) -> RunStep | None:
        self.owner.run(run_id)
        row = self.conn.execute(_GET, {"b_step_id": step_id, "b_run_id": run_id}).first()
        return None if row is None else _step(row)

    def update(self, step: RunStep) -> None:
        self.owner.run(step.run_id)
        values = _steps.dump(step, without=("id",))
        self.conn.execute(_UPDATE, {"b_step_id": step.id, **values})

    def list(self, run_id: str, params: ListParams) -> Page[RunStep]:
        self.owner.run(run_id)
        return fetch_page(self.conn, s, [], params, _step, equal={"run_id": run_id})

    def all_for_run(self, run_id: str) -> builtins.list[RunStep]:
        """Every step of a run, oldest first (prompt building, usage totals)."""
        self.owner.run(run_id)
        rows = self.conn.execute(_ALL_FOR_RUN, {"b_run_id": run_id}).all()
        return [_step(row) for row in rows]

    def in_progress_for_run(self, run_id: str) -> builtins.list[RunStep]:
        self.owner.run(run_id)
        rows = self.conn.execute(_IN_PROGRESS_FOR_RUN, {"b_run_id": run_id}).all()
        return [_step(row) for row in rows]
