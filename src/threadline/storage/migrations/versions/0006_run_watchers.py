"""run_watchers: which processes stream a run, so that the executing process appends the run's token
deltas to run_events only when another process streams it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As in 0001 (a migration does not import the live schema, which later revisions change).
Id = sa.String(64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "run_watchers",
        sa.Column("run_id", Id, primary_key=True),
        sa.Column("origin", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_run_watchers_created_at", "run_watchers", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_watchers_created_at", "run_watchers")
    op.drop_table("run_watchers")
