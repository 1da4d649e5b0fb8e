"""The run engine in-process: a migrated database (SQLite file or a fresh PostgreSQL database), the
executor and an event bus wired as ``runtime.open_runtime`` wires them, with a scripted
model (``tests/support/scripted_model.py``) and a manual clock. Tests drive the loops' steps
(``heartbeat``, ``sweep_expired``, ``flush``) themselves; the loops' own intervals are an hour, so
nothing happens behind a test's back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, ParamSpec

import pytest

from tests.support import databases
from tests.support.scripted_model import ManualClock, ScriptedChatModel, ScriptedRouter
from threadline.blobs import blob_store_from_settings
from threadline.config import Settings
from threadline.domain.events import (
    MessageChanged,
    MessageDelta,
    RunChanged,
    RunEvent,
    StepChanged,
    StreamEnd,
)
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.domain.runs import Run
from threadline.events.bus import EventBus, InProcessBus, Subscription, _QueueSubscription, each
from threadline.events.database import DatabaseBus
from threadline.executor.scheduler import Executor
from threadline.schemas.assistants import AssistantCreate
from threadline.schemas.messages import MessageCreate
from threadline.schemas.runs import ThreadAndRunCreate
from threadline.schemas.threads import ThreadCreate
from threadline.services import assistants as assistants_service
from threadline.services.runs import transitions
from threadline.services.runs.create import RunBounds, create_thread_and_run
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.notify import Notifications
from threadline.storage.scope import Scope
from threadline.storage.uow import UnitOfWork

P = ParamSpec("P")

HOUR_S = 3600.0
# A safety net only: every wait in these tests ends on an event; this bounds a broken one.
WAIT_S = 5.0

QUIET = {
    # No loop step fires on its own during a test: the test calls heartbeat/sweep/flush itself.
    "run_heartbeat_s": HOUR_S,
    "run_poll_s": HOUR_S,
    "event_stall_check_s": HOUR_S,
    "event_coalesce_ms": 0.0,
}


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """An async test body run on a fresh event loop (the suite's convention: ``asyncio.run``)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


# Said, not silent: the reason shows in the summary (-ra) when no PostgreSQL answers.
postgres_only = pytest.mark.skipif(
    databases.postgres_unavailable_reason() is not None,
    reason=f"PostgreSQL-only branch: {databases.postgres_unavailable_reason()}",
)


def settings_for(tmp_path: Path, database_url: str = "", **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, **{**QUIET, **overrides})


@contextmanager
def database(tmp_path: Path, backend: str = "sqlite", **overrides: Any) -> Iterator[Database]:
    """A migrated database on ``backend``; PostgreSQL's is created for the test and dropped after."""
    url = databases.create_database() if backend == "postgres" else ""
    db = Database(settings_for(tmp_path, url, **overrides))
    try:
        upgrade(db.engine)
        yield db
    finally:
        db.close()
        if url:
            databases.drop_database(url)


def create_run(db: Database, text: str = "hi", tools: list[dict[str, Any]] | None = None) -> Run:
    """A queued run on a new thread, as POST /v1/threads/runs stores it; ``tools`` are the
    assistant's (wire shape, e.g. a function tool)."""

    def create(uow: UnitOfWork) -> Run:
        spec = AssistantCreate.model_validate({"model": "scripted", "tools": tools or []})
        assistant = assistants_service.create(uow, spec)
        thread = ThreadCreate(messages=[MessageCreate(role="user", content=text)])
        request = ThreadAndRunCreate(assistant_id=assistant.id, thread=thread)
        return create_thread_and_run(uow, request, db.settings.run_expiry_s, RunBounds(0, 0))[1]

    return db.transaction_sync(create, scope=Scope(DEFAULT_PROJECT_ID))


def claimed_run(db: Database, owner: str = "ghost-host:1:00000000", lease_s: float = HOUR_S) -> Run:
    """A run in progress, leased to ``owner`` (a worker the test plays itself)."""
    queued = create_run(db)
    [start] = db.transaction_sync(lambda uow: transitions.claim(uow, owner, time.time() + lease_s, 1))
    assert start.run.id == queued.id
    return start.run


def read_run(db: Database, run_id: str) -> Run:
    found = db.transaction_sync(lambda uow: uow.runs.by_id(run_id))
    assert found is not None
    return found


@dataclasses.dataclass
class Engine:
    db: Database
    settings: Settings
    model: ScriptedChatModel
    clock: ManualClock
    bus: EventBus
    executor: Executor
    notifications: Notifications | None

    def queue_run(self, text: str = "hi", tools: list[dict[str, Any]] | None = None) -> Run:
        """A queued run on a new thread, handed to the executor."""
        run = create_run(self.db, text, tools)
        self.executor.submit(run.id)
        return run

    def run(self, run_id: str) -> Run:
        return read_run(self.db, run_id)

    def task(self, run_id: str) -> asyncio.Task[None]:
        """The executor's task for ``run_id`` (it must hold the run)."""
        return self.executor._tasks[run_id]


@asynccontextmanager
async def engine(
    db: Database,
    model: ScriptedChatModel,
    *,
    bus: str = "memory",
    listen: bool = False,
    clock: ManualClock | None = None,
) -> AsyncIterator[Engine]:
    """An executor on ``db`` (settings from ``db.settings``), started; closed on exit. Several may
    share this process (``services.background.owner_is_dead`` knows them alive)."""
    settings = db.settings
    clock = clock or ManualClock()
    notifications = Notifications(db) if listen else None
    event_bus: EventBus
    event_bus = DatabaseBus(db, notifications, settings) if bus == "database" else InProcessBus()
    router = ScriptedRouter(model)
    executor = Executor(
        db,
        settings,
        event_bus,
        router,
        blob_store_from_settings(settings),
        notifications=notifications,
        clock=clock,
    )
    if notifications is not None:
        await notifications.start()
    if isinstance(event_bus, DatabaseBus):
        await event_bus.start()
    await executor.start()
    try:
        yield Engine(db, settings, model, clock, event_bus, executor, notifications)
    finally:
        await executor.aclose()
        if isinstance(event_bus, DatabaseBus):
            await event_bus.aclose()
        if notifications is not None:
            await notifications.aclose()


async def collect(subscription: Subscription) -> list[RunEvent]:
    """Every event up to and including ``StreamEnd`` (bounded by WAIT_S: a stream that never ends
    fails the test)."""

    async def drain() -> list[RunEvent]:
        return [event async for event in each(subscription)]

    return await asyncio.wait_for(drain(), WAIT_S)


def name(event: RunEvent) -> str:
    """A short readable name: ``run.completed``, ``step.created``, ``message.delta``, ``end``..."""
    if isinstance(event, RunChanged):
        return f"run.{event.name}"
    if isinstance(event, StepChanged):
        return f"step.{event.name}"
    if isinstance(event, MessageChanged):
        return f"message.{event.name}"
    if isinstance(event, MessageDelta):
        return "message.delta"
    if isinstance(event, StreamEnd):
        return "end"
    return type(event).__name__


def names(events: list[RunEvent]) -> list[str]:
    return [name(event) for event in events]


def drained(subscription: Subscription) -> list[RunEvent]:
    """What an in-process subscription holds right now, without waiting."""
    assert isinstance(subscription, _QueueSubscription)
    queue = subscription.queue
    out: list[RunEvent] = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out
