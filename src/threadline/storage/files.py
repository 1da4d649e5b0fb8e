"""Files repository (metadata rows; the bytes are in the blob store)."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.files import StoredFile
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import object_columns
from threadline.storage.scope import Ownership

f = tables.files
_COLUMNS = object_columns(f)


def _file(row: Any) -> StoredFile:
    return StoredFile(**row._mapping)


def _live(now: int) -> sa.ColumnElement[bool]:
    # Expired files disappear at once, before any sweep deletes their rows and bytes.
    return sa.or_(f.c.expires_at.is_(None), f.c.expires_at > now)


class FileRepository:
    """Scoped to the transaction's project (storage/scope.py)."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def insert(self, file: StoredFile) -> None:
        values = dataclasses.asdict(file)
        self.conn.execute(f.insert().values(**values, project_id=self.owner.project_for_insert()))
        self.owner.found(file.id)

    def get(self, file_id: str, now: int) -> StoredFile | None:
        query = sa.select(*_COLUMNS).where(f.c.id == file_id, _live(now), *self.owner.where(f))
        row = self.conn.execute(query).first()
        if row is None:
            return None
        self.owner.found(file_id)
        return _file(row)

    def existing_ids(self, file_ids: list[str], now: int) -> set[str]:
        if not file_ids:
            return set()
        query = sa.select(f.c.id).where(f.c.id.in_(file_ids), _live(now), *self.owner.where(f))
        return {row.id for row in self.conn.execute(query)}

    def filenames(self, file_ids: set[str]) -> dict[str, str]:
        if not file_ids:
            return {}
        query = sa.select(f.c.id, f.c.filename).where(f.c.id.in_(file_ids), *self.owner.where(f))
        return {row.id: row.filename for row in self.conn.execute(query)}

    def delete(self, file_id: str) -> bool:
        return self.conn.execute(f.delete().where(f.c.id == file_id, *self.owner.where(f))).rowcount > 0

    def list_files(self, params: ListParams, purpose: str | None, now: int) -> Page[StoredFile]:
        where = [_live(now)]
        if purpose is not None:
            where.append(f.c.purpose == purpose)
        return fetch_page(self.conn, f, where, params, _file, equal=self.owner.equal())

    def stored_bytes(self) -> int:
        """Bytes of the scope's files (the storage quota), expired ones included until swept."""
        query = sa.select(sa.func.coalesce(sa.func.sum(f.c.bytes), 0)).where(*self.owner.where(f))
        return int(self.conn.execute(query).scalar_one())

    def expired_ids(self, now: int, limit: int = 100) -> list[str]:
        self.owner.require_bookkeeping()
        rows = self.conn.execute(
            sa.select(f.c.id).where(f.c.expires_at.is_not(None), f.c.expires_at <= now).limit(limit)
        )
        return [row.id for row in rows]
