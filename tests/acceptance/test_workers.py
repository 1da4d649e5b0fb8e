"""Separate run workers on one PostgreSQL database: 2 API processes (``serve --no-executor``) and
2 ``threadline worker`` processes.

- 200 runs created through both API processes at once: each executed exactly once (one upstream
  request per run, found by a marker in its message) and all completed.
- Events cross processes: a stream served by API process A for a run a worker executes, and
  ``submit_tool_outputs(stream=True)`` sent to process B for a run created on A, yield the same
  event sequences as the in-process executor (``test_streaming``'s reference transcripts).
- kill -9 of a worker in the middle of runs: its runs fail cleanly once the lease (3 s here) runs
  out, the queued ones are executed by the surviving worker, nothing is left queued/in_progress.
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from openai import OpenAI
from openai.types.beta.threads import Run

from tests.acceptance.test_streaming import FUNCTION_RUN, SUBMIT, TEXT_RUN, WEATHER, _names, _sse
from tests.conftest import make_client
from tests.support import databases
from tests.support.fake_model import Call, FakeModelServer, Text, ToolCalls
from tests.support.server import ServerProcess
from tests.support.worker import WorkerProcess

LEASE_S = 3.0
START_TIMEOUT_S = 90.0  # four processes starting on a loaded 2-core CI machine
LEASE_LOST = "The run was interrupted: the worker executing it stopped responding and its lease expired."
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


@dataclass
class Cluster:
    apis: list[ServerProcess]
    workers: list[WorkerProcess]
    clients: list[OpenAI]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[Cluster]:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(f"separate workers need PostgreSQL: {reason}")
    url = databases.create_database()
    env = {
        "THREADLINE_DATABASE_URL": url,
        "THREADLINE_UPSTREAM_BASE_URL": fake_model_server.base_url,
        "THREADLINE_UPSTREAM_MAX_RETRIES": "0",
        "THREADLINE_RUN_LEASE_S": str(LEASE_S),
        "THREADLINE_RUN_HEARTBEAT_S": "0.5",
        "THREADLINE_RUN_POLL_S": "0.5",
        # Small, so that the kill test knows each worker holds 3 runs and the rest wait queued.
        "THREADLINE_RUN_MAX_CONCURRENT": "3",
        # The bulk test queues 200 runs at once; admission control (default 64 in the deployment and
        # in a project) is tested elsewhere.
        "THREADLINE_RUN_QUEUE_MAX": "1000",
        "THREADLINE_PROJECT_MAX_ACTIVE_RUNS": "1000",
    }
    apis = [ServerProcess(tmp_path_factory.mktemp(f"api-{i}"), env, ["--no-executor"]) for i in range(2)]
    workers = [WorkerProcess(tmp_path_factory.mktemp(f"worker-{i}"), env, f"worker-{i}") for i in range(2)]
    clients: list[OpenAI] = []
    try:
        for api in apis:
            api.start(timeout_s=START_TIMEOUT_S)
        for worker in workers:
            worker.start(timeout_s=START_TIMEOUT_S)
        clients = [make_client(api.base_url) for api in apis]
        yield Cluster(apis, workers, clients)
    finally:
        for sdk in clients:
            sdk.close()
        for worker in workers:
            worker.stop()
        for api in apis:
            api.stop()
        databases.drop_database(url)


def _markers_requested(fake: FakeModelServer) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for body in list(fake.requests):
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str) and content.startswith("marker-"):
                seen[content] += 1
    return seen


def _wait_all_terminal(client: OpenAI, runs: list[Run], timeout_s: float) -> dict[str, Run]:
    deadline = time.monotonic() + timeout_s
    final: dict[str, Run] = {}
    while True:
        for run in runs:
            if run.id not in final:
                current = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
                if current.status in TERMINAL:
                    final[run.id] = current
        if len(final) == len(runs):
            return final
        stuck = collections.Counter(
            client.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id).status
            for r in runs
            if r.id not in final
        )
        assert time.monotonic() < deadline, f"runs not terminal after {timeout_s}s: {stuck}"
        time.sleep(0.25)


def _create_runs(cluster: Cluster, assistant_id: str, markers: list[str]) -> list[Run]:
    """One thread and run per marker, alternating API processes, 8 requests at a time."""

    def create(i: int) -> Run:
        sdk = cluster.clients[i % 2]
        thread: dict[str, Any] = {"messages": [{"role": "user", "content": markers[i]}]}
        return sdk.beta.threads.create_and_run(assistant_id=assistant_id, thread=cast(Any, thread))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(len(markers))))


def test_200_runs_through_two_apis_execute_exactly_once(cluster: Cluster, fake: FakeModelServer) -> None:
    a, b = cluster.clients
    assistant = a.beta.assistants.create(model="fake-model")
    markers = [f"marker-bulk-{i}" for i in range(200)]
    started = time.monotonic()
    runs = _create_runs(cluster, assistant.id, markers)
    final = _wait_all_terminal(b, runs, timeout_s=60)
    print(f"200 runs through 2 APIs + 2 workers in {time.monotonic() - started:.1f}s")
    assert collections.Counter(run.status for run in final.values()) == {"completed": 200}
    assert _markers_requested(fake) == collections.Counter({marker: 1 for marker in markers})
    for worker in cluster.workers:
        assert "Traceback" not in worker.log(), worker.log()


def test_streams_cross_processes(cluster: Cluster, fake: FakeModelServer) -> None:
    a, _ = cluster.clients
    api_a, api_b = cluster.apis
    assistant = a.beta.assistants.create(model="fake-model")
    # A stream served by A for a run a worker executes.
    fake.script(Text("Hello there friend"))
    thread = a.beta.threads.create(messages=[{"role": "user", "content": "marker-stream-1"}])
    events = _sse(api_a, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert _names(events) == TEXT_RUN
    deltas = "".join(
        data["delta"]["content"][0]["text"]["value"]
        for name, data in events
        if name == "thread.message.delta"
    )
    assert deltas == "Hello there friend"
    # A run created (and streamed) on A; its tool outputs submitted, streamed, on B.
    fake.script(ToolCalls([Call("get_weather", '{"city": "Paris"}')]), Text("Sunny in Paris"))
    body = {
        "assistant_id": assistant.id,
        "tools": [WEATHER],
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "marker-stream-2"}]},
    }
    first = _sse(api_a, "/threads/runs", body)
    assert _names(first) == FUNCTION_RUN
    run = next(data for name, data in first if name == "thread.run.requires_action")
    call_id = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    path = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"
    second = _sse(api_b, path, {"tool_outputs": [{"tool_call_id": call_id, "output": "22C"}], "stream": True})
    assert _names(second) == SUBMIT
    assert second[-2][0] == "thread.run.completed"
    assert _markers_requested(fake) == {"marker-stream-1": 1, "marker-stream-2": 2}  # 2 rounds


def test_kill_9_of_a_worker_mid_run(cluster: Cluster, fake: FakeModelServer) -> None:
    a, b = cluster.clients
    # 8 words at 0.25 s: each run streams for about 2 s.
    fake.default = Text("one two three four five six seven eight", token_delay_s=0.25)
    assistant = a.beta.assistants.create(model="fake-model")
    markers = [f"marker-kill-{i}" for i in range(10)]
    runs = _create_runs(cluster, assistant.id, markers)
    # Both workers busy with 3 runs each (their maximum); 4 runs wait queued.
    fake.wait_for_requests(6, timeout=30)
    victim, survivor = cluster.workers
    victim.kill()
    killed_at = time.time()
    final = _wait_all_terminal(b, runs, timeout_s=LEASE_S + 20)
    statuses = collections.Counter(run.status for run in final.values())
    failed = [run for run in final.values() if run.status == "failed"]
    assert 1 <= len(failed) <= 3 and statuses["completed"] == 10 - len(failed), statuses
    for run in failed:
        assert run.last_error is not None and run.last_error.message == LEASE_LOST
        assert run.failed_at is not None
        # Taken over within the lease (plus a heartbeat and clock rounding to whole seconds).
        assert run.failed_at - killed_at <= LEASE_S + 2.5
    # No run was executed twice: a failed run's call is not replayed, a queued one ran once.
    assert _markers_requested(fake) == collections.Counter({marker: 1 for marker in markers})
    assert survivor.proc is not None and survivor.proc.poll() is None
    # The surviving worker stops gracefully on SIGTERM.
    assert survivor.stop() == 0
