"""Threads repository (scoped to the transaction's project, storage/scope.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Page, Thread
from threadline.storage import tables
from threadline.storage.compiled import Compiled
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

t = tables.threads


_threads = Mapper(Thread, t)
_thread = _threads.load
# On the driver's cursor (storage/compiled.py); the scoped variant also names the project.
_GET_ANY_STATEMENT = sa.select(*_threads.columns).where(t.c.id == sa.bindparam("b_id"))
_GET_ANY = Compiled(_GET_ANY_STATEMENT)
_GET = Compiled(_GET_ANY_STATEMENT.where(t.c.project_id == sa.bindparam("b_project")))
_INSERT = Compiled(t.insert(), column_keys=[*_threads.names, "project_id"])


class ThreadRepository:
    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert(self, thread: Thread) -> None:
        _INSERT.execute(self.conn, {**_threads.dump(thread), "project_id": self.owner.project_for_insert()})
        self.owner.found(thread.id)

    def get(self, thread_id: str) -> Thread | None:
        if self.owner.everywhere:
            row = _GET_ANY.first(self.conn, {"b_id": thread_id})
        else:
            row = _GET.first(self.conn, {"b_id": thread_id, "b_project": self.owner.project_id})
        if row is None:
            return None
        self.owner.found(thread_id)
        return _threads.load_values(row)

    def update(self, thread: Thread) -> None:
        self.conn.execute(
            t.update()
            .where(t.c.id == thread.id, *self.owner.where(t))
            .values(tool_resources=thread.tool_resources, metadata=thread.metadata)
        )

    def delete(self, thread_id: str) -> bool:
        """Delete the thread and everything under it (messages, runs, steps) in this transaction."""
        self.owner.thread(thread_id)
        for child in (tables.messages, tables.run_steps, tables.runs):
            self.conn.execute(child.delete().where(child.c.thread_id == thread_id))
        return self.conn.execute(t.delete().where(t.c.id == thread_id)).rowcount > 0

    def list(self, params: ListParams, metadata_filter: dict[str, str]) -> Page[Thread]:
        where = [t.c["metadata"][key].as_string() == value for key, value in metadata_filter.items()]
        return fetch_page(self.conn, t, where, params, _thread, equal=self.owner.equal())
