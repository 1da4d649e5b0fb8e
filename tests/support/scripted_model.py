"""In-process test doubles for the run engine: a scripted ``ChatModel``, a router that serves it,
and a clock the test moves by hand.

``ScriptedChatModel`` plays one script per ``stream`` call, in order. A script is a list of steps:
a ``ChatEvent`` (yielded as is), an ``Exception`` (raised there: e.g. ``UpstreamError``), or a
``Hold`` (the stream waits for the test to ``release`` it, so a run stays in progress for exactly
as long as the test needs, with no sleeping). It records each request and whether each stream was
closed, so a test can tell that an interrupted run's model call was cut.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeAlias

from threadline.llm.providers import ProviderRouter
from threadline.llm.types import ChatEvent, ChatModel, ChatRequest, Finish, TextDelta, Usage


@dataclass
class Hold:
    """The stream stops here until ``release()``; ``reached`` is set when it gets here."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


Step: TypeAlias = ChatEvent | Exception | Hold
Script: TypeAlias = list[Step]


def reply(text: str, *, prompt_tokens: int = 3, completion_tokens: int = 2) -> Script:
    """A plain text answer, one delta per word."""
    words = text.split(" ")
    deltas: Script = [TextDelta(w if i == len(words) - 1 else w + " ") for i, w in enumerate(words)]
    return [*deltas, Finish("stop", Usage(prompt_tokens, completion_tokens))]


class ScriptedChatModel:
    """A ``ChatModel`` that plays queued scripts; with none left, a stream raises ``AssertionError``
    (the run then fails with an internal error, which a test asserting ``completed`` catches)."""

    def __init__(self, *scripts: Script) -> None:
        self._scripts: deque[Script] = deque(scripts)
        self.requests: list[ChatRequest] = []
        self.closed: list[bool] = []  # per stream: did the consumer close it (finished or cut)?
        self.cancelled: list[bool] = []  # per stream: was it cancelled while it waited at a Hold?

    def add(self, script: Script) -> None:
        self._scripts.append(script)

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        self.requests.append(request)
        script = self._scripts.popleft() if self._scripts else None
        return self._play(len(self.closed), script)

    async def _play(self, number: int, script: Script | None) -> AsyncIterator[ChatEvent]:
        self.closed.append(False)
        self.cancelled.append(False)
        try:
            if script is None:
                raise AssertionError("the scripted model has no script left for this call")
            for step in script:
                if isinstance(step, Hold):
                    step.reached.set()
                    try:
                        await step.released.wait()
                    except asyncio.CancelledError:
                        self.cancelled[number] = True
                        raise
                elif isinstance(step, Exception):
                    raise step
                else:
                    yield step
        finally:
            self.closed[number] = True


class ScriptedRouter(ProviderRouter):
    """A ``ProviderRouter`` whose every model name resolves to ``model`` (provider ``scripted``)."""

    def __init__(self, model: ChatModel) -> None:
        super().__init__({}, [], None, [])
        self.model = model

    def resolve(self, model: str) -> tuple[ChatModel, str]:
        return self.model, model

    def provider_for(self, model: str) -> str:
        return "scripted"


class ManualClock:
    """Wall-clock Unix seconds that move only when the test says so. It starts at the real time:
    rows the services stamp themselves (a run's ``created_at``/``expires_at``) use the real clock."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
