"""Cancel, upstream faults, no provider, expiry and restart recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.errors import assert_api_error
from tests.support.fake_model import Call, Error, FakeModelServer, Hang, Malformed, Text, ToolCalls, Truncated
from tests.support.server import ServerProcess


def _run(client: OpenAI, model: str = "fake-model") -> tuple[str, str]:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    return assistant.id, thread.id


def test_cancel_in_progress_interrupts_the_model_call(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Hang(30))
    assistant_id, thread_id = _run(client)
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    fake.wait_for_requests(1)
    started = time.monotonic()
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling"
    fake.wait_for_closed_early(1, timeout=2)
    final = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
    assert time.monotonic() - started < 1.5
    assert final.status == "cancelled" and final.cancelled_at is not None and final.expires_at is None
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert_api_error(exc.value, 400, message="Cannot cancel run with status 'cancelled'.")


def test_cancel_mid_text_keeps_partial_message_incomplete(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("one two three four five six seven eight", token_delay_s=0.2))
    assistant_id, thread_id = _run(client)
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    deadline = time.monotonic() + 5
    while (
        not client.beta.threads.messages.list(thread_id, run_id=run.id).data and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    time.sleep(0.3)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert client.beta.threads.runs.poll(run.id, thread_id=thread_id).status == "cancelled"
    message = client.beta.threads.messages.list(thread_id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
    assert step.status == "cancelled"


def test_cancel_completed_run_is_refused(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("done"))
    assistant_id, thread_id = _run(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert_api_error(exc.value, 400, message="Cannot cancel run with status 'completed'.")


@pytest.mark.parametrize(
    ("replies", "code", "text", "attempts"),
    [
        ([Error(429, "slow down"), Error(429, "slow down")], "rate_limit_exceeded", "429", 2),
        ([Error(500, "boom"), Error(500, "boom")], "server_error", "500", 2),
        # Text was already streamed: nothing is retried, the partial message stays incomplete.
        ([Truncated("partial answer")], "server_error", "127.0.0.1", 1),
        ([Malformed()], "server_error", "malformed", 1),
    ],
)
def test_upstream_faults_fail_the_run(
    client: OpenAI, fake: FakeModelServer, replies: list[object], code: str, text: str, attempts: int
) -> None:
    fake.script(*replies)  # type: ignore[arg-type]
    assistant_id, thread_id = _run(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "failed" and run.failed_at is not None and run.last_error is not None
    assert run.last_error.code == code and text in run.last_error.message
    assert len(fake.requests) == attempts  # at most one retry (THREADLINE_UPSTREAM_MAX_RETRIES=1 in tests)
    for message in client.beta.threads.messages.list(thread_id, run_id=run.id).data:
        assert message.status == "incomplete" and message.incomplete_details is not None
        assert message.incomplete_details.reason == "run_failed"
    client.beta.threads.messages.create(thread_id, role="user", content="thread is unlocked again")


def test_upstream_retry_recovers(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Error(500), Text("second time lucky"))
    assistant_id, thread_id = _run(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "completed"


@pytest.fixture()
def isolated_server(backend: str, tmp_path: Path, fake: FakeModelServer) -> Iterator[ServerProcess]:
    """A dedicated server: 2 s run expiry, no default upstream, a models file routing "fake-*"."""
    models = tmp_path / "models.toml"
    models.write_text(
        f'[providers.fake]\nbase_url = "{fake.base_url}"\n[[models]]\nprefix = "fake-"\nprovider = "fake"\n'
    )
    env, pg_url = server_env(backend)
    env.update({"THREADLINE_RUN_EXPIRY_S": "2", "THREADLINE_MODELS_FILE": str(models)})
    proc = ServerProcess(tmp_path / "data", env).start()
    try:
        yield proc
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)


def test_no_provider_fails_at_once_and_expiry(isolated_server: ServerProcess, fake: FakeModelServer) -> None:
    with make_client(isolated_server.base_url) as client:
        assistant_id, thread_id = _run(client, model="unrouted-model")
        run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
        assert run.status == "failed" and run.last_error is not None
        assert "No model provider is configured for model 'unrouted-model'" in run.last_error.message
        assert fake.requests == []

        fake.script(ToolCalls([Call("f", "{}", id="call_x")]))
        tool = {"type": "function", "function": {"name": "f"}}
        assistant = client.beta.assistants.create(model="fake-model", tools=[tool])  # type: ignore[list-item]
        run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
        assert run.status == "requires_action" and run.expires_at == run.created_at + 2
        time.sleep(2.5)
        expired = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
        assert expired.status == "expired" and expired.expires_at is None
        step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]
        assert step.status == "expired" and step.expired_at is not None
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.runs.submit_tool_outputs(
                run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "late"}]
            )
        assert_api_error(exc.value, 400, message='Runs in status "expired" do not accept tool outputs.')


def test_restart_after_kill_does_not_leave_runs_stuck(
    backend: str, tmp_path: Path, fake: FakeModelServer
) -> None:
    env, pg_url = server_env(backend, fake.base_url)
    proc = ServerProcess(tmp_path / "data", env).start()
    try:
        with make_client(proc.base_url) as client:
            fake.script(Hang(30))
            assistant_id, thread_id = _run(client)
            run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
            fake.wait_for_requests(1)
            proc.kill()
            proc.start()
            recovered = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
            assert recovered.status == "failed" and recovered.last_error is not None
            assert recovered.last_error.message == "The run was interrupted by a server restart."
            fake.script(Text("fresh"))
            again = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
            assert again.status == "completed"
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)
