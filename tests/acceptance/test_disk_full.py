"""A full disk is survivable: writes answer 503 (nothing half-written), deletes still work and free
space, and writes work again once space is back, without a restart. Runs on a small tmpfs that the
test mounts (root only; skipped elsewhere)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import make_client
from tests.support.errors import assert_api_error
from tests.support.server import ServerProcess

SIZE_MB = 64


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount_point)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write until the disk refuses another byte."""
    filler = directory / f"filler-{uuid.uuid4().hex}"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            try:
                out.write(b"\1" * (1 << 16))
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                raise
    return filler


def test_full_disk_503_deletes_work_and_recovery(tmp_path: Path, small_disk: Path) -> None:
    outside = tmp_path / "logs"
    server = ServerProcess(
        outside, {"THREADLINE_DATA_DIR": str(small_disk), "THREADLINE_DISK_RESERVE_BYTES": str(16 << 20)}
    ).start()
    try:
        with make_client(server.base_url) as sdk:
            thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "keep me"}])
            uploaded = sdk.files.create(file=("doc.txt", b"some words " * 100_000), purpose="assistants")
            store = sdk.vector_stores.create(name="full", file_ids=[uploaded.id])
            files_before = [f.id for f in sdk.files.list()]
            filler = _fill(small_disk)

            with pytest.raises(openai.APIStatusError) as exc:
                sdk.files.create(file=("more.txt", b"x" * 4_000_000), purpose="assistants")
            assert_api_error(exc.value, 503, code="disk_full", contains="out of disk space")
            assert [f.id for f in sdk.files.list()] == files_before  # nothing half-written
            # Database writes: fill the database's own free pages too, until it gives up.
            refused = 0
            for i in range(400):
                try:
                    sdk.beta.threads.messages.create(thread.id, role="user", content=f"{i}" + "y" * 200_000)
                except openai.APIStatusError as err:
                    assert_api_error(err, 503, code="disk_full")
                    refused += 1
                    break
            assert refused == 1, "the database never reported a full disk"

            # Deletes still work on the full disk, and free space.
            assert sdk.files.delete(uploaded.id).deleted
            assert sdk.vector_stores.delete(store.id).deleted
            assert sdk.beta.threads.delete(thread.id).deleted

            # Space back: writes work again, no restart.
            filler.unlink()
            again = sdk.files.create(file=("again.txt", b"back"), purpose="assistants")
            assert sdk.files.content(again.id).read() == b"back"
            assert sdk.beta.threads.create().id.startswith("thread_")
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
