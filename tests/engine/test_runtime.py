"""The composition root in-process: ``open_runtime`` wires what a process runs, from its two roles,
with an injected chat model and clock; what it starts it stops."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.support import databases
from tests.support.engine import collect, create_run, in_loop, names, postgres_only, settings_for
from tests.support.scripted_model import ManualClock, ScriptedChatModel, reply
from threadline.domain.run_states import RunStatus
from threadline.events.bus import InProcessBus
from threadline.events.database import DatabaseBus
from threadline.events.dispatch import NotifyingDispatcher
from threadline.executor.scheduler import Executor
from threadline.runtime import open_runtime
from threadline.services.background import owner_is_dead


async def _complete_a_run(tmp_path: Path, database_url: str) -> None:
    model = ScriptedChatModel(reply("Hello from the runtime"))
    clock = ManualClock()
    settings = settings_for(tmp_path, database_url)
    async with open_runtime(settings, serve_api=True, execute=True, model=model, clock=clock) as runtime:
        assert isinstance(runtime.dispatch, Executor)
        assert runtime.executor is runtime.dispatch and runtime.ingestion is not None
        # One SQLite process executing its own runs keeps events in memory; PostgreSQL may have
        # other processes, so its events go through the database.
        expected_bus = DatabaseBus if database_url else InProcessBus
        assert isinstance(runtime.bus, expected_bus)
        run = create_run(runtime.db, "hello?")
        subscription = await runtime.bus.subscribe(run.id)
        runtime.dispatch.submit(run.id)
        events = await collect(subscription)
        assert names(events)[-2:] == ["run.completed", "end"]
        # The injected model answered (no provider is configured), under the injected clock.
        assert model.requests[0].messages[-1]["content"] == "hello?"
        done = runtime.db.transaction_sync(lambda uow: uow.runs.by_id(run.id))
        assert done is not None and done.status == RunStatus.COMPLETED
        assert done.started_at is not None and abs(done.started_at - clock.now) < 1
        owner = runtime.executor.owner
        assert not owner_is_dead(owner)
    # Closing the runtime closed its executor: its owner no longer counts as alive here.
    assert owner_is_dead(owner)


@in_loop
async def test_open_runtime_executes_a_run_with_the_injected_model_on_sqlite(tmp_path: Path) -> None:
    await _complete_a_run(tmp_path, "")


@postgres_only
@in_loop
async def test_open_runtime_executes_a_run_with_the_injected_model_on_postgres(tmp_path: Path) -> None:
    url = databases.create_database()
    try:
        await _complete_a_run(tmp_path, url)
    finally:
        databases.drop_database(url)


@in_loop
async def test_an_api_process_without_executor_hands_runs_on_by_notice(tmp_path: Path) -> None:
    async with open_runtime(settings_for(tmp_path), serve_api=True, execute=False) as runtime:
        assert isinstance(runtime.dispatch, NotifyingDispatcher)
        assert runtime.executor is None and runtime.ingestion is None
        runtime.wake_ingestion()  # nothing to wake: a no-op, not an error


@in_loop
async def test_a_runtime_must_have_a_role(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="serves the API, executes runs, or both"):
        async with open_runtime(settings_for(tmp_path), serve_api=False, execute=False):
            pass


@in_loop
async def test_executors_of_one_process_know_each_other_alive(tmp_path: Path) -> None:
    """An owner with our pid is presumed dead (a restarted container's pid 1 left it) unless an
    executor of this process holds it: two runtimes in one process must not recover each other's
    runs."""
    settings = settings_for(tmp_path)
    model = ScriptedChatModel()
    async with (
        open_runtime(settings, serve_api=False, execute=True, model=model) as first,
        open_runtime(settings, serve_api=False, execute=True, model=model, migrate=False) as second,
    ):
        assert first.executor is not None and second.executor is not None
        assert not owner_is_dead(first.executor.owner) and not owner_is_dead(second.executor.owner)
        closed_owner = second.executor.owner
    assert owner_is_dead(closed_owner)
    assert owner_is_dead(f"{socket.gethostname()}:{os.getpid()}:00000000")
    assert not owner_is_dead("another-host:1:00000000")
