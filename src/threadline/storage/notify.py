"""PostgreSQL LISTEN/NOTIFY behind a driver-free interface.

``send`` queues a NOTIFY in the caller's transaction (PostgreSQL delivers it at commit, so a listener
never hears of a row it cannot read yet). ``Notifications`` holds the process's one LISTEN
connection and calls plain callbacks with the payload; it reconnects after a failure and then tells
``on_reconnect`` callbacks, because notifications sent while it was away are lost (callers poll
then). Payloads stay small: ``<run id>:<origin>``, ``queued:<run id>`` or ``cancel:<run id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:  # database -> uow -> run_events -> notify: a runtime import would be circular
    from threadline.storage.database import Database

# psycopg is imported only when a LISTEN connection opens: it is the ``postgres`` extra, and every
# process imports this module (run events call ``send``), SQLite ones included.

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "threadline_run_events"  # payload: an EventsNotice
RUNS_CHANNEL = "threadline_runs"  # payload: a RunNotice
RECONNECT_DELAY_S = 1.0


@dataclass(frozen=True, slots=True)
class RunNotice:
    """On RUNS_CHANNEL: a run was queued (a worker may claim it) or asked to cancel."""

    kind: Literal["queued", "cancel"]
    run_id: str

    @property
    def payload(self) -> str:
        return f"{self.kind}:{self.run_id}"

    @staticmethod
    def parse(payload: str) -> RunNotice | None:
        kind, _, run_id = payload.partition(":")
        if kind == "queued":
            return RunNotice("queued", run_id)
        if kind == "cancel":
            return RunNotice("cancel", run_id)
        return None  # another version's notice: ignore it


@dataclass(frozen=True, slots=True)
class EventsNotice:
    """On EVENTS_CHANNEL: the process ``origin`` appended events of ``run_id``."""

    run_id: str
    origin: str

    @property
    def payload(self) -> str:
        return f"{self.run_id}:{self.origin}"

    @staticmethod
    def parse(payload: str) -> EventsNotice:
        run_id, _, origin = payload.partition(":")
        return EventsNotice(run_id, origin)


def send(conn: Connection, channel: str, payload: str) -> None:
    """NOTIFY ``channel`` when the current transaction commits (a no-op on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


async def announce(db: Database, channel: str, payload: str) -> None:
    """NOTIFY in a transaction of its own (a no-op on SQLite)."""
    if db.dialect == "postgresql":
        await db.transaction(lambda uow: send(uow.conn, channel, payload))


class Notifications:
    """The process's LISTEN connection. Register callbacks with ``on`` before ``start``."""

    def __init__(self, db: Database) -> None:
        url = db.engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def on(self, channel: str, callback: Callable[[str], None]) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_callbacks.append(callback)

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start listening; wait (bounded) until LISTEN is in place so early events are heard."""
        self._task = asyncio.create_task(self._listen_forever(), name="threadline-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import psycopg

        first = True
        while True:
            try:
                await self._listen(reconnected=not first)
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.0fs", exc, RECONNECT_DELAY_S)
            first = False
            self._listening.clear()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _listen(self, *, reconnected: bool) -> None:
        import psycopg
        from psycopg import sql

        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            for channel in self._callbacks:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._listening.set()
            if reconnected:
                for reconnect in self._reconnect_callbacks:
                    reconnect()
            async for notice in conn.notifies():
                for callback in self._callbacks.get(notice.channel, ()):
                    try:
                        callback(notice.payload)
                    except Exception:  # one bad callback must not stop the process's listening
                        log.exception("notification callback failed")
