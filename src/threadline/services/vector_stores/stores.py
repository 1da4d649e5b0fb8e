"""Vector stores: create (optionally with files), retrieve, modify, delete, list; and the
``tool_resources.file_search.vector_stores`` helper that creates a thread's or assistant's store."""

from __future__ import annotations

from typing import Any

from threadline.domain.errors import VectorStoreNotFound
from threadline.domain.files import THREAD_STORE_EXPIRY_DAYS, VectorStore
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import ListParams, Page
from threadline.schemas.common import AutoChunking, StaticChunking
from threadline.schemas.vector_stores import VectorStoreCreate, VectorStoreModify
from threadline.services.clock import now
from threadline.services.vector_stores.common import (
    new_vs_file,
    require_files,
    require_store,
    stored_chunking,
)
from threadline.storage.uow import UnitOfWork

THREAD_STORE_EXPIRES_AFTER = {"anchor": "last_active_at", "days": THREAD_STORE_EXPIRY_DAYS}


def create_store(
    uow: UnitOfWork,
    *,
    name: str | None,
    metadata: dict[str, str] | None,
    expires_after: dict[str, Any] | None,
    file_ids: list[str],
    chunking: AutoChunking | StaticChunking | None,
    file_ids_param: str = "file_ids",
) -> VectorStore:
    """A new store; its files start ``in_progress`` and the ingestion loop takes them from there."""
    require_files(uow, file_ids, file_ids_param)
    created_at = now()
    store = VectorStore(
        id=new_id("vector_store"),
        created_at=created_at,
        name=name,
        metadata=metadata or {},
        last_active_at=created_at,
        expires_after=expires_after,
    )
    uow.vector_stores.insert(store)
    strategy = stored_chunking(chunking)
    for file_id in dict.fromkeys(file_ids):  # a repeated id is added once
        uow.vector_stores.put_file(new_vs_file(store.id, file_id, strategy, None))
        store.file_counts.in_progress += 1
    return store


def create(uow: UnitOfWork, request: VectorStoreCreate) -> VectorStore:
    return create_store(
        uow,
        name=request.name,
        metadata=request.metadata,
        expires_after=None if request.expires_after is None else request.expires_after.model_dump(),
        file_ids=list(request.file_ids or []),
        chunking=request.chunking_strategy,
    )


def create_thread_store(
    uow: UnitOfWork,
    file_ids: list[str],
    chunking: AutoChunking | StaticChunking | None,
    metadata: dict[str, str] | None,
    file_ids_param: str,
) -> VectorStore:
    """The store the ``vector_stores`` helper or a file_search attachment makes: it expires 7 days
    after it was last active, as OpenAI's thread stores do."""
    return create_store(
        uow,
        name=None,
        metadata=metadata,
        expires_after=dict(THREAD_STORE_EXPIRES_AFTER),
        file_ids=file_ids,
        chunking=chunking,
        file_ids_param=file_ids_param,
    )


def get(uow: UnitOfWork, vector_store_id: str) -> VectorStore:
    return require_store(uow, vector_store_id)


def modify(uow: UnitOfWork, vector_store_id: str, request: VectorStoreModify) -> VectorStore:
    store = require_store(uow, vector_store_id)
    given = request.model_fields_set
    if "name" in given:
        store.name = request.name
    if "metadata" in given:
        store.metadata = request.metadata or {}
    if "expires_after" in given:
        store.expires_after = None if request.expires_after is None else request.expires_after.model_dump()
    uow.vector_stores.update(store)
    return store


def delete(uow: UnitOfWork, vector_store_id: str) -> None:
    check_id("vector_store", "vector_store_id", vector_store_id)
    if not uow.vector_stores.delete(vector_store_id):
        raise VectorStoreNotFound(vector_store_id)


def list_stores(uow: UnitOfWork, params: ListParams) -> Page[VectorStore]:
    return uow.vector_stores.list_stores(params)


def require_stores(uow: UnitOfWork, vector_store_ids: list[str], param: str) -> None:
    """tool_resources' ``vector_store_ids`` must name existing stores."""
    for index, vector_store_id in enumerate(vector_store_ids):
        check_id("vector_store", f"{param}[{index}]", vector_store_id)
    existing = uow.vector_stores.existing_ids(vector_store_ids)
    for vector_store_id in vector_store_ids:
        if vector_store_id not in existing:
            raise VectorStoreNotFound(vector_store_id)
