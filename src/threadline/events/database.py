"""The database event bus: run events cross processes through the ``run_events`` table.

``publish`` never blocks: events (token deltas coalesced first, see ``events/bus.py``) go to an
in-memory queue that one writer task drains in order, appending each batch in one transaction
(adjacent deltas of a message in a batch become one row) that also NOTIFYs ``<run id>:<origin>``
on PostgreSQL. A batch holds every run with queued events, in a fixed number of statements
whatever their number, and under load the writer appends at most every ``APPEND_INTERVAL_S``.
Right after the commit the writer hands the appended events, with their numbers, to the
subscribers in its own process: they read nothing back. A subscriber reads the table only for
what another process appended (a NOTIFY from another origin, a gap in the numbers it holds, or,
without notifications, a poll when it has been quiet), so large events never travel in a NOTIFY
payload (8000-byte cap).

Token deltas cross processes only when they must (PostgreSQL): a stream registers its process in
``run_watchers`` when it subscribes, and an append keeps a run's deltas only if another process
watches it. Otherwise they go to our own subscribers alone, each after the appended event it
follows (``push_after``), so one process serving its own streams writes no row per token.
Further, a run that the process executing it found streamed nowhere else when it claimed it
(``streamed_elsewhere``, in the claim's transaction; streams register only when a run is queued,
before any claim) has only the changes that stop it appended: its other events go straight to our
subscribers, with no writer and no transaction. Another process has no use for them: its held polls
wait for the run to stop, and a stream there would have been a watcher.

The order invariant: the changes that stop a run (terminal, requires_action) go through
``transaction``, which appends the run's still-queued events and the new ones in the transaction
that makes the change, with no batch of the writer in flight. So a stream in another process that
sees the run stopped can read every event that led there; a subscription that has heard nothing
for ``event_stall_check_s`` reads the run, then the log after its cursor, and ends the stream on
its own only when the log is drained and the run stopped (a worker killed between committing a
non-stopping change and appending its events loses those events; the worker that takes the run
over publishes its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

from threadline.config import Settings
from threadline.domain.events import MessageDelta, RunChanged, RunEvent, StepDelta, StreamEnd
from threadline.domain.run_states import STOPPED_RUN_STATUSES
from threadline.events.bus import DeltaCoalescer, EventBus, InProcessBus, Work, merged
from threadline.events.codec import decode_event, encode_event
from threadline.observability.logs import RetryLog
from threadline.storage.database import Database
from threadline.storage.notify import EVENTS_CHANNEL, EventsNotice, Notifications
from threadline.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

READ_BATCH = 500
RETENTION_S = 300.0  # events are read within moments; five minutes covers any slow reader
PRUNE_INTERVAL_S = 60.0
RETRY_DELAY_S = 0.5
# Without notifications a subscription polls this often: SQLite reads are cheap and local.
UNNOTIFIED_POLL_S = 0.1
# The writer starts an append at most this often. An append costs about the same for one run's
# events as for fifty runs' (``_append``), and adjacent deltas of a message in one append are one
# row; under load, without a pause, the writer would commit one small transaction after another,
# each a few runs' single delta. 50 ms rather than 10: a PostgreSQL run's CPU fell from ≈ 41 to
# ≈ 31 ms (20 runs/s of 50 tokens), for deltas reaching a stream at most 50 ms later under load.
# A quiet writer appends at once: the pause follows an append, so a lone run's first token is
# not delayed.
APPEND_INTERVAL_S = 0.05

T = TypeVar("T")
Rows = list[tuple[int, str, dict[str, Any]]]
# A run's events as appended: (seq, appended, event). An event not appended (a token delta no other
# process streams) carries the number of the appended event it follows, None if unknown here.
Placed = list[tuple[int | None, bool, RunEvent]]
# Watchers of processes that died without a trace only keep a run's deltas appended: kept a day.
WATCHER_RETENTION_S = 86_400.0


class DatabaseSubscription:
    def __init__(self, bus: DatabaseBus, run_id: str, cursor: int) -> None:
        self._bus, self.run_id, self.cursor = bus, run_id, cursor
        self.wake = asyncio.Event()
        # Events handed over by our own writer, by number, until their turn comes.
        self.held: dict[int, RunEvent] = {}
        # Another process appended events of the run that we have not read yet.
        self.remote = False
        # Events our writer did not append (deltas only we stream), by the number they follow.
        self.trailing: dict[int, list[RunEvent]] = {}

    def start_after(self, seq: int) -> None:
        """Set the cursor of a subscription registered before it knew it: what was handed over
        meanwhile up to ``seq`` is already behind it."""
        self.cursor = seq
        self.held = {n: event for n, event in self.held.items() if n > seq}
        self.trailing = {n: events for n, events in self.trailing.items() if n >= seq}

    def push(self, seq: int, event: RunEvent) -> None:
        if seq > self.cursor:
            self.held[seq] = event
            self.wake.set()

    def push_after(self, seq: int, event: RunEvent) -> None:
        # Behind the cursor (it read past, from another process's appends): next, not dropped.
        self.trailing.setdefault(max(seq, self.cursor), []).append(event)
        self.wake.set()

    async def batches(self) -> AsyncIterator[list[RunEvent]]:
        db, run_id = self._bus.db, self.run_id
        quiet_since = time.monotonic()
        read = False
        while True:
            self.wake.clear()  # before reading: a push or NOTIFY during the read wakes the next wait
            batch: list[RunEvent] = self.trailing.pop(self.cursor, [])
            while (event := self.held.pop(self.cursor + 1, None)) is not None:
                self.cursor += 1
                batch.append(event)
                if isinstance(event, StreamEnd):
                    break
                batch += self.trailing.pop(self.cursor, [])
            if batch:
                quiet_since = time.monotonic()
                yield batch
                if isinstance(batch[-1], StreamEnd):
                    return
            # A gap before what we hold means another process appended in between: read it.
            gap = bool(self.held) and min(self.held) > self.cursor + 1
            if read or gap or self.remote:
                read, self.remote = False, False
                rows = await db.transaction(partial(_read_after, run_id=run_id, seq=self.cursor))
                self._hold(rows)
                if rows:
                    read = len(rows) == READ_BATCH
                    continue
            if time.monotonic() - quiet_since >= self._bus.stall_check_s:
                rows, ending = await db.transaction(self._stall_check)
                if rows:
                    self._hold(rows)
                    continue
                if ending:
                    yield ending
                    return
                quiet_since = time.monotonic()
            try:
                await asyncio.wait_for(self.wake.wait(), self._bus.poll_s)
            except TimeoutError:
                read = True  # a lost notification (or none, on SQLite) must not stall us

    def _hold(self, rows: Rows) -> None:
        for seq, name, data in rows:
            if seq > self.cursor and seq not in self.held:
                self.held[seq] = decode_event(name, data)

    def _stall_check(self, uow: UnitOfWork) -> tuple[Rows, list[RunEvent]]:
        """Unread events of the run; else, if it stopped without us hearing of it, the stream's
        last events made up from the run."""
        # The run first, the log second: a stopped state commits with its events, so whatever this
        # read finds, the next one (a later snapshot) already holds the events that led to it.
        run = uow.runs.by_id(self.run_id)
        rows = uow.run_events.after(self.run_id, self.cursor, READ_BATCH)
        if rows:
            return rows, []
        if run is None:
            return [], [StreamEnd(self.run_id)]
        if run.status in STOPPED_RUN_STATUSES:
            return [], [RunChanged(run.status, run), StreamEnd(self.run_id)]
        return [], []

    def close(self) -> None:
        self._bus.unsubscribe(self)


class DatabaseBus:
    def __init__(self, db: Database, notifications: Notifications | None, settings: Settings) -> None:
        self.db = db
        poll_s = settings.run_poll_s
        self.poll_s = poll_s if notifications is not None else min(poll_s, UNNOTIFIED_POLL_S)
        self.stall_check_s = settings.event_stall_check_s
        self._write_delay_s = settings.event_write_delay_s
        # Our NOTIFYs carry this token: the events they announce were handed to our subscribers.
        self.origin = secrets.token_hex(6)
        self._coalescer = DeltaCoalescer(
            self._enqueue, settings.event_coalesce_ms / 1000, settings.event_coalesce_max
        )
        self._subscribers: dict[str, set[DatabaseSubscription]] = {}
        # On PostgreSQL a run's token deltas are appended only while another process streams it
        # (``run_watchers``); every other subscriber is here and gets them from memory. SQLite
        # appends them all: without PostgreSQL's advisory lock a stream could register between an
        # append's check of the watchers and its insert, and miss that append's deltas.
        self._watching = db.dialect == "postgresql"
        # Runs this process executes that no stream of another process watches (``executing``): until
        # they stop, their events go to our own subscribers alone and only the changes that stop
        # them are appended (``transaction``). Nobody else needs the rest: another process's held
        # poll waits for a stop, and a stream elsewhere would be a watcher (PostgreSQL only, as
        # ``_watching``).
        self._unwatched: set[str] = set()
        # The last number appended per run that has subscribers here: where a batch of deltas
        # alone follows (a new subscriber starts after everything appended anyway).
        self._last_seq: dict[str, int] = {}
        self._pending: list[tuple[str, list[RunEvent]]] = []
        self._has_pending = asyncio.Event()
        self._writing = asyncio.Lock()  # one batch at a time (the writer task, aclose, tests)
        # The runs of the batch being appended. A stopping commit waits only for a batch holding
        # its own run's earlier events: one lock for every commit, held for its wall time, capped
        # PostgreSQL at ≈ 25 stopping commits and appends a second behind a busy API's transactions
        # (runs of 1 s took 6-7 s at 20 runs/s, docs/performance.md "Runs' CPU").
        self._in_flight: tuple[set[str], asyncio.Event] | None = None
        self._append_failures = RetryLog(log, "appending run events")
        self._stopping: dict[str, int] = {}  # runs with a stopping commit under way: not batched
        self._tasks: list[asyncio.Task[None]] = []
        if notifications is not None:
            notifications.on(EVENTS_CHANNEL, self._on_notice)
            notifications.on_reconnect(self._wake_all)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="threadline-events-writer"),
            asyncio.create_task(self._prune_forever(), name="threadline-events-prune"),
        ]

    async def subscribe(self, run_id: str, *, after: int | None = None) -> DatabaseSubscription:
        if after is None:
            after = await self.db.transaction(lambda uow: self.watch(uow, run_id))
        return self._register(DatabaseSubscription(self, run_id, after))

    async def subscribe_reading(
        self, db: Database, run_id: str, read: Callable[[UnitOfWork], T]
    ) -> tuple[DatabaseSubscription, T]:
        # Registered before the transaction, so nothing our writer hands over while it runs is
        # lost; the log's last number is read before ``read``: under READ COMMITTED each statement
        # takes its own snapshot, and a change that stops the run commits with its events, so a
        # stop that ``read`` misses is numbered after the cursor.
        subscription = self._register(DatabaseSubscription(self, run_id, 0))
        try:
            seq, value = await db.transaction(lambda uow: (uow.run_events.last_seq(run_id), read(uow)))
        except BaseException:
            subscription.close()
            raise
        subscription.start_after(seq)
        return subscription, value

    def _register(self, subscription: DatabaseSubscription) -> DatabaseSubscription:
        self._subscribers.setdefault(subscription.run_id, set()).add(subscription)
        return subscription

    def watch(self, uow: UnitOfWork, run_id: str) -> int:
        if self._watching:
            return uow.run_events.watch(run_id, self.origin, time.time())
        return uow.run_events.last_seq(run_id)

    def streamed_elsewhere(self, uow: UnitOfWork, run_ids: list[str]) -> set[str]:
        if not self._watching:
            return set(run_ids)  # SQLite appends every event: as if everyone watched
        return uow.run_events.watched_elsewhere(run_ids, self.origin)

    def executing(self, run_id: str, *, streamed_elsewhere: bool) -> None:
        if self._watching and not streamed_elsewhere:
            self._unwatched.add(run_id)

    def unsubscribe(self, subscription: DatabaseSubscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id, set())
        subscribers.discard(subscription)
        if not subscribers:
            self._subscribers.pop(subscription.run_id, None)
            self._last_seq.pop(subscription.run_id, None)

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        self._coalescer.publish(run_id, events)

    async def transaction(self, db: Database, run_id: str, work: Work) -> list[RunEvent]:
        self._coalescer.flush(run_id)
        # No batch in flight may hold this run's earlier events (it could commit them after ours),
        # and until our commit is done no batch takes the run's later ones: other runs' appends
        # and stopping commits go on meanwhile.
        while (in_flight := self._in_flight) is not None and run_id in in_flight[0]:
            await in_flight[1].wait()
        self._stopping[run_id] = self._stopping.get(run_id, 0) + 1
        try:
            return await self._commit_stopping(db, run_id, work)
        finally:
            if self._stopping[run_id] == 1:
                del self._stopping[run_id]
            else:
                self._stopping[run_id] -= 1
            if any(item[0] == run_id for item in self._pending):
                self._has_pending.set()  # the run's later events, held back from the writer

    async def _commit_stopping(self, db: Database, run_id: str, work: Work) -> list[RunEvent]:
        queued = self._take(run_id)
        both = partial(
            _commit_with,
            run_id=run_id,
            queued=queued,
            work=work,
            origin=self.origin,
            watching=self._watching,
            unwatched=run_id in self._unwatched,
        )
        commit = asyncio.ensure_future(db.transaction(both))
        try:
            events, placed = await asyncio.shield(commit)
        except asyncio.CancelledError:
            # The commit goes on without us: see it through, so our subscribers get its events
            # from memory and a failed one gives its queued events back, then stop.
            with contextlib.suppress(Exception):
                events, placed = await commit
                self._deliver(run_id, placed)
            if commit.done() and not commit.cancelled() and commit.exception() is not None:
                self._give_back(run_id, queued)
            raise
        except Exception:
            self._give_back(run_id, queued)
            raise
        self._deliver(run_id, placed)
        if any(isinstance(event, StreamEnd) for event in events):
            self._unwatched.discard(run_id)  # stopped: the next claim asks again
        return events

    def _enqueue(self, run_id: str, events: list[RunEvent]) -> None:
        self._pending.append((run_id, events))
        self._has_pending.set()

    def _take(self, run_id: str) -> list[RunEvent]:
        taken: list[RunEvent] = []
        kept: list[tuple[str, list[RunEvent]]] = []
        for item in self._pending:
            if item[0] == run_id:
                taken += item[1]
            else:
                kept.append(item)
        self._pending = kept
        return taken

    def _give_back(self, run_id: str, events: list[RunEvent]) -> None:
        if events:
            self._pending.insert(0, (run_id, events))
            self._has_pending.set()

    def _deliver(self, run_id: str, placed: Placed) -> None:
        subscriptions = list(self._subscribers.get(run_id, ()))
        if not subscriptions:
            return
        last = self._last_seq.get(run_id, 0)
        numbered: list[tuple[int, bool, RunEvent]] = []
        for seq, appended, event in placed:
            last = max(last, seq) if seq is not None else last
            numbered.append((last if seq is None else seq, appended, event))
        self._last_seq[run_id] = last
        for subscription in subscriptions:
            for seq, appended, event in numbered:
                if appended:
                    subscription.push(seq, event)
                else:
                    subscription.push_after(seq, event)

    def _on_notice(self, payload: str) -> None:
        notice = EventsNotice.parse(payload)
        if notice.origin == self.origin:
            return  # ours: already handed over from memory
        for subscription in self._subscribers.get(notice.run_id, ()):
            subscription.remote = True
            subscription.wake.set()

    def _wake_all(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.remote = True
                subscription.wake.set()

    async def _write_forever(self) -> None:
        while True:
            await self._has_pending.wait()
            started = time.monotonic()
            await self.flush()
            pause = APPEND_INTERVAL_S - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def flush(self) -> None:
        """Append everything published so far (in publication order per run)."""
        async with self._writing:
            self._has_pending.clear()
            batch = [item for item in self._pending if item[0] not in self._stopping]
            self._pending = [item for item in self._pending if item[0] in self._stopping]
            for run_id, events in batch:
                if run_id in self._unwatched:  # ours alone: from memory, no row
                    self._deliver(run_id, [(None, False, event) for event in events])
            batch = [item for item in batch if item[0] not in self._unwatched]
            if not batch:
                return
            done = asyncio.Event()
            self._in_flight = ({run_id for run_id, _ in batch}, done)
            try:
                if self._write_delay_s > 0:
                    await asyncio.sleep(self._write_delay_s)  # tests: a slow writer, events in flight
                append = partial(_append, batch=batch, origin=self.origin, watching=self._watching)
                appended = await self.db.transaction(append)
            except Exception:  # keep the events and retry: a stream waits rather than loses them
                self._append_failures.failed()
                self._pending[:0] = batch
                failed = True
            else:
                self._append_failures.succeeded()
                failed = False
                for run_id, placed in appended.items():
                    self._deliver(run_id, placed)
            finally:
                # Delivered (or given back) before a waiting stopping commit may go on.
                self._in_flight = None
                done.set()
            if failed:
                await asyncio.sleep(RETRY_DELAY_S)
                self._has_pending.set()

    async def _prune_forever(self) -> None:
        failures = RetryLog(log, "pruning run events")
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            try:
                now = time.time()
                prune = partial(_prune, before=now - RETENTION_S, watchers_before=now - WATCHER_RETENTION_S)
                await self.db.transaction(prune)
            except Exception:  # pruning is housekeeping: try again next time
                failures.failed()
            else:
                failures.succeeded()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Write what is still queued (bounded), then stop."""
        self._coalescer.flush_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def _read_after(uow: UnitOfWork, run_id: str, seq: int) -> Rows:
    return uow.run_events.after(run_id, seq, READ_BATCH)


def _prune(uow: UnitOfWork, before: float, watchers_before: float) -> int:
    return uow.run_events.prune(before, watchers_before)


def _compact(events: list[RunEvent]) -> list[RunEvent]:
    """Adjacent deltas of one message part as one event (fewer rows; the same text)."""
    out: list[RunEvent] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, MessageDelta) and isinstance(last, MessageDelta):
            joined = merged(last, event)
            if joined is not None:
                out[-1] = joined
                continue
        out.append(event)
    return out


def _persist(
    uow: UnitOfWork,
    by_run: dict[str, list[RunEvent]],
    origin: str,
    *,
    watching: bool,
    unwatched: frozenset[str] = frozenset(),
) -> dict[str, Placed]:
    """Append the runs' events (compacted) in one go, under the runs' locks: all of them for a run
    another process streams (or when not ``watching``), only those that are not token deltas
    otherwise. ``unwatched``: runs known to be streamed nowhere else (no need to ask). Returns every
    event of each run placed by number, for our own subscribers."""
    compacted = {run_id: _compact(events) for run_id, events in by_run.items() if events}
    run_ids = sorted(compacted)
    uow.run_events.lock(run_ids)
    everything = (
        set(run_ids)
        if not watching
        else uow.run_events.watched_elsewhere([r for r in run_ids if r not in unwatched], origin)
    )
    kept = {
        run_id: [event for event in events if run_id in everything or not _is_delta(event)]
        for run_id, events in compacted.items()
    }
    records = {run_id: [encode_event(event) for event in events] for run_id, events in kept.items()}
    last = uow.run_events.append_many(records, time.time(), origin, locked=True)
    placed: dict[str, Placed] = {}
    for run_id, events in compacted.items():
        seq = last[run_id] - len(kept[run_id]) if run_id in last else None
        out: Placed = []
        for event in events:
            if run_id in everything or not _is_delta(event):
                assert seq is not None  # an appended event: the run is in ``last``
                seq += 1
                out.append((seq, True, event))
            else:
                out.append((seq, False, event))
        placed[run_id] = out
    return placed


def _is_delta(event: RunEvent) -> bool:
    return isinstance(event, MessageDelta | StepDelta)


def _append(
    uow: UnitOfWork, batch: list[tuple[str, list[RunEvent]]], origin: str, watching: bool
) -> dict[str, Placed]:
    """The queued events of every run in the batch, in one transaction of a fixed number of
    statements (``RunEventRepository.append_many``)."""
    by_run: dict[str, list[RunEvent]] = {}
    for run_id, events in batch:
        by_run.setdefault(run_id, []).extend(events)
    return _persist(uow, by_run, origin, watching=watching)


def _commit_with(
    uow: UnitOfWork,
    run_id: str,
    queued: list[RunEvent],
    work: Work,
    origin: str,
    watching: bool,
    unwatched: bool,
) -> tuple[list[RunEvent], Placed]:
    """``work`` and the run's events (queued ones first) in one transaction: returns ``work``'s
    events and everything placed."""
    events = work(uow)
    known = frozenset({run_id}) if unwatched else frozenset()
    placed = _persist(uow, {run_id: queued + events}, origin, watching=watching, unwatched=known)
    return events, placed.get(run_id, [])


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
        return DatabaseBus(db, notifications, settings)
    return InProcessBus(settings.event_coalesce_ms / 1000, settings.event_coalesce_max)
