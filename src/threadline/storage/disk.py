"""A full disk: recognising it in any layer's exception, and a reserve that lets deletes free space.

SQLite (``SQLITE_FULL``), PostgreSQL (SQLSTATE 53100 ``disk_full``) and plain file writes
(``ENOSPC``, ``EDQUOT``) each say "no space" their own way; ``is_disk_full`` knows all three, through
SQLAlchemy's wrapping. A write that fails so is answered 503 (nothing was committed).

A delete needs a little space too (SQLite appends to its write-ahead log before it frees anything),
so on a full disk even the request that would free space fails. The reserve is a file of
``disk_reserve_bytes`` under the data directory, written at start-up; a delete that fails for lack
of space removes it and tries once more, and the reserve is written again when there is room.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("threadline.storage")

_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) reports that the disk or quota is full."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if "database or disk is full" in str(current):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        stack.extend(
            [orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__]
        )
    return False


class DiskReserve:
    """``size`` bytes held in ``path`` for a rainy day (see the module docstring)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        # Whether the reserve is on disk (as far as this process knows): re-arming is tried only when not.
        self.held = False

    def ensure(self, *, only_with_room: bool = False) -> bool:
        """Write the reserve if it is missing; False (and nothing left behind) when there is no room.

        ``only_with_room``: write it only if twice its size is free, so that re-arming it right after
        a delete freed little does not fill the disk again before the next delete."""
        if self.size <= 0:
            return False
        with self._lock:
            try:
                if self.path.exists() and self.path.stat().st_size >= self.size:
                    self.held = True
                    return True
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if only_with_room:
                    stats = os.statvfs(self.path.parent)
                    if stats.f_bavail * stats.f_frsize < 2 * self.size:
                        return False
                with self.path.open("wb") as out:
                    block = b"\0" * (1 << 20)
                    left = self.size
                    while left > 0:
                        left -= out.write(block[: min(left, len(block))])
                    out.flush()
                    # Real blocks, not a sparse file: the point is to hold space.
                    os.fsync(out.fileno())
                self.held = True
                return True
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                if exc.errno not in _NO_SPACE_ERRNOS:
                    # Not a matter of space (permissions, a read-only directory): stop trying.
                    log.warning("could not write the disk reserve %s, none is kept: %s", self.path, exc)
                    self.size = 0
                return False

    def release(self) -> bool:
        """Free the reserve; True when there was one to free."""
        with self._lock:
            self.held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            log.warning(
                "disk full: released the %d-byte reserve %s so a delete can run", self.size, self.path
            )
            return True
