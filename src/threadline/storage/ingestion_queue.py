"""The ingestion queue: the ``vector_store_files`` rows in ``in_progress``.

An ingestion loop claims some with a lease (``SKIP LOCKED`` on PostgreSQL), indexes them, and
completes or fails each in one transaction. A loop that dies leaves a lease that simply runs out, so
another loop (or the restarted process) picks the file up again: nothing stays ``in_progress`` for
ever. A lease names its owner (the loop's id): renewing, completing, failing and releasing a file
apply only while the caller still holds it, so a loop that stalled past its lease cannot overwrite or
keep alive the work of the loop that claimed the file after it. The queue is the engine's
bookkeeping across projects; the writes to one file check that the scope owns its store.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.files import VectorStoreFile
from threadline.storage import tables
from threadline.storage.chunks import ChunkRepository, NewChunk
from threadline.storage.scope import Ownership
from threadline.storage.vector_stores import vs_file_of

vsf = tables.vector_store_files


class IngestionQueueRepository:
    def __init__(self, conn: Connection, owner: Ownership, chunks: ChunkRepository) -> None:
        self.conn = conn
        self.owner = owner
        self.chunks = chunks
        self.dialect = conn.dialect.name

    def queue_depth(self) -> int:
        """Files waiting for or in indexing (the ingestion metric)."""
        self.owner.require_bookkeeping()
        query = sa.select(sa.func.count()).select_from(vsf).where(vsf.c.status == "in_progress")
        return int(self.conn.execute(query).scalar_one())

    def claim(
        self, owner: str, now_s: float, lease_s: float, limit: int, max_attempts: int | None = None
    ) -> list[VectorStoreFile]:
        """Lease up to ``limit`` in-progress files nobody holds (or whose holder's lease ran out) to
        ``owner``.

        Each claim counts an attempt. A file already claimed ``max_attempts`` times whose lease ran
        out killed (or outlived) every process that tried it: it is failed here rather than claimed
        again, so a poison file cannot crash-loop the server."""
        self.owner.require_bookkeeping()
        query = (
            sa.select(vsf)
            .where(
                vsf.c.status == "in_progress",
                sa.or_(vsf.c.lease_expires_at.is_(None), vsf.c.lease_expires_at < now_s),
            )
            .order_by(vsf.c.created_at)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = self.conn.execute(query).all()
        claimed: list[VectorStoreFile] = []
        for row in rows:
            where = (vsf.c.vector_store_id == row.vector_store_id, vsf.c.id == row.id)
            if max_attempts is not None and row.attempts >= max_attempts:
                message = (
                    f"Ingestion crashed the worker {row.attempts} times while processing this file; "
                    "it was not retried again."
                )
                self.conn.execute(
                    vsf.update()
                    .where(*where)
                    .values(
                        status="failed",
                        last_error={"code": "server_error", "message": message},
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
                continue
            self.conn.execute(
                vsf.update()
                .where(*where)
                .values(lease_owner=owner, lease_expires_at=now_s + lease_s, attempts=row.attempts + 1)
            )
            claimed.append(vs_file_of(row))
        return claimed

    def release(self, vector_store_id: str, file_id: str, owner: str) -> None:
        """Hand a file ``owner`` holds back unfinished (clean shutdown): the claim does not count."""
        self.owner.vector_store(vector_store_id)
        self.conn.execute(
            vsf.update()
            .where(*self._held(vector_store_id, file_id, owner))
            .values(
                lease_owner=None,
                lease_expires_at=None,
                attempts=sa.case((vsf.c.attempts > 0, vsf.c.attempts - 1), else_=0),
            )
        )

    def renew(self, vector_store_id: str, file_id: str, owner: str, until_s: float) -> bool:
        """Extend ``owner``'s lease on a file still in progress; False when ``owner`` no longer
        holds it (the file was finished, removed or claimed by another loop)."""
        self.owner.vector_store(vector_store_id)
        result = self.conn.execute(
            vsf.update().where(*self._held(vector_store_id, file_id, owner)).values(lease_expires_at=until_s)
        )
        return bool(result.rowcount)

    def release_all_leases(self) -> None:
        """On start-up of the only process ingesting (SQLite): leases of a previous process are void."""
        self.owner.require_bookkeeping()
        self.conn.execute(
            vsf.update().where(vsf.c.status == "in_progress").values(lease_owner=None, lease_expires_at=None)
        )

    def complete(
        self, vector_store_id: str, file_id: str, owner: str, chunks: list[NewChunk], usage_bytes: int
    ) -> bool:
        """Store the chunks and mark the file completed while ``owner`` holds it; False (nothing
        written) when it does not: the file was cancelled or removed meanwhile, or claimed by
        another loop after ``owner``'s lease ran out."""
        self.owner.vector_store(vector_store_id)
        result = self.conn.execute(
            vsf.update()
            .where(*self._held(vector_store_id, file_id, owner))
            .values(status="completed", usage_bytes=usage_bytes, lease_owner=None, lease_expires_at=None)
        )
        if result.rowcount == 0:
            return False
        self.chunks.replace(vector_store_id, file_id, chunks)
        return True

    def fail(self, vector_store_id: str, file_id: str, owner: str, code: str, message: str) -> bool:
        """Mark the file failed with ``code`` and ``message`` while ``owner`` holds it; False when it
        does not (as for ``complete``)."""
        self.owner.vector_store(vector_store_id)
        result = self.conn.execute(
            vsf.update()
            .where(*self._held(vector_store_id, file_id, owner))
            .values(
                status="failed",
                last_error={"code": code, "message": message},
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return bool(result.rowcount)

    @staticmethod
    def _held(vector_store_id: str, file_id: str, owner: str) -> tuple[sa.ColumnElement[Any], ...]:
        # Only the owner matters, not the lease's expiry: a loop past its lease still holds the file
        # until another claims it, and then lease_owner names the other.
        return (
            vsf.c.vector_store_id == vector_store_id,
            vsf.c.id == file_id,
            vsf.c.status == "in_progress",
            vsf.c.lease_owner == owner,
        )
