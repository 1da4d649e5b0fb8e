"""The vector index on PostgreSQL: pgvector.

``chunk_vectors`` holds one ``vector`` per embedded chunk. The column has no fixed dimension (that is
the embeddings model's), so each dimension gets its own HNSW index, a partial expression index on
``embedding::vector(N)`` for the rows ``WHERE vector_dims(embedding) = N`` (pgvector's way of
indexing mixed dimensions), made the first time vectors of that dimension are stored. Rows go with
their chunk (``ON DELETE CASCADE``).

The extension and the table are made by ``ensure``, which ``migrate.upgrade`` runs at every start:
when the server has pgvector installed, and not otherwise, so keyword-only deployments need plain
PostgreSQL, and a deployment that installs pgvector later gets the index at its next start (with the
vectors stored before it moved across).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.storage import stored_embeddings

log = logging.getLogger("threadline")

TABLE = "chunk_vectors"
# pgvector's HNSW indexes at most 2,000 dimensions of ``vector``; larger ones are scanned exactly.
MAX_INDEXED_DIMENSIONS = 2000
_INFO_KEY = "threadline.pgvector"
_VERSION_KEY = "threadline.pgvector.iterative"
# Advisory-lock key for making a dimension's index (two ingesting processes racing to make it).
_INDEX_LOCK_KEY = 7_311_402_216


def available(conn: Connection) -> bool:
    """Whether this database has the vector table (cached on the pooled connection)."""
    info = conn.info
    if info.get(_INFO_KEY) is None:
        info[_INFO_KEY] = conn.exec_driver_sql(f"SELECT to_regclass('{TABLE}') IS NOT NULL").scalar()
    return bool(info[_INFO_KEY])


def ensure(conn: Connection) -> bool:
    """Make the extension and the table when pgvector is installed; True when the index exists.
    Runs inside the migration transaction (under its advisory lock)."""
    if conn.exec_driver_sql(f"SELECT to_regclass('{TABLE}') IS NOT NULL").scalar():
        return True
    installed = conn.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").first()
    if installed is None:
        return False
    try:
        # A savepoint: a role that may not create extensions (pgvector is not a trusted extension)
        # must not fail the migration, only go without the vector index.
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError as exc:
        log.warning(
            "pgvector is installed but CREATE EXTENSION vector failed (%s): no vector index", exc.orig
        )
        return False
    conn.exec_driver_sql(
        f"CREATE TABLE {TABLE} ("
        "chunk_id BIGINT PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE, "
        'vector_store_id VARCHAR(64) COLLATE "C" NOT NULL, '
        'file_id VARCHAR(64) COLLATE "C" NOT NULL, '
        "embedding vector NOT NULL)"
    )
    conn.exec_driver_sql(f"CREATE INDEX ix_{TABLE}_store_file ON {TABLE} (vector_store_id, file_id)")
    stored_embeddings.move_into_index(conn, insert)
    conn.info.pop(_INFO_KEY, None)
    return True


def _floats(data: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def _ensure_dimension_index(conn: Connection, dims: int) -> None:
    if dims > MAX_INDEXED_DIMENSIONS:
        return  # stored and searched exactly: HNSW cannot index it
    name = f"ix_{TABLE}_hnsw_{dims}"
    if conn.exec_driver_sql(f"SELECT to_regclass('{name}') IS NOT NULL").scalar():
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _INDEX_LOCK_KEY})
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} "
        f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE vector_dims(embedding) = {dims}"
    )


def insert(conn: Connection, rows: list[tuple[int, str, str, bytes]]) -> None:
    """Add (chunk id, store id, file id, float32 bytes) rows."""
    for dims in sorted({len(row[3]) // 4 for row in rows}):
        _ensure_dimension_index(conn, dims)
    conn.execute(
        sa.text(
            f"INSERT INTO {TABLE} (chunk_id, vector_store_id, file_id, embedding) "
            "VALUES (:chunk_id, :store_id, :file_id, CAST(CAST(:embedding AS real[]) AS vector))"
        ),
        [
            {"chunk_id": chunk_id, "store_id": store_id, "file_id": file_id, "embedding": _floats(data)}
            for chunk_id, store_id, file_id, data in rows
        ],
    )


def nearest(
    conn: Connection, store_ids: list[str], query: bytes, k: int, file_ids: set[str] | None
) -> list[tuple[int, float]]:
    """The ``k`` chunks of the stores nearest ``query`` (float32 bytes), best first, as (chunk id,
    cosine similarity); only chunks of ``file_ids`` when given."""
    dims = len(query) // 4
    if k <= 0 or not store_ids or (file_ids is not None and not file_ids):
        return []
    conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {max(40, min(k, 1000))}")
    if _iterative_scans(conn):
        # The HNSW scan goes on past its candidate list until ``k`` rows pass the store and file
        # filters, in exact distance order. Before pgvector 0.8 a small store in a large table may
        # get fewer than ``k`` of its vectors back.
        conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = strict_order")
    distance = f"(embedding::vector({dims})) <=> CAST(CAST(:query AS real[]) AS vector({dims}))"
    sql = (
        f"SELECT chunk_id, {distance} AS distance FROM {TABLE} "
        f"WHERE vector_dims(embedding) = {dims} AND vector_store_id IN :store_ids"
    )
    params: dict[str, Any] = {"query": _floats(query), "store_ids": list(store_ids), "k": k}
    binds: list[sa.BindParameter[Any]] = [sa.bindparam("store_ids", expanding=True)]
    if file_ids is not None:
        sql += " AND file_id IN :file_ids"
        params["file_ids"] = sorted(file_ids)
        binds.append(sa.bindparam("file_ids", expanding=True))
    # ORDER BY the indexed expression alone: anything more (a tie-breaker) and the index is not used.
    rows = conn.execute(sa.text(sql + " ORDER BY distance LIMIT :k").bindparams(*binds), params)
    found = [(row[0], 1.0 - float(row[1])) for row in rows]
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return found


def _iterative_scans(conn: Connection) -> bool:
    """pgvector >= 0.8 (iterative index scans), cached on the pooled connection."""
    if _VERSION_KEY not in conn.info:
        query = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        version = conn.exec_driver_sql(query).scalar()
        parts = tuple(int(p) for p in str(version or "0").split(".")[:2] if p.isdigit())
        conn.info[_VERSION_KEY] = parts >= (0, 8)
    return bool(conn.info[_VERSION_KEY])
