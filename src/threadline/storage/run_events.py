"""Run events repository: the durable side of the database event bus (``events/database.py``).

Events of one run are numbered 1, 2, 3... (``seq``). On PostgreSQL an append takes a per-run
advisory lock for its transaction, so the next number is computed from committed rows only and rows
commit in ``seq`` order; a reader at ``seq`` N therefore never skips a row committed later with a
smaller number. SQLite's single writer gives the same order. Each append on PostgreSQL also sends a
NOTIFY whose payload is only the run id and the appending process's token (payloads are capped at
8000 bytes; readers fetch the rows).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.storage import tables
from threadline.storage.notify import EVENTS_CHANNEL, EventsNotice, send

e = tables.run_events
# First key of the two-key advisory lock: our namespace, so other users of advisory locks on the same
# database (e.g. the migration lock) never collide with run ids.
_LOCK_NAMESPACE = 0x7E7E


class RunEventRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def append(
        self, run_id: str, records: list[tuple[str, dict[str, Any]]], created_at: float, origin: str = ""
    ) -> int:
        """Append ``(name, data)`` records after the run's last event and announce them (payload
        ``<run id>:<origin>``: the appending process delivers to its own subscribers from memory and
        ignores its own announcements); returns the new last ``seq``."""
        if self.postgres:
            self.conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:run_id))"),
                {"ns": _LOCK_NAMESPACE, "run_id": run_id},
            )
        last = self.last_seq(run_id)
        rows = [
            {"run_id": run_id, "seq": last + i, "created_at": created_at, "name": name, "data": data}
            for i, (name, data) in enumerate(records, start=1)
        ]
        if rows:
            self.conn.execute(e.insert(), rows)
            send(self.conn, EVENTS_CHANNEL, EventsNotice(run_id, origin).payload)
        return last + len(rows)

    def last_seq(self, run_id: str) -> int:
        """The run's last event number (0: none yet): where a new subscriber starts reading."""
        query = sa.select(sa.func.coalesce(sa.func.max(e.c.seq), 0)).where(e.c.run_id == run_id)
        return int(self.conn.execute(query).scalar_one())

    def after(self, run_id: str, seq: int, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
        """Up to ``limit`` events of the run after ``seq``, in order."""
        query = (
            sa.select(e.c.seq, e.c.name, e.c.data)
            .where(e.c.run_id == run_id, e.c.seq > seq)
            .order_by(e.c.seq)
            .limit(limit)
        )
        return [(row.seq, row.name, row.data) for row in self.conn.execute(query)]

    def prune(self, before: float) -> int:
        """Delete events appended before ``before`` (Unix seconds); returns how many."""
        result = self.conn.execute(e.delete().where(e.c.created_at < before))
        return int(result.rowcount or 0)
