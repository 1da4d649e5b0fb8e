"""Request pieces shared by several resources: metadata, tools, tool_resources, response_format.

Models are strict (no "5" for 5) and forbid unknown fields, as the spec's ``additionalProperties:
false`` does. Limits that the spec states only in prose (metadata 16/64/512, list limit 1..100) are
enforced here too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Caps where the spec states none (documented in docs/limits.md): a model id is short; message text
# gets the same 256,000 characters the spec gives instructions.
MAX_MODEL_CHARS = 256
MAX_TEXT_CHARS = 256_000
Model = Annotated[str, StringConstraints(max_length=MAX_MODEL_CHARS)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
ShortName = Annotated[str, StringConstraints(max_length=256)]
ShortDescription = Annotated[str, StringConstraints(max_length=512)]
MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)]
# maxItems of ``tool_resources.code_interpreter.file_ids`` (assistants, threads, thread-and-run);
# message attachments may not push a thread's list past it either.
CODE_INTERPRETER_MAX_FILES = 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    def given(self) -> dict[str, Any]:
        """The fields the client sent (for modify: unsent fields keep their value)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


# --- chunking (vector_stores helper) ---------------------------------------------------------
class AutoChunking(Strict):
    type: Literal["auto"]


class StaticChunkingParams(Strict):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunkingParams:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens.")
        return self


class StaticChunking(Strict):
    type: Literal["static"]
    static: StaticChunkingParams


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


# --- tool_resources ----------------------------------------------------------------------------
class CodeInterpreterResources(Strict):
    file_ids: Annotated[list[str], Field(max_length=CODE_INTERPRETER_MAX_FILES)] | None = None


class VectorStoreHelper(Strict):
    file_ids: Annotated[list[str], Field(max_length=10000)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class FileSearchResourcesCreate(Strict):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None
    vector_stores: Annotated[list[VectorStoreHelper], Field(max_length=1)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> FileSearchResourcesCreate:
        if self.vector_store_ids is not None and self.vector_stores is not None:
            raise ValueError("Only one of 'vector_store_ids' or 'vector_stores' may be provided.")
        return self


class FileSearchResources(Strict):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None


class ToolResourcesCreate(Strict):
    """tool_resources on create (assistant, thread): file_search may use the vector_stores helper."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResourcesCreate | None = None


class ToolResources(Strict):
    """tool_resources on modify and on create-thread-and-run: ids only."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


# --- tools ----------------------------------------------------------------------------------------
class CodeInterpreterTool(Strict):
    type: Literal["code_interpreter"]


class RankingOptions(Strict):
    ranker: Literal["auto", "default_2024_08_21"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)]


class FileSearchSettings(Strict):
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: RankingOptions | None = None


class FileSearchTool(Strict):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class FunctionDefinition(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


# --- response_format -----------------------------------------------------------------------------
class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"]


class JsonSchemaDefinition(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaDefinition


ResponseFormat = (
    Literal["auto"] | Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
)
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def dump(value: BaseModel | list[Any] | str | None) -> Any:
    """A validated request value as plain JSON data for storage (aliases restored, None fields kept
    out so stored objects echo what the client sent)."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [dump(item) for item in value]
    return value


def list_envelope(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def deleted(object_id: str, kind: str) -> dict[str, Any]:
    return {"id": object_id, "object": f"{kind}.deleted", "deleted": True}
