"""The executor's interrupt branches, in-process: a scripted model holds a run in progress for as long
as the test needs, the test moves the executor's clock and calls the loop steps (heartbeat, expiry
sweep, shutdown) itself. Nothing waits on the wall clock for an outcome."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from tests.support.engine import (
    WAIT_S,
    collect,
    create_run,
    database,
    drained,
    engine,
    in_loop,
    names,
    postgres_only,
)
from tests.support.scripted_model import Hold, Script, ScriptedChatModel, reply
from threadline.domain.run_states import Interrupt, RunStatus
from threadline.domain.threads import Message
from threadline.llm.types import Finish, TextDelta, ToolCallDelta, Usage
from threadline.services.runs import transitions
from threadline.services.runs.cancel import cancel
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork

OTHER_OWNER = "another-host:4242:cafe0001"


def held_reply(hold: Hold) -> Script:
    """``Hello `` then a pause the test ends (or never does), then the rest of the answer."""
    return [TextDelta("Hello "), hold, TextDelta("world"), Finish("stop", Usage(3, 2))]


def assistant_messages(db: Database, thread_id: str) -> list[Message]:
    messages = db.transaction_sync(lambda uow: uow.messages.all_in_thread(thread_id))
    return [m for m in messages if m.role == "assistant"]


def message_text(message: Message) -> str:
    return "".join(part["text"]["value"] for part in message.content if part["type"] == "text")


@in_loop
async def test_a_run_completes_with_the_scripted_answer(tmp_path: Path) -> None:
    """The harness itself: without interruptions the scripted answer becomes the run's message."""
    model = ScriptedChatModel(reply("Hello world"))
    with database(tmp_path) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            events = await collect(subscription)
            assert names(events)[-2:] == ["run.completed", "end"]
            assert eng.run(run.id).status == RunStatus.COMPLETED
            [message] = assistant_messages(db, run.thread_id)
            assert message_text(message) == "Hello world"
            assert model.requests[0].messages[-1]["content"] == "hi"


@in_loop
async def test_lost_lease_stops_our_copy_and_leaves_the_run_to_its_new_owner(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)
            task = eng.task(run.id)

            def take_over(uow: UnitOfWork) -> None:
                # Another worker now holds the run (its lease live), as after our lease lapsed.
                stolen = uow.runs.get_for_update(run.id)
                assert stolen is not None
                stolen.lease_owner, stolen.lease_expires_at = OTHER_OWNER, eng.clock() + 30
                uow.runs.update(stolen)

            db.transaction_sync(take_over)
            await eng.executor.heartbeat()
            await asyncio.wait_for(task, WAIT_S)

            assert model.cancelled == [True]  # our model call was cut
            assert run.id not in eng.executor._tasks
            after = eng.run(run.id)
            # Untouched: still in progress, held by the other worker, no error recorded.
            assert after.status == RunStatus.IN_PROGRESS
            assert after.lease_owner == OTHER_OWNER
            assert after.last_error is None
            seen = names(drained(subscription))
            assert "run.in_progress" in seen
            assert not any(n.startswith("run.") and n != "run.in_progress" for n in seen), seen
            assert "end" not in seen
            # Our later heartbeats no longer touch it either.
            eng.clock.advance(60)
            await eng.executor.heartbeat()
            assert eng.run(run.id).lease_expires_at == pytest.approx(eng.clock() - 30)


@in_loop
async def test_expiry_of_an_in_progress_run_ends_it_expired(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path, run_expiry_s=600) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)
            assert run.expires_at is not None

            await eng.executor.sweep_expired()  # not due yet: nothing happens
            assert eng.run(run.id).status == RunStatus.IN_PROGRESS
            assert model.cancelled == [False]

            eng.clock.now = run.expires_at + 1.0
            await eng.executor.sweep_expired()
            events = await collect(subscription)

            assert names(events)[-2:] == ["run.expired", "end"]
            after = eng.run(run.id)
            assert after.status == RunStatus.EXPIRED
            assert after.lease_owner is None
            assert after.last_error is None
            assert model.cancelled == [True]
            [message] = assistant_messages(db, run.thread_id)
            assert message_text(message) == "Hello "  # what was streamed is kept
            assert message.status == "incomplete"


@in_loop
async def test_expiry_of_a_run_waiting_for_tool_outputs_ends_it_expired(tmp_path: Path) -> None:
    """requires_action: no worker holds the run, so the sweep finishes it itself (its own task)."""
    call: Script = [ToolCallDelta(0, "call_1", "lookup", '{"q": 1}'), Finish("tool_calls", Usage(3, 2))]
    model = ScriptedChatModel(call)
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with database(tmp_path, run_expiry_s=600) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run(tools=[tool])
            subscription = await eng.bus.subscribe(run.id)
            assert names(await collect(subscription))[-2:] == ["run.requires_action", "end"]
            assert eng.run(run.id).status == RunStatus.REQUIRES_ACTION
            assert run.expires_at is not None

            await eng.executor.sweep_expired()  # not due yet
            assert eng.run(run.id).status == RunStatus.REQUIRES_ACTION

            subscription = await eng.bus.subscribe(run.id)
            eng.clock.now = run.expires_at + 1.0
            await eng.executor.sweep_expired()
            events = await collect(subscription)

            assert names(events)[-2:] == ["run.expired", "end"]
            after = eng.run(run.id)
            assert after.status == RunStatus.EXPIRED
            assert after.required_action is None
            steps = db.transaction_sync(lambda uow: uow.run_steps.all_for_run(run.id))
            assert [step.status for step in steps] == ["expired"]
            assert len(model.requests) == 1  # the sweep called no model


@in_loop
async def test_runs_in_progress_fail_when_the_executor_shuts_down(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)

            await eng.executor.aclose()
            events = await collect(subscription)

            assert names(events)[-2:] == ["run.failed", "end"]
            after = eng.run(run.id)
            assert after.status == RunStatus.FAILED
            assert after.last_error == {"code": "server_error", "message": transitions.SHUTDOWN_MESSAGE}
            assert after.lease_owner is None
            assert model.cancelled == [True]
            [message] = assistant_messages(db, run.thread_id)
            assert message_text(message) == "Hello "


@in_loop
async def test_a_run_that_finishes_within_the_shutdown_grace_completes(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)

            closing = asyncio.ensure_future(eng.executor.aclose(grace_s=WAIT_S))
            await asyncio.sleep(0)  # aclose has stopped claiming and is waiting for the run
            assert not closing.done()
            hold.release()
            await asyncio.wait_for(closing, WAIT_S)  # returns as soon as the run ended
            events = await collect(subscription)

            assert names(events)[-2:] == ["run.completed", "end"]
            assert eng.run(run.id).status == RunStatus.COMPLETED
            assert model.cancelled == [False]
            [message] = assistant_messages(db, run.thread_id)
            assert message_text(message) == "Hello world"


@in_loop
async def test_heartbeat_renews_the_lease_and_sees_a_cancel_from_another_process(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path, run_lease_s=30.0) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)
            assert eng.run(run.id).lease_expires_at == pytest.approx(eng.clock() + 30)

            eng.clock.advance(10)
            await eng.executor.heartbeat()  # renewal only: the run goes on
            after = eng.run(run.id)
            assert after.status == RunStatus.IN_PROGRESS
            assert after.lease_expires_at == pytest.approx(eng.clock() + 30)

            # Another API process asked to cancel; this executor was not told in memory.
            db.transaction_sync(lambda uow: cancel(uow, run.thread_id, run.id))
            assert eng.run(run.id).status == RunStatus.CANCELLING
            await eng.executor.heartbeat()
            events = await collect(subscription)

            assert names(events)[-2:] == ["run.cancelled", "end"]
            after = eng.run(run.id)
            assert after.status == RunStatus.CANCELLED
            assert after.cancelled_at is not None
            assert model.cancelled == [True]


@postgres_only
@in_loop
async def test_cancel_from_another_process_arrives_by_notify(tmp_path: Path) -> None:
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path, "postgres") as db:
        async with engine(db, model, bus="database", listen=True) as eng:
            run = eng.queue_run()
            subscription = await eng.bus.subscribe(run.id)
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)

            # The other process: its own executor (holding nothing) does what POST .../cancel does.
            other_model = ScriptedChatModel()
            async with engine(db, other_model) as other:
                await other.db.transaction(lambda uow: cancel(uow, run.thread_id, run.id))
                other.executor.interrupt(run.id, Interrupt.CANCEL)
                events = await collect(subscription)
                # Held by us with a live lease: the other process did not finish it itself.
                assert other_model.requests == []

            assert names(events)[-2:] == ["run.cancelled", "end"]
            assert eng.run(run.id).status == RunStatus.CANCELLED
            assert model.cancelled == [True]


@in_loop
async def test_an_expired_lease_of_a_vanished_worker_is_recovered_as_failed(tmp_path: Path) -> None:
    """The other side of a lost lease: the worker that takes over finishes the run failed."""
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path, run_lease_s=30.0) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)
            async with engine(db, ScriptedChatModel(), clock=eng.clock) as other:
                await other.executor.recover_orphans()  # lease still live: left alone
                assert eng.run(run.id).status == RunStatus.IN_PROGRESS
                eng.clock.advance(31)
                await other.executor.recover_orphans()
                after = eng.run(run.id)
                assert after.status == RunStatus.FAILED
                assert after.last_error == {
                    "code": "server_error",
                    "message": transitions.LEASE_LOST_MESSAGE,
                }


@in_loop
async def test_heartbeat_stops_a_run_another_worker_recovered_meanwhile(tmp_path: Path) -> None:
    """A stalled worker whose run was failed by the worker that took over stops its copy (as the
    "lost" branch does) rather than stream the model call to its end: at the second heartbeat that
    finds the run ended and unleased, since its own task briefly leaves the run so too."""
    hold = Hold()
    model = ScriptedChatModel(held_reply(hold))
    with database(tmp_path, run_lease_s=30.0) as db:
        async with engine(db, model) as eng:
            run = eng.queue_run()
            await asyncio.wait_for(hold.reached.wait(), WAIT_S)
            task = eng.task(run.id)
            async with engine(db, ScriptedChatModel(), clock=eng.clock) as other:
                eng.clock.advance(31)  # we stalled past our lease
                await other.executor.recover_orphans()
            assert eng.run(run.id).status == RunStatus.FAILED
            await eng.executor.heartbeat()
            assert task.cancelling() == 0  # once could be our own task's last moment
            await eng.executor.heartbeat()
            assert task.cancelling() > 0  # our copy is being stopped


def test_the_claim_opens_a_text_only_runs_message_in_its_own_transaction(tmp_path: Path) -> None:
    """A fresh run that can only answer with text gets its message and step in the claim (one
    transaction fewer per run); a run with tools does not, since its model may call them instead."""
    with database(tmp_path) as db:
        plain = create_run(db)
        tooled = create_run(db, tools=[{"type": "function", "function": {"name": "f"}}])
        claim = partial(
            transitions.claim, owner="me", lease_expires_at=1e12, limit=10, opens=lambda r: not r.tools
        )
        starts = {s.run.id: s for s in db.transaction_sync(claim)}
        assert starts.keys() == {plain.id, tooled.id}
        assert starts[tooled.id].opened is None
        assert names(starts[tooled.id].events) == ["run.in_progress"]
        opened = starts[plain.id].opened
        assert opened is not None
        message, step = opened
        assert names(starts[plain.id].events) == [
            "run.in_progress",
            "step.created",
            "step.in_progress",
            "message.created",
            "message.in_progress",
        ]
        [stored] = assistant_messages(db, plain.thread_id)
        assert (stored.id, stored.status, stored.run_id) == (message.id, "in_progress", plain.id)
        steps = db.transaction_sync(lambda uow: uow.run_steps.all_for_run(plain.id))
        assert [s.id for s in steps] == [step.id]
        assert assistant_messages(db, tooled.thread_id) == []
