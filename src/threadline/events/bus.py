"""The event bus between the executor and open streams.

``EventBus`` is the seam: this in-process implementation serves the embedded executor of a single
SQLite process (a plain queue put per event: streaming pays nothing for scale-out);
``events/database.py`` carries events between processes (PostgreSQL, separate workers). A stream
subscribes *before* the run is handed to the executor, so it cannot miss the first event; the
subscription is awaited because the database bus must first read where the run's events stand.

Both buses coalesce token deltas before anything else sees them (``DeltaCoalescer``): a model that
streams a token per millisecond costs one event per run every ``event_coalesce_ms`` (or per
``event_coalesce_max`` tokens), not one per token; the text is concatenated, so every character
still reaches the client, in order.

The invariant every bus keeps: a subscriber gets each event of its run once, in publication order,
and the event that stops the run (terminal or requires_action, then ``StreamEnd``) after all that
precede it. The changes that stop a run go through ``EventBus.transaction``, which publishes their
events together with the commit (on the database bus: in the same transaction).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

from threadline.domain.events import MessageDelta, RunEvent, StreamEnd
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork

Work = Callable[[UnitOfWork], list[RunEvent]]
T = TypeVar("T")


class Subscription(Protocol):
    def batches(self) -> AsyncIterator[list[RunEvent]]:
        """Events of the run in publication order, ending after ``StreamEnd``, in batches of what
        had arrived when the last batch was taken: a stream sends one batch as one write (the
        per-write cost of the ASGI stack was a tenth of a streamed run's CPU)."""
        ...

    def close(self) -> None:
        """Stop receiving (idempotent); a stream calls it when its client goes away."""
        ...


class EventBus(Protocol):
    async def subscribe(self, run_id: str, *, after: int | None = None) -> Subscription:
        """Events of ``run_id`` published from now on, or after ``after`` (what ``watch`` returned)."""
        ...

    async def subscribe_reading(
        self, db: Database, run_id: str, read: Callable[[UnitOfWork], T]
    ) -> tuple[Subscription, T]:
        """A subscription to ``run_id`` and ``read``'s result, in one transaction: every event
        committed after what ``read`` saw reaches the subscription (a held poll reads the run and
        waits for it to stop). The subscriber needs only the run's changes, so token deltas need not
        cross processes for it. Closed again if ``read`` raises."""
        ...

    def watch(self, uow: UnitOfWork, run_id: str) -> int:
        """In the transaction that queues a run for a stream: register the stream and return where
        it starts, for ``subscribe(after=...)``. Nothing can execute the run before that commits,
        so the stream misses none of its events, whichever process claims it."""
        ...

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        """Deliver ``events`` to every current subscriber of ``run_id``; never blocks."""
        ...

    def streamed_elsewhere(self, uow: UnitOfWork, run_ids: list[str]) -> set[str]:
        """In the transaction that claims runs for this process: which of them a stream served by
        another process watches. Streams register only in the transaction that queues a run
        (``watch``), which commits before any claim of it, so the answer holds until the run next
        stops (terminal or requires_action)."""
        ...

    def executing(self, run_id: str, *, streamed_elsewhere: bool) -> None:
        """The claim committed: this process executes the run until it next stops; called before
        the claim's events are published."""
        ...

    async def transaction(self, db: Database, run_id: str, work: Work) -> list[RunEvent]:
        """Run ``work`` in one transaction and publish the events it returns. For the changes that
        can stop a run: no subscriber may see the run stopped before the events that led there
        are readable (a stream that re-checks a stalled run trusts the log it finds)."""
        ...


async def each(subscription: Subscription) -> AsyncIterator[RunEvent]:
    """A subscription's events one at a time."""
    async for batch in subscription.batches():
        for event in batch:
            yield event


def merged(held: MessageDelta, delta: MessageDelta) -> MessageDelta | None:
    """``held`` followed by ``delta`` as one delta, or None when they cannot be one (another message
    or content part, or either carries annotations: as OpenAI streams them, an annotated marker is a
    delta of its own whose text is exactly the marker)."""
    if held.message_id != delta.message_id or held.index != delta.index:
        return None
    if held.annotations or delta.annotations:
        return None
    return dataclasses.replace(held, text=held.text + delta.text)


@dataclasses.dataclass(slots=True)
class _Held:
    delta: MessageDelta
    parts: int = 1
    timer: asyncio.TimerHandle | None = None


class DeltaCoalescer:
    """Holds a run's message deltas for up to ``window_s`` after its last emission (or until
    ``max_parts`` have been merged), then passes them on to ``sink`` as one. The first delta after
    a quiet spell goes at once (time to first token pays nothing); any other event of the run first
    releases what is held, so the order of events never changes."""

    def __init__(self, sink: Callable[[str, list[RunEvent]], None], window_s: float, max_parts: int) -> None:
        self._sink, self._window_s, self._max_parts = sink, window_s, max(1, max_parts)
        self._held: dict[str, _Held] = {}
        self._last_emit: dict[str, float] = {}

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        out: list[RunEvent] = []
        for event in events:
            if isinstance(event, MessageDelta) and self._window_s > 0:
                self._delta(run_id, event, out)
                continue
            self._release(run_id, out)
            out.append(event)
            if isinstance(event, StreamEnd):
                self._last_emit.pop(run_id, None)
        if out:
            self._sink(run_id, out)

    def flush_all(self) -> None:
        for run_id in list(self._held):
            self.flush(run_id)

    def flush(self, run_id: str) -> None:
        """Pass on what is held for ``run_id`` now."""
        out: list[RunEvent] = []
        self._release(run_id, out)
        if out:
            self._sink(run_id, out)

    def _delta(self, run_id: str, delta: MessageDelta, out: list[RunEvent]) -> None:
        now = time.monotonic()
        held = self._held.get(run_id)
        if held is not None:
            joined = merged(held.delta, delta)
            if joined is not None:
                held.delta, held.parts = joined, held.parts + 1
                if held.parts >= self._max_parts:
                    self._release(run_id, out)
                return
            self._release(run_id, out)
        if now - self._last_emit.get(run_id, -1e9) >= self._window_s:
            out.append(delta)
            self._last_emit[run_id] = now
            return
        held = self._held[run_id] = _Held(delta)
        delay = self._last_emit[run_id] + self._window_s - now
        held.timer = asyncio.get_running_loop().call_later(delay, self.flush, run_id)

    def _release(self, run_id: str, out: list[RunEvent]) -> None:
        held = self._held.pop(run_id, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        out.append(held.delta)
        self._last_emit[run_id] = time.monotonic()


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        # Unbounded: the executor must never wait for a slow client. A stream holds at most one run's
        # events, and the client going away closes the subscription.
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()

    async def batches(self) -> AsyncIterator[list[RunEvent]]:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and not isinstance(batch[-1], StreamEnd):
                batch.append(self.queue.get_nowait())
            yield batch
            if isinstance(batch[-1], StreamEnd):
                return

    def close(self) -> None:
        self._bus.unsubscribe(self)


class InProcessBus:
    """Subscribers are asyncio queues on the server's event loop; publish is a plain put."""

    def __init__(self, coalesce_s: float = 0.0, coalesce_max: int = 1) -> None:
        self._subscribers: dict[str, list[_QueueSubscription]] = {}
        self._coalescer = DeltaCoalescer(self._fan_out, coalesce_s, coalesce_max)

    async def subscribe(self, run_id: str, *, after: int | None = None) -> _QueueSubscription:
        subscription = _QueueSubscription(self, run_id)
        self._subscribers.setdefault(run_id, []).append(subscription)
        return subscription

    async def subscribe_reading(
        self, db: Database, run_id: str, read: Callable[[UnitOfWork], T]
    ) -> tuple[_QueueSubscription, T]:
        # Subscribed before the read: whatever commits after it was published after this point.
        subscription = await self.subscribe(run_id)
        try:
            return subscription, await db.transaction(read)
        except BaseException:
            subscription.close()
            raise

    def watch(self, uow: UnitOfWork, run_id: str) -> int:
        return 0  # one process, one loop: a subscription taken right after the commit sees it all

    def unsubscribe(self, subscription: _QueueSubscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id, [])
        if subscription in subscribers:
            subscribers.remove(subscription)
        if not subscribers:
            self._subscribers.pop(subscription.run_id, None)

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        self._coalescer.publish(run_id, events)

    def streamed_elsewhere(self, uow: UnitOfWork, run_ids: list[str]) -> set[str]:
        return set()  # there is no elsewhere

    def executing(self, run_id: str, *, streamed_elsewhere: bool) -> None:
        pass

    async def transaction(self, db: Database, run_id: str, work: Work) -> list[RunEvent]:
        # One process, one loop: publishing right after the commit is already in order.
        events = await db.transaction(work)
        self.publish(run_id, events)
        return events

    def _fan_out(self, run_id: str, events: list[RunEvent]) -> None:
        for subscription in list(self._subscribers.get(run_id, ())):
            for event in events:
                subscription.queue.put_nowait(event)
