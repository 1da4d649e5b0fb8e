"""Admission control: a full run queue, too many streams or too many held polls are refused at once
(429 with ``retry-after``, which the SDK honours) or answered without holding, and a refused request
writes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.errors import assert_api_error
from tests.support.fake_model import FakeModelServer, Hang, Text
from tests.support.server import ServerProcess

QUEUE_MAX = 2
HANG_S = 3.0


@pytest.fixture()
def bounded(backend: str, tmp_path: Any, fake: FakeModelServer) -> Iterator[ServerProcess]:
    """A server whose run queue holds two runs, with one stream and one held poll per process."""
    env, pg_url = server_env(backend, fake.base_url)
    env.update(
        {
            "THREADLINE_RUN_QUEUE_MAX": str(QUEUE_MAX),
            "THREADLINE_MAX_STREAMS": "1",
            "THREADLINE_MAX_POLL_HOLDS": "1",
        }
    )
    proc = ServerProcess(tmp_path, env).start()
    try:
        yield proc
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)


def _threads(server: ServerProcess) -> list[str]:
    response = httpx.get(f"{server.base_url}/threads?limit=100", headers={"Authorization": "Bearer k"})
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["data"]]


def _metric(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not in /metrics")


def _fill_queue(client: OpenAI, assistant_id: str, fake: FakeModelServer) -> list[Any]:
    """QUEUE_MAX runs that wait on the model for HANG_S."""
    fake.script(*[Hang(HANG_S, Text("late")) for _ in range(QUEUE_MAX)])
    runs = [client.beta.threads.create_and_run(assistant_id=assistant_id) for _ in range(QUEUE_MAX)]
    fake.wait_for_requests(QUEUE_MAX)
    return runs


def test_full_run_queue_is_429_with_retry_after_and_writes_nothing(
    bounded: ServerProcess, fake: FakeModelServer
) -> None:
    with make_client(bounded.base_url) as client:
        assistant = client.beta.assistants.create(model="gpt-4o")
        waiting = client.beta.threads.create()
        _fill_queue(client, assistant.id, fake)
        threads_before = _threads(bounded)
        assert _metric(bounded, "threadline_run_queue_depth") == QUEUE_MAX

        with pytest.raises(openai.RateLimitError) as exc:
            client.beta.threads.create_and_run(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
            )
        error = assert_api_error(exc.value, 429, code="rate_limit_exceeded", contains="run queue is full")
        assert error["type"] == "requests"
        assert exc.value.response.headers["retry-after"] == "1"
        assert _threads(bounded) == threads_before, "a refused create_and_run created a thread"

        with pytest.raises(openai.RateLimitError) as exc:
            client.beta.threads.runs.create(
                waiting.id,
                assistant_id=assistant.id,
                additional_messages=[{"role": "user", "content": "never stored"}],
            )
        assert_api_error(exc.value, 429, code="rate_limit_exceeded")
        assert client.beta.threads.runs.list(waiting.id).data == []
        assert client.beta.threads.messages.list(waiting.id).data == []
        assert _metric(bounded, "threadline_admission_refusals_total", reason="run_queue") == 2

    # The SDK waits retry-after and tries again: once the queue drains the same call succeeds.
    fake.default = Text("after the wait")
    started = time.monotonic()
    retrying = OpenAI(base_url=bounded.base_url, api_key="k", max_retries=8, _strict_response_validation=True)
    with retrying:
        run = retrying.beta.threads.create_and_run_poll(assistant_id=assistant.id)
        assert run.status == "completed"
        assert time.monotonic() - started >= 0.9, "the SDK did not have to wait: the queue was not full"
        messages = retrying.beta.threads.messages.list(run.thread_id).data
    assert messages[0].content[0].text.value == "after the wait"  # type: ignore[union-attr]


def test_streams_are_bounded_per_process_and_freed_when_they_end(
    bounded: ServerProcess, fake: FakeModelServer
) -> None:
    fake.script(Hang(1.5, Text("streamed")))
    with make_client(bounded.base_url) as client:
        assistant = client.beta.assistants.create(model="gpt-4o")
        events: list[str] = []

        def consume() -> None:
            with client.beta.threads.create_and_run(assistant_id=assistant.id, stream=True) as stream:
                events.extend(event.event for event in stream)

        first = threading.Thread(target=consume)
        first.start()
        fake.wait_for_requests(1)
        threads_before = _threads(bounded)
        with pytest.raises(openai.RateLimitError) as exc:
            client.beta.threads.create_and_run(assistant_id=assistant.id, stream=True)
        assert_api_error(exc.value, 429, code="rate_limit_exceeded", contains="event streams")
        assert exc.value.response.headers["retry-after"] == "1"
        assert _threads(bounded) == threads_before
        # A request that does not stream is not held to the stream bound.
        assert client.beta.threads.create_and_run(assistant_id=assistant.id).status == "queued"
        first.join(10)
        assert events[-1] == "thread.run.completed", events

        # The slot is back: a new stream runs to its end.
        with client.beta.threads.create_and_run(assistant_id=assistant.id, stream=True) as stream:
            assert [e.event for e in stream][-1] == "thread.run.completed"
        assert _metric(bounded, "threadline_admission_refusals_total", reason="streams") == 1


def test_poll_holds_are_bounded_and_answer_at_once_beyond(
    bounded: ServerProcess, fake: FakeModelServer
) -> None:
    fake.script(Hang(2.0, Text("done")))
    with make_client(bounded.base_url) as client:
        assistant = client.beta.assistants.create(model="gpt-4o")
        run = client.beta.threads.create_and_run(assistant_id=assistant.id)
        fake.wait_for_requests(1)
        helper = {"X-Stainless-Poll-Helper": "true"}
        held: list[str] = []

        def hold() -> None:
            got = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id, extra_headers=helper)
            held.append(got.status)

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.3)  # the first GET is held by now (it waits up to 5 s for the run to settle)
        started = time.monotonic()
        second = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id, extra_headers=helper)
        assert time.monotonic() - started < 1.0, "the second poll was held beyond the bound"
        assert second.status == "in_progress"
        holder.join(10)
        assert held == ["completed"], "the first poll was held until the run settled"
        assert _metric(bounded, "threadline_admission_refusals_total", reason="poll_holds") >= 1
