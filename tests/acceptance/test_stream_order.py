"""Streams deliver every event of their run, in order, before the event that ends it, however late
the database bus writes (PostgreSQL; the writer slowed on purpose by ``event_write_delay_s``, and a
quiet stream re-checking its run after ``event_stall_check_s``, shorter than that delay).

- One process (embedded executor): 12 concurrent streamed runs; each stream's event names follow
  the reference order, its deltas concatenate to the stored message, and a poll helper's run is
  followed by a GET of the message holding the whole text.
- Across processes: streams served by an API process (``--no-executor``) for runs a separate
  ``threadline worker`` executes, with the same slow writer in both.
- Token deltas: a run of 200 instant tokens streamed in the process that executes it writes no
  ``run_events`` row for them; streamed from another process, far fewer rows than tokens. Either
  way the SDK's accumulated text equals the stored message.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from openai import AssistantEventHandler, OpenAI

from tests.conftest import make_client
from tests.support import databases
from tests.support.fake_model import FakeModelServer, Text
from tests.support.server import ServerProcess
from tests.support.worker import WorkerProcess
from threadline.config import Settings
from threadline.storage import tables
from threadline.storage.database import Database

START_TIMEOUT_S = 90.0
STREAMS = 12
# The writer waits longer than a quiet stream before it re-checks its run: before the fix, streams
# found their runs completed while the events were still in the writer's hands, and ended without
# them.
SLOW_WRITER = {"THREADLINE_EVENT_WRITE_DELAY_S": "0.6", "THREADLINE_EVENT_STALL_CHECK_S": "0.2"}

TEXT_RUN = [
    "thread.created",
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    url = databases.create_database()
    try:
        yield url
    finally:
        databases.drop_database(url)


def _env(pg_url: str, fake: FakeModelServer, **extra: str) -> dict[str, str]:
    return {
        "THREADLINE_DATABASE_URL": pg_url,
        "THREADLINE_UPSTREAM_BASE_URL": fake.base_url,
        "THREADLINE_UPSTREAM_MAX_RETRIES": "0",
        "THREADLINE_RUN_POLL_S": "0.5",
        **extra,
    }


def _answers(count: int) -> list[Text]:
    return [
        Text(" ".join(f"w{i}-{j}" for j in range(30)), token_delay_s=0.002 * (i % 3)) for i in range(count)
    ]


def _stream_one(client: OpenAI, assistant_id: str, marker: str) -> tuple[list[str], str, str]:
    """One streamed create-thread-and-run: (event names, consecutive repeats collapsed), the
    concatenated deltas, and the stored assistant message's text."""
    names: list[str] = []
    text = ""
    thread_id = ""
    thread = {"messages": [{"role": "user", "content": marker}]}
    with client.beta.threads.create_and_run(
        assistant_id=assistant_id,
        thread=cast(Any, thread),
        stream=True,
    ) as stream:
        for event in stream:
            names.append(event.event)
            if event.event == "thread.created":
                thread_id = event.data.id
            if event.event == "thread.message.delta":
                for part in event.data.delta.content or []:
                    text += part.text.value or ""  # type: ignore[union-attr]
    messages = client.beta.threads.messages.list(thread_id, order="desc", limit=1)
    stored = messages.data[0].content[0].text.value  # type: ignore[union-attr]
    return [name for name, _ in itertools.groupby(names)], text, stored


def _check_concurrent_streams(client: OpenAI, fake: FakeModelServer) -> None:
    answers = _answers(STREAMS)
    fake.script(*answers)
    assistant = client.beta.assistants.create(model="fake-model")
    with concurrent.futures.ThreadPoolExecutor(STREAMS) as pool:
        results = list(pool.map(lambda i: _stream_one(client, assistant.id, f"m{i}"), range(STREAMS)))
    expected = {answer.text for answer in answers}
    for names, text, stored in results:
        assert names == TEXT_RUN
        assert text == stored
        assert stored in expected
    assert {stored for _, _, stored in results} == expected  # every answer once


def test_streams_keep_every_event_with_a_slow_writer(
    pg_url: str, fake: FakeModelServer, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "api", _env(pg_url, fake, **SLOW_WRITER)).start(START_TIMEOUT_S)
    try:
        with make_client(server.base_url) as client:
            _check_concurrent_streams(client, fake)
            # The poll helper's held GET answers once the run completed; the message then holds it all.
            answers = _answers(3)
            fake.script(*answers)
            assistant = client.beta.assistants.create(model="fake-model")
            for i, answer in enumerate(answers):
                thread = {"messages": [{"role": "user", "content": f"p{i}"}]}
                run = client.beta.threads.create_and_run_poll(
                    assistant_id=assistant.id,
                    thread=thread,  # type: ignore[arg-type]
                    poll_interval_ms=50,
                )
                assert run.status == "completed"
                message = client.beta.threads.messages.list(run.thread_id, order="desc", limit=1).data[0]
                assert message.content[0].text.value == answer.text  # type: ignore[union-attr]
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.stop()


def test_streams_across_processes_with_a_slow_writer(
    pg_url: str, fake: FakeModelServer, tmp_path: Path
) -> None:
    env = _env(pg_url, fake, **SLOW_WRITER)
    server = ServerProcess(tmp_path / "api", env, ["--no-executor"]).start(START_TIMEOUT_S)
    worker = WorkerProcess(tmp_path / "worker", env).start(START_TIMEOUT_S)
    try:
        with make_client(server.base_url) as client:
            _check_concurrent_streams(client, fake)
        assert "Traceback" not in worker.log(), worker.log()
    finally:
        worker.stop()
        server.stop()


class _Accumulator(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""


def _stream_counted(client: OpenAI, fake: FakeModelServer, tokens: int) -> str:
    """Stream a run of ``tokens`` instant tokens with the SDK's helper; the SDK's accumulated text
    equals the stored message. Returns the run id."""
    answer = Text("".join(f"t{i} " for i in range(tokens)))
    fake.script(answer)
    assistant = client.beta.assistants.create(model="fake-model")
    handler = _Accumulator()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "count"}]},
        event_handler=handler,
    ) as stream:
        stream.until_done()
    run = handler.get_final_run()
    assert run.status == "completed"
    stored = client.beta.threads.messages.list(run.thread_id, order="desc", limit=1).data[0]
    assert handler.text == answer.text == stored.content[0].text.value  # type: ignore[union-attr]
    assert handler.get_final_messages()[0].content[0].text.value == answer.text  # type: ignore[union-attr]
    return run.id


def _logged_names(pg_url: str, tmp_path: Path, run_id: str) -> list[str]:
    """The names of the run's ``run_events`` rows, in order."""
    db = Database(Settings(database_url=pg_url, data_dir=tmp_path))
    try:
        with db.engine.connect() as conn:
            e = tables.run_events
            rows = conn.execute(sa.select(e.c.name).where(e.c.run_id == run_id).order_by(e.c.seq))
            return [row.name for row in rows]
    finally:
        db.close()


def _delta_rows(pg_url: str, tmp_path: Path, run_id: str) -> int:
    return _logged_names(pg_url, tmp_path, run_id).count("MessageDelta")


def test_a_stream_in_the_executing_process_writes_no_token_rows(
    pg_url: str, fake: FakeModelServer, tmp_path: Path
) -> None:
    tokens = 200
    server = ServerProcess(tmp_path / "api", _env(pg_url, fake)).start(START_TIMEOUT_S)
    try:
        with make_client(server.base_url) as client:
            run_id = _stream_counted(client, fake, tokens)
    finally:
        server.stop()
    # Streamed nowhere else: only the commit that ends the run wrote rows (its message and step
    # completed, the run completed, the end), not the claim's or the message's opening.
    ending = ["MessageChanged", "StepChanged", "RunChanged", "StreamEnd"]
    assert _logged_names(pg_url, tmp_path, run_id) == ending


def test_a_stream_in_another_process_gets_coalesced_token_rows(
    pg_url: str, fake: FakeModelServer, tmp_path: Path
) -> None:
    tokens = 200
    env = _env(pg_url, fake)
    server = ServerProcess(tmp_path / "api", env, ["--no-executor"]).start(START_TIMEOUT_S)
    worker = WorkerProcess(tmp_path / "worker", env).start(START_TIMEOUT_S)
    try:
        with make_client(server.base_url) as client:
            run_id = _stream_counted(client, fake, tokens)
    finally:
        worker.stop()
        server.stop()
    deltas = _delta_rows(pg_url, tmp_path, run_id)
    assert 1 <= deltas <= tokens // 8, f"{deltas} delta rows for {tokens} tokens"
    # Streamed by another process: every change is in the log, the claim's first.
    assert _logged_names(pg_url, tmp_path, run_id)[0] == "RunChanged"
    assert _logged_names(pg_url, tmp_path, run_id).count("MessageChanged") == 3  # created, in progress, done
