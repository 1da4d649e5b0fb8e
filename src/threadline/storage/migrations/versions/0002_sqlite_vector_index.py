"""SQLite: chunk embeddings move from ``chunks.embedding`` into sqlite-vec tables
(storage/sqlite_vectors.py). PostgreSQL is unchanged.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from threadline.storage import sqlite_vectors

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    last_id = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, vector_store_id, file_id, embedding FROM chunks "
                "WHERE embedding IS NOT NULL AND id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last_id, "n": _BATCH},
        ).all()
        if not rows:
            break
        sqlite_vectors.insert(bind, [(r[0], r[1], r[2], r[3]) for r in rows])
        last_id = rows[-1][0]
    bind.execute(sa.text("UPDATE chunks SET embedding = NULL WHERE embedding IS NOT NULL"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for dims in sorted(sqlite_vectors.dimensions(bind)):
        table = sqlite_vectors.table_name(dims)
        bind.execute(
            sa.text(
                f"UPDATE chunks SET embedding = (SELECT v.embedding FROM {table} v "
                f"WHERE v.chunk_id = chunks.id) WHERE id IN (SELECT chunk_id FROM {table})"
            )
        )
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_ad")
        bind.exec_driver_sql(f"DROP TABLE {table}")
