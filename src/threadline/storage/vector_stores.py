"""Vector stores, their files and file batches. Counts and usage are aggregated on read (one GROUP BY
per page), so they can never drift from the files' own statuses.

Scoped to the transaction's project (storage/scope.py): stores by their ``project_id``, a store's files
and batches by first requiring that the scope owns the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.files import FileBatch, VectorStore, VectorStoreFile
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page
from threadline.storage.rows import object_columns
from threadline.storage.scope import Ownership

vs = tables.vector_stores
vsf = tables.vector_store_files
fb = tables.file_batches
ch = tables.chunks
_STORE_COLUMNS = object_columns(vs)

_VSF_FIELDS = [f.name for f in dataclasses.fields(VectorStoreFile)]


def _store(row: Any) -> VectorStore:
    return VectorStore(**row._mapping)


def vs_file_of(row: Any) -> VectorStoreFile:
    """A ``vector_store_files`` row (every column selected) as the domain object."""
    return VectorStoreFile(**{name: row._mapping[name] for name in _VSF_FIELDS})


def _batch(row: Any) -> FileBatch:
    return FileBatch(**row._mapping)


class VectorStoreRepository:
    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    # --- stores ------------------------------------------------------------------------------------
    def insert(self, store: VectorStore) -> None:
        self.conn.execute(
            vs.insert().values(
                id=store.id,
                created_at=store.created_at,
                name=store.name,
                metadata=store.metadata,
                last_active_at=store.last_active_at,
                expires_after=store.expires_after,
                project_id=self.owner.project_for_insert(),
            )
        )
        self.owner.found(store.id)

    def get(self, vector_store_id: str) -> VectorStore | None:
        query = sa.select(*_STORE_COLUMNS).where(vs.c.id == vector_store_id, *self.owner.where(vs))
        row = self.conn.execute(query).first()
        if row is None:
            return None
        self.owner.found(vector_store_id)
        store = _store(row)
        self._fill_counts([store])
        return store

    def existing_ids(self, vector_store_ids: list[str]) -> set[str]:
        if not vector_store_ids:
            return set()
        query = sa.select(vs.c.id).where(vs.c.id.in_(vector_store_ids), *self.owner.where(vs))
        return set(self.conn.execute(query).scalars())

    def update(self, store: VectorStore) -> None:
        self.conn.execute(
            vs.update()
            .where(vs.c.id == store.id, *self.owner.where(vs))
            .values(
                name=store.name,
                metadata=store.metadata,
                last_active_at=store.last_active_at,
                expires_after=store.expires_after,
            )
        )

    def touch(self, vector_store_ids: Iterable[str], now: int) -> None:
        ids = list(vector_store_ids)
        if ids:
            # Only stores not yet touched this second: repeated searches then write nothing.
            self.conn.execute(
                vs.update()
                .where(vs.c.id.in_(ids), vs.c.last_active_at < now, *self.owner.where(vs))
                .values(last_active_at=now)
            )

    def delete(self, vector_store_id: str) -> bool:
        """Delete the store with its files, batches and chunks (and so their index entries)."""
        self.owner.vector_store(vector_store_id)
        self.conn.execute(ch.delete().where(ch.c.vector_store_id == vector_store_id))
        self.conn.execute(vsf.delete().where(vsf.c.vector_store_id == vector_store_id))
        self.conn.execute(fb.delete().where(fb.c.vector_store_id == vector_store_id))
        return self.conn.execute(vs.delete().where(vs.c.id == vector_store_id)).rowcount > 0

    def list_stores(self, params: ListParams) -> Page[VectorStore]:
        page = fetch_page(self.conn, vs, [], params, _store, equal=self.owner.equal())
        self._fill_counts(page.items)
        return page

    def _fill_counts(self, stores: list[VectorStore]) -> None:
        if not stores:
            return
        by_id = {store.id: store for store in stores}
        rows = self.conn.execute(
            sa.select(vsf.c.vector_store_id, vsf.c.status, sa.func.count(), sa.func.sum(vsf.c.usage_bytes))
            .where(vsf.c.vector_store_id.in_(list(by_id)))
            .group_by(vsf.c.vector_store_id, vsf.c.status)
        )
        for store_id, status, count, usage in rows:
            store = by_id[store_id]
            setattr(store.file_counts, status, int(count))
            store.usage_bytes += int(usage or 0)

    # --- files in a store --------------------------------------------------------------------------
    def put_file(self, file: VectorStoreFile) -> None:
        """Add ``file`` to its store, or restart it if already there (its old chunks go)."""
        self.owner.vector_store(file.vector_store_id)
        self.conn.execute(
            ch.delete().where(ch.c.vector_store_id == file.vector_store_id, ch.c.file_id == file.id)
        )
        self.conn.execute(
            vsf.delete().where(vsf.c.vector_store_id == file.vector_store_id, vsf.c.id == file.id)
        )
        self.conn.execute(vsf.insert().values(**dataclasses.asdict(file), lease_expires_at=None))

    def get_file(self, vector_store_id: str, file_id: str) -> VectorStoreFile | None:
        self.owner.vector_store(vector_store_id)
        row = self.conn.execute(
            sa.select(vsf).where(vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id)
        ).first()
        return None if row is None else vs_file_of(row)

    def set_attributes(self, vector_store_id: str, file_id: str, attributes: dict[str, Any] | None) -> None:
        self.owner.vector_store(vector_store_id)
        self.conn.execute(
            vsf.update()
            .where(vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id)
            .values(attributes=attributes)
        )

    def attributes_of(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Attributes of (vector_store_id, file_id) pairs, for search filters and results."""
        if not keys:
            return {}
        store_ids = {store_id for store_id, _ in keys}
        for store_id in store_ids:
            self.owner.vector_store(store_id)
        file_ids = {file_id for _, file_id in keys}
        rows = self.conn.execute(
            sa.select(vsf.c.vector_store_id, vsf.c.id, vsf.c.attributes).where(
                vsf.c.vector_store_id.in_(store_ids), vsf.c.id.in_(file_ids), vsf.c.status == "completed"
            )
        )
        return {
            (r.vector_store_id, r.id): r.attributes or {} for r in rows if (r.vector_store_id, r.id) in keys
        }

    def completed_files(self, store_ids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Attributes of every completed file of the stores (search filters run over these)."""
        if not store_ids:
            return {}
        for store_id in store_ids:
            self.owner.vector_store(store_id)
        rows = self.conn.execute(
            sa.select(vsf.c.vector_store_id, vsf.c.id, vsf.c.attributes).where(
                vsf.c.vector_store_id.in_(store_ids), vsf.c.status == "completed"
            )
        )
        return {(r.vector_store_id, r.id): r.attributes or {} for r in rows}

    def delete_file(self, vector_store_id: str, file_id: str) -> bool:
        self.owner.vector_store(vector_store_id)
        self.conn.execute(ch.delete().where(ch.c.vector_store_id == vector_store_id, ch.c.file_id == file_id))
        result = self.conn.execute(
            vsf.delete().where(vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id)
        )
        return result.rowcount > 0

    def remove_file_everywhere(self, file_id: str) -> None:
        """A File was deleted: it leaves every vector store (OpenAI's deleteFile contract)."""
        self.owner.file(file_id)
        self.conn.execute(ch.delete().where(ch.c.file_id == file_id))
        self.conn.execute(vsf.delete().where(vsf.c.id == file_id))

    def list_files(
        self,
        vector_store_id: str,
        params: ListParams,
        status: str | None = None,
        batch_id: str | None = None,
    ) -> Page[VectorStoreFile]:
        self.owner.vector_store(vector_store_id)
        where = [vsf.c.vector_store_id == vector_store_id]
        if status is not None:
            where.append(vsf.c.status == status)
        if batch_id is not None:
            where.append(vsf.c.batch_id == batch_id)
        return fetch_page(self.conn, vsf, where, params, vs_file_of)

    # --- batches -----------------------------------------------------------------------------------
    def insert_batch(self, batch: FileBatch) -> None:
        self.owner.vector_store(batch.vector_store_id)
        self.conn.execute(
            fb.insert().values(
                id=batch.id,
                vector_store_id=batch.vector_store_id,
                created_at=batch.created_at,
                cancelled=batch.cancelled,
            )
        )

    def get_batch(self, vector_store_id: str, batch_id: str) -> FileBatch | None:
        self.owner.vector_store(vector_store_id)
        row = self.conn.execute(
            sa.select(fb).where(fb.c.id == batch_id, fb.c.vector_store_id == vector_store_id)
        ).first()
        if row is None:
            return None
        batch = _batch(row)
        rows = self.conn.execute(
            sa.select(vsf.c.status, sa.func.count()).where(vsf.c.batch_id == batch_id).group_by(vsf.c.status)
        )
        for status, count in rows:
            setattr(batch.file_counts, status, int(count))
        return batch

    def cancel_batch(self, batch_id: str) -> None:
        """Mark the batch cancelled and its not-yet-indexed files ``cancelled`` (chunks an ingestion
        loop may have written for them go too; its completion is conditional and will not revive them)."""
        store_id = self.conn.execute(sa.select(fb.c.vector_store_id).where(fb.c.id == batch_id)).scalar_one()
        self.owner.vector_store(store_id)
        self.conn.execute(fb.update().where(fb.c.id == batch_id).values(cancelled=True))
        pending = sa.select(vsf.c.id).where(vsf.c.batch_id == batch_id, vsf.c.status == "in_progress")
        pending_ids = list(self.conn.execute(pending).scalars())
        if not pending_ids:
            return
        self.conn.execute(ch.delete().where(ch.c.vector_store_id == store_id, ch.c.file_id.in_(pending_ids)))
        self.conn.execute(
            vsf.update()
            .where(vsf.c.batch_id == batch_id, vsf.c.status == "in_progress")
            .values(status="cancelled", lease_expires_at=None)
        )
