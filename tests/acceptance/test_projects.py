"""Projects and keys as an operator meets them: the CLI creates and revokes keys while servers run
(every process obeys within a second), keys are never kept or logged in clear, per-project limits
answer 429 (runs, with OpenAI's rate-limit headers, which the SDK honours) or 400 (storage), and
usage per project and model equals what the model reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.cli import cli
from tests.support.fake_model import FakeModelServer, Hang, Text
from tests.support.server import ServerProcess


class Deployment:
    def __init__(self, backend: str, tmp_path: Path, fake: FakeModelServer, extra: dict[str, str]) -> None:
        env, self.pg_url = server_env(backend, fake.base_url)
        self.env = {**env, "THREADLINE_DATA_DIR": str(tmp_path), **extra}
        self.tmp_path = tmp_path
        self.servers: list[ServerProcess] = []

    def start(self, args: list[str] | None = None) -> ServerProcess:
        server = ServerProcess(self.tmp_path, self.env, args).start()
        self.servers.append(server)
        return server

    def url(self) -> str:
        return self.pg_url or f"sqlite:///{self.tmp_path / 'threadline.db'}"

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        if self.pg_url:
            databases.drop_database(self.pg_url)


@pytest.fixture()
def deployment(
    backend: str, tmp_path: Path, fake: FakeModelServer, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    extra: dict[str, str] = getattr(request, "param", {})
    made = Deployment(backend, tmp_path, fake, extra)
    try:
        yield made
    finally:
        made.close()


def _status(server: ServerProcess, key: str | None) -> int:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{server.base_url}/assistants", headers=headers).status_code


def _eventually(check: Any, within_s: float) -> float:
    """Seconds until ``check()`` holds; fails after ``within_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_keys_from_the_cli_take_effect_in_every_process_within_a_second(deployment: Deployment) -> None:
    first = deployment.start()
    # With no key anywhere, any key (or none) is accepted for the default project.
    assert _status(first, None) == 200
    assert _status(first, "anything") == 200

    project_id = cli(deployment.env, "projects", "create", "team-a")[-1]
    assert project_id.startswith("proj_")
    key = cli(deployment.env, "keys", "create", "--project", "team-a", "--name", "ci")[-1]
    assert key.startswith("sk-proj-") and len(key) > 40
    second = deployment.start()  # another process on the same database
    for server in (first, second):
        _eventually(lambda server=server: _status(server, "anything") == 401, within_s=1.5)
        assert _status(server, key) == 200
        body = httpx.get(f"{server.base_url}/assistants").json()
        assert body["error"]["code"] == "invalid_api_key"

    listed = cli(deployment.env, "keys", "list")
    assert len(listed) == 1
    key_id, listed_project, name, redacted = listed[0].split("\t")
    assert (listed_project, name) == (project_id, "ci")
    assert key not in listed[0] and redacted.startswith("sk-proj-") and "****" in redacted

    cli(deployment.env, "keys", "revoke", key_id)
    for server in (first, second):
        took = _eventually(lambda server=server: _status(server, key) == 401, within_s=1.5)
        assert took <= 1.2
    assert cli(deployment.env, "keys", "list") == []


def test_keys_are_neither_stored_nor_logged_in_clear(deployment: Deployment) -> None:
    server = deployment.start()
    cli(deployment.env, "projects", "create", "team-a")
    key = cli(deployment.env, "keys", "create", "--project", "team-a")[-1]
    admin = cli(deployment.env, "admin", "create-key")[-1]
    assert admin.startswith("sk-admin-")
    _eventually(lambda: _status(server, key) == 200 and _status(server, "wrong") == 401, within_s=1.5)
    with make_client(server.base_url, key) as client:
        client.beta.threads.create(metadata={"team": "a"})

    engine = sa.create_engine(deployment.url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    finally:
        engine.dispose()
    assert len(rows) == 2
    for row in rows:
        text = " ".join(str(value) for value in row)
        assert key not in text and admin not in text
        assert key[len("sk-proj-") :][:12] not in text and admin[len("sk-admin-") :][:12] not in text
    server.stop()
    logs = server.log()
    assert "key_" in logs  # the access line names the key by its id
    assert key not in logs and admin not in logs and "wrong" not in logs


def _sdk_key(deployment: Deployment, project: str) -> str:
    cli(deployment.env, "projects", "create", project)
    return cli(deployment.env, "keys", "create", "--project", project)[-1]


@pytest.mark.parametrize("deployment", [{"THREADLINE_PROJECT_MAX_ACTIVE_RUNS": "1"}], indirect=True)
def test_a_project_over_its_run_limit_gets_429_with_rate_limit_headers(
    deployment: Deployment, fake: FakeModelServer
) -> None:
    server = deployment.start()
    key_a, key_b = _sdk_key(deployment, "a"), _sdk_key(deployment, "b")
    _eventually(lambda: _status(server, key_a) == 200, within_s=1.5)
    fake.script(Hang(2.0, Text("slow")), Text("b's"), Text("second"))
    with make_client(server.base_url, key_a) as a, make_client(server.base_url, key_b) as b:
        assistant = a.beta.assistants.create(model="gpt-4o")
        first = a.beta.threads.create_and_run(assistant_id=assistant.id)
        fake.wait_for_requests(1)
        other = a.beta.threads.create()
        refused = httpx.post(
            f"{server.base_url}/threads/{other.id}/runs",
            json={"assistant_id": assistant.id},
            headers={"Authorization": f"Bearer {key_a}", "OpenAI-Beta": "assistants=v2"},
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-ratelimit-limit-requests"] == "1"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"] == "1s"
        # Nothing was written for the refused run; the other project is not limited by this one.
        assert a.beta.threads.runs.list(other.id).data == []
        b_assistant = b.beta.assistants.create(model="gpt-4o")
        b.beta.threads.create_and_run_poll(assistant_id=b_assistant.id)
        # The SDK honours retry-after: it waits and retries until the first run is done.
        with openai.OpenAI(base_url=server.base_url, api_key=key_a, max_retries=5) as patient:
            start = time.monotonic()
            second = patient.beta.threads.runs.create(other.id, assistant_id=assistant.id)
            assert time.monotonic() - start >= 0.9
        assert a.beta.threads.runs.retrieve(first.id, thread_id=first.thread_id).status == "completed"
        assert second.status == "queued"


@pytest.mark.parametrize("deployment", [{"THREADLINE_PROJECT_STORAGE_BYTES": "1000"}], indirect=True)
def test_a_project_over_its_storage_quota_gets_a_400_and_keeps_nothing(deployment: Deployment) -> None:
    server = deployment.start()
    key_a, key_b = _sdk_key(deployment, "a"), _sdk_key(deployment, "b")
    _eventually(lambda: _status(server, key_a) == 200, within_s=1.5)
    with make_client(server.base_url, key_a) as a, make_client(server.base_url, key_b) as b:
        kept = a.files.create(file=("one.txt", b"x" * 600), purpose="assistants")
        with pytest.raises(openai.BadRequestError) as refused:
            a.files.create(file=("two.txt", b"y" * 600), purpose="assistants")
        error: Any = refused.value.body
        assert error["code"] == "storage_limit_exceeded"
        assert [f.id for f in a.files.list().data] == [kept.id]
        assert b.files.create(file=("b.txt", b"z" * 600), purpose="assistants").bytes == 600
        a.files.delete(kept.id)
        assert a.files.create(file=("two.txt", b"y" * 600), purpose="assistants").bytes == 600


def test_usage_per_project_and_model_equals_what_the_model_reported(
    deployment: Deployment, fake: FakeModelServer
) -> None:
    server = deployment.start()
    key_a, key_b = _sdk_key(deployment, "a"), _sdk_key(deployment, "b")
    admin = cli(deployment.env, "admin", "create-key")[-1]
    _eventually(lambda: _status(server, key_a) == 200, within_s=1.5)
    fake.script(Text("one", usage=(11, 3)), Text("two", usage=(20, 5)), Text("three", usage=(7, 2)))
    with make_client(server.base_url, key_a) as a, make_client(server.base_url, key_b) as b:
        for client, model in ((a, "gpt-4o"), (a, "gpt-4o"), (b, "gpt-4o-mini")):
            assistant = client.beta.assistants.create(model=model)
            run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id)
            assert run.status == "completed"
    project_a = cli(deployment.env, "projects", "list")
    ids = {line.split("\t")[2]: line.split("\t")[0] for line in project_a}
    start = int(time.time()) - 3600
    response = httpx.get(
        f"http://127.0.0.1:{server.port}/v1/organization/usage/completions",
        params=[("start_time", str(start)), ("group_by", "project_id"), ("group_by", "model")],
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["object"] == "page" and page["has_more"] is False and page["next_page"] is None
    results = [result for bucket in page["data"] for result in bucket["results"]]
    got = {
        (r["project_id"], r["model"]): (r["input_tokens"], r["output_tokens"], r["num_model_requests"])
        for r in results
    }
    assert got == {(ids["a"], "gpt-4o"): (31, 8, 2), (ids["b"], "gpt-4o-mini"): (7, 2, 1)}
    assert all(r["object"] == "organization.usage.completions.result" for r in results)
    # A project key may not read the organisation's usage.
    denied = httpx.get(
        f"http://127.0.0.1:{server.port}/v1/organization/usage/completions",
        params={"start_time": str(start)},
        headers={"Authorization": f"Bearer {key_a}"},
    )
    assert denied.status_code == 403
    lines = cli(deployment.env, "usage", "--days", "1")
    rows = {tuple(line.split("\t")[1:3]): line.split("\t")[3:] for line in lines[1:]}
    assert rows == {
        (ids["a"], "gpt-4o"): ["31", "8", "2", "2"],
        (ids["b"], "gpt-4o-mini"): ["7", "2", "1", "1"],
    }


RPM = 30


@pytest.mark.parametrize("deployment", [{"THREADLINE_PROJECT_REQUESTS_PER_MINUTE": str(RPM)}], indirect=True)
def test_requests_per_minute_are_counted_across_processes(deployment: Deployment) -> None:
    server = deployment.start(["--workers", "2"])
    key_a, key_b = _sdk_key(deployment, "a"), _sdk_key(deployment, "b")
    _eventually(lambda: _status(server, "wrong") == 401, within_s=1.5)
    second = time.time() % 60
    if second > 52:  # the limit counts per clock minute: start a fresh one
        time.sleep(60.5 - second)
    allowed, refused = 0, None
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key_a}"}) as a:
        for _ in range(3 * RPM):
            response = a.get("/assistants")
            if response.status_code == 429:
                refused = response
                break
            assert response.status_code == 200
            allowed += 1
            time.sleep(0.02)  # let the two processes' counts meet (they flush every 0.25 s)
    assert refused is not None, "never limited"
    # Two processes share one count: far fewer than 2 x RPM get through.
    assert RPM <= allowed <= RPM + 10
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-requests"] == str(RPM)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-reset-requests"] == refused.headers["retry-after"] + "s"
    assert _status(server, key_b) == 200  # another project has its own count
