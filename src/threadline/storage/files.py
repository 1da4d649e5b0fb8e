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

f = tables.files


def _file(row: Any) -> StoredFile:
    return StoredFile(**row._mapping)


def _live(now: int) -> sa.ColumnElement[bool]:
    # Expired files disappear at once, before any sweep deletes their rows and bytes.
    return sa.or_(f.c.expires_at.is_(None), f.c.expires_at > now)


class FileRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, file: StoredFile) -> None:
        self.conn.execute(f.insert().values(**dataclasses.asdict(file)))

    def get(self, file_id: str, now: int) -> StoredFile | None:
        row = self.conn.execute(sa.select(f).where(f.c.id == file_id, _live(now))).first()
        return None if row is None else _file(row)

    def existing_ids(self, file_ids: list[str], now: int) -> set[str]:
        if not file_ids:
            return set()
        rows = self.conn.execute(sa.select(f.c.id).where(f.c.id.in_(file_ids), _live(now)))
        return {row.id for row in rows}

    def filenames(self, file_ids: set[str]) -> dict[str, str]:
        if not file_ids:
            return {}
        rows = self.conn.execute(sa.select(f.c.id, f.c.filename).where(f.c.id.in_(file_ids)))
        return {row.id: row.filename for row in rows}

    def delete(self, file_id: str) -> bool:
        return self.conn.execute(f.delete().where(f.c.id == file_id)).rowcount > 0

    def list_files(self, params: ListParams, purpose: str | None, now: int) -> Page[StoredFile]:
        where = [_live(now)]
        if purpose is not None:
            where.append(f.c.purpose == purpose)
        return fetch_page(self.conn, f, where, params, _file)

    def expired_ids(self, now: int, limit: int = 100) -> list[str]:
        rows = self.conn.execute(
            sa.select(f.c.id).where(f.c.expires_at.is_not(None), f.c.expires_at <= now).limit(limit)
        )
        return [row.id for row in rows]
