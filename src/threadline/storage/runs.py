"""Runs repository (the thread lock lives on top of ``active_run_id``).

Reads that precede a state transition use ``get_for_update``: on PostgreSQL it takes the row lock
(``SELECT ... FOR UPDATE``), so a cancel and the executor's own transition cannot both win; SQLite
has a single writer, where the clause is a no-op. ``claim_queued`` is the seam a multi-worker
executor builds on (``FOR UPDATE SKIP LOCKED`` there).
"""

from __future__ import annotations

import builtins
import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.run_states import ACTIVE_RUN_STATUSES
from threadline.domain.runs import Run
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page

r = tables.runs


def _run(row: Any) -> Run:
    return Run(**row._mapping)


class RunRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def active_run_id(self, thread_id: str) -> str | None:
        """The id of the thread's run in queued/in_progress/requires_action/cancelling, if any."""
        return self.conn.execute(
            sa.select(r.c.id).where(r.c.thread_id == thread_id, r.c.status.in_(ACTIVE_RUN_STATUSES)).limit(1)
        ).scalar_one_or_none()

    def insert(self, run: Run) -> None:
        self.conn.execute(r.insert().values(**dataclasses.asdict(run)))

    def get(self, thread_id: str, run_id: str) -> Run | None:
        row = self.conn.execute(sa.select(r).where(r.c.id == run_id, r.c.thread_id == thread_id)).first()
        return None if row is None else _run(row)

    def get_for_update(self, run_id: str) -> Run | None:
        """The run, row-locked until the transaction ends (PostgreSQL)."""
        row = self.conn.execute(sa.select(r).where(r.c.id == run_id).with_for_update()).first()
        return None if row is None else _run(row)

    def update(self, run: Run) -> None:
        values = dataclasses.asdict(run)
        del values["id"]
        self.conn.execute(r.update().where(r.c.id == run.id).values(**values))

    def list(self, thread_id: str, params: ListParams) -> Page[Run]:
        return fetch_page(self.conn, r, [r.c.thread_id == thread_id], params, _run)

    def ids_with_status(self, statuses: tuple[str, ...]) -> builtins.list[str]:
        """Ids of runs in ``statuses``, oldest first (start-up recovery)."""
        query = sa.select(r.c.id).where(r.c.status.in_(statuses)).order_by(r.c.id)
        return list(self.conn.execute(query).scalars())

    def ids_due_to_expire(self, now: int) -> builtins.list[str]:
        """Live runs whose ``expires_at`` has passed (the expiry sweep)."""
        query = (
            sa.select(r.c.id)
            .where(r.c.status.in_(ACTIVE_RUN_STATUSES), r.c.expires_at <= now)
            .order_by(r.c.id)
        )
        return list(self.conn.execute(query).scalars())

    def delete_for_thread(self, thread_id: str) -> None:
        self.conn.execute(r.delete().where(r.c.thread_id == thread_id))
