"""Vector stores, their files, file batches and search on the wire."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from threadline.domain.files import FileBatch, VectorStore, VectorStoreFile
from threadline.schemas.common import ChunkingStrategy, Metadata, ShortDescription, ShortName, Strict

AttributeKey = Annotated[str, StringConstraints(max_length=64)]
AttributeValue = Annotated[str, StringConstraints(max_length=512)] | bool | int | float
# VectorStoreFileAttributes: the one map whose limits the schema itself enforces.
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=16)]


class VectorStoreExpiresAfter(Strict):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class VectorStoreCreate(Strict):
    file_ids: Annotated[list[str], Field(max_length=500)] | None = None
    name: ShortName | None = None
    # Accepted for compatibility; the VectorStoreObject has no field to echo it in.
    description: ShortDescription | None = None
    expires_after: VectorStoreExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class VectorStoreModify(Strict):
    name: ShortName | None = None
    expires_after: VectorStoreExpiresAfter | None = None
    metadata: Metadata | None = None


class VectorStoreFileCreate(Strict):
    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class VectorStoreFileModify(Strict):
    attributes: Attributes | None


class FileBatchCreate(Strict):
    file_ids: Annotated[list[str], Field(min_length=1, max_length=2000)] | None = None
    files: Annotated[list[VectorStoreFileCreate], Field(min_length=1, max_length=2000)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FileBatchCreate:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("Exactly one of 'file_ids' or 'files' must be provided.")
        return self


class SearchRankingOptions(Strict):
    ranker: Literal["none", "auto", "default-2024-11-15"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class VectorStoreSearch(Strict):
    query: str | list[str]
    rewrite_query: bool | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    # Shape checked by retrieval.filters.validate_filter (recursive, with OpenAI's param paths).
    filters: dict[str, Any] | None = None
    ranking_options: SearchRankingOptions | None = None


def vector_store_to_wire(store: VectorStore, now: int) -> dict[str, Any]:
    return {
        "id": store.id,
        "object": "vector_store",
        "created_at": store.created_at,
        # The SDK types name as a non-null str.
        "name": store.name or "",
        "usage_bytes": store.usage_bytes,
        "file_counts": store.file_counts.to_wire(),
        "status": store.status(now),
        "expires_after": store.expires_after,
        "expires_at": store.expires_at,
        "last_active_at": store.last_active_at,
        "metadata": store.metadata,
    }


def vector_store_file_to_wire(file: VectorStoreFile) -> dict[str, Any]:
    return {
        "id": file.id,
        "object": "vector_store.file",
        "usage_bytes": file.usage_bytes,
        "created_at": file.created_at,
        "vector_store_id": file.vector_store_id,
        "status": file.status,
        "last_error": file.last_error,
        "chunking_strategy": file.chunking_strategy,
        "attributes": file.attributes or {},
    }


def file_batch_to_wire(batch: FileBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        # The schema and the SDK say files_batch; the official example's file_batch is a typo.
        "object": "vector_store.files_batch",
        "created_at": batch.created_at,
        "vector_store_id": batch.vector_store_id,
        "status": batch.status,
        "file_counts": batch.file_counts.to_wire(),
    }


def file_content_page(text: str) -> dict[str, Any]:
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}] if text else [],
        "has_more": False,
        "next_page": None,
    }
