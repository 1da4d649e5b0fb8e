"""The BlobStore contract. Keys are object ids (``file-…``); values are immutable byte strings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol


class BlobNotFound(LookupError):
    """No blob under that key (deleted, or lost outside Threadline)."""


class BlobStore(Protocol):
    """Blocking calls: callers run them off the event loop (``anyio.to_thread``/``run_in_executor``)."""

    def put(self, key: str, source: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Copy ``source`` to ``key`` in bounded chunks, never whole in memory; return the size.

        Raises ``BlobTooLarge`` (and stores nothing) past ``max_bytes``."""
        ...

    def open_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The blob's bytes in chunks (for streaming downloads)."""
        ...

    def read(self, key: str) -> bytes:
        """The whole blob (ingestion reads one file at a time; size is bounded by the upload limit)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error (deletes are retried after crashes)."""
        ...


class BlobTooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"blob exceeds {max_bytes} bytes")
        self.max_bytes = max_bytes
