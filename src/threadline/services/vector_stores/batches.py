"""File batches: add many files at once, follow their progress, cancel the rest."""

from __future__ import annotations

from threadline.domain.errors import FileBatchNotFound
from threadline.domain.files import FileBatch, VectorStoreFile
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import ListParams, Page
from threadline.schemas.vector_stores import FileBatchCreate
from threadline.services.clock import now
from threadline.services.vector_stores.common import (
    new_vs_file,
    require_files,
    require_store,
    stored_chunking,
)
from threadline.services.vector_stores.files import check_status_filter
from threadline.storage.uow import UnitOfWork


def create(uow: UnitOfWork, vector_store_id: str, request: FileBatchCreate) -> FileBatch:
    require_store(uow, vector_store_id)
    batch = FileBatch(id=new_id("file_batch"), vector_store_id=vector_store_id, created_at=now())
    uow.vector_stores.insert_batch(batch)
    default_chunking = stored_chunking(request.chunking_strategy)
    files: dict[str, VectorStoreFile] = {}
    if request.file_ids is not None:
        require_files(uow, request.file_ids, "file_ids")
        for file_id in request.file_ids:
            files[file_id] = new_vs_file(
                vector_store_id, file_id, default_chunking, request.attributes, batch.id
            )
    else:
        items = request.files or []
        require_files(uow, [item.file_id for item in items], "files")
        for item in items:
            # Per-file settings win over the batch's (spec CreateVectorStoreFileBatchRequest).
            chunking = (
                default_chunking
                if item.chunking_strategy is None
                else stored_chunking(item.chunking_strategy)
            )
            attributes = request.attributes if item.attributes is None else item.attributes
            files[item.file_id] = new_vs_file(vector_store_id, item.file_id, chunking, attributes, batch.id)
    for file in files.values():
        uow.vector_stores.put_file(file)
    batch.file_counts.in_progress = len(files)
    return batch


def get(uow: UnitOfWork, vector_store_id: str, batch_id: str) -> FileBatch:
    require_store(uow, vector_store_id)
    check_id("file_batch", "batch_id", batch_id)
    batch = uow.vector_stores.get_batch(vector_store_id, batch_id)
    if batch is None:
        raise FileBatchNotFound(batch_id)
    return batch


def cancel(uow: UnitOfWork, vector_store_id: str, batch_id: str) -> FileBatch:
    """Files not yet indexed become ``cancelled``; finished ones stay as they are."""
    batch = get(uow, vector_store_id, batch_id)
    uow.vector_stores.cancel_batch(batch_id)
    return get(uow, vector_store_id, batch.id)


def list_files(
    uow: UnitOfWork, vector_store_id: str, batch_id: str, params: ListParams, status: str | None
) -> Page[VectorStoreFile]:
    get(uow, vector_store_id, batch_id)
    check_status_filter(status)
    return uow.vector_stores.list_files(vector_store_id, params, status, batch_id)
