"""Streams compared with OpenAI's transcripts for the documented scenarios beyond a plain answer and a
function call (those are in test_streaming.py): file_search with citations (from create,
create_and_run and submit_tool_outputs), cancel and incomplete. Each checks the event order and
which events carry ``annotations``, ``usage``, ``incomplete_details`` and ``last_error``."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import httpx
import pytest
from openai import AssistantEventHandler, OpenAI

from tests.support.documents import pdf_document, wait_for_store
from tests.support.fake_model import Call, Error, FakeModelServer, Text, ToolCalls
from tests.support.server import ServerProcess
from tests.support.sse import HEADERS, collapsed_names, read_sse

MODEL = "fake-model"
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
QUERY = '{"query": "obsidian zebra tariffs"}'
RUN_START = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
FILE_SEARCH_STEP = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.run.step.completed",
]
ANSWER = [
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
# Events whose object carries usage: only a completed step and a terminal run have it non-null.
USAGE_EVENTS = {"thread.run.step.completed", "thread.run.completed", "thread.run.incomplete"}


def _search_assistant(client: OpenAI, tools: list[Any] | None = None) -> tuple[str, str]:
    file_id = client.files.create(
        file=("zebra.pdf", io.BytesIO(pdf_document("The obsidian zebra negotiates tariffs."))),
        purpose="assistants",
    ).id
    store = client.vector_stores.create(file_ids=[file_id])
    assert wait_for_store(client, store.id).file_counts.completed == 1
    assistant = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search"}, *(tools or [])],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    return assistant.id, file_id


def _cite_split(body: dict[str, Any]) -> Text:
    """Quote the first marker of the last file_search output, split across word-sized deltas as a
    real model streams it: ``【``, the index, ``†`` and the label each in their own delta."""
    tool_output = [m["content"] for m in body["messages"] if m["role"] == "tool"][-1]
    found = re.search(r"【(\d+)†([^】]+)】", tool_output)
    assert found, tool_output
    index, label = found.groups()
    return Text("", chunks=["The zebra ", "negotiates 【", index, "†", label[:3], label[3:], "】", " daily."])


def _assert_search_replayed(fake: FakeModelServer) -> None:
    """The round after the search shows the model its own call, arguments included."""
    calls = [
        call
        for m in fake.requests[-1]["messages"]
        if m["role"] == "assistant"
        for call in m.get("tool_calls") or []
    ]
    search = next(c for c in calls if c["function"]["name"] == "file_search")
    assert search["function"]["arguments"] == QUERY


def _assert_usage_only_where_due(events: list[tuple[str, Any]]) -> None:
    for name, data in events:
        if isinstance(data, dict) and "usage" in data:
            assert (data["usage"] is not None) == (name in USAGE_EVENTS), (name, data["usage"])


def _assert_streamed_citation(events: list[tuple[str, Any]], file_id: str) -> None:
    """The marker arrives whole in one delta, with its annotation, exactly once; the completed
    message carries the same annotation."""
    parts = [data["delta"]["content"][0] for name, data in events if name == "thread.message.delta"]
    assert all(p["index"] == 0 and p["type"] == "text" for p in parts)
    assert "annotations" in parts[0]["text"]
    assert all("annotations" not in p["text"] for p in parts[1:] if "【" not in p["text"]["value"])
    value = "".join(p["text"]["value"] for p in parts)
    streamed = [a for p in parts for a in p["text"].get("annotations", [])]
    assert len(streamed) == 1
    annotation = streamed[0]
    carrier = next(p["text"] for p in parts if p["text"].get("annotations"))
    assert carrier["value"] == annotation["text"] and re.fullmatch(r"【\d+†zebra\.pdf】", annotation["text"])
    assert annotation["index"] == 0 and annotation["type"] == "file_citation"
    assert annotation["file_citation"] == {"file_id": file_id}
    assert value[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
    completed = dict(events)["thread.message.completed"]["content"][0]["text"]
    assert completed["value"] == value
    assert completed["annotations"] == [{k: v for k, v in annotation.items() if k != "index"}]
    for name, data in events:
        if name in ("thread.message.created", "thread.message.in_progress"):
            assert data["content"] == []


def _assert_file_search_step(events: list[tuple[str, Any]]) -> None:
    delta = next(data for name, data in events if name == "thread.run.step.delta")
    call = delta["delta"]["step_details"]["tool_calls"][0]
    assert call["index"] == 0 and call["type"] == "file_search" and call["file_search"] == {}
    step = next(
        data
        for name, data in events
        if name == "thread.run.step.completed"
        and data["type"] == "tool_calls"
        and data["step_details"]["tool_calls"][0]["type"] == "file_search"
    )
    details = step["step_details"]["tool_calls"][0]
    assert details["id"] == call["id"] and details["type"] == "file_search"
    assert set(details["file_search"]) == {"ranking_options", "results"}  # nothing private leaks
    assert details["file_search"]["results"][0]["file_name"] == "zebra.pdf"
    assert "content" not in details["file_search"]["results"][0]


def test_file_search_stream_from_create(client: OpenAI, fake: FakeModelServer, server: ServerProcess) -> None:
    assistant_id, file_id = _search_assistant(client)
    fake.script(ToolCalls([Call("file_search", QUERY)]), _cite_split)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Who trades?"}])
    events = read_sse(
        server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant_id, "stream": True}
    )
    assert collapsed_names(events) == RUN_START + FILE_SEARCH_STEP + ANSWER
    _assert_file_search_step(events)
    _assert_streamed_citation(events, file_id)
    _assert_usage_only_where_due(events)
    _assert_search_replayed(fake)


def test_file_search_stream_from_create_and_run(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    assistant_id, file_id = _search_assistant(client)
    fake.script(ToolCalls([Call("file_search", QUERY)]), _cite_split)
    body = {
        "assistant_id": assistant_id,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "Who trades?"}]},
    }
    events = read_sse(server.base_url, "/threads/runs", body)
    assert collapsed_names(events) == ["thread.created", *RUN_START, *FILE_SEARCH_STEP, *ANSWER]
    _assert_file_search_step(events)
    _assert_streamed_citation(events, file_id)
    _assert_usage_only_where_due(events)


def test_file_search_stream_from_submit_tool_outputs(
    client: OpenAI, fake: FakeModelServer, server: ServerProcess
) -> None:
    assistant_id, file_id = _search_assistant(client, tools=[WEATHER])
    fake.script(
        ToolCalls([Call("get_weather", "{}", id="call_w")]),
        ToolCalls([Call("file_search", QUERY)]),
        _cite_split,
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather, then zebras?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert run.status == "requires_action"
    path = f"/threads/{thread.id}/runs/{run.id}/submit_tool_outputs"
    body = {"tool_outputs": [{"tool_call_id": "call_w", "output": "sunny"}], "stream": True}
    events = read_sse(server.base_url, path, body)
    assert collapsed_names(events) == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        *FILE_SEARCH_STEP,
        *ANSWER,
    ]
    _assert_file_search_step(events)
    _assert_streamed_citation(events, file_id)
    _assert_usage_only_where_due(events)
    _assert_search_replayed(fake)


class _Snapshots(AssistantEventHandler):
    """Records the annotations of openai-python's text snapshot after every delta."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Any]] = []

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.seen.append(list(snapshot.annotations or []))


def test_python_sdk_snapshots_carry_annotations_during_the_stream(
    client: OpenAI, fake: FakeModelServer
) -> None:
    assistant_id, file_id = _search_assistant(client)
    fake.script(ToolCalls([Call("file_search", QUERY)]), _cite_split)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Who trades?"}])
    handler = _Snapshots()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.seen[0] == [] and len(handler.seen[-1]) == 1
    annotation = handler.seen[-1][0]
    assert annotation.type == "file_citation" and annotation.file_citation.file_id == file_id
    final = handler.get_final_messages()[0].content[0].text  # type: ignore[union-attr]
    # Merged once, not twice: the indices are the marker's own.
    assert final.value[annotation.start_index : annotation.end_index] == annotation.text
    assert len(final.annotations) == 1 and final.annotations[0].text == annotation.text


def test_incomplete_stream(client: OpenAI, fake: FakeModelServer, server: ServerProcess) -> None:
    fake.script(Text("cut short here", finish_reason="length", usage=(5, 3)))
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    events = read_sse(
        server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True}
    )
    assert collapsed_names(events) == [
        *RUN_START,
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.incomplete",
        "done",
    ]
    by_name = dict(events)
    message, run = by_name["thread.message.incomplete"], by_name["thread.run.incomplete"]
    assert message["incomplete_details"] == {"reason": "max_tokens"} and message["incomplete_at"]
    assert message["content"][0]["text"] == {"value": "cut short here", "annotations": []}
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert run["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert all(
        data.get("incomplete_details") is None
        for name, data in events
        if name.startswith("thread.run.") and name != "thread.run.incomplete" and "step" not in name
    )
    assert "last_error" in run and run["last_error"] is None
    _assert_usage_only_where_due(events)


def test_cancel_stream(client: OpenAI, fake: FakeModelServer, server: ServerProcess) -> None:
    fake.script(Text("one two three four five six seven eight nine ten", token_delay_s=0.15))
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count"}])
    body = {"assistant_id": assistant.id, "stream": True}
    events: list[tuple[str, Any]] = []
    name = ""
    with httpx.stream(
        "POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, headers=HEADERS, timeout=30
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
                events.append((name, data if data == "[DONE]" else json.loads(data)))
                if name == "thread.message.delta" and sum(n == name for n, _ in events) == 1:
                    run_id = events[0][1]["id"]
                    client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
    names = collapsed_names(events)
    assert names[:8] == [*RUN_START, *ANSWER[:5]]
    # Tokens already on their way may still arrive after thread.run.cancelling.
    assert [n for n in names[8:] if n != "thread.message.delta"] == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    by_name = dict(events)
    assert by_name["thread.message.incomplete"]["incomplete_details"] == {"reason": "run_cancelled"}
    cancelled = by_name["thread.run.cancelled"]
    assert cancelled["cancelled_at"] is not None and cancelled["last_error"] is None
    assert by_name["thread.run.step.cancelled"]["cancelled_at"] is not None
    assert "error" not in by_name
    deadline = time.monotonic() + 5
    while client.beta.threads.runs.retrieve(cancelled["id"], thread_id=thread.id).status != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("entry", ["create", "create_and_run"])
def test_python_stream_helpers_end_a_failed_run_without_raising(
    client: OpenAI, fake: FakeModelServer, entry: str
) -> None:
    fake.script(Error(400, "provider said no"))
    assistant = client.beta.assistants.create(model=MODEL)
    if entry == "create":
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
        manager = client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id)
    else:
        manager = client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Hi"}]}
        )
    with manager as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "failed" and run.last_error is not None
    assert "provider said no" in run.last_error.message
