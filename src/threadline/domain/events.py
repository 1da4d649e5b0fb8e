"""Typed run events: what the executor publishes on the bus and ``api/sse.py`` writes to the wire.

Each event carries domain objects, never wire dicts, so the one encoder decides the JSON. The wire
names (``thread.run.completed``, ...) live here because they are part of the API contract: the SDK's
stream helpers dispatch on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Message, Thread


@dataclass(frozen=True, slots=True)
class ThreadCreated:
    thread: Thread


@dataclass(frozen=True, slots=True)
class RunChanged:
    """``thread.run.<status>`` (``status`` is the run's, or ``created``)."""

    name: str
    run: Run


@dataclass(frozen=True, slots=True)
class StepChanged:
    """``thread.run.step.<name>``: created, in_progress, completed, failed, cancelled, expired."""

    name: str
    step: RunStep


@dataclass(frozen=True, slots=True)
class StepDelta:
    """``thread.run.step.delta`` for one tool call: ``tool_call`` is the partial wire entry
    (``{"index", "type", ...}``) exactly as the SDK merges it."""

    step_id: str
    tool_call: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MessageChanged:
    """``thread.message.<name>``: created, in_progress, completed, incomplete."""

    name: str
    message: Message


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """``thread.message.delta`` with new text for content part ``index``. ``first`` marks the delta
    that opens the part (it carries ``annotations``, ``[]`` when empty; later ones only when they
    have some: the SDK merges lists). ``annotations`` are those of the markers in ``text``, each sent
    once, with its ``index`` in the part's annotation list (``services/annotations.py``)."""

    message_id: str
    index: int
    text: str
    first: bool
    annotations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class StreamError:
    """``event: error``: the server itself cannot continue the stream. A run that fails (model,
    provider, tool) is not such a case: its stream ends ``thread.run.failed`` (with ``last_error``)
    then ``done``, because openai-node throws on any ``error`` event and its caller could then never
    read the failed run."""

    message: str
    code: str | None


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The run stopped for now (terminal or requires_action): a stream writes ``done`` and closes."""

    run_id: str


RunEvent: TypeAlias = (
    ThreadCreated
    | RunChanged
    | StepChanged
    | StepDelta
    | MessageChanged
    | MessageDelta
    | StreamError
    | StreamEnd
)
