"""Messages repository."""

from __future__ import annotations

import builtins

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import ListParams, Message, Page
from threadline.storage import tables
from threadline.storage.compiled import Compiled
from threadline.storage.pagination import keyset_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

m = tables.messages


_messages = Mapper(Message, m)
# On the driver's cursor (storage/compiled.py): every message write and read of a run goes here.
_INSERT = Compiled(m.insert(), column_keys=_messages.names)
_GET = Compiled(
    sa.select(*_messages.columns).where(
        m.c.id == sa.bindparam("message_id"), m.c.thread_id == sa.bindparam("thread_id")
    )
)
_UPDATE = Compiled(
    m.update().where(m.c.id == sa.bindparam("b_message_id")),
    column_keys=[name for name in _messages.names if name != "id"],
)
_ALL_IN_THREAD = Compiled(
    sa.select(*_messages.columns).where(m.c.thread_id == sa.bindparam("b_thread_id")).order_by(m.c.id)
)


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
            _INSERT.execute_many(self.conn, [_messages.dump(message) for message in messages])

    def get(self, thread_id: str, message_id: str) -> Message | None:
        self.owner.thread(thread_id)
        row = _GET.first(self.conn, {"message_id": message_id, "thread_id": thread_id})
        return None if row is None else _messages.load_values(row)

    def update(self, message: Message) -> None:
        self.owner.thread(message.thread_id)
        values = _messages.dump(message, without=("id",))
        _UPDATE.execute(self.conn, {"b_message_id": message.id, **values})

    def delete(self, thread_id: str, message_id: str) -> bool:
        self.owner.thread(thread_id)
        result = self.conn.execute(m.delete().where(m.c.id == message_id, m.c.thread_id == thread_id))
        return result.rowcount > 0

    def list(self, thread_id: str, params: ListParams, run_id: str | None = None) -> Page[Message]:
        self.owner.thread(thread_id)
        equal = {"thread_id": thread_id} if run_id is None else {"thread_id": thread_id, "run_id": run_id}
        return keyset_page(self.conn, params, _messages, equal=equal)

    def all_in_thread(self, thread_id: str) -> builtins.list[Message]:
        """Every message of a thread, oldest first (prompt building)."""
        self.owner.thread(thread_id)
        rows = _ALL_IN_THREAD.all(self.conn, {"b_thread_id": thread_id})
        return [_messages.load_values(row) for row in rows]
