"""Files: upload (bytes to the blob store, then the row), retrieve, list, download, delete.

The bytes are written before the row is committed, and removed again if the commit fails, so a
committed file always has its bytes; a crash between the two leaves at worst an orphan blob.
Deleting removes the row (and the file from every vector store) first, then the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import BinaryIO

from threadline.blobs import BlobNotFound, BlobStore, BlobTooLarge
from threadline.domain.errors import FileNotFound, InvalidRequest, PayloadTooLarge
from threadline.domain.files import StoredFile
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import ListParams, Page
from threadline.schemas.files import FileUpload
from threadline.services.clock import now
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"File is too large: the maximum upload size is {max_bytes} bytes.",
        param="file",
        code="file_too_large",
    )


async def upload(
    db: Database,
    blobs: BlobStore,
    source: BinaryIO,
    filename: str,
    form: FileUpload,
    max_bytes: int,
    *,
    quota_bytes: int = 0,
) -> StoredFile:
    """Store the bytes, then the row; a project over its storage quota (``quota_bytes``, 0: none)
    keeps neither."""
    file_id = new_id("file")
    try:
        size = await asyncio.to_thread(blobs.put, file_id, source, max_bytes=max_bytes)
    except BlobTooLarge:
        raise too_large(max_bytes) from None
    created_at = now()
    expires = form.expires_after
    stored = StoredFile(
        id=file_id,
        created_at=created_at,
        bytes=size,
        filename=filename,
        purpose=form.purpose,
        expires_at=None if expires is None else created_at + expires.seconds,
    )

    def insert(uow: UnitOfWork) -> None:
        if quota_bytes > 0:
            used = uow.files.stored_bytes()
            if used + size > quota_bytes:
                raise InvalidRequest(
                    f"This upload ({size} bytes) would exceed the project's storage quota "
                    f"({quota_bytes} bytes, {used} in use). Delete files to make room.",
                    code="storage_limit_exceeded",
                )
        uow.files.insert(stored)

    try:
        await db.transaction(insert)
    except BaseException:
        await asyncio.to_thread(blobs.delete, file_id)
        raise
    return stored


def get(uow: UnitOfWork, file_id: str) -> StoredFile:
    check_id("file", "file_id", file_id)
    file = uow.files.get(file_id, now())
    if file is None:
        raise FileNotFound(file_id)
    return file


def list_files(uow: UnitOfWork, params: ListParams, purpose: str | None) -> Page[StoredFile]:
    return uow.files.list_files(params, purpose, now())


def _delete_rows(uow: UnitOfWork, file_id: str) -> None:
    get(uow, file_id)
    uow.vector_stores.remove_file_everywhere(file_id)
    uow.files.delete(file_id)


async def delete(db: Database, blobs: BlobStore, file_id: str) -> None:
    """Delete the file and remove it from every vector store (spec: deleteFile)."""
    await db.transaction(lambda uow: _delete_rows(uow, file_id), offload=True)
    await asyncio.to_thread(blobs.delete, file_id)


async def content(db: Database, blobs: BlobStore, file_id: str) -> tuple[StoredFile, Iterator[bytes]]:
    """The file and an iterator over its exact bytes (read lazily, in chunks)."""
    file = await db.transaction(lambda uow: get(uow, file_id))
    try:
        return file, await asyncio.to_thread(blobs.open_chunks, file_id)
    except BlobNotFound:
        raise FileNotFound(file_id) from None


async def sweep_expired(db: Database, blobs: BlobStore) -> int:
    """Delete files past ``expires_at`` (they are already invisible); returns how many went."""
    expired = await db.transaction(lambda uow: uow.files.expired_ids(now()))
    for file_id in expired:

        def remove(uow: UnitOfWork, file_id: str = file_id) -> None:
            uow.vector_stores.remove_file_everywhere(file_id)
            uow.files.delete(file_id)

        await db.transaction(remove, offload=True)
        await asyncio.to_thread(blobs.delete, file_id)
    return len(expired)
