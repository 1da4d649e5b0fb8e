"""Projects, service accounts and API keys; every top-level object belongs to a project; usage per
project, model and day; request counts for the per-project rate limit.

Objects that existed before go to the ``default`` project (``proj_default``), which this migration
creates; keys listed in THREADLINE_API_KEYS act for it too.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.String(64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")
DEFAULT_PROJECT_ID = "proj_default"
OWNED_TABLES = ("assistants", "threads", "runs", "files", "vector_stores")


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
    )
    op.create_index("ix_projects_name", "projects", ["name"])
    op.create_table(
        "service_accounts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_service_accounts_project_id_id", "service_accounts", ["project_id", "id"])
    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project_id", Id),
        sa.Column("service_account_id", Id),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("redacted_value", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.create_index("ix_api_keys_project_id_id", "api_keys", ["project_id", "id"])
    op.create_table(
        "usage_daily",
        sa.Column("project_id", Id, primary_key=True),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("model_requests", sa.BigInteger, nullable=False),
        sa.Column("runs", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    op.create_table(
        "request_counts",
        sa.Column("project_id", Id, primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        projects,
        [{"id": DEFAULT_PROJECT_ID, "name": "default", "created_at": int(time.time()), "archived_at": None}],
    )
    for table in OWNED_TABLES:
        op.add_column(table, sa.Column("project_id", Id, nullable=False, server_default=DEFAULT_PROJECT_ID))
        op.create_index(f"ix_{table}_project_id_id", table, ["project_id", "id"])


def downgrade() -> None:
    for table in OWNED_TABLES:
        op.drop_index(f"ix_{table}_project_id_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("project_id")
    op.drop_table("request_counts")
    op.drop_table("usage_daily")
    op.drop_table("api_keys")
    op.drop_table("service_accounts")
    op.drop_table("projects")
