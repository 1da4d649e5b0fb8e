"""Table definitions (SQLAlchemy Core). The migrations in ``migrations/versions`` must produce exactly
these tables; ``tests/unit/test_migrations.py`` checks it.

Ids sort by creation (see ``domain/ids.py``), so every list is a keyset query on an index that ends in
``id``: listing 20 messages costs the same on a thread of 10 or 1,000,000 messages.
JSON columns hold wire-shaped values (content parts, tools, tool_resources, metadata).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# Ids compare byte-wise on both engines (PostgreSQL's default collation would not).
Id = sa.String(64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.BigInteger  # Unix seconds

assistants = sa.Table(
    "assistants",
    metadata,
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

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("tool_resources", Json),
    sa.Column("metadata", Json, nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
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
    sa.Index("ix_messages_thread_id_id", "thread_id", "id"),
    sa.Index("ix_messages_thread_id_run_id_id", "thread_id", "run_id", "id"),
)

runs = sa.Table(
    "runs",
    metadata,
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
    # Executor bookkeeping, never on the wire: who holds the run and until when.
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_expires_at", sa.Float),
    sa.Index("ix_runs_thread_id_id", "thread_id", "id"),
    sa.Index("ix_runs_status", "status"),
)

run_steps = sa.Table(
    "run_steps",
    metadata,
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
    sa.Index("ix_run_steps_run_id_id", "run_id", "id"),
    sa.Index("ix_run_steps_thread_id", "thread_id"),
)
