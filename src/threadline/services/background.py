"""What the leased background loops share: the run executor (``executor/scheduler.py``) and the
ingestion loop (``ingestion/loop.py``) both claim work under a lease in an owner's name, wake on a
hand-off or poll as a fallback, and repeat steps (heartbeats, sweeps) that a database hiccup must
not end for good.

An owner is ``host:pid:random``: unique per loop, and enough to tell a loop on this host whose
process is gone. Owners alive in this process are registered (``hold_owner``), so two loops of one
process never take each other for a dead one with our pid."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from threadline.observability.logs import RetryLog

# Owners held by loops alive in this process: an owner with our pid that is not one of them was left
# by an earlier process that had our pid (a restarted container's pid 1), so it is dead.
_LIVE_OWNERS: set[str] = set()


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def hold_owner(owner: str) -> None:
    """``owner`` is alive in this process (until ``release_owner``)."""
    _LIVE_OWNERS.add(owner)


def release_owner(owner: str) -> None:
    _LIVE_OWNERS.discard(owner)


def owner_is_dead(owner: str) -> bool:
    """True only for an owner on this host whose process is gone (or whose pid is now ours and that
    no loop of this process holds). Unknown formats and other hosts are never presumed dead."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


async def woken_or_polled(wake: asyncio.Event, poll_s: float) -> None:
    """Return when ``wake`` is set (then clear it) or after ``poll_s``: a hand-off in this process
    wakes the loop at once; work queued by another process is found at the next poll."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), poll_s)
    wake.clear()


async def every(
    interval_s: Callable[[], float], step: Callable[[], Awaitable[None]], log: logging.Logger, what: str
) -> None:
    """Run ``step`` every ``interval_s()`` seconds, forever (until cancelled). A failing step is
    logged (observability/logs.py, ``RetryLog``) and tried again next time: a database hiccup must
    not end heartbeats or sweeps."""
    failures = RetryLog(log, what)
    while True:
        await asyncio.sleep(interval_s())
        try:
            await step()
        except Exception:
            failures.failed()
        else:
            failures.succeeded()
