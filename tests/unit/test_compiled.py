"""Statements on the driver's cursor (storage/compiled.py) read and write exactly what SQLAlchemy Core
does, raise SQLAlchemy's errors, and stay inside the transaction; on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.engine import database, in_loop, postgres_only
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run
from threadline.domain.threads import Thread
from threadline.storage import tables
from threadline.storage.compiled import Compiled
from threadline.storage.scope import Scope
from threadline.storage.uow import UnitOfWork

BACKENDS = ["sqlite", pytest.param("postgres", marks=postgres_only)]
t = tables.threads
r = tables.runs
_SELECT_THREAD = sa.select(t.c.id, t.c.created_at, t.c.tool_resources, t.c.metadata).where(
    t.c.id == sa.bindparam("b_id")
)
SCOPE = Scope(DEFAULT_PROJECT_ID)


def _thread(thread_id: str, tool_resources: dict[str, object] | None) -> Thread:
    metadata = {"k": "välue ✓", "n": "1"}
    return Thread(id=thread_id, created_at=1_700_000_000, tool_resources=tool_resources, metadata=metadata)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_read_and_written_on_the_cursor_equal_cores(tmp_path: Path, backend: str) -> None:
    with database(tmp_path, backend) as db:
        resources: dict[str, object] = {"code_interpreter": {"file_ids": ["file_a"]}}
        db.transaction_sync(lambda uow: uow.threads.insert(_thread("thread_a", resources)), scope=SCOPE)
        db.transaction_sync(lambda uow: uow.threads.insert(_thread("thread_b", None)), scope=SCOPE)
        with db.engine.begin() as conn:
            # Written by Compiled, read by Core: JSON, a JSON null and text as Core stores them.
            for thread_id in ("thread_a", "thread_b"):
                core = conn.execute(_SELECT_THREAD, {"b_id": thread_id}).one()
                ours = Compiled(_SELECT_THREAD).first(conn, {"b_id": thread_id})
                assert ours is not None and tuple(ours) == tuple(core)
            assert tuple(core) == ("thread_b", 1_700_000_000, None, {"k": "välue ✓", "n": "1"})
            assert Compiled(_SELECT_THREAD).first(conn, {"b_id": "thread_missing"}) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_round_trips_with_its_status_type_floats_and_constants(tmp_path: Path, backend: str) -> None:
    with database(tmp_path, backend) as db:
        db.transaction_sync(lambda uow: uow.threads.insert(_thread("thread_a", None)), scope=SCOPE)
        run = Run(
            id="run_a",
            thread_id="thread_a",
            assistant_id="asst_a",
            created_at=1_700_000_000,
            status=RunStatus.QUEUED,
            model="m",
            instructions="",
            tools=[{"type": "function", "function": {"name": "f"}}],
            metadata={},
            truncation_strategy={"type": "auto", "last_messages": None},
            tool_choice="auto",
            parallel_tool_calls=True,
            response_format="auto",
            temperature=0.7,
            top_p=1.0,
            lease_expires_at=1_700_000_000.25,
        )
        db.transaction_sync(lambda uow: uow.runs.insert(run), scope=SCOPE)
        loaded = db.transaction_sync(lambda uow: uow.runs.get("thread_a", "run_a"), scope=SCOPE)
        assert loaded == run and type(loaded.status) is RunStatus
        # A constant written in the statement (status = 'queued') goes through the column's type.
        queued = Compiled(sa.select(r.c.id).where(r.c.status == RunStatus.QUEUED))
        with db.engine.begin() as conn:
            assert queued.scalar(conn, {}) == "run_a"
            assert conn.execute(sa.select(r.c.status)).scalar_one() == RunStatus.QUEUED


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_driver_error_is_sqlalchemys_and_the_transaction_writes_nothing(
    tmp_path: Path, backend: str
) -> None:
    with database(tmp_path, backend) as db:
        db.transaction_sync(lambda uow: uow.threads.insert(_thread("thread_a", None)), scope=SCOPE)

        def twice(uow: object) -> None:
            assert hasattr(uow, "threads")
            uow.threads.insert(_thread("thread_new", None))
            uow.threads.insert(_thread("thread_a", None))  # the primary key is taken

        with pytest.raises(sa.exc.IntegrityError) as raised:
            db.transaction_sync(twice, scope=SCOPE)
        assert isinstance(raised.value.orig, db.engine.dialect.loaded_dbapi.Error)
        assert "parameters hidden" in str(raised.value), "the values are not put in the error's text"
        found = db.transaction_sync(lambda uow: uow.threads.get("thread_new"), scope=SCOPE)
        assert found is None, "the insert before the failure was rolled back"


@in_loop
async def test_the_event_loops_own_connection_rolls_back_a_failure_and_serves_the_next(
    tmp_path: Path,
) -> None:
    """SQLite's inline transactions share one connection (storage/database.py): a transaction that
    fails leaves it clean for the next, and a transaction opened inside one gets its own."""
    with database(tmp_path, "sqlite") as db:
        await db.transaction(lambda uow: uow.threads.insert(_thread("thread_a", None)), scope=SCOPE)

        def fails(uow: object) -> None:
            assert hasattr(uow, "threads")
            uow.threads.insert(_thread("thread_new", None))
            raise RuntimeError("the service failed after a write")

        with pytest.raises(RuntimeError):
            await db.transaction(fails, scope=SCOPE)
        assert await db.transaction(lambda uow: uow.threads.get("thread_new"), scope=SCOPE) is None

        def nested(uow: object) -> str | None:
            assert hasattr(uow, "threads")
            uow.threads.insert(_thread("thread_outer", None))
            # Another transaction while this one is open: not on the same connection.
            inner = db._inline_transaction(lambda other: other.threads.get("thread_a"), SCOPE)
            return None if inner is None else inner.id

        assert await db.transaction(nested, scope=SCOPE) == "thread_a"
        assert await db.transaction(lambda uow: uow.threads.get("thread_outer"), scope=SCOPE) is not None


def _backend_pid(uow: UnitOfWork) -> int:
    return int(uow.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(db_url: sa.URL, pids: set[int]) -> None:
    admin = sa.create_engine(db_url)
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@postgres_only
@in_loop
async def test_database_threads_keep_their_connection_and_survive_the_server_dropping_it(
    tmp_path: Path,
) -> None:
    """PostgreSQL's database threads reuse their connection without the pool's ping
    (storage/database.py, ``HELD_FRESH_S``): one server process per thread across transactions, and a
    connection the server terminated costs no failed transaction: the statement that finds it dead
    is retried once, on a fresh connection, and its work is committed once."""
    with database(tmp_path, "postgres", db_pool_size=2) as db:
        checkouts: list[object] = []
        sa.event.listen(db.engine, "checkout", lambda *args: checkouts.append(args))
        pids = {await db.transaction(_backend_pid, scope=SCOPE) for _ in range(30)}
        assert 1 <= len(pids) <= 2  # two database threads, each on its own connection
        assert len(checkouts) <= 2  # taken from the pool (and pinged) once per thread, not per transaction

        _terminate(db.engine.url, pids)
        after = {await db.transaction(_backend_pid, scope=SCOPE) for _ in range(10)}
        assert after and not after & pids  # fresh connections, and no transaction failed

        attempts: list[int] = []

        def write_once_killed(uow: UnitOfWork) -> None:
            attempts.append(_backend_pid(uow))
            if len(attempts) == 1:
                _terminate(db.engine.url, {attempts[0]})  # dies mid-transaction, before any write
            uow.threads.insert(_thread("thread_retried", None))

        await db.transaction(write_once_killed, scope=SCOPE)
        assert len(attempts) == 2 and attempts[0] != attempts[1]
        stored = await db.transaction(lambda uow: uow.threads.get("thread_retried"), scope=SCOPE)
        assert stored is not None


@postgres_only
@in_loop
async def test_a_database_thread_whose_first_transaction_raised_serves_the_next(tmp_path: Path) -> None:
    """A transaction that raises (a 404 inside it) on a database thread's first connection rolls
    back and leaves the connection held: the thread's next transaction runs on it."""
    with database(tmp_path, "postgres", db_pool_size=1) as db:

        def not_found(uow: UnitOfWork) -> None:
            _backend_pid(uow)
            raise LookupError("no such object")

        for _ in range(3):  # sequential: each lands on an idle thread, the first ones fresh
            with pytest.raises(LookupError):
                await db.transaction(not_found, scope=SCOPE)
        pids = {await db.transaction(_backend_pid, scope=SCOPE) for _ in range(6)}
        assert 1 <= len(pids) <= 2  # the held connections, used again


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_statements_error_carries_no_values(tmp_path: Path, backend: str) -> None:
    """A statement's error is logged with the traceback of a failing request: it must not carry
    what the statement wrote (a message's text), on Core's path or on the driver's cursor."""
    with database(tmp_path, backend) as db:
        secret = "user text 7f3a"
        db.transaction_sync(lambda uow: uow.threads.insert(_thread("thread_dup", None)), scope=SCOPE)
        duplicate = {"id": "thread_dup", "created_at": 1, "tool_resources": None, "metadata": {"k": secret}}
        with pytest.raises(sa.exc.IntegrityError) as core:
            db.transaction_sync(
                lambda uow: uow.conn.execute(t.insert().values(**duplicate, project_id=DEFAULT_PROJECT_ID)),
                scope=SCOPE,
            )
        with pytest.raises(sa.exc.IntegrityError) as cursor:
            db.transaction_sync(
                lambda uow: uow.threads.insert(
                    _thread("thread_dup", {"code_interpreter": {"file_ids": [secret]}})
                ),
                scope=SCOPE,
            )
        for exc in (core.value, cursor.value):
            assert secret not in str(exc) and "hidden" in str(exc)
