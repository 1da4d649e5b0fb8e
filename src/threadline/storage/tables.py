"""Table definitions (SQLAlchemy Core). The migrations in ``migrations/versions`` must produce exactly
these tables; ``tests/unit/test_migrations.py`` checks it.

Ids sort by creation (see ``domain/ids.py``), so every list is a keyset query on an index that ends in
``id``: listing 20 messages costs the same on a thread of 10 or 1,000,000 messages.
JSON columns hold wire-shaped values (content parts, tools, tool_resources, metadata).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.domain.run_states import RunStatus

metadata = sa.MetaData()

# Ids compare byte-wise on both engines (PostgreSQL's default collation would not).
Id = sa.String(64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.BigInteger  # Unix seconds


class RunStatusColumn(sa.TypeDecorator[RunStatus]):
    """A run's status: stored as its text, loaded as a ``RunStatus``."""

    impl = sa.String(16)
    cache_ok = True

    def process_bind_param(self, value: RunStatus | str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> RunStatus | None:
        return None if value is None else RunStatus(value)


SearchVector = sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")


def _project_column() -> sa.Column[str]:
    """The owning project (storage/scope.py). Last in its table, never on the wire; rows that existed
    before projects did belong to the default project."""
    return sa.Column("project_id", Id, nullable=False, server_default=DEFAULT_PROJECT_ID)


# --- projects and keys ----------------------------------------------------------------------------
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("archived_at", Timestamp),
    sa.Index("ix_projects_name", "name"),
)

service_accounts = sa.Table(
    "service_accounts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_service_accounts_project_id_id", "project_id", "id"),
)

# Completions usage per project, model and UTC day (``day``: Unix seconds of its midnight), added to
# when a run ends: the Admin API's usage endpoint and `threadline usage` read it. Kept apart from the
# runs, so deleting a thread does not rewrite history.
usage_daily = sa.Table(
    "usage_daily",
    metadata,
    sa.Column("project_id", Id, primary_key=True),
    sa.Column("day", Timestamp, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("model_requests", sa.BigInteger, nullable=False),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Index("ix_usage_daily_day", "day"),
)

# Requests per project and minute (``minute``: Unix seconds of its start), summed over every process
# for the per-project rate limit (storage/request_counts.py); windows older than a few minutes go.
request_counts = sa.Table(
    "request_counts",
    metadata,
    sa.Column("project_id", Id, primary_key=True),
    sa.Column("minute", Timestamp, primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
)

# A key is stored as the SHA-256 of its value (``key_hash``, unique: the lookup on every cache miss);
# the value itself is shown once, at creation. Revoking sets ``revoked_at`` and keeps the row: once a
# key has existed, every request needs a valid one (revoking the last key must not open the server).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("project_id", Id),
    sa.Column("service_account_id", Id),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("redacted_value", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("revoked_at", Timestamp),
    sa.Index("ix_api_keys_key_hash", "key_hash", unique=True),
    sa.Index("ix_api_keys_project_id_id", "project_id", "id"),
)

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
    _project_column(),
    sa.Index("ix_assistants_project_id_id", "project_id", "id"),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("tool_resources", Json),
    sa.Column("metadata", Json, nullable=False),
    _project_column(),
    sa.Index("ix_threads_project_id_id", "project_id", "id"),
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
    sa.Column("status", RunStatusColumn(), nullable=False),
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
    _project_column(),
    sa.Index("ix_runs_thread_id_id", "thread_id", "id"),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_project_id_id", "project_id", "id"),
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

# Run events for streams served by another process than the one executing the run (the PostgreSQL
# event bus): appended in order per run (``seq``), announced by a small NOTIFY, read back by
# subscribers, pruned by age (``created_at``, Unix seconds) soon after the run stops.
run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("run_id", Id, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_run_events_created_at", "created_at"),
)

# Streams of a run opened by a process (its bus's origin): a run's token deltas are appended to
# run_events only while a process other than the executing one streams it (events/database.py).
run_watchers = sa.Table(
    "run_watchers",
    metadata,
    sa.Column("run_id", Id, primary_key=True),
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_run_watchers_created_at", "created_at"),
)

# --- files and vector stores (file_search) -------------------------------------------------------
# File bytes live in the blob store under the file id; this row is the metadata.
files = sa.Table(
    "files",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("expires_at", Timestamp),
    _project_column(),
    sa.Index("ix_files_purpose_id", "purpose", "id"),
    sa.Index("ix_files_expires_at", "expires_at"),
    sa.Index("ix_files_project_id_id", "project_id", "id"),
)

vector_stores = sa.Table(
    "vector_stores",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("last_active_at", Timestamp, nullable=False),
    sa.Column("expires_after", Json),
    _project_column(),
    sa.Index("ix_vector_stores_project_id_id", "project_id", "id"),
)

# ``id`` is the File id: a file appears once per store. ``lease_owner`` and ``lease_expires_at`` are
# ingestion bookkeeping (which ingestion loop holds an in_progress file, until when), never on the wire.
vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column("vector_store_id", Id, primary_key=True),
    sa.Column("id", Id, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("chunking_strategy", Json, nullable=False),
    sa.Column("attributes", Json),
    sa.Column("usage_bytes", sa.BigInteger, nullable=False),
    sa.Column("last_error", Json),
    sa.Column("batch_id", Id),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_expires_at", sa.Float),
    # How many times indexing was claimed without finishing: a file that keeps killing the process
    # that indexes it is failed after ingestion_max_attempts claims, not retried for ever.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_vector_store_files_id", "id"),
    sa.Index("ix_vector_store_files_status", "status"),
    sa.Index("ix_vector_store_files_batch_id", "batch_id"),
)

file_batches = sa.Table(
    "file_batches",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("vector_store_id", Id, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Index("ix_file_batches_vector_store_id", "vector_store_id"),
)

# One row per chunk. The keyword index over ``text`` is dialect-specific and lives only in the
# migration: an FTS5 table ``chunks_fts`` (external content, kept in sync by triggers) on SQLite, a
# GIN index ``ix_chunks_fts`` on ``search_vector`` on PostgreSQL. Migration-vs-metadata
# comparisons must skip objects named ``chunks_fts*`` / ``ix_chunks_fts``.
# ``embedding`` holds float32 values (little-endian) when an embeddings model is configured.
chunks = sa.Table(
    "chunks",
    metadata,
    # INTEGER PRIMARY KEY on SQLite: the rowid that FTS5's content_rowid points at.
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("vector_store_id", Id, nullable=False),
    sa.Column("file_id", Id, nullable=False),
    sa.Column("chunk_index", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    # Character offset of ``text`` in the extracted document (chunks overlap; content pages stitch).
    sa.Column("start_char", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary),
    # PostgreSQL: to_tsvector('english', text), set by a trigger (so ts_rank_cd never re-parses the
    # text at query time). Always NULL on SQLite, where FTS5 keeps its own index.
    sa.Column("search_vector", SearchVector),
    sa.Index("ix_chunks_vector_store_id_file_id", "vector_store_id", "file_id", "chunk_index"),
    sa.Index("ix_chunks_file_id", "file_id"),
)
