"""Index one vector-store file: extract its text, chunk it, embed the chunks (when configured) and
store them, or record why it failed. Never raises: every outcome ends the file ``completed`` or
``failed`` (runtime-behaviours §7 codes: unsupported_file, invalid_file, server_error)."""

from __future__ import annotations

import asyncio
import logging

from threadline.blobs import BlobNotFound, BlobStore
from threadline.domain.errors import InvalidFile, ThreadlineError, UnsupportedFile, UpstreamError
from threadline.domain.files import VectorStoreFile
from threadline.llm.types import EmbeddingModel
from threadline.retrieval import Chunk, chunk_text, extract_text
from threadline.retrieval.vectors import pack
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork

log = logging.getLogger("threadline.ingestion")

# How long a claimed file stays leased to a worker; a live worker renews it (``renew``) well before.
LEASE_S = 60.0


def claim(uow: UnitOfWork, now_s: float, limit: int) -> list[VectorStoreFile]:
    return uow.chunks.claim(now_s, LEASE_S, limit)


async def index_file(
    db: Database, blobs: BlobStore, embedder: EmbeddingModel | None, job: VectorStoreFile
) -> None:
    try:
        await _index(db, blobs, embedder, job)
    except (UnsupportedFile, InvalidFile) as exc:
        await _fail(db, job, exc.code or "invalid_file", exc.message)
    except UpstreamError as exc:
        await _fail(db, job, "server_error", f"Embedding the file failed: {exc.message}")
    except ThreadlineError as exc:
        await _fail(db, job, "server_error", exc.message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("indexing %s into %s failed", job.id, job.vector_store_id)
        await _fail(db, job, "server_error", "An internal error occurred while processing the file.")


async def _index(
    db: Database, blobs: BlobStore, embedder: EmbeddingModel | None, job: VectorStoreFile
) -> None:
    names = await db.transaction(lambda uow: uow.files.filenames({job.id}))
    if job.id not in names:
        return  # the File was deleted meanwhile; it already left the store
    try:
        data = await asyncio.to_thread(blobs.read, job.id)
    except BlobNotFound:
        raise InvalidFile("The file's content is missing.") from None
    static = job.chunking_strategy["static"]
    text, chunks = await asyncio.to_thread(
        _extract_and_chunk,
        data,
        names[job.id],
        static["max_chunk_size_tokens"],
        static["chunk_overlap_tokens"],
    )
    embeddings: list[bytes | None] = [None] * len(chunks)
    if embedder is not None and chunks:
        embeddings = [pack(v) for v in await embedder.embed([c.text for c in chunks])]
    rows = [NewChunk(c.index, c.text, c.start_char, e) for c, e in zip(chunks, embeddings, strict=True)]
    usage_bytes = len(text.encode())
    done = await db.transaction(
        lambda uow: uow.chunks.complete(job.vector_store_id, job.id, rows, usage_bytes), offload=True
    )
    if not done:
        log.info("%s in %s was cancelled or removed while indexing", job.id, job.vector_store_id)


def _extract_and_chunk(data: bytes, filename: str, max_tokens: int, overlap: int) -> tuple[str, list[Chunk]]:
    # CPU-bound (PDF parsing, BPE): runs on a worker thread, off the event loop.
    text = extract_text(data, filename)
    return text, chunk_text(text, max_tokens, overlap)


async def _fail(db: Database, job: VectorStoreFile, code: str, message: str) -> None:
    await db.transaction(lambda uow: uow.chunks.fail(job.vector_store_id, job.id, code, message))


async def renew(db: Database, job: VectorStoreFile, until_s: float) -> None:
    await db.transaction(lambda uow: uow.chunks.renew(job.vector_store_id, job.id, until_s))


async def release(db: Database, job: VectorStoreFile) -> None:
    await db.transaction(lambda uow: uow.chunks.renew(job.vector_store_id, job.id, None))
