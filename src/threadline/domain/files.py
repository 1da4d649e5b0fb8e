"""Files, vector stores, vector-store files and file batches as plain objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from threadline.domain.json_object import JsonObject

# Vector-store file statuses; in_progress is the only non-terminal one.
VS_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
# Thread vector stores made by the helper or by attachments expire 7 days after last activity
# (OpenAI's default expiration policy for thread vector stores).
THREAD_STORE_EXPIRY_DAYS = 7
DAY_S = 86_400


@dataclass(slots=True)
class StoredFile:
    """An uploaded file (``OpenAIFile`` on the wire). Its bytes live in the blob store under ``id``."""

    id: str
    created_at: int
    bytes: int
    filename: str
    purpose: str
    expires_at: int | None = None


@dataclass(slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def to_wire(self) -> dict[str, int]:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


@dataclass(slots=True)
class VectorStore:
    id: str
    created_at: int
    name: str | None
    metadata: dict[str, str]
    last_active_at: int
    # {"anchor": "last_active_at", "days": n} or None (never expires).
    expires_after: JsonObject | None = None
    # Aggregates over the store's files, filled in by the repository on read.
    file_counts: FileCounts = field(default_factory=FileCounts)
    usage_bytes: int = 0

    @property
    def expires_at(self) -> int | None:
        if self.expires_after is None:
            return None
        return self.last_active_at + int(self.expires_after["days"]) * DAY_S

    def expired(self, now: int) -> bool:
        expires_at = self.expires_at
        return expires_at is not None and expires_at <= now

    def status(self, now: int) -> str:
        if self.expired(now):
            return "expired"
        return "in_progress" if self.file_counts.in_progress else "completed"


@dataclass(slots=True)
class VectorStoreFile:
    """A file in a vector store. ``id`` is the File's id (the same file may be in several stores)."""

    id: str
    vector_store_id: str
    created_at: int
    status: str
    chunking_strategy: JsonObject
    attributes: JsonObject | None = None
    usage_bytes: int = 0
    last_error: JsonObject | None = None
    batch_id: str | None = None


@dataclass(slots=True)
class FileBatch:
    id: str
    vector_store_id: str
    created_at: int
    cancelled: bool = False
    file_counts: FileCounts = field(default_factory=FileCounts)

    @property
    def status(self) -> str:
        # Cancelling marks the batch's in-progress files cancelled in the same transaction.
        if self.cancelled:
            return "cancelled"
        if self.file_counts.in_progress:
            return "in_progress"
        total = self.file_counts.total
        return "failed" if total and self.file_counts.failed == total else "completed"


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """One chunk a search found, with its score in 0..1 (higher is better)."""

    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    score: float
