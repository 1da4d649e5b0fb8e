"""Messages repository."""

from __future__ import annotations

import builtins

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Message, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

m = tables.messages


_messages = Mapper(Message, m)
_message = _messages.load
_GET = sa.select(m).where(m.c.id == sa.bindparam("message_id"), m.c.thread_id == sa.bindparam("thread_id"))
# Built once (see storage/runs.py): the UPDATE sets the columns named in the execute call's values.
_UPDATE = m.update().where(m.c.id == sa.bindparam("b_message_id"))
_ALL_IN_THREAD = sa.select(m).where(m.c.thread_id == sa.bindparam("b_thread_id")).order_by(m.c.id)


class MessageRepository:
    """Messages live under their thread: every call first requires that the scope owns the thread
    (storage/scope.py)."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert_many(self, messages: list[Message]) -> None:
        for thread_id in {message.thread_id for message in messages}:
            self.owner.thread(thread_id)
        if messages:
            self.conn.execute(m.insert(), [_messages.dump(message) for message in messages])

    def get(self, thread_id: str, message_id: str) -> Message | None:
        self.owner.thread(thread_id)
        row = self.conn.execute(_GET, {"message_id": message_id, "thread_id": thread_id}).first()
        return None if row is None else _message(row)

    def update(self, message: Message) -> None:
        self.owner.thread(message.thread_id)
        values = _messages.dump(message, without=("id",))
        self.conn.execute(_UPDATE, {"b_message_id": message.id, **values})

    def delete(self, thread_id: str, message_id: str) -> bool:
        self.owner.thread(thread_id)
        result = self.conn.execute(m.delete().where(m.c.id == message_id, m.c.thread_id == thread_id))
        return result.rowcount > 0

    def list(self, thread_id: str, params: ListParams, run_id: str | None = None) -> Page[Message]:
        self.owner.thread(thread_id)
        equal = {"thread_id": thread_id} if run_id is None else {"thread_id": thread_id, "run_id": run_id}
        return fetch_page(self.conn, m, [], params, _message, equal=equal)

    def all_in_thread(self, thread_id: str) -> builtins.list[Message]:
        """Every message of a thread, oldest first (prompt building)."""
        self.owner.thread(thread_id)
        rows = self.conn.execute(_ALL_IN_THREAD, {"b_thread_id": thread_id}).all()
        return [_message(row) for row in rows]
