"""Run events to and from plain JSON-able dicts, for buses that carry events between processes.

The record is ``(name, data)``: ``name`` is the event class, ``data`` its fields with domain objects
as dicts. This is not the wire format (``api/sse.py`` alone writes that); it only has to round-trip.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from threadline.domain.events import (
    MessageChanged,
    MessageDelta,
    RunChanged,
    RunEvent,
    StepChanged,
    StepDelta,
    StreamEnd,
    StreamError,
    ThreadCreated,
)
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Message, Thread

_FLAT: dict[str, type[StepDelta | MessageDelta | StreamError | StreamEnd]] = {
    "StepDelta": StepDelta,
    "MessageDelta": MessageDelta,
    "StreamError": StreamError,
    "StreamEnd": StreamEnd,
}


def encode_event(event: RunEvent) -> tuple[str, dict[str, Any]]:
    return type(event).__name__, dataclasses.asdict(event)


def decode_event(name: str, data: dict[str, Any]) -> RunEvent:
    if name == "RunChanged":
        run = data["run"]
        return RunChanged(data["name"], Run(**{**run, "status": RunStatus(run["status"])}))
    if name == "StepChanged":
        return StepChanged(data["name"], RunStep(**data["step"]))
    if name == "MessageChanged":
        return MessageChanged(data["name"], Message(**data["message"]))
    if name == "ThreadCreated":
        return ThreadCreated(Thread(**data["thread"]))
    return _FLAT[name](**data)
