"""SSE streams: event names, order and payload shapes compared with the reference transcripts (the
spec's x-oaiMeta examples, see docs/compatibility.md), and the SDK's stream helpers unchanged."""

from __future__ import annotations

from typing import Any

import httpx
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.assistant_stream_event import ErrorEvent
from openai.types.beta.threads import Run

from tests.support.fake_model import Call, Error, FakeModelServer, Text, ToolCalls, Truncated
from tests.support.server import ServerProcess
from tests.support.sse import HEADERS, collapsed_names, read_sse

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}

# Reference transcripts, consecutive deltas collapsed to one name.
TEXT_RUN = [
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
    "done",
]
FUNCTION_RUN = [
    "thread.created",
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.run.requires_action",
    "done",
]
SUBMIT = ["thread.run.step.completed", "thread.run.queued", *TEXT_RUN[2:]]


def _sse(server: ServerProcess, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    return read_sse(server.base_url, path, body)


_names = collapsed_names


def test_text_run_stream_matches_reference(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    # Tokens further apart than the coalescing window (20 ms), so that each is its own delta.
    fake.script(Text("Hello there friend", usage=(9, 3), token_delay_s=0.06))
    assistant = client.beta.assistants.create(model="fake-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    events = _sse(server, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert _names(events) == TEXT_RUN
    assert events[-1] == ("done", "[DONE]")
    deltas = [data for name, data in events if name == "thread.message.delta"]
    assert len(deltas) == 3
    assert deltas[0]["delta"]["content"] == [
        {"index": 0, "type": "text", "text": {"value": "Hello ", "annotations": []}}
    ]
    assert deltas[1]["delta"]["content"] == [{"index": 0, "type": "text", "text": {"value": "there "}}]
    by_name = dict(events)
    created = by_name["thread.message.created"]
    assert created["status"] == "in_progress" and created["content"] == []
    step = by_name["thread.run.step.created"]
    assert step["step_details"]["message_creation"]["message_id"] == created["id"] and step["usage"] is None
    assert by_name["thread.run.step.completed"]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
    }
    completed = by_name["thread.run.completed"]
    assert completed["expires_at"] is None and completed["usage"]["total_tokens"] == 12
    assert (
        by_name["thread.run.created"]["status"] == "queued" and by_name["thread.run.created"]["usage"] is None
    )
    assert by_name["thread.message.completed"]["content"][0]["text"]["value"] == "Hello there friend"


def test_function_stream_then_submit_stream_match_reference(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    fake.script(ToolCalls([Call("get_weather", '{"location": "San Francisco"}', id="call_1")]), Text("Sunny"))
    assistant = client.beta.assistants.create(model="fake-model", tools=[WEATHER])  # type: ignore[list-item]
    body = {
        "assistant_id": assistant.id,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "w?"}]},
    }
    events = _sse(server, "/threads/runs", body)
    assert _names(events) == FUNCTION_RUN
    by_name = dict(events)
    assert by_name["thread.run.step.created"]["step_details"] == {"type": "tool_calls", "tool_calls": []}
    deltas = [
        data["delta"]["step_details"]["tool_calls"][0]
        for name, data in events
        if name == "thread.run.step.delta"
    ]
    assert deltas[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "", "output": None},
    }
    assert all(
        set(d) == {"index", "type", "function"} and set(d["function"]) == {"arguments"} for d in deltas[1:]
    )
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"location": "San Francisco"}'
    run = by_name["thread.run.requires_action"]
    assert run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"] == "call_1"
    path = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"
    submitted = _sse(
        server, path, {"tool_outputs": [{"tool_call_id": "call_1", "output": "70F"}], "stream": True}
    )
    assert _names(submitted) == SUBMIT
    tool_step = submitted[0][1]
    assert tool_step["step_details"]["tool_calls"][0]["function"]["output"] == "70F"
    assert tool_step["status"] == "completed"


class _Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.calls: list[str] = []

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.calls.append(tool_call.function.arguments)


def test_sdk_stream_helpers(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(
        Text("Streaming works"),
        ToolCalls([Call("get_weather", '{"location": "Oslo"}', id="call_o")]),
        Text("Cold"),
    )
    assistant = client.beta.assistants.create(model="fake-model", tools=[WEATHER])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    handler = _Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.text == "Streaming works"
    assert handler.get_final_run().status == "completed"
    assert handler.get_final_messages()[0].content[0].text.value == "Streaming works"  # type: ignore[union-attr]

    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "weather?"}]}
    ) as stream:
        stream.until_done()
        run: Run = stream.get_final_run()
    assert run.status == "requires_action"
    recorder = _Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": "call_o", "output": "-5C"}],
        event_handler=recorder,
    ) as stream:
        stream.until_done()
    assert recorder.text == "Cold" and recorder.get_final_run().status == "completed"


def test_provider_failure_ends_failed_then_done_without_error_event(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    # openai-node throws on any `event: error`: a failed run's stream is thread.run.failed (with
    # last_error), then done, as OpenAI's own.
    fake.script(Error(400, "bad request upstream"))
    assistant = client.beta.assistants.create(model="fake-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    events = _sse(server, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    # The message (opened while the model is asked, for time to first token) and its step end too.
    assert _names(events)[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    assert "error" not in dict(events)
    failed = dict(events)["thread.run.failed"]
    assert dict(events)["thread.run.step.failed"]["last_error"] == failed["last_error"]
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert failed["last_error"]["code"] == "server_error"
    assert "bad request upstream" in failed["last_error"]["message"]
    # Both SDK paths end with the failed run, no ErrorEvent and no exception.
    fake.script(Error(400, "again"))
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        seen = list(stream)
        final = stream.get_final_run()
    assert final.status == "failed" and final.last_error and "again" in final.last_error.message
    assert [e.event for e in seen][-1] == "thread.run.failed"
    assert not any(isinstance(e, ErrorEvent) for e in seen)
    fake.script(Error(400, "third"))
    raw = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    assert raw[-1].event == "thread.run.failed" and not any(isinstance(e, ErrorEvent) for e in raw)


def test_failure_with_an_open_step_fails_the_step_then_the_run(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    fake.script(Truncated("Partial answer that never"))
    assistant = client.beta.assistants.create(model="fake-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    events = _sse(server, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert _names(events)[-5:] == [
        "thread.message.delta",
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    by_name = dict(events)
    step, run = by_name["thread.run.step.failed"], by_name["thread.run.failed"]
    assert step["last_error"] == run["last_error"] and run["last_error"]["code"] == "server_error"
    assert by_name["thread.message.incomplete"]["incomplete_details"] == {"reason": "run_failed"}
    assert "error" not in by_name


def test_client_disconnect_does_not_stop_the_run(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    fake.script(Text("a b c d e f", token_delay_s=0.05))
    assistant = client.beta.assistants.create(model="fake-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    body = {"assistant_id": assistant.id, "stream": True}
    with httpx.stream(
        "POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, headers=HEADERS
    ) as response:
        first = next(response.iter_lines())
        assert first == "event: thread.run.created"
    runs = client.beta.threads.runs.list(thread.id).data
    final = client.beta.threads.runs.poll(runs[0].id, thread_id=thread.id)
    assert final.status == "completed"
