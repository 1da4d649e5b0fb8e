"""Threads, messages and assistants as plain objects (what storage returns, what services rule on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from threadline.domain.json_object import JsonObject

T = TypeVar("T")


@dataclass(slots=True)
class Thread:
    id: str
    created_at: int
    tool_resources: JsonObject | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Message:
    id: str
    thread_id: str
    created_at: int
    role: str
    # Wire-shaped content parts: [{"type": "text", "text": {"value", "annotations"}}, ...]
    content: list[JsonObject]
    attachments: list[JsonObject]
    metadata: dict[str, str]
    assistant_id: str | None = None
    run_id: str | None = None
    status: str = "completed"
    incomplete_details: JsonObject | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None


@dataclass(slots=True)
class Assistant:
    # Field order = column order of the assistants table (storage loads rows positionally).
    id: str
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[JsonObject]
    tool_resources: JsonObject | None
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: str | JsonObject | None
    reasoning_effort: str | None


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a list: items in the requested order and whether more lie beyond it."""

    items: list[T]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ListParams:
    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None
