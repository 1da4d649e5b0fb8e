"""The typed seam between the executor and a model provider: one request type, three stream events,
and the two Protocols (``ChatModel``, ``EmbeddingModel``) that real clients and test doubles implement.

Deliberately free of the ``openai`` package so a fake model needs nothing but these dataclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias


@dataclass(slots=True)
class ChatRequest:
    """One chat-completions call. ``None`` means "not sent": the provider's own default applies.

    ``model`` is the name the *upstream* knows (what ``ProviderRouter.resolve`` returned), not
    necessarily the assistant's model name. ``messages`` are chat-completions message dicts
    (text or image content parts, assistant ``tool_calls``, ``tool`` role results) and are sent as is.
    """

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: dict[str, Any] | None = None
    max_completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of the assistant's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of tool call number ``index``. ``id`` and ``name`` arrive (usually once, first);
    ``arguments`` is the *new* JSON text fragment ("" when a chunk carries none). Concatenating the
    fragments of one index in order gives the call's full arguments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Finish:
    """Always the last event of a successful stream. ``reason`` is the upstream ``finish_reason``
    (``stop``, ``length``, ``tool_calls``, ``content_filter``, ...); ``usage`` is ``None`` when the
    provider did not report it."""

    reason: str | None
    usage: Usage | None


ChatEvent: TypeAlias = TextDelta | ToolCallDelta | Finish


class ChatModel(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        """Stream one completion. Contract: zero or more ``TextDelta``/``ToolCallDelta`` then exactly
        one ``Finish``; on failure, raise ``UpstreamError`` instead of ``Finish`` (possibly after some
        deltas). Cancelling the consuming task, or ``aclose()`` on the returned async generator,
        closes the upstream HTTP response promptly."""
        ...


class EmbeddingModel(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per input text, in input order. Raises ``UpstreamError`` on failure."""
        ...
