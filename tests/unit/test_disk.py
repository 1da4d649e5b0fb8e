"""Recognising a full disk in each layer's exception; the reserve file."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from threadline.storage.disk import DiskReserve, is_disk_full


def test_full_disk_is_recognised_through_wrapping() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    full = sqlite3.OperationalError("database or disk is full")
    wrapped = sa.exc.OperationalError("INSERT ...", {}, full)
    assert is_disk_full(wrapped)
    try:
        try:
            raise full
        except sqlite3.OperationalError as inner:
            raise RuntimeError("commit failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("no such table: x"))


def test_reserve_is_written_released_and_rearmed(tmp_path: Path) -> None:
    reserve = DiskReserve(tmp_path / ".disk-reserve", 3 * 1024 * 1024 + 5)
    assert reserve.ensure() and reserve.held
    assert (tmp_path / ".disk-reserve").stat().st_size == 3 * 1024 * 1024 + 5
    assert reserve.release() and not reserve.held
    assert not reserve.release()  # nothing left to free
    assert reserve.ensure(only_with_room=True)
    assert not DiskReserve(tmp_path / "none", 0).ensure()


def test_a_reserve_that_cannot_be_written_is_given_up(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    reserve = DiskReserve(blocker / ".disk-reserve", 1024)
    assert not reserve.ensure()
    assert reserve.size == 0 and not reserve.ensure()
