"""Initial schema: assistants, threads, messages, runs, run steps, run events, files, vector stores,
chunks.

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
    _run_events()
    _files_and_vector_stores()


def _run_events() -> None:
    op.create_table(
        "run_events",
        sa.Column("run_id", Id, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("data", Json, nullable=False),
    )
    op.create_index("ix_run_events_created_at", "run_events", ["created_at"])


def _files_and_vector_stores() -> None:
    op.create_table(
        "files",
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("expires_at", Timestamp),
    )
    op.create_index("ix_files_purpose_id", "files", ["purpose", "id"])
    op.create_index("ix_files_expires_at", "files", ["expires_at"])
    op.create_table(
        "vector_stores",
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("last_active_at", Timestamp, nullable=False),
        sa.Column("expires_after", Json),
    )
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", Id, primary_key=True),
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chunking_strategy", Json, nullable=False),
        sa.Column("attributes", Json),
        sa.Column("usage_bytes", sa.BigInteger, nullable=False),
        sa.Column("last_error", Json),
        sa.Column("batch_id", Id),
        sa.Column("lease_expires_at", sa.Float),
    )
    op.create_index("ix_vector_store_files_id", "vector_store_files", ["id"])
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status"])
    op.create_index("ix_vector_store_files_batch_id", "vector_store_files", ["batch_id"])
    op.create_table(
        "file_batches",
        sa.Column("id", Id, primary_key=True),
        sa.Column("vector_store_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
    )
    op.create_index("ix_file_batches_vector_store_id", "file_batches", ["vector_store_id"])
    op.create_table(
        "chunks",
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
        sa.Column("search_vector", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")),
    )
    op.create_index(
        "ix_chunks_vector_store_id_file_id", "chunks", ["vector_store_id", "file_id", "chunk_index"]
    )
    op.create_index("ix_chunks_file_id", "chunks", ["file_id"])
    _keyword_index()


def _keyword_index() -> None:
    """The BM25 index over chunks.text; dialect-specific, so not in ``tables.metadata``."""
    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5: the text is stored once (in chunks); triggers keep the index in step.
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5("
            "text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_ai AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_ad AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
    else:
        # A stored tsvector (filled by a trigger): ranking reads it instead of re-parsing each chunk.
        op.execute(
            "CREATE FUNCTION chunks_fts_vector() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "NEW.search_vector := to_tsvector('english', NEW.text); RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_vector BEFORE INSERT OR UPDATE OF text ON chunks "
            "FOR EACH ROW EXECUTE FUNCTION chunks_fts_vector()"
        )
        op.execute("CREATE INDEX ix_chunks_fts ON chunks USING GIN (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    for table in ("chunks", "file_batches", "vector_store_files", "vector_stores", "files"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS chunks_fts_vector()")
    for table in ("run_events", "run_steps", "runs", "messages", "threads", "assistants"):
        op.drop_table(table)
