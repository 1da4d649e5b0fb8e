"""The ingestion queue: the ``vector_store_files`` rows in ``in_progress``.

An ingestion loop claims some with a lease (``SKIP LOCKED`` on PostgreSQL), indexes them, and
completes or fails each in one transaction. A loop that dies leaves a lease that simply runs out, so
another loop (or the restarted process) picks the file up again: nothing stays ``in_progress`` for
ever. The queue is the engine's bookkeeping across projects; the writes to one file check that the
scope owns its store.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.files import VectorStoreFile
from threadline.storage import tables
from threadline.storage.chunks import ChunkRepository, NewChunk
from threadline.storage.scope import Ownership

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
        self, now_s: float, lease_s: float, limit: int, max_attempts: int | None = None
    ) -> list[VectorStoreFile]:
        """Lease up to ``limit`` in-progress files nobody holds (or whose holder's lease ran out).

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
                        lease_expires_at=None,
                    )
                )
                continue
            self.conn.execute(
                vsf.update().where(*where).values(lease_expires_at=now_s + lease_s, attempts=row.attempts + 1)
            )
            claimed.append(
                VectorStoreFile(
                    id=row.id,
                    vector_store_id=row.vector_store_id,
                    created_at=row.created_at,
                    status=row.status,
                    chunking_strategy=row.chunking_strategy,
                    attributes=row.attributes,
                    batch_id=row.batch_id,
                )
            )
        return claimed

    def release(self, vector_store_id: str, file_id: str) -> None:
        """Hand a claimed file back unfinished (clean shutdown): the claim does not count."""
        self.owner.vector_store(vector_store_id)
        self.conn.execute(
            vsf.update()
            .where(
                vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id, vsf.c.status == "in_progress"
            )
            .values(
                lease_expires_at=None, attempts=sa.case((vsf.c.attempts > 0, vsf.c.attempts - 1), else_=0)
            )
        )

    def renew(self, vector_store_id: str, file_id: str, until_s: float | None) -> None:
        """Extend (or with None, give up) a lease on a file still in progress."""
        self.owner.vector_store(vector_store_id)
        self.conn.execute(
            vsf.update()
            .where(
                vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id, vsf.c.status == "in_progress"
            )
            .values(lease_expires_at=until_s)
        )

    def release_all_leases(self) -> None:
        """On start-up of the only process ingesting (SQLite): leases of a previous process are void."""
        self.owner.require_bookkeeping()
        self.conn.execute(vsf.update().where(vsf.c.status == "in_progress").values(lease_expires_at=None))

    def complete(self, vector_store_id: str, file_id: str, chunks: list[NewChunk], usage_bytes: int) -> bool:
        """Store the chunks and mark the file completed, unless it was cancelled or removed meanwhile
        (then nothing is written and False is returned)."""
        self.owner.vector_store(vector_store_id)
        result = self.conn.execute(
            vsf.update()
            .where(
                vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id, vsf.c.status == "in_progress"
            )
            .values(status="completed", usage_bytes=usage_bytes, lease_expires_at=None)
        )
        if result.rowcount == 0:
            return False
        self.chunks.replace(vector_store_id, file_id, chunks)
        return True

    def fail(self, vector_store_id: str, file_id: str, code: str, message: str) -> None:
        self.owner.vector_store(vector_store_id)
        self.conn.execute(
            vsf.update()
            .where(
                vsf.c.vector_store_id == vector_store_id, vsf.c.id == file_id, vsf.c.status == "in_progress"
            )
            .values(status="failed", last_error={"code": code, "message": message}, lease_expires_at=None)
        )
