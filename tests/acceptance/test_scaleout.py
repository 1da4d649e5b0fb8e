"""Scale-out: several processes on one database.

- ``threadline migrate`` started 4 times at once on a fresh database (SQLite file and PostgreSQL):
  all succeed and the schema ends at head.
- Two API replicas (separate ``threadline serve --no-executor`` processes, as behind a load
  balancer) on one PostgreSQL database: what one writes the other reads, list order and cursors
  agree, the thread lock (a run holding the thread) is seen by both, a delete through one is a 404
  through the other.
- ``serve --workers 2``: two API processes share one port; every request, whichever process takes
  it, sees every earlier write.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import openai
import pytest
import sqlalchemy as sa
from openai import OpenAI

from tests.conftest import make_client
from tests.support import databases
from tests.support.errors import assert_api_error
from tests.support.server import ServerProcess
from threadline.config import Settings
from threadline.storage import tables
from threadline.storage.database import Database
from threadline.storage.migrate import current_revision, head_revision

START_TIMEOUT_S = 90.0  # two spawned processes on a loaded 2-core CI machine


def _require_postgres() -> None:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    _require_postgres()
    url = databases.create_database()
    try:
        yield url
    finally:
        databases.drop_database(url)


# --- migrations from several processes at once ------------------------------------------------


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_concurrent_migrate_processes(backend_name: str, tmp_path: Path) -> None:
    if backend_name == "postgres":
        _require_postgres()
        url = databases.create_database()
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "threadline.cli",
                    "migrate",
                    "--database-url",
                    url,
                    "--data-dir",
                    str(tmp_path),
                    "--log-level",
                    "warning",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(4)
        ]
        outputs = [proc.communicate(timeout=90)[0].decode(errors="replace") for proc in procs]
        for proc, out in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, out
            assert "migrated" in out, out
        db = Database(Settings(database_url=url, data_dir=tmp_path))
        try:
            assert current_revision(db.engine) == head_revision() is not None
            with db.engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(tables.threads)).scalar() == 0
        finally:
            db.close()
    finally:
        if backend_name == "postgres":
            databases.drop_database(url)


# --- two replicas on one PostgreSQL ------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenAI, OpenAI]]:
    env = {"THREADLINE_DATABASE_URL": pg_url}
    procs = [ServerProcess(tmp_path_factory.mktemp(f"replica-{i}"), env, ["--no-executor"]) for i in range(2)]
    try:
        for proc in procs:
            proc.start(timeout_s=START_TIMEOUT_S)
        with make_client(procs[0].base_url) as a, make_client(procs[1].base_url) as b:
            yield a, b
    finally:
        for proc in procs:
            proc.stop()


def test_replicas_see_each_others_writes(replicas: tuple[OpenAI, OpenAI]) -> None:
    a, b = replicas
    thread = a.beta.threads.create(metadata={"via": "a"})
    assert b.beta.threads.retrieve(thread.id) == thread
    updated = b.beta.threads.update(thread.id, metadata={"via": "b"})
    assert a.beta.threads.retrieve(thread.id) == updated
    assistant = b.beta.assistants.create(model="gpt-4o", name="shared")
    assert a.beta.assistants.retrieve(assistant.id) == assistant
    assert a.beta.assistants.delete(assistant.id).deleted
    with pytest.raises(openai.NotFoundError) as exc:
        b.beta.assistants.retrieve(assistant.id)
    assert_api_error(exc.value, 404, message=f"No assistant found with id '{assistant.id}'.")
    assert b.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        a.beta.threads.retrieve(thread.id)


def test_replicas_agree_on_lists(replicas: tuple[OpenAI, OpenAI]) -> None:
    a, b = replicas
    thread = a.beta.threads.create()
    created = [
        (a if i % 2 == 0 else b).beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id
        for i in range(12)
    ]
    for client in (a, b):
        listed = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100)]
        assert listed == created  # sequential writes through either process keep creation order
        desc = [m.id for m in client.beta.threads.messages.list(thread.id, order="desc", limit=100)]
        assert desc == created[::-1]
    # A cursor handed out by one process pages correctly on the other.
    page = a.beta.threads.messages.list(thread.id, order="asc", limit=5)
    assert [m.id for m in page.data] == created[:5] and page.has_more
    rest = b.beta.threads.messages.list(thread.id, order="asc", limit=100, after=page.data[-1].id)
    assert [m.id for m in rest.data] == created[5:] and not rest.has_more
    before = a.beta.threads.messages.list(thread.id, order="desc", limit=3, before=created[5])
    assert [m.id for m in before.data] == created[8:5:-1]


def test_thread_lock_holds_across_replicas(replicas: tuple[OpenAI, OpenAI], pg_url: str) -> None:
    """The lock is a row in the database, not process memory: a run holding the thread (written
    straight to the table, as a worker elsewhere would leave it) blocks messages through both."""
    a, b = replicas
    thread = a.beta.threads.create()
    assistant = a.beta.assistants.create(model="gpt-4o")
    run_id = f"run_{'0' * 11}lockacrossprc"
    db = Database(Settings(database_url=pg_url))
    try:
        db.transaction_sync(
            lambda uow: uow.conn.execute(
                tables.runs.insert().values(
                    id=run_id,
                    thread_id=thread.id,
                    assistant_id=assistant.id,
                    created_at=int(time.time()),
                    status="requires_action",
                    expires_at=int(time.time()) + 600,
                    model="gpt-4o",
                    instructions="",
                    tools=[],
                    metadata={},
                    truncation_strategy={"type": "auto"},
                    tool_choice="auto",
                    parallel_tool_calls=True,
                    response_format="auto",
                )
            )
        )
        for client in (a, b):
            with pytest.raises(openai.BadRequestError) as exc:
                client.beta.threads.messages.create(thread.id, role="user", content="blocked")
            assert_api_error(exc.value, 400, contains=f"while a run {run_id} is active")
        db.transaction_sync(
            lambda uow: uow.conn.execute(
                tables.runs.update().where(tables.runs.c.id == run_id).values(status="cancelled")
            )
        )
        for client in (b, a):
            client.beta.threads.messages.create(thread.id, role="user", content="unblocked")
    finally:
        db.close()


# --- serve --workers 2 --------------------------------------------------------------------------


def _spawned_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _listening_sockets(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` (any address)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def _sockets_of(pid: int) -> set[str]:
    links = (os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.name.isdigit())
    return {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_serve_workers_2_share_state(pg_url: str, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, {"THREADLINE_DATABASE_URL": pg_url}, ["--workers", "2", "--no-executor"]
    ).start(timeout_s=START_TIMEOUT_S)
    try:
        assert server.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        print(f"both up after {time.monotonic() - deadline + START_TIMEOUT_S:.1f}s")
        children = _spawned_children(server.proc.pid)
        assert len(children) == 2, server.log()
        ticks = {c: _cpu_ticks(c) for c in children}
        # Each API process listens on a socket of its own (SO_REUSEPORT): the kernel spreads new
        # connections across them, instead of the first process to accept taking them all.
        listening = _listening_sockets(server.port)
        assert len(listening) == 2 and all(len(_sockets_of(c) & listening) == 1 for c in children)

        # No keep-alive: every request opens a new connection, which the kernel hands to either
        # process, so a write and the reads after it are served by different processes at random.
        sdk = OpenAI(
            base_url=server.base_url,
            api_key="test-key",
            max_retries=0,
            _strict_response_validation=True,
            http_client=httpx2.Client(limits=httpx2.Limits(max_keepalive_connections=0)),
        )

        def write_then_read(i: int) -> None:
            thread = sdk.beta.threads.create(metadata={"i": str(i)})
            for _ in range(3):
                assert sdk.beta.threads.retrieve(thread.id) == thread
                sdk.beta.threads.messages.create(thread.id, role="user", content="x")
            assert len(sdk.beta.threads.messages.list(thread.id).data) == 3

        started = time.monotonic()
        with sdk, concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(write_then_read, range(40)))
        print(f"requests took {time.monotonic() - started:.1f}s")
        busy = [c for c in children if _cpu_ticks(c) > ticks[c]]
        assert len(busy) == 2, "both API processes served requests"
        response = httpx.get(f"{server.base_url}/threads/thread_missing", timeout=5)
        assert response.status_code == 404
    finally:
        server.stop()
