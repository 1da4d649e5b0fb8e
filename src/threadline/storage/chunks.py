"""Chunks, their keyword index (SQLite FTS5 / PostgreSQL ``search_vector`` tsvector) and the
ingestion queue.

The ingestion queue is the ``vector_store_files`` rows in ``in_progress``: a worker claims some with a
lease (``SKIP LOCKED`` on PostgreSQL), indexes them, and completes or fails each in one transaction.
A worker that dies leaves a lease that simply runs out, so another worker (or the restarted process)
picks the file up again: nothing stays ``in_progress`` for ever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.files import VectorStoreFile
from threadline.storage import pg_vectors, sqlite_vectors, tables
from threadline.storage.scope import Ownership

ch = tables.chunks
vsf = tables.vector_store_files


@dataclass(frozen=True, slots=True)
class NewChunk:
    chunk_index: int
    text: str
    start_char: int
    # float32 little-endian bytes, or None without an embeddings model.
    embedding: bytes | None = None


@dataclass(frozen=True, slots=True)
class KeywordHit:
    chunk_id: int
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    # Higher is better; unbounded on SQLite (-bm25), 0..1 on PostgreSQL (ts_rank_cd normalised).
    raw_score: float


# Ranks ids first and reads the text of the top rows only: selecting ``c.text`` in the ranking query
# itself made SQLite's sorter copy the text of every matching chunk (3x slower at 10,000 chunks).
_SQLITE_SEARCH = sa.text(
    "SELECT c.id, c.vector_store_id, c.file_id, c.chunk_index, c.text, top.score FROM ("
    "SELECT c.id AS id, -bm25(chunks_fts) AS score "
    "FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
    "WHERE chunks_fts MATCH :match AND c.vector_store_id IN :store_ids {file_filter}"
    "ORDER BY bm25(chunks_fts) LIMIT :limit) AS top JOIN chunks c ON c.id = top.id "
    "ORDER BY top.score DESC, c.id"
)
# Flag 32 makes ts_rank_cd return rank/(rank+1): already in 0..1.
_POSTGRES_SEARCH = sa.text(
    "SELECT c.id, c.vector_store_id, c.file_id, c.chunk_index, c.text, "
    "ts_rank_cd(c.search_vector, q, 32) AS score "
    "FROM chunks c, to_tsquery('english', :match) q "
    "WHERE c.search_vector @@ q AND c.vector_store_id IN :store_ids {file_filter}"
    "ORDER BY score DESC, c.id LIMIT :limit"
)


class ChunkRepository:
    """Search reads the stores the scope owns (storage/scope.py); the ingestion queue is the engine's
    bookkeeping across projects."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner
        self.dialect = conn.dialect.name

    def keyword_search(
        self, store_ids: list[str], match: str, limit: int, file_ids: set[str] | None = None
    ) -> list[KeywordHit]:
        """Best chunks for ``match`` (an FTS5 MATCH expression on SQLite, a to_tsquery expression on
        PostgreSQL: the caller builds it for ``self.dialect``), optionally only of ``file_ids``."""
        if not store_ids or not match or (file_ids is not None and not file_ids):
            return []
        self._require_stores(store_ids)
        template = _SQLITE_SEARCH if self.dialect == "sqlite" else _POSTGRES_SEARCH
        params: dict[str, Any] = {"match": match, "store_ids": store_ids, "limit": limit}
        binds: list[sa.BindParameter[Any]] = [sa.bindparam("store_ids", expanding=True)]
        sql = template.text.replace("{file_filter}", "AND c.file_id IN :file_ids " if file_ids else "")
        if file_ids:
            params["file_ids"] = sorted(file_ids)
            binds.append(sa.bindparam("file_ids", expanding=True))
        rows = self.conn.execute(sa.text(sql).bindparams(*binds), params)
        return [KeywordHit(r[0], r[1], r[2], r[3], r[4], float(r[5])) for r in rows]

    @property
    def _has_vector_index(self) -> bool:
        """Whether embeddings go to (and ``nearest`` reads) a vector index: sqlite-vec, always there
        on SQLite; pgvector's table on PostgreSQL when the server has the extension."""
        return self.dialect == "sqlite" or pg_vectors.available(self.conn)

    def nearest(
        self, store_ids: list[str], query: bytes, k: int, file_ids: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the ``k`` chunks nearest ``query`` (float32 bytes), best
        first; empty without a vector index."""
        self._require_stores(store_ids)
        if self.dialect == "sqlite":
            return sqlite_vectors.nearest(self.conn, store_ids, query, k, file_ids)
        if not self._has_vector_index:
            return []
        return pg_vectors.nearest(self.conn, store_ids, query, k, file_ids)

    def by_ids(self, chunk_ids: list[int]) -> dict[int, KeywordHit]:
        if not chunk_ids:
            return {}
        rows = self.conn.execute(
            sa.select(ch.c.id, ch.c.vector_store_id, ch.c.file_id, ch.c.chunk_index, ch.c.text).where(
                ch.c.id.in_(chunk_ids)
            )
        )
        hits = {
            r.id: KeywordHit(r.id, r.vector_store_id, r.file_id, r.chunk_index, r.text, 0.0) for r in rows
        }
        self._require_stores({hit.vector_store_id for hit in hits.values()})
        return hits

    def _require_stores(self, store_ids: Iterable[str]) -> None:
        for store_id in store_ids:
            self.owner.vector_store(store_id)

    def document(self, vector_store_id: str, file_id: str) -> str:
        """The extracted text again, stitched from the overlapping chunks by their offsets."""
        self.owner.vector_store(vector_store_id)
        rows = self.conn.execute(
            sa.select(ch.c.start_char, ch.c.text)
            .where(ch.c.vector_store_id == vector_store_id, ch.c.file_id == file_id)
            .order_by(ch.c.chunk_index)
        )
        parts: list[str] = []
        end = 0
        for start, text in rows:
            if start + len(text) > end:
                parts.append(text[max(0, end - start) :])
                end = start + len(text)
        return "".join(parts)

    # --- ingestion queue ---------------------------------------------------------------------------
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
        """On start-up of the only worker (SQLite): leases of a previous process are void."""
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
        self.conn.execute(ch.delete().where(ch.c.vector_store_id == vector_store_id, ch.c.file_id == file_id))
        if not chunks:
            return True
        indexed = self._has_vector_index
        self.conn.execute(
            ch.insert(),
            [
                {
                    "vector_store_id": vector_store_id,
                    "file_id": file_id,
                    "chunk_index": c.chunk_index,
                    "text": c.text,
                    "start_char": c.start_char,
                    "embedding": None if indexed else c.embedding,
                }
                for c in chunks
            ],
        )
        if indexed and any(c.embedding is not None for c in chunks):
            rows = self.conn.execute(
                sa.select(ch.c.chunk_index, ch.c.id).where(
                    ch.c.vector_store_id == vector_store_id, ch.c.file_id == file_id
                )
            )
            ids = {index: chunk_id for index, chunk_id in rows}
            index = sqlite_vectors if self.dialect == "sqlite" else pg_vectors
            index.insert(
                self.conn,
                [
                    (ids[c.chunk_index], vector_store_id, file_id, c.embedding)
                    for c in chunks
                    if c.embedding is not None
                ],
            )
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
