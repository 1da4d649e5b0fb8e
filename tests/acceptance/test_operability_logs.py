"""What an operator reads and scrapes while the server works: json log lines with their documented
keys, an access line per request, run lifecycle lines (a failed run's with its ``last_error``),
no user text or key at INFO, ``/readyz`` turning 503 when the database goes, and Prometheus
counters that move with requests, runs and ingestion, summed over ``serve --workers 2``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.fake_model import Error, FakeModelServer, Text
from tests.support.server import ServerProcess, free_port
from tests.support.worker import WorkerProcess

# Strings that must never reach the log at INFO: the caller's key and everything a user wrote.
SECRET_KEY = "sk-test-key-that-must-not-be-logged-7f3a"
USER_TEXT = "user-text-that-must-not-be-logged-91c2"
INSTRUCTIONS = "instructions-that-must-not-be-logged-44d8"
REPLY = "model-reply-that-must-not-be-logged-0b6e"


def _json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of the log as an object; fails on any line that is not one JSON object."""
    lines = []
    for raw in log.splitlines():
        if raw.strip():
            line = json.loads(raw)
            assert isinstance(line, dict), raw
            lines.append(line)
    return lines


@pytest.fixture(scope="module")
def json_server(
    tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[ServerProcess]:
    env, _ = server_env("sqlite", fake_model_server.base_url)
    env["THREADLINE_LOG_FORMAT"] = "json"
    server = ServerProcess(tmp_path_factory.mktemp("json-log"), env).start()
    yield server
    server.stop()


def test_json_lines_access_and_run_lifecycle_without_user_text(
    json_server: ServerProcess, fake: FakeModelServer
) -> None:
    client = make_client(json_server.base_url, api_key=SECRET_KEY)
    assistant = client.beta.assistants.create(model="fake-model", instructions=INSTRUCTIONS)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    fake.script(Text(REPLY), Error(400, "the upstream refuses"))
    done = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert done.status == "completed"
    failed = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert failed.status == "failed" and failed.last_error is not None

    log = json_server.log()
    lines = _json_lines(log)
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys(), line
        assert line["ts"].endswith("Z") and line["level"] in {"debug", "info", "warning", "error"}

    access = [line for line in lines if line["logger"] == "threadline.access"]
    create = [line for line in access if line["method"] == "POST" and line["path"] == "/v1/threads"]
    assert len(create) == 1
    assert create[0]["status"] == 200 and create[0]["request_id"].startswith("req_")
    assert isinstance(create[0]["duration_ms"], int | float)

    def run_lines(run_id: str) -> list[dict[str, Any]]:
        return [
            line for line in lines if line["logger"] == "threadline.runs" and line.get("run_id") == run_id
        ]

    started, completed = run_lines(done.id)
    assert started["status"] == "in_progress" and completed["status"] == "completed"
    assert completed["thread_id"] == thread.id and completed["model"] == "fake-model"
    assert completed["completion_tokens"] > 0 and completed["duration_ms"] >= 0
    stopped = run_lines(failed.id)[-1]
    assert stopped["status"] == "failed" and stopped["level"] == "warning"
    assert stopped["last_error"] == failed.last_error.model_dump()

    for secret in (SECRET_KEY, USER_TEXT, INSTRUCTIONS, REPLY):
        assert secret not in log
    # Library chatter (HTTP client request lines, alembic, SSE chunks) stays out of INFO.
    chatter = [
        line
        for line in lines
        if line["level"] == "info" and not line["logger"].startswith(("threadline", "uvicorn"))
    ]
    assert not chatter, chatter


@pytest.mark.skipif(databases.postgres_unavailable_reason() is not None, reason="needs PostgreSQL")
def test_readyz_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    env, url = server_env("postgres")
    assert url is not None
    server = ServerProcess(tmp_path, env).start()
    root = server.base_url.removesuffix("/v1")
    try:
        assert httpx.get(f"{root}/readyz").status_code == 200
        databases.drop_database(url)
        gone = httpx.get(f"{root}/readyz", timeout=10)
        assert gone.status_code == 503
        assert gone.json()["status"] == "unavailable" and gone.json()["reason"]
        assert httpx.get(f"{root}/healthz").status_code == 200  # the process itself is still up
    finally:
        server.stop()
        databases.drop_database(url)


def _samples(root: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The scraped metrics as {(sample name, sorted labels): value}, via prometheus-client's parser."""
    text = httpx.get(f"{root}/metrics", headers={"connection": "close"}).text
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.skipif(databases.postgres_unavailable_reason() is not None, reason="needs PostgreSQL")
def test_metrics_move_and_sum_over_two_api_processes(tmp_path: Path, fake: FakeModelServer) -> None:
    env, url = server_env("postgres", fake.base_url)
    assert url is not None
    # The CLI keeps a directory the operator chose; the test reads it to see which processes answered.
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    server = ServerProcess(tmp_path / "data", env, args=["--workers", "2"]).start()
    root = server.base_url.removesuffix("/v1")
    try:
        # Fresh connections spread requests over both processes; go on until both answered some.
        created = 0
        with OpenAI(
            base_url=server.base_url,
            api_key="k",
            max_retries=0,
            _strict_response_validation=True,
            # The SDK accepts an httpx client (its annotation names its own bundled HTTP library).
            http_client=cast(Any, httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))),
        ) as client:
            while created < 10 or len({p.name.rsplit("_", 1)[1] for p in multiproc.glob("counter_*.db")}) < 2:
                client.beta.threads.create()
                created += 1
                assert created < 500, "one API process answered every request"
            assistant = client.beta.assistants.create(model="fake-model")
            fake.script(Text("one two three"))
            run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id)
            assert run.status == "completed"
            file = client.files.create(
                file=("notes.txt", io.BytesIO(b"lighthouse keepers")), purpose="assistants"
            )
            store = client.vector_stores.create(file_ids=[file.id])
            deadline = time.monotonic() + 30
            while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
                assert time.monotonic() < deadline, "the file was never indexed"
                time.sleep(0.1)

        assert f"ingested {file.id} into {store.id}: 1 chunks" in server.log()
        # Every scrape, whichever process answers it, reports the sum over both.
        for _ in range(4):
            samples = _samples(root)
            threads = _value(
                samples, "threadline_http_requests_total", route="/v1/threads", method="POST", status="200"
            )
            assert threads == created
            assert _value(samples, "threadline_runs_total", status="completed", model="fake-model") == 1
            assert _value(samples, "threadline_tokens_total", model="fake-model", direction="out") > 0
            assert _value(samples, "threadline_ingestion_files_total", status="completed") == 1
            assert (
                _value(
                    samples,
                    "threadline_http_request_duration_seconds_count",
                    route="/v1/threads",
                    method="POST",
                )
                == created
            )
    finally:
        server.stop()
        databases.drop_database(url)


@pytest.mark.skipif(databases.postgres_unavailable_reason() is not None, reason="needs PostgreSQL")
def test_a_separate_worker_exposes_its_metrics_on_its_port(tmp_path: Path, fake: FakeModelServer) -> None:
    env, url = server_env("postgres", fake.base_url)
    assert url is not None
    metrics_port = free_port()
    api = ServerProcess(tmp_path / "api", env, ["--no-executor"])
    worker = WorkerProcess(tmp_path / "worker", {**env, "THREADLINE_METRICS_PORT": str(metrics_port)})
    try:
        api.start(timeout_s=60)
        worker.start()
        client = make_client(api.base_url)
        assistant = client.beta.assistants.create(model="fake-model")
        fake.script(Text("from the worker"))
        run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id)
        assert run.status == "completed"
        samples = _samples(f"http://127.0.0.1:{metrics_port}")
        assert _value(samples, "threadline_runs_total", status="completed", model="fake-model") == 1
        # The API process executed nothing: its own page has no completed run.
        api_samples = _samples(api.base_url.removesuffix("/v1"))
        assert _value(api_samples, "threadline_runs_total", status="completed", model="fake-model") == 0
    finally:
        worker.stop()
        api.stop()
        databases.drop_database(url)


def test_access_log_off_keeps_the_other_lines(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"THREADLINE_ACCESS_LOG": "false"}).start()
    try:
        make_client(server.base_url).beta.threads.create()
        log = server.log()
    finally:
        server.stop()
    assert "threadline.access" not in log
    assert "threadline.startup" in log  # INFO still on
