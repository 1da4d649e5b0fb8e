"""The database handle: an engine, where blocking SQL runs, and the unit of work.

Services are plain synchronous functions of a ``UnitOfWork``; ``Database.transaction`` runs one
inside exactly one transaction and commits once. On SQLite it runs inline on the event loop (one
writer per process, no "database is locked" contention inside it), with one database thread for work
that asks to be offloaded; PostgreSQL always runs it on a pool of threads sized like the connection pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
import sqlean
import sqlite_vec
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from threadline.config import Settings
from threadline.domain.errors import InvalidRequest, StartupError
from threadline.observability.metrics import DB_POOL_IN_USE
from threadline.storage.scope import Scope, current_scope
from threadline.storage.uow import UnitOfWork

T = TypeVar("T")

# A database thread's PostgreSQL connection is used again without the pool's pre-ping (a SELECT 1
# round trip per transaction) while it was last used this recently; after a quieter spell it goes
# back to the pool and the next transaction checks one out, pinged. A connection the server dropped
# within that second fails its next statement, and that transaction is retried once on a fresh one.
HELD_FRESH_S = 1.0


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL in WAL mode keeps every committed
    # transaction across a crash of the process (kill -9); only an OS crash/power loss may lose
    # the last transactions. busy_timeout first: switching a new database to WAL takes a lock that
    # another process starting at the same moment may hold (concurrent `threadline migrate`), and
    # must wait for it, not fail.
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # sqlite-vec's vec0 tables hold the embeddings (storage/sqlite_vectors.py). Every connection needs
    # the module, not only searching ones: deleting a chunk fires a trigger that deletes its vector.
    dbapi_connection.enable_load_extension(True)
    try:
        sqlite_vec.load(dbapi_connection)
    finally:
        dbapi_connection.enable_load_extension(False)


def _count_pool_use(engine: Engine) -> None:
    event.listen(engine, "checkout", lambda *_: DB_POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_: DB_POOL_IN_USE.dec())


def require_postgres_driver() -> None:
    """psycopg is the ``postgres`` extra: without it, say so in one line instead of a traceback."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StartupError(
            "a PostgreSQL database URL needs the psycopg driver, which is not installed: "
            "pip install 'threadline[postgres]'"
        ) from None


def create_engine(settings: Settings) -> Engine:
    url = sa.make_url(settings.effective_database_url)
    engine = _create_engine(settings, url)
    _count_pool_use(engine)
    return engine


def _create_engine(settings: Settings, url: sa.URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            # sqlean.py: the stdlib sqlite3 module built against a current SQLite with extension
            # loading enabled. Python's own sqlite3 often lacks enable_load_extension (pyenv and
            # macOS builds), and sqlite-vec must load everywhere the server runs.
            module=sqlean.dbapi2,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False},
            hide_parameters=True,  # as for PostgreSQL below: no values in logged errors
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "postgresql":
        require_postgres_driver()
    return sa.create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={settings.db_statement_timeout_ms}"},
        # A statement's error would otherwise carry its values (message text, instructions) into
        # the traceback a failing request or loop logs at ERROR.
        hide_parameters=True,
    )


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.dialect = self.engine.dialect.name
        threads = 1 if self.dialect == "sqlite" else max(2, settings.db_pool_size)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="threadline-db")
        # SQLite transactions run inline on the event loop: they take microseconds (WAL, no fsync at
        # commit), and the hop to a thread cost more CPU than the SQL in the core benchmark. Work
        # that may take long (bulk chunk writes) asks for ``offload=True``. PostgreSQL always
        # offloads: a network round trip must never block the loop.
        self._inline = self.dialect == "sqlite"
        # The inline transactions' own connection, kept checked out: taking one from the pool and
        # giving it back (events, reset, a weakref per checkout) cost ~30 µs a transaction, as much
        # as the SQL of a point read. Inline transactions run one at a time on the event loop's
        # thread (``fn`` cannot await), so they never share it; every other thread uses the pool.
        self._loop_conn: Connection | None = None
        # PostgreSQL: each database thread's connection between its transactions (``_threaded_transaction``).
        self._thread_conns = threading.local()
        self._held_lock = threading.Lock()
        self._held_all: set[Connection] = set()

    def _inline_transaction(self, fn: Callable[[UnitOfWork], T], scope: Scope) -> T:
        conn = self._loop_conn
        if conn is None or conn.closed:
            conn = self._loop_conn = self.engine.connect()
        if conn.in_transaction():  # ``fn`` itself opened a transaction: it gets one of its own
            return self._in_transaction(fn, scope)
        return self._in_transaction(fn, scope, conn)

    def _threaded_transaction(self, fn: Callable[[UnitOfWork], T], scope: Scope) -> T:
        """A transaction on a database thread, on the thread's own connection (PostgreSQL)."""
        local = self._thread_conns
        conn: Connection | None = getattr(local, "conn", None)
        reused = conn is not None and not conn.invalidated and time.monotonic() - local.used < HELD_FRESH_S
        if conn is not None and not reused:
            self._release_held(conn)
            conn = None
        if conn is None:
            conn = local.conn = self.engine.connect()  # from the pool, pre-pinged
            with self._held_lock:
                self._held_all.add(conn)
        committing: list[bool] = []
        try:
            return self._in_transaction(fn, scope, conn, committing)
        except sa.exc.DBAPIError as exc:
            if not (reused and exc.connection_invalidated):
                raise
            # The server dropped the connection while it was held. Nothing was committed unless the
            # COMMIT itself failed, whose outcome is unknown: only a statement's failure is retried.
            self._release_held(conn)
            local.conn = None
            if committing:
                raise
            return self._threaded_transaction(fn, scope)
        finally:
            # Also when ``fn`` raised (a 404, a refused write): the transaction rolled back and the
            # connection stays held, so the thread's next transaction must find when it was used.
            local.used = time.monotonic()

    def _release_held(self, conn: Connection) -> None:
        with self._held_lock:
            self._held_all.discard(conn)
        conn.close()

    def _in_transaction(
        self,
        fn: Callable[[UnitOfWork], T],
        scope: Scope,
        held: Connection | None = None,
        committing: list[bool] | None = None,
    ) -> T:
        try:
            if held is not None:
                with held.begin():
                    result = fn(UnitOfWork(held, scope))
                    if committing is not None:
                        committing.append(True)  # what fails from here on fails the COMMIT
                    return result
            conn: Connection
            with self.engine.begin() as conn:
                return fn(UnitOfWork(conn, scope))
        except sa.exc.DataError as exc:
            # The database refused a value (e.g. PostgreSQL cannot store a NUL character in text or
            # JSONB). That is bad input, not a server fault; the transaction was rolled back.
            raise InvalidRequest(
                "Invalid request: a value contains characters the database cannot store "
                f"({type(exc.orig).__name__ if exc.orig else 'DataError'})."
            ) from None

    async def transaction(
        self, fn: Callable[[UnitOfWork], T], *, offload: bool = False, scope: Scope | None = None
    ) -> T:
        """Run ``fn`` in one transaction; commit if it returns, roll back if it raises. The caller
        publishes events or queues work only after this returns. ``offload`` forces the database
        thread for work too long to run on the event loop. The transaction acts for ``scope``, by
        default the current one (storage/scope.py): read here, on the loop, because the database
        threads do not inherit the caller's context."""
        scope = current_scope() if scope is None else scope
        if self._inline and not offload:
            return self._inline_transaction(fn, scope)
        loop = asyncio.get_running_loop()
        run = self._in_transaction if self._inline else self._threaded_transaction
        return await loop.run_in_executor(self._pool, run, fn, scope)

    def transaction_sync(self, fn: Callable[[UnitOfWork], T], *, scope: Scope | None = None) -> T:
        """The same, for code already off the event loop (migrations, CLI, tests)."""
        return self._in_transaction(fn, current_scope() if scope is None else scope)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._held_lock:
            held, self._held_all = self._held_all, set()
        for conn in held:
            conn.close()
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self.engine.dispose()


def check_database_url(url: str) -> None:
    """Reject a database URL we cannot serve, with a message a user can act on."""
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError as exc:
        raise InvalidRequest(f"Invalid database URL: {exc}") from exc
    if backend not in {"sqlite", "postgresql"}:
        raise InvalidRequest(f"Unsupported database '{backend}': use sqlite:/// or postgresql://")
