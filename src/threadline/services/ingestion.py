"""Index one vector-store file: extract its text, chunk it, embed the chunks (when configured) and
store them, or record why it failed. Never raises: every outcome ends the file ``completed`` or
``failed`` (codes: unsupported_file, invalid_file, server_error), unless the caller no longer holds
the file's lease (``owner``), when its result is dropped and the file is left to the lease's holder."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from threadline.blobs import BlobNotFound, BlobStore
from threadline.domain.errors import InvalidFile, ThreadlineError, UnsupportedFile, UpstreamError
from threadline.domain.files import VectorStoreFile
from threadline.llm.types import EmbeddingModel
from threadline.observability.logs import fields
from threadline.observability.metrics import INGESTION_FAILURES, INGESTION_FILES
from threadline.retrieval import chunk_text, extract_text
from threadline.retrieval.vectors import pack
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork

log = logging.getLogger("threadline.ingestion")

# How long a claimed file stays leased to an ingestion loop; a live loop renews it (``renew``) well before.
LEASE_S = 60.0


class Extractor(Protocol):
    """Text extraction and chunking somewhere the file cannot hurt the caller (ingestion/pool.py):
    returns the text's UTF-8 size and its chunks as (index, text, start_char)."""

    async def extract(
        self, pieces: Iterable[bytes], filename: str, max_chunk_tokens: int, overlap_tokens: int
    ) -> tuple[int, list[tuple[int, str, int]]]: ...


def queue_depth(uow: UnitOfWork) -> int:
    return uow.ingestion_queue.queue_depth()


def claim(
    uow: UnitOfWork, owner: str, now_s: float, limit: int, max_attempts: int | None = None
) -> list[VectorStoreFile]:
    """Lease up to ``limit`` queued files to ``owner`` (one ingestion loop) for ``LEASE_S``."""
    return uow.ingestion_queue.claim(owner, now_s, LEASE_S, limit, max_attempts)


async def index_file(
    db: Database,
    blobs: BlobStore,
    embedder: EmbeddingModel | None,
    job: VectorStoreFile,
    owner: str,
    extractor: Extractor | None = None,
) -> None:
    """Index ``job``, which ``owner`` claimed. With ``extractor`` None the file is parsed on a thread
    of this process (tests, benchmarks)."""
    started = time.monotonic()
    try:
        chunks = await _index(db, blobs, embedder, job, owner, extractor)
    except (UnsupportedFile, InvalidFile) as exc:
        await _fail(db, job, owner, exc.code or "invalid_file", exc.message, started)
    except UpstreamError as exc:
        await _fail(db, job, owner, "server_error", f"Embedding the file failed: {exc.message}", started)
    except ThreadlineError as exc:
        await _fail(db, job, owner, "server_error", exc.message, started)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("indexing %s into %s failed", job.id, job.vector_store_id)
        message = "An internal error occurred while processing the file."
        await _fail(db, job, owner, "server_error", message, started)
    else:
        if chunks is not None:
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            INGESTION_FILES.labels("completed").inc()
            log.info(
                "ingested %s into %s: %d chunks in %.1fms",
                job.id,
                job.vector_store_id,
                chunks,
                duration_ms,
                extra=fields(
                    file_id=job.id,
                    vector_store_id=job.vector_store_id,
                    status="completed",
                    chunks=chunks,
                    duration_ms=duration_ms,
                ),
            )


async def _index(
    db: Database,
    blobs: BlobStore,
    embedder: EmbeddingModel | None,
    job: VectorStoreFile,
    owner: str,
    extractor: Extractor | None,
) -> int | None:
    """The number of chunks stored, or None when the file left the store or ``owner``'s hands
    meanwhile."""
    names = await db.transaction(lambda uow: uow.files.filenames({job.id}))
    if job.id not in names:
        return None  # the File was deleted meanwhile; it already left the store
    static = job.chunking_strategy["static"]
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    try:
        if extractor is not None:
            pieces = await asyncio.to_thread(blobs.open_chunks, job.id)
            usage_bytes, chunks = await extractor.extract(pieces, names[job.id], size, overlap)
        else:
            data = await asyncio.to_thread(blobs.read, job.id)
            usage_bytes, chunks = await asyncio.to_thread(
                _extract_and_chunk, data, names[job.id], size, overlap
            )
    except BlobNotFound:
        raise InvalidFile("The file's content is missing.") from None
    embeddings: list[bytes | None] = [None] * len(chunks)
    if embedder is not None and chunks:
        embeddings = [pack(v) for v in await embedder.embed([text for _, text, _ in chunks])]
    rows = [
        NewChunk(index, text, start, e) for (index, text, start), e in zip(chunks, embeddings, strict=True)
    ]
    done = await db.transaction(
        lambda uow: uow.ingestion_queue.complete(job.vector_store_id, job.id, owner, rows, usage_bytes),
        offload=True,
    )
    if not done:
        _dropped(job, f"{len(rows)} chunks")
        return None
    return len(rows)


def _extract_and_chunk(
    data: bytes, filename: str, max_tokens: int, overlap: int
) -> tuple[int, list[tuple[int, str, int]]]:
    # CPU-bound (PDF parsing, BPE): runs on a thread of asyncio's pool, off the event loop.
    text = extract_text(data, filename)
    return len(text.encode()), [
        (c.index, c.text, c.start_char) for c in chunk_text(text, max_tokens, overlap)
    ]


def _dropped(job: VectorStoreFile, result: str) -> None:
    # Not a failure: the file was cancelled or removed, or another loop claimed it after our lease
    # ran out (we stalled) and owns its outcome now.
    log.info(
        "%s in %s was cancelled, removed or claimed by another ingestion loop while indexing; "
        "its result (%s) is dropped",
        job.id,
        job.vector_store_id,
        result,
    )


async def _fail(
    db: Database, job: VectorStoreFile, owner: str, code: str, message: str, started: float
) -> None:
    failed = await db.transaction(
        lambda uow: uow.ingestion_queue.fail(job.vector_store_id, job.id, owner, code, message)
    )
    if not failed:
        _dropped(job, f"failed: {code}")
        return
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    INGESTION_FILES.labels("failed").inc()
    INGESTION_FAILURES.labels(code).inc()
    log.warning(
        "ingesting %s into %s failed in %.1fms: %s: %s",
        job.id,
        job.vector_store_id,
        duration_ms,
        code,
        message,
        extra=fields(
            file_id=job.id,
            vector_store_id=job.vector_store_id,
            status="failed",
            duration_ms=duration_ms,
            last_error={"code": code, "message": message},
        ),
    )


async def renew(db: Database, job: VectorStoreFile, owner: str, until_s: float) -> bool:
    """Extend ``owner``'s lease on ``job``; False once ``owner`` no longer holds it."""
    return await db.transaction(
        lambda uow: uow.ingestion_queue.renew(job.vector_store_id, job.id, owner, until_s)
    )


async def release(db: Database, job: VectorStoreFile, owner: str) -> None:
    await db.transaction(lambda uow: uow.ingestion_queue.release(job.vector_store_id, job.id, owner))


async def release_all_leases(db: Database) -> None:
    """Void every ingestion lease: only for the sole process of a SQLite database, at its start,
    when any lease left was a previous process's."""
    await db.transaction(lambda uow: uow.ingestion_queue.release_all_leases())
