"""Assistants repository."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import Assistant, ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper

a = tables.assistants


_assistants = Mapper(Assistant, a)
_assistant = _assistants.load
_GET = sa.select(a).where(a.c.id == sa.bindparam("assistant_id"))


class AssistantRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, assistant: Assistant) -> None:
        self.conn.execute(a.insert().values(**_assistants.dump(assistant)))

    def get(self, assistant_id: str) -> Assistant | None:
        row = self.conn.execute(_GET, {"assistant_id": assistant_id}).first()
        return None if row is None else _assistant(row)

    def update(self, assistant: Assistant) -> None:
        values = _assistants.dump(assistant, without=("id",))
        self.conn.execute(a.update().where(a.c.id == assistant.id).values(**values))

    def delete(self, assistant_id: str) -> bool:
        return self.conn.execute(a.delete().where(a.c.id == assistant_id)).rowcount > 0

    def list(self, params: ListParams) -> Page[Assistant]:
        return fetch_page(self.conn, a, [], params, _assistant)
