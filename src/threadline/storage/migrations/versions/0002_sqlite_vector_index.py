"""SQLite: chunk embeddings move from ``chunks.embedding`` into sqlite-vec tables
(storage/sqlite_vectors.py). PostgreSQL is unchanged.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from threadline.storage import sqlite_vectors, stored_embeddings

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        stored_embeddings.move_into_index(bind, sqlite_vectors.insert)


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
