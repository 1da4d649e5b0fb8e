"""The one encoder of run events to Server-Sent Events (design habit 4).

Each event is ``event: <name>\\ndata: <json>\\n\\n``; every stream ends with ``event: done`` /
``data: [DONE]``. The stream holds no database transaction: it only reads the bus. When the client
goes away Starlette stops the generator and the subscription is closed; the run itself carries on in
the executor (a disconnect is not a cancel).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent

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
from threadline.events.bus import Subscription
from threadline.observability.metrics import ACTIVE_STREAMS
from threadline.schemas.messages import message_to_wire
from threadline.schemas.run_steps import message_delta_to_wire, step_delta_to_wire, step_to_wire
from threadline.schemas.runs import run_to_wire
from threadline.schemas.threads import thread_to_wire

# The SDK reads events separated by blank lines; "\n" matches the reference transcripts byte for byte.
SEPARATOR = "\n"
DONE = ServerSentEvent(data="[DONE]", event="done", sep=SEPARATOR).encode()
# A comment line every few seconds keeps proxies and idle clients from dropping a stream that waits on a
# slow model; SSE parsers (the SDK's included) ignore comments.
KEEPALIVE_S = 15


def _wire(event: RunEvent) -> tuple[str, Any]:
    if isinstance(event, RunChanged):
        return f"thread.run.{event.name}", run_to_wire(event.run)
    if isinstance(event, StepChanged):
        return f"thread.run.step.{event.name}", step_to_wire(event.step)
    if isinstance(event, StepDelta):
        return "thread.run.step.delta", step_delta_to_wire(event.step_id, event.tool_call)
    if isinstance(event, MessageChanged):
        return f"thread.message.{event.name}", message_to_wire(event.message)
    if isinstance(event, MessageDelta):
        return "thread.message.delta", message_delta_to_wire(
            event.message_id, event.index, event.text, event.first, event.annotations
        )
    if isinstance(event, ThreadCreated):
        return "thread.created", thread_to_wire(event.thread)
    if isinstance(event, StreamError):
        # The spec's ErrorEvent data is the Error object itself, never {"error": ...} (that makes the SDK
        # raise mid-stream). The Python SDK (3.54) parses it two ways: `create(stream=True)` wraps the
        # data as {"event", "data"} itself, while the `runs.stream()` helpers validate the data as the
        # whole event. The same object also carries "event" and "data" so both yield an ErrorEvent.
        error = {"message": event.message, "type": "server_error", "param": None, "code": event.code}
        return "error", {**error, "event": "error", "data": error}
    raise TypeError(f"not a wire event: {event!r}")


def encode(event: RunEvent) -> bytes:
    name, data = _wire(event)
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name, sep=SEPARATOR).encode()


async def _frames(
    prelude: list[RunEvent], subscription: Subscription, on_close: Callable[[], None]
) -> AsyncIterator[bytes]:
    ACTIVE_STREAMS.inc()
    try:
        if prelude:
            yield b"".join(map(encode, prelude))
        async for batch in subscription.batches():
            ended = isinstance(batch[-1], StreamEnd)
            frames = [encode(event) for event in batch if not isinstance(event, StreamEnd)]
            if ended:
                frames.append(DONE)
            if frames:
                yield b"".join(frames)
            if ended:
                return
        yield DONE
    finally:
        ACTIVE_STREAMS.dec()
        subscription.close()
        on_close()


def event_stream(
    prelude: list[RunEvent], subscription: Subscription, on_close: Callable[[], None]
) -> EventSourceResponse:
    """SSE for one run: ``prelude`` (events the request itself produced: thread.created,
    thread.run.created, ...) then the bus's events until the run stops; ``on_close`` is called
    once the stream ends, however it ends."""
    return EventSourceResponse(
        _frames(prelude, subscription, on_close),
        ping=KEEPALIVE_S,
        sep=SEPARATOR,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep=SEPARATOR),
    )
