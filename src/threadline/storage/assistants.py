"""Assistants repository (scoped to the transaction's project, storage/scope.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.threads import Assistant, ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

a = tables.assistants


_assistants = Mapper(Assistant, a)
_assistant = _assistants.load
_GET_ANY = sa.select(*_assistants.columns).where(a.c.id == sa.bindparam("b_id"))
_GET = _GET_ANY.where(a.c.project_id == sa.bindparam("b_project"))


class AssistantRepository:
    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert(self, assistant: Assistant) -> None:
        values = _assistants.dump(assistant)
        self.conn.execute(a.insert().values(**values, project_id=self.owner.project_for_insert()))

    def get(self, assistant_id: str) -> Assistant | None:
        if self.owner.everywhere:
            row = self.conn.execute(_GET_ANY, {"b_id": assistant_id}).first()
        else:
            row = self.conn.execute(_GET, {"b_id": assistant_id, "b_project": self.owner.project_id}).first()
        return None if row is None else _assistant(row)

    def update(self, assistant: Assistant) -> None:
        values = _assistants.dump(assistant, without=("id",))
        self.conn.execute(a.update().where(a.c.id == assistant.id, *self.owner.where(a)).values(**values))

    def delete(self, assistant_id: str) -> bool:
        return self.conn.execute(a.delete().where(a.c.id == assistant_id, *self.owner.where(a))).rowcount > 0

    def list(self, params: ListParams) -> Page[Assistant]:
        return fetch_page(self.conn, a, [], params, _assistant, equal=self.owner.equal())
