"""Embeddings kept in ``chunks.embedding`` (float32 bytes) from before a vector index existed: the
first Threadline release stored them there, and on PostgreSQL a server without pgvector still does.
``move_into_index`` hands them, in batches, to an index's insert and clears the column."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_BATCH = 1000


def move_into_index(
    conn: Connection, insert: Callable[[Connection, list[tuple[int, str, str, bytes]]], None]
) -> None:
    last_id = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, vector_store_id, file_id, embedding FROM chunks "
                "WHERE embedding IS NOT NULL AND id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last_id, "n": _BATCH},
        ).all()
        if not rows:
            break
        insert(conn, [(r[0], r[1], r[2], bytes(r[3])) for r in rows])
        last_id = rows[-1][0]
    conn.exec_driver_sql("UPDATE chunks SET embedding = NULL WHERE embedding IS NOT NULL")
