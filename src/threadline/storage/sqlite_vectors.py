"""The vector index on SQLite: sqlite-vec ``vec0`` tables of chunk embeddings.

A ``vec0`` column has a fixed dimension, and the dimension is the embeddings model's (256, 768,
1536, ...), so a table per dimension is made on first use, ``chunk_vectors_<dims>``, inside the
transaction that stores the first such vectors. Each table is partitioned by vector store, so a
nearest-neighbour query reads only that store's vectors, and carries the file id as a metadata
column, so attribute filters narrow the scan itself. Distances are cosine.

A trigger deletes a chunk's vector with the chunk: every path that removes chunks (a file leaves a
store, a store is deleted, a file is indexed again) keeps the index in step, as the FTS5 triggers do
for the text. The tables live outside ``tables.metadata``: they are created at run time.
PostgreSQL's counterpart is storage/pg_vectors.py.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# sqlite-vec's own limit on a float vector's dimension.
MAX_DIMENSIONS = 8192
_TABLE_PREFIX = "chunk_vectors_"
_TABLE_NAME = re.compile(rf"^{_TABLE_PREFIX}(\d+)$")


def table_name(dims: int) -> str:
    if not 0 < dims <= MAX_DIMENSIONS:
        raise ValueError(f"embedding dimension {dims} is outside 1..{MAX_DIMENSIONS}")
    return f"{_TABLE_PREFIX}{dims}"


def dimensions(conn: Connection) -> set[int]:
    """The dimensions that have a vector table."""
    rows = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'chunk_vectors_%'"
    )
    return {int(match.group(1)) for (name,) in rows if (match := _TABLE_NAME.match(name))}


def ensure_table(conn: Connection, dims: int) -> str:
    table = table_name(dims)
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
        "chunk_id INTEGER PRIMARY KEY, vector_store_id TEXT PARTITION KEY, file_id TEXT, "
        f"embedding FLOAT[{dims}] DISTANCE_METRIC=cosine)"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON chunks BEGIN "
        f"DELETE FROM {table} WHERE chunk_id = old.id; END"
    )
    return table


def insert(conn: Connection, rows: list[tuple[int, str, str, bytes]]) -> None:
    """Add (chunk id, store id, file id, float32 bytes) rows, each to the table of its dimension."""
    by_dims: dict[int, list[tuple[int, str, str, bytes]]] = {}
    for row in rows:
        by_dims.setdefault(len(row[3]) // 4, []).append(row)
    for dims, group in by_dims.items():
        table = ensure_table(conn, dims)
        conn.exec_driver_sql(
            f"INSERT INTO {table}(chunk_id, vector_store_id, file_id, embedding) VALUES (?, ?, ?, ?)",
            group,  # a list of positional rows: executemany
        )


def nearest(
    conn: Connection, store_ids: list[str], query: bytes, k: int, file_ids: set[str] | None
) -> list[tuple[int, float]]:
    """The ``k`` chunks of the stores nearest ``query`` (float32 bytes), best first, as (chunk id,
    cosine similarity); only chunks of ``file_ids`` when given. Empty when no vector of the query's
    dimension was ever stored (another embeddings model)."""
    dims = len(query) // 4
    if k <= 0 or dims not in dimensions(conn) or (file_ids is not None and not file_ids):
        return []
    sql = (
        f"SELECT chunk_id, distance FROM {table_name(dims)} "
        "WHERE embedding MATCH :query AND k = :k AND vector_store_id = :store_id"
    )
    params: dict[str, object] = {"query": query, "k": k}
    binds: list[sa.BindParameter[object]] = []
    if file_ids is not None:
        sql += " AND file_id IN :file_ids"
        params["file_ids"] = sorted(file_ids)
        binds.append(sa.bindparam("file_ids", expanding=True))
    statement = sa.text(sql).bindparams(*binds)
    found: list[tuple[int, float]] = []
    # One query per store: a partition key is exact per partition, and the union is merged here.
    for store_id in dict.fromkeys(store_ids):
        found.extend(
            (row[0], 1.0 - float(row[1])) for row in conn.execute(statement, {**params, "store_id": store_id})
        )
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return found[:k]
