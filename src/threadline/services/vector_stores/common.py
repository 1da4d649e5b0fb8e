"""Rules shared by the vector-store use cases: lookups with the API's errors, chunking defaults."""

from __future__ import annotations

from typing import Any

from threadline.domain.errors import FileNotFound, VectorStoreNotFound
from threadline.domain.files import VectorStore, VectorStoreFile
from threadline.domain.ids import check_id
from threadline.retrieval.chunking import DEFAULT_CHUNK_OVERLAP_TOKENS, DEFAULT_MAX_CHUNK_SIZE_TOKENS
from threadline.schemas.common import AutoChunking, StaticChunking
from threadline.services.clock import now
from threadline.storage.uow import UnitOfWork

# ``auto`` is reported as the static strategy it stands for.
AUTO_CHUNKING: dict[str, Any] = {
    "type": "static",
    "static": {
        "max_chunk_size_tokens": DEFAULT_MAX_CHUNK_SIZE_TOKENS,
        "chunk_overlap_tokens": DEFAULT_CHUNK_OVERLAP_TOKENS,
    },
}


def stored_chunking(strategy: AutoChunking | StaticChunking | None) -> dict[str, Any]:
    if strategy is None or isinstance(strategy, AutoChunking):
        return {"type": "static", "static": dict(AUTO_CHUNKING["static"])}
    return {"type": "static", "static": strategy.static.model_dump()}


def require_store(uow: UnitOfWork, vector_store_id: str, param: str = "vector_store_id") -> VectorStore:
    check_id("vector_store", param, vector_store_id)
    store = uow.vector_stores.get(vector_store_id)
    if store is None:
        raise VectorStoreNotFound(vector_store_id)
    return store


def require_files(uow: UnitOfWork, file_ids: list[str], param: str = "file_ids") -> None:
    """Every id must name a live File: 400 for a wrong prefix, 404 for an unknown id."""
    for index, file_id in enumerate(file_ids):
        check_id("file", f"{param}[{index}]", file_id)
    existing = uow.files.existing_ids(file_ids, now())
    for file_id in file_ids:
        if file_id not in existing:
            raise FileNotFound(file_id)


def new_vs_file(
    vector_store_id: str,
    file_id: str,
    chunking: dict[str, Any],
    attributes: dict[str, Any] | None,
    batch_id: str | None = None,
) -> VectorStoreFile:
    return VectorStoreFile(
        id=file_id,
        vector_store_id=vector_store_id,
        created_at=now(),
        status="in_progress",
        chunking_strategy=chunking,
        attributes=attributes,
        batch_id=batch_id,
    )
