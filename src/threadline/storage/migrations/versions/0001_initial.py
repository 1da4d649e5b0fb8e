"""Initial schema: assistants, threads, messages, runs, run steps.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.String(64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "assistants",
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text),
        sa.Column("tools", Json, nullable=False),
        sa.Column("tool_resources", Json),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("response_format", Json),
        sa.Column("reasoning_effort", sa.Text),
    )
    op.create_table(
        "threads",
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("tool_resources", Json),
        sa.Column("metadata", Json, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("thread_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", Json, nullable=False),
        sa.Column("attachments", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("assistant_id", Id),
        sa.Column("run_id", Id),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("incomplete_details", Json),
        sa.Column("completed_at", Timestamp),
        sa.Column("incomplete_at", Timestamp),
    )
    op.create_index("ix_messages_thread_id_id", "messages", ["thread_id", "id"])
    op.create_index("ix_messages_thread_id_run_id_id", "messages", ["thread_id", "run_id", "id"])
    op.create_table(
        "runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("thread_id", Id, nullable=False),
        sa.Column("assistant_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("required_action", Json),
        sa.Column("last_error", Json),
        sa.Column("expires_at", Timestamp),
        sa.Column("started_at", Timestamp),
        sa.Column("cancelled_at", Timestamp),
        sa.Column("failed_at", Timestamp),
        sa.Column("completed_at", Timestamp),
        sa.Column("incomplete_details", Json),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("tools", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("usage", Json),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("max_prompt_tokens", sa.Integer),
        sa.Column("max_completion_tokens", sa.Integer),
        sa.Column("truncation_strategy", Json, nullable=False),
        sa.Column("tool_choice", Json, nullable=False),
        sa.Column("parallel_tool_calls", sa.Boolean, nullable=False),
        sa.Column("response_format", Json, nullable=False),
        sa.Column("reasoning_effort", sa.Text),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_expires_at", sa.Float),
    )
    op.create_index("ix_runs_thread_id_id", "runs", ["thread_id", "id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "run_steps",
        sa.Column("id", Id, primary_key=True),
        sa.Column("run_id", Id, nullable=False),
        sa.Column("thread_id", Id, nullable=False),
        sa.Column("assistant_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_details", Json, nullable=False),
        sa.Column("last_error", Json),
        sa.Column("expired_at", Timestamp),
        sa.Column("cancelled_at", Timestamp),
        sa.Column("failed_at", Timestamp),
        sa.Column("completed_at", Timestamp),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("usage", Json),
    )
    op.create_index("ix_run_steps_run_id_id", "run_steps", ["run_id", "id"])
    op.create_index("ix_run_steps_thread_id", "run_steps", ["thread_id"])


def downgrade() -> None:
    for table in ("run_steps", "runs", "messages", "threads", "assistants"):
        op.drop_table(table)
