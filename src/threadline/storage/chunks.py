"""Chunks and their keyword index (SQLite FTS5 / PostgreSQL ``search_vector`` tsvector): the search
reads and the write of a file's chunks. The queue of files waiting to be indexed is
``storage/ingestion_queue.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.storage import pg_vectors, sqlite_vectors, tables
from threadline.storage.scope import Ownership

ch = tables.chunks


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
    """Reads and writes the chunks of the stores the scope owns (storage/scope.py)."""

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

    def replace(self, vector_store_id: str, file_id: str, chunks: list[NewChunk]) -> None:
        """Make ``chunks`` the file's chunks (and their embeddings the vector index's rows); the
        ingestion queue calls this when it completes the file, in the same transaction."""
        self.owner.vector_store(vector_store_id)
        self.conn.execute(ch.delete().where(ch.c.vector_store_id == vector_store_id, ch.c.file_id == file_id))
        if not chunks:
            return
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
