"""The SDK's poll helpers: their GETs (``X-Stainless-Poll-Helper: true``) are held until the run
reaches a status they stop at, so they return when the run settles, not one poll interval later."""

from __future__ import annotations

import time

from openai import OpenAI

from tests.support.fake_model import Call, FakeModelServer, Hang, Text, ToolCalls

POLL_HELPER = {"X-Stainless-Poll-Helper": "true"}
# Far longer than any run here takes: a poll helper that slept it even once would show.
LONG_POLL_INTERVAL_MS = 4000


def _thread(client: OpenAI) -> tuple[str, str]:
    assistant = client.beta.assistants.create(
        model="fake-model",
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    return assistant.id, thread.id


def test_create_and_poll_returns_when_the_run_completes(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("All done.", first_token_delay_s=0.3))
    assistant_id, thread_id = _thread(client)
    started = time.monotonic()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=LONG_POLL_INTERVAL_MS
    )
    elapsed = time.monotonic() - started
    assert run.status == "completed"
    assert elapsed < LONG_POLL_INTERVAL_MS / 1000 - 1, f"the helper slept a poll interval ({elapsed:.2f} s)"


def test_poll_stops_at_requires_action(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(ToolCalls([Call("lookup", "{}")], token_delay_s=0.1))
    assistant_id, thread_id = _thread(client)
    started = time.monotonic()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=LONG_POLL_INTERVAL_MS
    )
    assert run.status == "requires_action"
    assert time.monotonic() - started < LONG_POLL_INTERVAL_MS / 1000 - 1
    # Submitting and polling again is held the same way, to the end of the run.
    fake.script(Text("Found it."))
    assert run.required_action is not None
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call_id, "output": "42"}],
        poll_interval_ms=LONG_POLL_INTERVAL_MS,
    )
    assert done.status == "completed"


def test_plain_retrieve_is_not_held_and_a_held_one_is_bounded(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Hang(30))
    assistant_id, thread_id = _thread(client)
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    fake.wait_for_requests(1)
    started = time.monotonic()
    plain = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert plain.status == "in_progress" and time.monotonic() - started < 1
    started = time.monotonic()
    held = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id, extra_headers=POLL_HELPER)
    waited = time.monotonic() - started
    assert held.status == "in_progress"
    assert 4.5 <= waited < 8, f"held {waited:.2f} s"
    # A cancel wakes a held GET: cancelling -> cancelled is a status the helpers stop at.
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    started = time.monotonic()
    final = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id, extra_headers=POLL_HELPER)
    assert final.status == "cancelled" and time.monotonic() - started < 2
