"""The event bus between the executor and open streams.

``EventBus`` is the seam: this in-process implementation serves the embedded executor of a single
SQLite process (a plain queue put per event: streaming pays nothing for scale-out);
``executor/db_bus.py`` carries events between processes (PostgreSQL, separate workers). A stream
subscribes *before* the run is handed to the executor, so it cannot miss the first event; the
subscription is awaited because the database bus must first read where the run's events stand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from threadline.domain.events import RunEvent, StreamEnd


class Subscription(Protocol):
    def events(self) -> AsyncIterator[RunEvent]:
        """Events of the run in publication order, ending after ``StreamEnd``."""
        ...

    def close(self) -> None:
        """Stop receiving (idempotent); a stream calls it when its client goes away."""
        ...


class EventBus(Protocol):
    async def subscribe(self, run_id: str) -> Subscription:
        """Events of ``run_id`` published from now on."""
        ...

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        """Deliver ``events`` to every current subscriber of ``run_id``; never blocks."""
        ...


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        # Unbounded: the executor must never wait for a slow client. A stream holds at most one run's
        # events, and the client going away closes the subscription.
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()

    async def events(self) -> AsyncIterator[RunEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, StreamEnd):
                return

    def close(self) -> None:
        self._bus.unsubscribe(self)


class InProcessBus:
    """Subscribers are asyncio queues on the server's event loop; publish is a plain put."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[_QueueSubscription]] = {}

    async def subscribe(self, run_id: str) -> _QueueSubscription:
        subscription = _QueueSubscription(self, run_id)
        self._subscribers.setdefault(run_id, []).append(subscription)
        return subscription

    def unsubscribe(self, subscription: _QueueSubscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id, [])
        if subscription in subscribers:
            subscribers.remove(subscription)
        if not subscribers:
            self._subscribers.pop(subscription.run_id, None)

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        for subscription in list(self._subscribers.get(run_id, ())):
            for event in events:
                subscription.queue.put_nowait(event)
