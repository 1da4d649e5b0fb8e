"""Run events repository: the durable side of the database event bus (``events/database.py``).

Events of one run are numbered 1, 2, 3... (``seq``). On PostgreSQL an append takes a per-run
advisory lock for its transaction, so the next number is computed from committed rows only and rows
commit in ``seq`` order; a reader at ``seq`` N therefore never skips a row committed later with a
smaller number. SQLite's single writer gives the same order. Each append on PostgreSQL also sends a
NOTIFY per run whose payload is only the run id and the appending process's token (payloads are
capped at 8000 bytes; readers fetch the rows).

``append_many`` appends the events of several runs in a fixed number of statements (lock, numbers,
insert, notify), whatever the number of runs: the statements' own cost, not PostgreSQL's work,
was what a batch of a run's events cost the writer (``docs/performance.md``, "Mixed load").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from threadline.storage import tables
from threadline.storage.notify import EVENTS_CHANNEL, EventsNotice

e = tables.run_events
w = tables.run_watchers
# First key of the two-key advisory lock: our namespace, so other users of advisory locks on the same
# database (e.g. the migration lock) never collide with run ids.
_LOCK_NAMESPACE = 0x7E7E

Records = Sequence[tuple[str, dict[str, Any]]]

# The locks in the order of the array (WITH ORDINALITY): callers pass run ids sorted, the order
# earlier releases (one lock statement per run, sorted) took them in, so two processes appending to
# the same runs, even of two releases during a rolling deploy, wait for each other, never deadlock.
_LOCK_MANY = sa.text(
    "SELECT count(pg_advisory_xact_lock(:ns, hashtext(t.run_id)))"
    " FROM (SELECT run_id FROM unnest(CAST(:run_ids AS text[])) WITH ORDINALITY AS u(run_id, n)"
    " ORDER BY n) AS t"
).bindparams(sa.bindparam("ns"), sa.bindparam("run_ids", type_=postgresql.ARRAY(sa.Text)))
_NOTIFY_MANY = sa.text(
    "SELECT count(pg_notify(:channel, p)) FROM unnest(CAST(:payloads AS text[])) AS p"
).bindparams(sa.bindparam("channel"), sa.bindparam("payloads", type_=postgresql.ARRAY(sa.Text)))
_LOCK_ONE = sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:run_id))")
_WATCHED_ELSEWHERE = sa.select(w.c.run_id).where(
    w.c.run_id.in_(sa.bindparam("run_ids", expanding=True)), w.c.origin != sa.bindparam("origin")
)
_WATCH = {
    dialect.dialect().name: dialect.insert(w)
    .values(run_id=sa.bindparam("run_id"), origin=sa.bindparam("origin"), created_at=sa.bindparam("at"))
    .on_conflict_do_nothing()
    for dialect in (postgresql, sqlite)
}
_LAST_SEQ = sa.select(sa.func.coalesce(sa.func.max(e.c.seq), 0)).where(e.c.run_id == sa.bindparam("run_id"))
_LAST_SEQS = (
    sa.select(e.c.run_id, sa.func.max(e.c.seq))
    .where(e.c.run_id.in_(sa.bindparam("run_ids", expanding=True)))
    .group_by(e.c.run_id)
)


class RunEventRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def append(self, run_id: str, records: Records, created_at: float, origin: str = "") -> int:
        """Append ``(name, data)`` records after the run's last event and announce them (payload
        ``<run id>:<origin>``: the appending process delivers to its own subscribers from memory and
        ignores its own announcements); returns the new last ``seq``."""
        if not records:
            return self.last_seq(run_id)
        return self.append_many({run_id: records}, created_at, origin)[run_id]

    def lock(self, run_ids: Sequence[str]) -> None:
        """Take the runs' append locks for the transaction (PostgreSQL; SQLite has one writer).
        ``run_ids`` sorted, as every appender takes them, so that appenders never deadlock."""
        if self.postgres and run_ids:
            self.conn.execute(_LOCK_MANY, {"ns": _LOCK_NAMESPACE, "run_ids": list(run_ids)})

    def append_many(
        self, records: Mapping[str, Records], created_at: float, origin: str = "", *, locked: bool = False
    ) -> dict[str, int]:
        """``append`` for several runs in one go; returns the new last ``seq`` of each run given
        records (runs given none are left out). ``locked``: the caller took ``lock`` already."""
        run_ids = sorted(run_id for run_id, run_records in records.items() if run_records)
        if not run_ids:
            return {}
        if not locked:
            self.lock(run_ids)
        last: dict[str, int] = {row[0]: row[1] for row in self.conn.execute(_LAST_SEQS, {"run_ids": run_ids})}
        rows: list[dict[str, Any]] = []
        new_last: dict[str, int] = {}
        for run_id in run_ids:
            first = last.get(run_id, 0) + 1
            rows += [
                {"run_id": run_id, "seq": seq, "created_at": created_at, "name": name, "data": data}
                for seq, (name, data) in enumerate(records[run_id], start=first)
            ]
            new_last[run_id] = first + len(records[run_id]) - 1
        self.conn.execute(e.insert(), rows)
        if self.postgres:
            payloads = [EventsNotice(run_id, origin).payload for run_id in run_ids]
            self.conn.execute(_NOTIFY_MANY, {"channel": EVENTS_CHANNEL, "payloads": payloads})
        return new_last

    def last_seq(self, run_id: str) -> int:
        """The run's last event number (0: none yet): where a new subscriber starts reading."""
        return int(self.conn.execute(_LAST_SEQ, {"run_id": run_id}).scalar_one())

    def after(self, run_id: str, seq: int, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
        """Up to ``limit`` events of the run after ``seq``, in order."""
        query = (
            sa.select(e.c.seq, e.c.name, e.c.data)
            .where(e.c.run_id == run_id, e.c.seq > seq)
            .order_by(e.c.seq)
            .limit(limit)
        )
        return [(row.seq, row.name, row.data) for row in self.conn.execute(query)]

    def watch(self, run_id: str, origin: str, at: float) -> int:
        """Record that ``origin`` streams the run and return where its stream starts (``last_seq``),
        under the run's append lock: an append either saw this watcher, and keeps the run's deltas,
        or committed before, and its events lie before the stream's start."""
        if self.postgres:
            self.conn.execute(_LOCK_ONE, {"ns": _LOCK_NAMESPACE, "run_id": run_id})
        self.conn.execute(_WATCH[self.conn.dialect.name], {"run_id": run_id, "origin": origin, "at": at})
        return self.last_seq(run_id)

    def watched_elsewhere(self, run_ids: Sequence[str], origin: str) -> set[str]:
        """Which of ``run_ids`` a process other than ``origin`` streams (call holding ``lock``)."""
        if not run_ids:
            return set()
        rows = self.conn.execute(_WATCHED_ELSEWHERE, {"run_ids": list(run_ids), "origin": origin})
        return {row[0] for row in rows}

    def prune(self, before: float, watchers_before: float) -> int:
        """Delete events appended before ``before`` and watchers recorded before ``watchers_before``
        (Unix seconds); returns how many events."""
        self.conn.execute(w.delete().where(w.c.created_at < watchers_before))
        result = self.conn.execute(e.delete().where(e.c.created_at < before))
        return int(result.rowcount or 0)
