"""Hostile files cannot take the server down: bombs fail with a message in a child process while the
server keeps answering with bounded memory, and a file that keeps killing the server is retired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import make_client
from tests.support.bombs import docx_bomb, pptx_bomb, whitespace_free_text
from tests.support.database_access import query_sql
from tests.support.server import ServerProcess

# The server's own peak RSS while children parse the bombs; the children are limited to 1 GiB
# (the default) of address space each.
SERVER_PEAK_RSS_BOUND_MB = 500


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("hostile")).start()
    try:
        yield proc
    finally:
        proc.stop()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _wait_file(client: OpenAI, store_id: str, file_id: str, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        vs_file = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if vs_file.status != "in_progress" or time.monotonic() > deadline:
            return vs_file
        # The server keeps answering while a child chews on the bomb.
        assert client.beta.threads.create().id.startswith("thread_")
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        ("slides.pptx", lambda: pptx_bomb(450), "memory limit"),
        ("letter.docx", lambda: docx_bomb(450), "not a readable .docx"),
        ("run.txt", lambda: whitespace_free_text(40), "more than 5,000,000 tokens"),
    ],
    ids=["pptx-450MiB-run", "docx-450MiB-run", "txt-40MiB-no-whitespace"],
)
def test_bombs_fail_with_a_message_and_the_server_stays_small(
    hostile_server: ServerProcess, name: str, build: object, expected: str
) -> None:
    data = build()  # type: ignore[operator]
    with make_client(hostile_server.base_url) as client:
        uploaded = client.files.create(file=(name, data), purpose="assistants")
        store = client.vector_stores.create(name="bombs")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        vs_file = _wait_file(client, store.id, uploaded.id, timeout_s=120)
        assert vs_file.status == "failed", vs_file  # type: ignore[attr-defined]
        error = vs_file.last_error  # type: ignore[attr-defined]
        assert error is not None and error.code in {"invalid_file", "server_error"}
        assert expected in error.message, error.message
        assert client.vector_stores.retrieve(store.id).file_counts.failed == 1
    assert hostile_server.proc is not None
    assert _peak_rss_mb(hostile_server.proc.pid) < SERVER_PEAK_RSS_BOUND_MB


def test_40_mib_without_whitespace_ingests_within_the_default_limits(hostile_server: ServerProcess) -> None:
    # One 40 MiB run of "=" has ~700,000 tokens: under the token cap, so it must complete (BPE over
    # the unsplit run needed ~2 GiB).
    data = b"=" * (40 << 20)
    with make_client(hostile_server.base_url) as client:
        uploaded = client.files.create(file=("equals.txt", data), purpose="assistants")
        store = client.vector_stores.create(name="long run")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        vs_file = _wait_file(client, store.id, uploaded.id, timeout_s=120)
        assert vs_file.status == "completed", vs_file  # type: ignore[attr-defined]
        assert vs_file.usage_bytes == len(data)  # type: ignore[attr-defined]
    assert hostile_server.proc is not None
    assert _peak_rss_mb(hostile_server.proc.pid) < SERVER_PEAK_RSS_BOUND_MB


def test_a_file_that_kills_the_server_is_retired(tmp_path: Path) -> None:
    # ~25 MB of words: long enough to kill the server while its child is on it.
    slow = b"alpha beta gamma delta epsilon zeta eta theta " * 550_000
    env = {"THREADLINE_INGESTION_MAX_ATTEMPTS": "2"}
    server = ServerProcess(tmp_path, env).start()
    try:
        with make_client(server.base_url) as client:
            uploaded = client.files.create(file=("slow.txt", slow), purpose="assistants")
            store = client.vector_stores.create(name="poison")
            client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        for attempt in (1, 2):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = query_sql(server, "SELECT attempts, status FROM vector_store_files")
                if rows == [(attempt, "in_progress")]:
                    break
                time.sleep(0.05)
            assert rows == [(attempt, "in_progress")], rows
            server.kill()  # kill -9 with the file claimed, as an OOM kill would
            server.start()
        with make_client(server.base_url) as client:
            vs_file = _wait_file(client, store.id, uploaded.id, timeout_s=30)
        assert vs_file.status == "failed"  # type: ignore[attr-defined]
        assert vs_file.last_error.code == "server_error"  # type: ignore[attr-defined]
        assert "crashed the worker 2 times" in vs_file.last_error.message  # type: ignore[attr-defined]
    finally:
        server.stop()
