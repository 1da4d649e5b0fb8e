"""Runs repository (the thread lock lives on top of ``active_run_id``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.run_states import ACTIVE_RUN_STATUSES
from threadline.storage import tables

r = tables.runs


class RunRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def active_run_id(self, thread_id: str) -> str | None:
        """The id of the thread's run in queued/in_progress/requires_action/cancelling, if any."""
        return self.conn.execute(
            sa.select(r.c.id).where(r.c.thread_id == thread_id, r.c.status.in_(ACTIVE_RUN_STATUSES)).limit(1)
        ).scalar_one_or_none()
