"""Files of a vector store: add (queued for ingestion), retrieve, list, update attributes, remove,
and the extracted text (``content``)."""

from __future__ import annotations

from threadline.domain.errors import InvalidParameter, VectorStoreFileNotFound
from threadline.domain.files import VS_FILE_STATUSES, VectorStoreFile
from threadline.domain.ids import check_id
from threadline.domain.threads import ListParams, Page
from threadline.schemas.vector_stores import VectorStoreFileCreate, VectorStoreFileModify
from threadline.services.vector_stores.common import (
    new_vs_file,
    require_files,
    require_store,
    stored_chunking,
)
from threadline.storage.uow import UnitOfWork


def create(uow: UnitOfWork, vector_store_id: str, request: VectorStoreFileCreate) -> VectorStoreFile:
    require_store(uow, vector_store_id)
    require_files(uow, [request.file_id], "file_id")
    file = new_vs_file(
        vector_store_id, request.file_id, stored_chunking(request.chunking_strategy), request.attributes
    )
    uow.vector_stores.put_file(file)
    return file


def get(uow: UnitOfWork, vector_store_id: str, file_id: str) -> VectorStoreFile:
    require_store(uow, vector_store_id)
    check_id("file", "file_id", file_id)
    file = uow.vector_stores.get_file(vector_store_id, file_id)
    if file is None:
        raise VectorStoreFileNotFound(file_id)
    return file


def check_status_filter(status: str | None) -> None:
    if status is not None and status not in VS_FILE_STATUSES:
        raise InvalidParameter(
            f"Invalid 'filter': expected one of {', '.join(VS_FILE_STATUSES)}, but got '{status}' instead.",
            param="filter",
        )


def list_files(
    uow: UnitOfWork, vector_store_id: str, params: ListParams, status: str | None
) -> Page[VectorStoreFile]:
    require_store(uow, vector_store_id)
    check_status_filter(status)
    return uow.vector_stores.list_files(vector_store_id, params, status)


def update_attributes(
    uow: UnitOfWork, vector_store_id: str, file_id: str, request: VectorStoreFileModify
) -> VectorStoreFile:
    file = get(uow, vector_store_id, file_id)
    file.attributes = request.attributes
    uow.vector_stores.set_attributes(vector_store_id, file_id, request.attributes)
    return file


def delete(uow: UnitOfWork, vector_store_id: str, file_id: str) -> None:
    """Remove the file from the store (and its chunks); the File itself stays (spec)."""
    require_store(uow, vector_store_id)
    check_id("file", "file_id", file_id)
    if not uow.vector_stores.delete_file(vector_store_id, file_id):
        raise VectorStoreFileNotFound(file_id)


def content(uow: UnitOfWork, vector_store_id: str, file_id: str) -> str:
    get(uow, vector_store_id, file_id)
    return uow.chunks.document(vector_store_id, file_id)
