"""The database event bus in-process: on SQLite (no notifications: subscribers poll), its stall check,
the writer's retry of a failed append, and (PostgreSQL) what a reconnected LISTEN does. Several
``DatabaseBus`` objects on one database play several processes (each has its own origin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy as sa

from tests.support.engine import (
    WAIT_S,
    claimed_run,
    collect,
    create_run,
    database,
    engine,
    in_loop,
    names,
    postgres_only,
    read_run,
)
from tests.support.scripted_model import ScriptedChatModel, reply
from threadline.domain.events import MessageDelta, RunChanged, RunEvent, StreamEnd
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run
from threadline.events import database as db_bus
from threadline.events.codec import decode_event
from threadline.events.database import DatabaseBus, DatabaseSubscription
from threadline.services.runs import transitions
from threadline.storage import notify
from threadline.storage.database import Database
from threadline.storage.notify import Notifications
from threadline.storage.scope import Scope
from threadline.storage.uow import UnitOfWork

T = TypeVar("T")


def logged_events(db: Database, run_id: str) -> list[RunEvent]:
    rows = db.transaction_sync(lambda uow: uow.run_events.after(run_id, 0, 1000))
    return [decode_event(name, data) for _, name, data in rows]


def text_of(events: list[RunEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, MessageDelta))


class WatchedDatabase(Database):
    """A Database (a second engine on the same one) that watches transactions running ``target``
    (a function given through ``functools.partial``, or a method): it counts them, sets ``seen``
    once ``expected`` have run, and fails the next ``failures`` of them as a locked database or a
    dropped connection would. Other transactions go through untouched."""

    def __init__(self, db: Database, target: Callable[..., Any], expected: int = 1) -> None:
        super().__init__(db.settings)
        self.target, self.expected = target, expected
        self.failures = self.failed = self.calls = 0
        self.seen = asyncio.Event()

    async def transaction(
        self, fn: Callable[[UnitOfWork], T], *, offload: bool = False, scope: Scope | None = None
    ) -> T:
        if self.target in (getattr(fn, "func", None), getattr(fn, "__func__", None)):
            self.calls += 1
            if self.calls >= self.expected:
                self.seen.set()
            if self.failures:
                self.failures -= 1
                self.failed += 1
                raise sa.exc.OperationalError("INSERT INTO run_events", {}, Exception("database is locked"))
        return await super().transaction(fn, offload=offload, scope=scope)


@in_loop
async def test_database_bus_on_sqlite_carries_a_run_to_this_and_another_process(tmp_path: Path) -> None:
    model = ScriptedChatModel(reply("Hello there world"))
    with database(tmp_path) as db:
        assert db.dialect == "sqlite"
        async with engine(db, model, bus="database") as eng:
            assert isinstance(eng.bus, DatabaseBus)
            elsewhere = DatabaseBus(db, None, db.settings)  # another process: it reads the table
            run = eng.queue_run()
            here_sub = await eng.bus.subscribe(run.id)
            there_sub = await elsewhere.subscribe(run.id)
            here, there = await asyncio.gather(collect(here_sub), collect(there_sub))

            assert names(here)[-2:] == ["run.completed", "end"]
            assert text_of(here) == "Hello there world"
            assert names(there) == names(here)
            assert text_of(there) == text_of(here)
            assert read_run(db, run.id).status == RunStatus.COMPLETED
            # The log holds the run's whole stream (the claim's in_progress first), each event once.
            logged = logged_events(db, run.id)
            assert names(logged)[0] == "run.in_progress"
            assert names(logged)[-len(here) :] == names(here)
            assert text_of(logged) == "Hello there world"


@postgres_only
@in_loop
async def test_token_deltas_reach_local_streams_from_memory_and_others_through_the_log(
    tmp_path: Path,
) -> None:
    """PostgreSQL: a run streamed only in the process executing it appends no delta to the log, and
    its stream still gets every delta in its place; once another process streams a run, its deltas
    are appended and that process reads them all."""
    model = ScriptedChatModel(reply("Hello there world"), reply("Second answer here"))
    with database(tmp_path, "postgres") as db:
        async with engine(db, model, bus="database") as eng:
            run = create_run(db)
            here = await eng.bus.subscribe(run.id)
            eng.executor.submit(run.id)
            seen = await collect(here)
            assert text_of(seen) == "Hello there world"
            order = names(seen)
            deltas = [i for i, name in enumerate(order) if name == "message.delta"]
            assert order.index("message.created") < deltas[0] and deltas[-1] < order.index(
                "message.completed"
            )
            assert order[-2:] == ["run.completed", "end"]
            logged = logged_events(db, run.id)
            assert text_of(logged) == "" and "message.completed" in names(logged)

            elsewhere = DatabaseBus(db, None, db.settings)  # another process: it reads the log
            second = create_run(db)
            here_sub, there_sub = await eng.bus.subscribe(second.id), await elsewhere.subscribe(second.id)
            eng.executor.submit(second.id)
            mine, theirs = await asyncio.gather(collect(here_sub), collect(there_sub))
            assert text_of(mine) == text_of(theirs) == text_of(logged_events(db, second.id))
            assert text_of(theirs) == "Second answer here"
            assert names(theirs) == names(mine)


@postgres_only
@in_loop
async def test_a_stream_watching_from_the_queueing_transaction_gets_what_came_before_it_subscribed(
    tmp_path: Path,
) -> None:
    """The API registers a stream in the transaction that queues its run; a worker that claims the
    run at once and appends before the API process has subscribed still reaches the stream with
    every event, its deltas included."""
    with database(tmp_path, "postgres") as db:
        api, worker = DatabaseBus(db, None, db.settings), DatabaseBus(db, None, db.settings)
        run = claimed_run(db)
        start = db.transaction_sync(lambda uow: api.watch(uow, run.id))
        worker.publish(run.id, [RunChanged("in_progress", run), MessageDelta("msg_1", 0, "Hel", True)])
        await worker.flush()
        worker.publish(run.id, [MessageDelta("msg_1", 0, "lo", False)])
        await worker.flush()
        end = lambda uow: transitions.end(uow, run.id, RunStatus.CANCELLED)  # noqa: E731
        await worker.transaction(db, run.id, end)
        events = await collect(await api.subscribe(run.id, after=start))
        assert text_of(events) == "Hello"
        assert names(events)[0] == "run.in_progress"
        assert names(events)[-2:] == ["run.cancelled", "end"]


@in_loop
async def test_stall_check_ends_a_stream_whose_run_stopped_unheard(tmp_path: Path) -> None:
    """A worker died after committing the run's end but before appending its events: the stall
    check reads the unread log first, then makes the stream's end up from the run."""
    with database(tmp_path, event_stall_check_s=0.0) as db:
        run = claimed_run(db)
        bus = DatabaseBus(db, None, db.settings)
        subscription = await bus.subscribe(run.id)
        other = DatabaseBus(db, None, db.settings)  # the worker, in another process
        other.publish(run.id, [RunChanged("in_progress", run)])
        await other.flush()
        error = {"code": "server_error", "message": "the worker vanished"}
        db.transaction_sync(lambda uow: transitions.end(uow, run.id, RunStatus.FAILED, last_error=error))

        events = await collect(subscription)

        assert names(events) == ["run.in_progress", "run.failed", "end"]
        ended = events[1]
        assert isinstance(ended, RunChanged)
        assert ended.run.status == RunStatus.FAILED and ended.run.last_error == error
        assert len(logged_events(db, run.id)) == 1  # made up for the stream, not written


@in_loop
async def test_stall_check_leaves_a_live_run_streaming(tmp_path: Path) -> None:
    """Checked on every pass (stall_check_s 0), the stall check still never ends a run that is
    live: the stream gets the events another process appends later, and their real end."""
    with database(tmp_path, event_stall_check_s=0.0) as db:
        run = claimed_run(db)
        other = DatabaseBus(db, None, db.settings)  # the worker, in another process
        watched = WatchedDatabase(db, DatabaseSubscription._stall_check, expected=3)
        try:
            bus = DatabaseBus(watched, None, watched.settings)
            subscription = await bus.subscribe(run.id)
            stream = asyncio.ensure_future(collect(subscription))
            other.publish(run.id, [RunChanged("in_progress", run)])
            await other.flush()
            await asyncio.wait_for(watched.seen.wait(), WAIT_S)  # three stall checks, run live
            assert not stream.done()
            end = lambda uow: transitions.end(uow, run.id, RunStatus.CANCELLED)  # noqa: E731
            await other.transaction(db, run.id, end)
            events = await stream
        finally:
            watched.close()

        assert names(events) == ["run.in_progress", "run.cancelled", "end"]
        assert names(logged_events(db, run.id)) == names(events)


@in_loop
async def test_writer_retries_a_failed_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(db_bus, "RETRY_DELAY_S", 0.0)
    with database(tmp_path) as base:
        run = claimed_run(base)
        flaky = WatchedDatabase(base, db_bus._append)
        try:
            bus = DatabaseBus(flaky, None, flaky.settings)
            await bus.start()
            subscription = await bus.subscribe(run.id)
            flaky.failures = 1
            with caplog.at_level(logging.ERROR, logger="threadline.events.database"):
                bus.publish(run.id, [RunChanged("in_progress", run), StreamEnd(run.id)])
                events = await collect(subscription)
            await bus.aclose()
        finally:
            flaky.close()

        assert flaky.failed == 1
        assert "appending run events failed; retrying" in caplog.text
        assert names(events) == ["run.in_progress", "end"]
        assert names(logged_events(base, run.id)) == ["run.in_progress", "end"]  # once each


@in_loop
async def test_a_failed_stopping_commit_gives_its_queued_events_back(tmp_path: Path) -> None:
    """``transaction`` takes the run's queued events into its commit; when that commit fails they
    go back to the queue (the writer appends them later) and the run's change is rolled back."""
    with database(tmp_path) as base:
        run = claimed_run(base)
        flaky = WatchedDatabase(base, db_bus._commit_with)
        try:
            bus = DatabaseBus(flaky, None, flaky.settings)  # no writer task: the test flushes
            bus.publish(run.id, [RunChanged("in_progress", run)])
            flaky.failures = 1
            with pytest.raises(sa.exc.OperationalError):
                await bus.transaction(
                    flaky, run.id, lambda uow: transitions.end(uow, run.id, RunStatus.COMPLETED)
                )
            assert logged_events(base, run.id) == []
            assert read_run(base, run.id).status == RunStatus.IN_PROGRESS
            await bus.flush()
            assert names(logged_events(base, run.id)) == ["run.in_progress"]
            await bus.transaction(
                flaky, run.id, lambda uow: transitions.end(uow, run.id, RunStatus.COMPLETED)
            )
        finally:
            flaky.close()
        assert names(logged_events(base, run.id)) == ["run.in_progress", "run.completed", "end"]
        assert read_run(base, run.id).status == RunStatus.COMPLETED


@postgres_only
@in_loop
async def test_listen_reconnect_makes_subscribers_read_what_they_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events appended while the LISTEN connection was down are announced to nobody; after the
    reconnect every subscription reads the log. Polling cannot rescue it here (an hour apart)."""
    monkeypatch.setattr(notify, "RECONNECT_DELAY_S", 0.0)
    down, back = asyncio.Event(), asyncio.Event()
    listen = Notifications._listen

    async def gated_listen(self: Notifications, *, reconnected: bool) -> None:
        if reconnected:  # the connection was lost: reconnect only when the test says so
            down.set()
            await back.wait()
        await listen(self, reconnected=reconnected)

    monkeypatch.setattr(Notifications, "_listen", gated_listen)
    with database(tmp_path, "postgres") as db:
        run = claimed_run(db)
        notifications = Notifications(db)
        bus = DatabaseBus(db, notifications, db.settings)
        await notifications.start()
        try:
            subscription = await bus.subscribe(run.id)
            stream = asyncio.ensure_future(collect(subscription))
            url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                ).fetchall()
            assert killed == [(True,)]
            await asyncio.wait_for(down.wait(), WAIT_S)

            other = DatabaseBus(db, None, db.settings)  # the worker, in another process
            other.publish(run.id, [RunChanged("in_progress", run)])
            await other.transaction(db, run.id, lambda uow: transitions.end(uow, run.id, RunStatus.CANCELLED))
            assert not stream.done()
            back.set()
            events = await stream
        finally:
            await notifications.aclose()

        assert names(events) == ["run.in_progress", "run.cancelled", "end"]


def count_statements(db: Database) -> list[str]:
    """Every statement ``db``'s engine sends from now on (the list grows as they are sent)."""
    sent: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=postgres_only)])
@in_loop
async def test_one_append_carries_many_runs_in_a_fixed_number_of_statements(
    tmp_path: Path, backend: str
) -> None:
    """The writer's batch of several runs is one transaction whose statements do not grow with
    the number of runs (lock, numbers, insert, notify), and each run's events are numbered on."""
    with database(tmp_path, backend) as db:
        runs = [claimed_run(db) for _ in range(6)]
        bus = DatabaseBus(db, None, db.settings)  # no writer task: the test flushes
        bus.publish(runs[0].id, [RunChanged("in_progress", runs[0])])
        await bus.flush()  # run 0 now has event 1: the batch below numbers on from it
        sent = count_statements(db)
        bus.publish(runs[0].id, [RunChanged("in_progress", runs[0])])
        await bus.flush()
        one_run = len(sent)
        sent.clear()
        for run in reversed(runs):  # published in another order than the locks are taken
            bus.publish(run.id, [RunChanged("in_progress", run), StreamEnd(run.id)])
        await bus.flush()

        assert len(sent) == one_run
        seqs = db.transaction_sync(
            lambda uow: {run.id: [seq for seq, _, _ in uow.run_events.after(run.id, 0, 100)] for run in runs}
        )
        assert seqs[runs[0].id] == [1, 2, 3, 4]
        assert all(seqs[run.id] == [1, 2] for run in runs[1:])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=postgres_only)])
@in_loop
async def test_numbers_stay_unique_and_gap_free_when_another_process_takes_a_run_over(
    tmp_path: Path, backend: str
) -> None:
    """A worker that lost its lease appends on until its heartbeat tells it, while the new owner
    and an API process (a cancel) append to the same run and to another run they share: every
    run's numbers stay 1..n, each event once, and a reader in a third process gets them all in
    the order they committed."""
    with database(tmp_path, backend) as db:
        run, other_run = claimed_run(db), claimed_run(db)
        reader = DatabaseBus(db, None, db.settings)
        subscription = await reader.subscribe(run.id)
        await reader.subscribe(other_run.id)  # streamed elsewhere too: its deltas are appended
        stream = asyncio.ensure_future(collect(subscription))
        old, new, api = (DatabaseBus(db, None, db.settings) for _ in range(3))
        for round_ in range(3):
            # Both runs in each writer's batch, published in opposite orders.
            for bus, first, second in ((old, run, other_run), (new, other_run, run)):
                bus.publish(first.id, [MessageDelta(f"msg_{round_}", 0, "a", True)])
                bus.publish(second.id, [MessageDelta(f"msg_{round_}", 1, "b", True)])
            await asyncio.gather(old.flush(), new.flush())
        end = lambda uow: transitions.end(uow, run.id, RunStatus.CANCELLED)  # noqa: E731
        await api.transaction(db, run.id, end)
        events = await stream

        logged = db.transaction_sync(lambda uow: uow.run_events.after(run.id, 0, 100))
        assert [seq for seq, _, _ in logged] == list(range(1, 9))
        assert names(events) == names([decode_event(name, data) for _, name, data in logged])
        assert names(events)[-2:] == ["run.cancelled", "end"]
        assert sorted(text_of(events)) == sorted("ab" * 3)  # which of two writers commits first varies
        others = db.transaction_sync(lambda uow: uow.run_events.after(other_run.id, 0, 100))
        assert [seq for seq, _, _ in others] == list(range(1, 7))


@in_loop
async def test_under_load_the_writer_gathers_the_runs_published_during_its_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first append goes at once; what is published in the pause after it (here long, so the
    test does not race it) goes in one more append, however many runs and publishes it holds."""
    monkeypatch.setattr(db_bus, "APPEND_INTERVAL_S", 0.3)
    with database(tmp_path) as base:
        runs = [claimed_run(base) for _ in range(4)]
        watched = WatchedDatabase(base, db_bus._append)
        try:
            bus = DatabaseBus(watched, None, watched.settings)
            subscriptions = [await bus.subscribe(run.id) for run in runs]
            await bus.start()
            bus.publish(runs[0].id, [RunChanged("in_progress", runs[0])])
            first = await asyncio.wait_for(anext(aiter(subscriptions[0].batches())), WAIT_S)
            assert names(first) == ["run.in_progress"] and watched.calls == 1
            for run in runs:
                bus.publish(run.id, [StreamEnd(run.id)])
                await asyncio.sleep(0)  # the writer's turn: it is pausing, so it takes nothing yet
            ends = await asyncio.gather(*(collect(subscription) for subscription in subscriptions))
            await bus.aclose()
        finally:
            watched.close()

        assert watched.calls == 2
        assert [names(events)[-1] for events in ends] == ["end"] * 4


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=postgres_only)])
@in_loop
async def test_a_held_read_subscribes_in_its_own_transaction_from_where_the_log_stood(
    tmp_path: Path, backend: str
) -> None:
    """``subscribe_reading`` (a held poll): one transaction reads the run and where the log stands;
    the subscription gets only what comes after (not the earlier events again), from this process's
    memory and from another process's appends; a read that raises leaves no subscriber."""
    with database(tmp_path, backend) as db:
        here, elsewhere = DatabaseBus(db, None, db.settings), DatabaseBus(db, None, db.settings)
        for stopper in (here, elsewhere):
            run = claimed_run(db)
            here.publish(run.id, [RunChanged("in_progress", run)])
            await here.flush()  # event 1, before the read
            counted = count_transactions(db)
            subscription, seen = await here.subscribe_reading(db, run.id, partial(read, run_id=run.id))
            assert len(counted) == 1 and seen.status == RunStatus.IN_PROGRESS
            end = partial(transitions.end, run_id=run.id, status=RunStatus.CANCELLED)
            await stopper.transaction(db, run.id, end)
            assert names(await collect(subscription)) == ["run.cancelled", "end"]
            subscription.close()

        def missing(uow: UnitOfWork) -> Run:
            raise LookupError("no such run")

        with pytest.raises(LookupError):
            await here.subscribe_reading(db, "run_missing", missing)
        assert here._subscribers == {}


def read(uow: UnitOfWork, run_id: str) -> Run:
    found = uow.runs.by_id(run_id)
    assert found is not None
    return found


def count_transactions(db: Database) -> list[None]:
    """One entry per transaction begun on ``db`` from now on."""
    begun: list[None] = []
    sa.event.listen(db.engine, "begin", lambda conn: begun.append(None))
    return begun
