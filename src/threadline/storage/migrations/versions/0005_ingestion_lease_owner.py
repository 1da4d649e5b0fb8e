"""vector_store_files.lease_owner: which ingestion loop holds a file's lease, so a loop whose lease
ran out and was claimed again by another can no longer renew, complete or fail the file.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Leases taken before this revision have no owner: they run out, and the file is claimed again.
    op.add_column("vector_store_files", sa.Column("lease_owner", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("vector_store_files") as batch:
        batch.drop_column("lease_owner")
