"""Threads repository."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Page, Thread
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper

t = tables.threads


_threads = Mapper(Thread, t)
_thread = _threads.load
_GET = sa.select(t).where(t.c.id == sa.bindparam("thread_id"))
# Built once (see storage/runs.py).
_INSERT = t.insert()


class ThreadRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, thread: Thread) -> None:
        self.conn.execute(_INSERT, _threads.dump(thread))

    def get(self, thread_id: str) -> Thread | None:
        row = self.conn.execute(_GET, {"thread_id": thread_id}).first()
        return None if row is None else _thread(row)

    def update(self, thread: Thread) -> None:
        self.conn.execute(
            t.update()
            .where(t.c.id == thread.id)
            .values(tool_resources=thread.tool_resources, metadata=thread.metadata)
        )

    def delete(self, thread_id: str) -> bool:
        """Delete the thread and everything under it (messages, runs, steps) in this transaction."""
        for child in (tables.messages, tables.run_steps, tables.runs):
            self.conn.execute(child.delete().where(child.c.thread_id == thread_id))
        return self.conn.execute(t.delete().where(t.c.id == thread_id)).rowcount > 0

    def list(self, params: ListParams, metadata_filter: dict[str, str]) -> Page[Thread]:
        where = [t.c["metadata"][key].as_string() == value for key, value in metadata_filter.items()]
        return fetch_page(self.conn, t, where, params, _thread)
