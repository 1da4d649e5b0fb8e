"""Run steps repository."""

from __future__ import annotations

import builtins

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.run_states import StepStatus
from threadline.domain.runs import RunStep
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.compiled import Compiled
from threadline.storage.pagination import keyset_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

s = tables.run_steps
_steps = Mapper(RunStep, s)
# The run path's statements, on the driver's cursor (storage/compiled.py, storage/runs.py).
_INSERT = Compiled(s.insert(), column_keys=_steps.names)
_GET = Compiled(
    sa.select(*_steps.columns).where(
        s.c.id == sa.bindparam("b_step_id"), s.c.run_id == sa.bindparam("b_run_id")
    )
)
_UPDATE = Compiled(
    s.update().where(s.c.id == sa.bindparam("b_step_id")),
    column_keys=[name for name in _steps.names if name != "id"],
)
_ALL_FOR_RUN = Compiled(
    sa.select(*_steps.columns).where(s.c.run_id == sa.bindparam("b_run_id")).order_by(s.c.id)
)
_IN_PROGRESS_FOR_RUN = Compiled(
    sa.select(*_steps.columns)
    .where(s.c.run_id == sa.bindparam("b_run_id"), s.c.status == StepStatus.IN_PROGRESS)
    .order_by(s.c.id)
)


class RunStepRepository:
    """Steps live under their run: every call first requires that the scope owns the run
    (storage/scope.py)."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert(self, step: RunStep) -> None:
        self.owner.run(step.run_id)
        _INSERT.execute(self.conn, _steps.dump(step))

    def get(self, run_id: str, step_id: str) -> RunStep | None:
        self.owner.run(run_id)
        row = _GET.first(self.conn, {"b_step_id": step_id, "b_run_id": run_id})
        return None if row is None else _steps.load_values(row)

    def update(self, step: RunStep) -> None:
        self.owner.run(step.run_id)
        values = _steps.dump(step, without=("id",))
        _UPDATE.execute(self.conn, {"b_step_id": step.id, **values})

    def list(self, run_id: str, params: ListParams) -> Page[RunStep]:
        self.owner.run(run_id)
        return keyset_page(self.conn, params, _steps, equal={"run_id": run_id})

    def all_for_run(self, run_id: str) -> builtins.list[RunStep]:
        """Every step of a run, oldest first (prompt building, usage totals)."""
        self.owner.run(run_id)
        return [_steps.load_values(row) for row in _ALL_FOR_RUN.all(self.conn, {"b_run_id": run_id})]

    def in_progress_for_run(self, run_id: str) -> builtins.list[RunStep]:
        self.owner.run(run_id)
        rows = _IN_PROGRESS_FOR_RUN.all(self.conn, {"b_run_id": run_id})
        return [_steps.load_values(row) for row in rows]
