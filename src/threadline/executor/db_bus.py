"""The database event bus: run events cross processes through the ``run_events`` table.

``publish`` never blocks: events go to an in-memory queue that one writer task drains in order,
appending each batch in one transaction (deltas that arrive while one is written form the next
batch; each stays its own event, as clients see it in memory) that also NOTIFYs the run
id on PostgreSQL. A subscription starts at the run's last event number (read when it subscribes,
before the run is handed on), wakes on the NOTIFY and reads the new rows back, so large events never
travel in a NOTIFY payload (8000-byte cap). Without notifications (SQLite, or a lost LISTEN
connection) it polls.

Hazard: a worker killed between committing a state change and appending its events loses those
events. The worker that takes the run over publishes its end; and a subscription that has heard
nothing for ``STALL_CHECK_S`` looks at the run itself and ends the stream if the run has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from threadline.config import Settings
from threadline.domain.event_codec import decode_event, encode_event
from threadline.domain.events import RunChanged, RunEvent, StreamEnd
from threadline.domain.run_states import is_terminal
from threadline.executor.bus import EventBus, InProcessBus
from threadline.storage.database import Database
from threadline.storage.notify import EVENTS_CHANNEL, Notifications
from threadline.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

READ_BATCH = 500
RETENTION_S = 300.0  # events are read within moments; five minutes covers any slow reader
PRUNE_INTERVAL_S = 60.0
STALL_CHECK_S = 5.0
RETRY_DELAY_S = 0.5
# Without notifications a subscription polls this often: SQLite reads are cheap and local.
UNNOTIFIED_POLL_S = 0.1


class DatabaseSubscription:
    def __init__(self, bus: DatabaseBus, run_id: str, cursor: int) -> None:
        self._bus, self.run_id, self.cursor = bus, run_id, cursor
        self.wake = asyncio.Event()

    async def events(self) -> AsyncIterator[RunEvent]:
        db, run_id = self._bus.db, self.run_id
        quiet_since = time.monotonic()
        while True:
            self.wake.clear()  # before reading: a NOTIFY during the read wakes the next wait
            rows = await db.transaction(partial(_read_after, run_id=run_id, seq=self.cursor))
            for seq, name, data in rows:
                self.cursor = seq
                event = decode_event(name, data)
                yield event
                if isinstance(event, StreamEnd):
                    return
            if rows:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= STALL_CHECK_S:
                ending = await db.transaction(self._ending_if_stopped)
                if ending:
                    for event in ending:
                        yield event
                    return
                quiet_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._bus.poll_s)

    def _ending_if_stopped(self, uow: UnitOfWork) -> list[RunEvent]:
        """The stream's last events, made up from the run, if it stopped without us hearing of it."""
        if uow.run_events.after(self.run_id, self.cursor, 1):
            return []  # events arrived meanwhile: read them first
        run = uow.runs.by_id(self.run_id)
        if run is None:
            return [StreamEnd(self.run_id)]
        if is_terminal(run.status) or run.status == "requires_action":
            return [RunChanged(run.status, run), StreamEnd(self.run_id)]
        return []

    def close(self) -> None:
        self._bus.unsubscribe(self)


class DatabaseBus:
    def __init__(self, db: Database, notifications: Notifications | None, poll_s: float) -> None:
        self.db = db
        self.poll_s = poll_s if notifications is not None else min(poll_s, UNNOTIFIED_POLL_S)
        self._subscribers: dict[str, set[DatabaseSubscription]] = {}
        self._pending: list[tuple[str, list[RunEvent]]] = []
        self._has_pending = asyncio.Event()
        self._flushing = asyncio.Lock()  # one batch at a time, so batches commit in order
        self._tasks: list[asyncio.Task[None]] = []
        if notifications is not None:
            notifications.on(EVENTS_CHANNEL, self._wake_run)
            notifications.on_reconnect(self._wake_all)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="threadline-events-writer"),
            asyncio.create_task(self._prune_forever(), name="threadline-events-prune"),
        ]

    async def subscribe(self, run_id: str) -> DatabaseSubscription:
        cursor = await self.db.transaction(lambda uow: uow.run_events.last_seq(run_id))
        subscription = DatabaseSubscription(self, run_id, cursor)
        self._subscribers.setdefault(run_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: DatabaseSubscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id, set())
        subscribers.discard(subscription)
        if not subscribers:
            self._subscribers.pop(subscription.run_id, None)

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        if events:
            self._pending.append((run_id, events))
            self._has_pending.set()

    def _wake_run(self, run_id: str) -> None:
        for subscription in self._subscribers.get(run_id, ()):
            subscription.wake.set()

    def _wake_all(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.wake.set()

    async def _write_forever(self) -> None:
        while True:
            await self._has_pending.wait()
            await self.flush()

    async def flush(self) -> None:
        """Append everything published so far (in publication order per run)."""
        async with self._flushing:
            self._has_pending.clear()
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await self.db.transaction(lambda uow: _append(uow, batch))
            except Exception:  # keep the events and retry: a stream waits rather than loses them
                log.exception("appending run events failed; retrying")
                self._pending[:0] = batch
                await asyncio.sleep(RETRY_DELAY_S)
                self._has_pending.set()
                return
        # Wake local subscribers at once (the NOTIFY round trip would also do it, later).
        for run_id, _ in batch:
            self._wake_run(run_id)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            try:
                await self.db.transaction(partial(_prune, before=time.time() - RETENTION_S))
            except Exception:  # pruning is housekeeping: try again next time
                log.exception("pruning run events failed")

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Write what is still queued (bounded), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def _read_after(uow: UnitOfWork, run_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
    return uow.run_events.after(run_id, seq, READ_BATCH)


def _prune(uow: UnitOfWork, before: float) -> int:
    return uow.run_events.prune(before)


def _append(uow: UnitOfWork, batch: list[tuple[str, list[RunEvent]]]) -> None:
    stamp = time.time()
    by_run: dict[str, list[RunEvent]] = {}
    for run_id, events in batch:
        by_run.setdefault(run_id, []).extend(events)
    # Sorted: two processes appending to the same runs take the per-run locks in one order.
    for run_id in sorted(by_run):
        records = [encode_event(event) for event in by_run[run_id]]
        uow.run_events.append(run_id, records, stamp)


def uses_database_bus(settings: Settings, dialect: str, *, embedded: bool) -> bool:
    """Whether events must cross processes. ``event_bus`` "memory" or "database" decides; "auto":
    in memory only for a single SQLite process that executes its own runs (the zero-overhead
    default), the database otherwise (PostgreSQL, separate workers, ``serve --workers N``)."""
    if settings.event_bus != "auto":
        return settings.event_bus == "database"
    return not (dialect == "sqlite" and embedded and settings.workers <= 1)


def build_bus(
    settings: Settings, db: Database, notifications: Notifications | None, *, embedded: bool
) -> EventBus:
    if uses_database_bus(settings, db.dialect, embedded=embedded):
        return DatabaseBus(db, notifications, settings.run_poll_s)
    return InProcessBus()
