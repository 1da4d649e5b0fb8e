"""Projects are kept apart: another project's object is indistinguishable from a missing one.

Project A creates one of everything (assistant, files, vector store, file batch, thread with
tool_resources, message with an attachment, a completed run with steps) through the SDK; project B
then walks every operation of the Assistants API (and the ``GET /v1/threads`` extension) on A's
ids with raw httpx, and each answer must equal, status and body, the answer to the same call with
a made-up id of the same kind that does not exist (the made-up id put back to A's in the body).

``OPERATIONS`` names each operation once. A path's ids are tried from the outside in: every id A's,
then B's own parent with A's child, and so on (so A's message under B's thread is missing too);
ids in a body are always A's. Lists are also walked with ``after``/``before`` set to A's ids: the
cursors are keyset positions (ids sort by creation), so the made-up id keeps the sortable part of
A's id and only its random tail differs. ``REFERENCES`` then names A's files, stores and assistant
inside B's bodies (tool_resources, attachments, image content, batches) and the streaming forms.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from openai import OpenAI

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.cli import cli
from tests.support.documents import text_document, wait_for_store
from tests.support.fake_model import Call, FakeModelServer, Text, ToolCalls
from tests.support.server import ServerProcess

MODEL: Final = "fake-model"
A_PHRASE: Final = "The vermilion walrus guards treasury vault 7391."
A_PHRASE_2: Final = "Saffron lanterns glow above the quarry at midnight."
B_PHRASE: Final = "Cerulean otters repair fishing nets on Thursdays."
INCLUDE_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"
PREFIXES: Final = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "file": "file-",
    "file2": "file-",
    "vector_store": "vs_",
    "batch": "vsfb_",
}
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")


@dataclass(frozen=True)
class Op:
    """One HTTP operation. ``{name}`` in the path or body is an id: A's (or a made-up one) when
    probed, B's own otherwise; ``{own_name}`` is always B's. For GET, ``body`` is the query."""

    operation_id: str
    method: str
    path: str
    body: Any = None
    cursor: str | None = None  # lists: the kind of their items, whose A id is tried as a cursor
    multipart: bool = False


# Every operation of the Assistants reference (operationId, method, path) and the thread list.
OPERATIONS: Final[list[Op]] = [
    Op("listAssistants", "GET", "/assistants", cursor="assistant"),
    Op(
        "createAssistant",
        "POST",
        "/assistants",
        {
            "model": MODEL,
            "tools": [{"type": "code_interpreter"}],
            "tool_resources": {"code_interpreter": {"file_ids": ["{file}"]}},
        },
    ),
    Op("getAssistant", "GET", "/assistants/{assistant}"),
    Op("modifyAssistant", "POST", "/assistants/{assistant}", {"metadata": {"by": "b"}}),
    Op("deleteAssistant", "DELETE", "/assistants/{assistant}"),
    Op("listFiles", "GET", "/files", cursor="file"),
    Op("createFile", "POST", "/files", multipart=True),  # B's upload is missing for A
    Op("deleteFile", "DELETE", "/files/{file}"),
    Op("retrieveFile", "GET", "/files/{file}"),
    Op("downloadFile", "GET", "/files/{file}/content"),
    Op(
        "createThread",
        "POST",
        "/threads",
        {"tool_resources": {"file_search": {"vector_store_ids": ["{vector_store}"]}}},
    ),
    Op("createThreadAndRun", "POST", "/threads/runs", {"assistant_id": "{assistant}"}),
    Op("getThread", "GET", "/threads/{thread}"),
    Op("modifyThread", "POST", "/threads/{thread}", {"metadata": {"by": "b"}}),
    Op("deleteThread", "DELETE", "/threads/{thread}"),
    Op("listMessages", "GET", "/threads/{thread}/messages", cursor="message"),
    Op("createMessage", "POST", "/threads/{thread}/messages", {"role": "user", "content": "hello"}),
    Op("getMessage", "GET", "/threads/{thread}/messages/{message}"),
    Op("modifyMessage", "POST", "/threads/{thread}/messages/{message}", {"metadata": {"by": "b"}}),
    Op("deleteMessage", "DELETE", "/threads/{thread}/messages/{message}"),
    Op("listRuns", "GET", "/threads/{thread}/runs", cursor="run"),
    Op("createRun", "POST", "/threads/{thread}/runs", {"assistant_id": "{assistant}"}),
    Op("getRun", "GET", "/threads/{thread}/runs/{run}"),
    Op("modifyRun", "POST", "/threads/{thread}/runs/{run}", {"metadata": {"by": "b"}}),
    Op("cancelRun", "POST", "/threads/{thread}/runs/{run}/cancel"),
    Op("listRunSteps", "GET", "/threads/{thread}/runs/{run}/steps", cursor="step"),
    Op("getRunStep", "GET", "/threads/{thread}/runs/{run}/steps/{step}"),
    Op(
        "submitToolOuputsToRun",
        "POST",
        "/threads/{thread}/runs/{run}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": "call_b", "output": "b"}]},
    ),
    Op("listVectorStores", "GET", "/vector_stores", cursor="vector_store"),
    Op("createVectorStore", "POST", "/vector_stores", {"file_ids": ["{file}"]}),
    Op("getVectorStore", "GET", "/vector_stores/{vector_store}"),
    Op("modifyVectorStore", "POST", "/vector_stores/{vector_store}", {"metadata": {"by": "b"}}),
    Op("deleteVectorStore", "DELETE", "/vector_stores/{vector_store}"),
    Op(
        "createVectorStoreFileBatch",
        "POST",
        "/vector_stores/{vector_store}/file_batches",
        {"file_ids": ["{file}"]},
    ),
    Op("getVectorStoreFileBatch", "GET", "/vector_stores/{vector_store}/file_batches/{batch}"),
    Op("cancelVectorStoreFileBatch", "POST", "/vector_stores/{vector_store}/file_batches/{batch}/cancel"),
    Op(
        "listFilesInVectorStoreBatch",
        "GET",
        "/vector_stores/{vector_store}/file_batches/{batch}/files",
        cursor="file2",
    ),
    Op("listVectorStoreFiles", "GET", "/vector_stores/{vector_store}/files", cursor="file"),
    Op("createVectorStoreFile", "POST", "/vector_stores/{vector_store}/files", {"file_id": "{file}"}),
    Op("getVectorStoreFile", "GET", "/vector_stores/{vector_store}/files/{file}"),
    Op("deleteVectorStoreFile", "DELETE", "/vector_stores/{vector_store}/files/{file}"),
    Op(
        "updateVectorStoreFileAttributes",
        "POST",
        "/vector_stores/{vector_store}/files/{file}",
        {"attributes": {"by": "b"}},
    ),
    Op("retrieveVectorStoreFileContent", "GET", "/vector_stores/{vector_store}/files/{file}/content"),
    Op("searchVectorStore", "POST", "/vector_stores/{vector_store}/search", {"query": A_PHRASE}),
    # Threadline's extension: OpenAI never offered a thread list.
    Op("listThreads", "GET", "/threads", cursor="thread"),
]

_ATTACH = [{"file_id": "{file}", "tools": [{"type": "file_search"}]}]
_ATTACH_CODE = [{"file_id": "{file}", "tools": [{"type": "code_interpreter"}]}]
_IMAGE = [{"type": "image_file", "image_file": {"file_id": "{file}"}}]
_STREAM_RUN = {"assistant_id": "{own_assistant}", "stream": True}

# A's ids inside B's bodies, on B's own objects, and the streaming forms of the run operations.
REFERENCES: Final[list[Op]] = [
    Op(
        "createAssistant",
        "POST",
        "/assistants",
        {
            "model": MODEL,
            "tools": [{"type": "file_search"}],
            "tool_resources": {"file_search": {"vector_store_ids": ["{vector_store}"]}},
        },
    ),
    Op(
        "createAssistant",
        "POST",
        "/assistants",
        {
            "model": MODEL,
            "tools": [{"type": "file_search"}],
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": ["{file}"]}]}},
        },
    ),
    Op(
        "modifyAssistant",
        "POST",
        "/assistants/{own_assistant}",
        {"tool_resources": {"code_interpreter": {"file_ids": ["{file}"]}}},
    ),
    Op(
        "modifyAssistant",
        "POST",
        "/assistants/{own_assistant}",
        {"tool_resources": {"file_search": {"vector_store_ids": ["{vector_store}"]}}},
    ),
    Op(
        "createThread", "POST", "/threads", {"tool_resources": {"code_interpreter": {"file_ids": ["{file}"]}}}
    ),
    Op(
        "createThread",
        "POST",
        "/threads",
        {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": ["{file}"]}]}}},
    ),
    Op(
        "createThread",
        "POST",
        "/threads",
        {"messages": [{"role": "user", "content": "x", "attachments": _ATTACH}]},
    ),
    Op("createThread", "POST", "/threads", {"messages": [{"role": "user", "content": _IMAGE}]}),
    Op(
        "modifyThread",
        "POST",
        "/threads/{own_thread}",
        {"tool_resources": {"file_search": {"vector_store_ids": ["{vector_store}"]}}},
    ),
    Op(
        "modifyThread",
        "POST",
        "/threads/{own_thread}",
        {"tool_resources": {"code_interpreter": {"file_ids": ["{file}"]}}},
    ),
    Op(
        "createMessage",
        "POST",
        "/threads/{own_thread}/messages",
        {"role": "user", "content": "x", "attachments": _ATTACH},
    ),
    Op(
        "createMessage",
        "POST",
        "/threads/{own_thread}/messages",
        {"role": "user", "content": "x", "attachments": _ATTACH_CODE},
    ),
    Op("createMessage", "POST", "/threads/{own_thread}/messages", {"role": "user", "content": _IMAGE}),
    Op(
        "createRun",
        "POST",
        "/threads/{own_thread}/runs",
        {
            "assistant_id": "{own_assistant}",
            "additional_messages": [{"role": "user", "content": "x", "attachments": _ATTACH}],
        },
    ),
    Op("createRun", "POST", "/threads/{thread}/runs", _STREAM_RUN),
    Op("createRun", "POST", "/threads/{own_thread}/runs", {"assistant_id": "{assistant}", "stream": True}),
    Op("createThreadAndRun", "POST", "/threads/runs", {"assistant_id": "{assistant}", "stream": True}),
    Op(
        "createThreadAndRun",
        "POST",
        "/threads/runs",
        {
            "assistant_id": "{own_assistant}",
            "thread": {"tool_resources": {"file_search": {"vector_store_ids": ["{vector_store}"]}}},
        },
    ),
    Op(
        "createThreadAndRun",
        "POST",
        "/threads/runs",
        {
            "assistant_id": "{own_assistant}",
            "tool_resources": {"code_interpreter": {"file_ids": ["{file}"]}},
        },
    ),
    Op(
        "createThreadAndRun",
        "POST",
        "/threads/runs",
        {
            "assistant_id": "{own_assistant}",
            "thread": {"messages": [{"role": "user", "content": "x", "attachments": _ATTACH}]},
        },
    ),
    Op(
        "submitToolOuputsToRun",
        "POST",
        "/threads/{thread}/runs/{run}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": "call_b", "output": "b"}], "stream": True},
    ),
    Op(
        "createVectorStoreFileBatch",
        "POST",
        "/vector_stores/{own_vector_store}/file_batches",
        {"files": [{"file_id": "{file}"}]},
    ),
    Op("getRunStep", "GET", "/threads/{thread}/runs/{run}/steps/{step}", {"include[]": INCLUDE_CONTENT}),
    Op("listRunSteps", "GET", "/threads/{thread}/runs/{run}/steps", {"include[]": INCLUDE_CONTENT}),
    Op("listFiles", "GET", "/files", {"purpose": "assistants", "after": "{file}"}),
]

# The operationIds of the reference spec, by (method, path) — 44, and the thread-list extension.
REFERENCE_SPEC: Final = {
    ("GET", "/assistants"): "listAssistants",
    ("POST", "/assistants"): "createAssistant",
    ("GET", "/assistants/{assistant_id}"): "getAssistant",
    ("POST", "/assistants/{assistant_id}"): "modifyAssistant",
    ("DELETE", "/assistants/{assistant_id}"): "deleteAssistant",
    ("GET", "/files"): "listFiles",
    ("POST", "/files"): "createFile",
    ("DELETE", "/files/{file_id}"): "deleteFile",
    ("GET", "/files/{file_id}"): "retrieveFile",
    ("GET", "/files/{file_id}/content"): "downloadFile",
    ("POST", "/threads"): "createThread",
    ("POST", "/threads/runs"): "createThreadAndRun",
    ("GET", "/threads/{thread_id}"): "getThread",
    ("POST", "/threads/{thread_id}"): "modifyThread",
    ("DELETE", "/threads/{thread_id}"): "deleteThread",
    ("GET", "/threads/{thread_id}/messages"): "listMessages",
    ("POST", "/threads/{thread_id}/messages"): "createMessage",
    ("GET", "/threads/{thread_id}/messages/{message_id}"): "getMessage",
    ("POST", "/threads/{thread_id}/messages/{message_id}"): "modifyMessage",
    ("DELETE", "/threads/{thread_id}/messages/{message_id}"): "deleteMessage",
    ("GET", "/threads/{thread_id}/runs"): "listRuns",
    ("POST", "/threads/{thread_id}/runs"): "createRun",
    ("GET", "/threads/{thread_id}/runs/{run_id}"): "getRun",
    ("POST", "/threads/{thread_id}/runs/{run_id}"): "modifyRun",
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): "cancelRun",
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps"): "listRunSteps",
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}"): "getRunStep",
    ("POST", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"): "submitToolOuputsToRun",
    ("GET", "/vector_stores"): "listVectorStores",
    ("POST", "/vector_stores"): "createVectorStore",
    ("GET", "/vector_stores/{vector_store_id}"): "getVectorStore",
    ("POST", "/vector_stores/{vector_store_id}"): "modifyVectorStore",
    ("DELETE", "/vector_stores/{vector_store_id}"): "deleteVectorStore",
    ("POST", "/vector_stores/{vector_store_id}/file_batches"): "createVectorStoreFileBatch",
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}"): "getVectorStoreFileBatch",
    ("POST", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel"): "cancelVectorStoreFileBatch",
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files"): "listFilesInVectorStoreBatch",
    ("GET", "/vector_stores/{vector_store_id}/files"): "listVectorStoreFiles",
    ("POST", "/vector_stores/{vector_store_id}/files"): "createVectorStoreFile",
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}"): "getVectorStoreFile",
    ("DELETE", "/vector_stores/{vector_store_id}/files/{file_id}"): "deleteVectorStoreFile",
    ("POST", "/vector_stores/{vector_store_id}/files/{file_id}"): "updateVectorStoreFileAttributes",
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}/content"): "retrieveVectorStoreFileContent",
    ("POST", "/vector_stores/{vector_store_id}/search"): "searchVectorStore",
}
EXTENSIONS: Final = {("GET", "/threads"): "listThreads"}
_SPEC_PARAM = {
    "assistant_id": "assistant",
    "file_id": "file",
    "thread_id": "thread",
    "message_id": "message",
    "run_id": "run",
    "step_id": "step",
    "vector_store_id": "vector_store",
    "batch_id": "batch",
}


def test_the_operation_table_names_every_operation_of_the_reference_once() -> None:
    assert len(REFERENCE_SPEC) == 44
    expected = {**REFERENCE_SPEC, **EXTENSIONS}
    spec_shaped = {
        (op.method, re.sub(r"\{([a-z_]+)\}", lambda m: "{" + _spec_name(m.group(1)) + "}", op.path)): (
            op.operation_id
        )
        for op in OPERATIONS
    }
    assert len(OPERATIONS) == len(spec_shaped) == 44 + 1
    assert spec_shaped == expected
    assert {op.operation_id for op in REFERENCES} <= set(expected.values())


def _spec_name(placeholder: str) -> str:
    kind = "file" if placeholder == "file2" else placeholder
    return next(name for name, ours in _SPEC_PARAM.items() if ours == kind)


# --- the deployment: projects A and B, each with its key, and their objects --------------------


@dataclass
class World:
    server: ServerProcess
    key_a: str
    key_b: str
    a: dict[str, str] = field(default_factory=dict)  # kind -> A's id
    b: dict[str, str] = field(default_factory=dict)  # kind -> B's own id
    b_before: dict[str, str] = field(default_factory=dict)  # B's objects made before A's
    snapshot: dict[str, Any] = field(default_factory=dict)  # A's view of its objects

    def http(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"},
            timeout=30.0,
        )


def _run_to_completion(sdk: OpenAI, thread_id: str, assistant_id: str) -> str:
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    return run.id


def _setup_b_before(world: World, b: OpenAI, fake: FakeModelServer) -> None:
    file0 = b.files.create(file=("b0.txt", io.BytesIO(text_document(B_PHRASE))), purpose="assistants")
    store = b.vector_stores.create(file_ids=[file0.id])
    assert wait_for_store(b, store.id).file_counts.completed == 1
    assistant = b.beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}])
    thread = b.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    fake.script(Text("b's first answer"))
    run0 = _run_to_completion(b, thread.id, assistant.id)
    world.b_before.update(
        file=file0.id, vector_store=store.id, assistant=assistant.id, thread=thread.id, run=run0
    )


def _setup_a(world: World, a: OpenAI, fake: FakeModelServer) -> None:
    file = a.files.create(file=("walrus.txt", io.BytesIO(text_document(A_PHRASE))), purpose="assistants")
    file2 = a.files.create(file=("lanterns.txt", io.BytesIO(text_document(A_PHRASE_2))), purpose="assistants")
    store = a.vector_stores.create(name="a-store", file_ids=[file.id])
    assert wait_for_store(a, store.id).file_counts.completed == 1
    batch = a.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[file2.id], poll_interval_ms=50
    )
    assert batch.status == "completed", batch
    assistant = a.beta.assistants.create(
        model=MODEL,
        name="a-assistant",
        tools=[
            {"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 0.0}}},
            {"type": "code_interpreter"},
        ],
        tool_resources={
            "code_interpreter": {"file_ids": [file.id]},
            "file_search": {"vector_store_ids": [store.id]},
        },
    )
    thread = a.beta.threads.create(
        tool_resources={
            "code_interpreter": {"file_ids": [file.id]},
            "file_search": {"vector_store_ids": [store.id]},
        },
        metadata={"owner": "a"},
    )
    message = a.beta.threads.messages.create(
        thread.id,
        role="user",
        content="Who guards the treasury vault?",
        attachments=[{"file_id": file2.id, "tools": [{"type": "file_search"}]}],
    )
    assert wait_for_store(a, store.id).file_counts.completed == 2
    fake.script(
        ToolCalls([Call("file_search", '{"query": "vermilion walrus treasury"}')]), Text("The walrus.")
    )
    run = _run_to_completion(a, thread.id, assistant.id)
    # A's own search finds A's words: what B must never see.
    tool_output = next(m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "tool")
    assert "vermilion walrus" in tool_output, tool_output
    steps = a.beta.threads.runs.steps.list(run, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    world.a.update(
        file=file.id,
        file2=file2.id,
        vector_store=store.id,
        batch=batch.id,
        assistant=assistant.id,
        thread=thread.id,
        message=message.id,
        run=run,
        step=steps[0].id,
    )


def _setup_b_after(world: World, b: OpenAI, fake: FakeModelServer) -> None:
    before = world.b_before
    file1 = b.files.create(file=("b1.txt", io.BytesIO(text_document(B_PHRASE))), purpose="assistants")
    file2 = b.files.create(file=("b2.txt", io.BytesIO(text_document(B_PHRASE))), purpose="assistants")
    b.vector_stores.files.create_and_poll(
        file_id=file1.id, vector_store_id=before["vector_store"], poll_interval_ms=50
    )
    batch = b.vector_stores.file_batches.create_and_poll(
        vector_store_id=before["vector_store"], file_ids=[file2.id], poll_interval_ms=50
    )
    assert batch.status == "completed", batch
    store1 = b.vector_stores.create(name="b-later")
    assistant = b.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 0.0}}}],
        tool_resources={"file_search": {"vector_store_ids": [before["vector_store"]]}},
    )
    message = b.beta.threads.messages.create(before["thread"], role="user", content="second")
    thread1 = b.beta.threads.create()
    fake.script(Text("b's second answer"))
    run = _run_to_completion(b, before["thread"], assistant.id)
    step = b.beta.threads.runs.steps.list(run, thread_id=before["thread"]).data[0]
    world.b.update(
        file=file1.id,
        file2=file2.id,
        vector_store=before["vector_store"],
        batch=batch.id,
        assistant=assistant.id,
        thread=before["thread"],
        message=message.id,
        run=run,
        step=step.id,
        later_store=store1.id,
        later_thread=thread1.id,
    )


def _a_views(world: World) -> dict[str, Any]:
    """Everything A can read about its objects, as A reads it (raw JSON)."""
    ids = world.a
    thread, run, store = ids["thread"], ids["run"], ids["vector_store"]
    paths = [
        f"/assistants/{ids['assistant']}",
        "/assistants?limit=100",
        f"/files/{ids['file']}",
        f"/files/{ids['file']}/content",
        f"/files/{ids['file2']}",
        "/files?limit=100",
        f"/vector_stores/{store}",
        "/vector_stores?limit=100",
        f"/vector_stores/{store}/files?limit=100",
        f"/vector_stores/{store}/files/{ids['file']}",
        f"/vector_stores/{store}/files/{ids['file']}/content",
        f"/vector_stores/{store}/file_batches/{ids['batch']}",
        f"/vector_stores/{store}/file_batches/{ids['batch']}/files",
        f"/threads/{thread}",
        "/threads?limit=100",
        f"/threads/{thread}/messages?limit=100",
        f"/threads/{thread}/messages/{ids['message']}",
        f"/threads/{thread}/runs?limit=100",
        f"/threads/{thread}/runs/{run}",
        f"/threads/{thread}/runs/{run}/steps?limit=100",
        f"/threads/{thread}/runs/{run}/steps/{ids['step']}",
    ]
    views: dict[str, Any] = {}
    with world.http(world.key_a) as a:
        for path in paths:
            response = a.get(path)
            assert response.status_code == 200, (path, response.text)
            views[path] = _parsed(response.text)
    return views


@pytest.fixture(scope="module")
def world(
    backend: str, tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[World]:
    env, pg_url = server_env(backend, fake_model_server.base_url)
    data_dir = tmp_path_factory.mktemp(f"isolation-{backend}")
    env["THREADLINE_DATA_DIR"] = str(data_dir)
    keys = []
    for name in ("project-a", "project-b"):
        assert cli(env, "projects", "create", name)[-1].startswith("proj_")
        keys.append(cli(env, "keys", "create", "--project", name)[-1])
    server = ServerProcess(Path(data_dir), env).start()
    made = World(server, keys[0], keys[1])
    fake_model_server.reset()
    try:
        with make_client(server.base_url, made.key_a) as a, make_client(server.base_url, made.key_b) as b:
            _setup_b_before(made, b, fake_model_server)
            _setup_a(made, a, fake_model_server)
            _setup_b_after(made, b, fake_model_server)
        made.snapshot = _a_views(made)
        yield made
    finally:
        fake_model_server.reset()
        server.stop()
        if pg_url:
            databases.drop_database(pg_url)


# --- the walk ------------------------------------------------------------------------------


def _made_up(kind: str, like: str) -> str:
    """An id of ``kind`` that does not exist and sorts where ``like`` does: the same prefix and
    sortable part (milliseconds and counter, unique in the server's process), a new random tail."""
    prefix = PREFIXES[kind]
    assert like.startswith(prefix), (kind, like)
    ordered = like[len(prefix) : len(prefix) + 11]
    tail = "".join(secrets.choice(_BASE62) for _ in range(13))
    return prefix + ordered + tail


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [name for item in value.values() for name in _placeholders(item)]
    if isinstance(value, list):
        return [name for item in value for name in _placeholders(item)]
    return []


def _fill(value: Any, binding: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: binding[m.group(1)], value)
    if isinstance(value, dict):
        return {key: _fill(item, binding) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, binding) for item in value]
    return value


@dataclass(frozen=True)
class Case:
    op: Op
    path: str
    body: Any
    probed: tuple[str, ...]

    def describe(self) -> str:
        body = json.dumps(self.body) if self.body else ""
        return f"{self.op.operation_id} {self.op.method} {self.path} {body}"


def cases(op: Op) -> list[Case]:
    """The variants of ``op``: path ids A's from the k-th on (outer ones B's own), and for lists
    every cursor (none, after, before, both orders); variants probing nothing are left out."""
    path_names = [n for n in _PLACEHOLDER.findall(op.path) if not n.startswith("own_")]
    bodies: list[Any] = [op.body]
    if op.cursor is not None:
        c = "{" + op.cursor + "}"
        bodies = [
            {},
            {"after": c},
            {"before": c},
            {"after": c, "order": "asc"},
            {"before": c, "order": "asc"},
            {"after": c, "limit": 1},
        ]
    found: list[Case] = []
    for k in range(len(path_names) + 1):
        path = op.path
        for name in path_names[:k]:
            path = path.replace("{" + name + "}", "{own_" + name + "}")
        for body in bodies:
            probed = tuple(
                dict.fromkeys(
                    [*path_names[k:], *(n for n in _placeholders(body) if not n.startswith("own_"))]
                )
            )
            if probed:
                found.append(Case(op, path, body, probed))
    return found


def _request(client: httpx.Client, op: Op, path: str, body: Any) -> httpx.Response:
    if op.method == "GET":
        return client.get(path, params=body or None)
    if op.method == "DELETE":
        return client.delete(path)
    return client.post(path, json=body if body is not None else {})


def _own_binding(world: World) -> dict[str, str]:
    return {f"own_{kind}": value for kind, value in world.b.items()}


def _compare(world: World, b: httpx.Client, case: Case) -> tuple[str, int] | str:
    """Call ``case`` with A's ids and with made-up ones; a description of any difference, else
    (the status, for the record)."""
    foreign = {**_own_binding(world), **{name: world.a[name] for name in case.probed}}
    missing = {**_own_binding(world), **{name: _made_up(name, world.a[name]) for name in case.probed}}
    with_a = _request(b, case.op, _fill(case.path, foreign), _fill(case.body, foreign))
    with_missing = _request(b, case.op, _fill(case.path, missing), _fill(case.body, missing))
    missing_text = with_missing.text
    for name in case.probed:
        missing_text = missing_text.replace(missing[name], world.a[name])
    same_type = with_a.headers.get("content-type") == with_missing.headers.get("content-type")
    same_body = _parsed(with_a.text) == _parsed(missing_text)
    if with_a.status_code == with_missing.status_code and same_type and same_body:
        leaked = [kind for kind, value in world.a.items() if value in with_a.text and kind not in case.probed]
        if leaked:
            return f"{case.describe()}: names A's {leaked}: {with_a.text}"
        return (case.describe(), with_a.status_code)
    return (
        f"{case.describe()}\n    with A's ids: {with_a.status_code} {with_a.text[:600]}"
        f"\n    with made-up: {with_missing.status_code} {missing_text[:600]}"
    )


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _walk(world: World, ops: list[Op]) -> tuple[list[tuple[str, int]], list[str]]:
    passed: list[tuple[str, int]] = []
    differences: list[str] = []
    # Deletes last, so that a delete that leaks cannot hide what the other operations would show.
    ordered = sorted(ops, key=lambda op: op.method == "DELETE")
    with world.http(world.key_b) as b:
        for op in ordered:
            if op.multipart:
                continue
            for case in cases(op):
                outcome = _compare(world, b, case)
                if isinstance(outcome, str):
                    differences.append(outcome)
                else:
                    passed.append(outcome)
    return passed, differences


def _report(name: str, passed: list[tuple[str, int]], differences: list[str]) -> None:
    lines = [f"{status} {what}" for what, status in passed]
    print(f"\n{name}: {len(passed)} cases alike, {len(differences)} differ\n" + "\n".join(lines))


def test_every_operation_on_a_foreign_id_answers_as_for_a_missing_one(world: World) -> None:
    passed, differences = _walk(world, OPERATIONS)
    _report("operations", passed, differences)
    assert not differences, "\n".join(differences)
    walked = {case.op.operation_id for op in OPERATIONS for case in cases(op)}
    assert walked == {op.operation_id for op in OPERATIONS if not op.multipart}
    # Nothing answered a foreign id with success except the lists, whose answers equal the
    # answers to a made-up cursor and hold only B's objects.
    for what, status in passed:
        if not what.startswith("list"):
            assert 400 <= status < 500, what


def test_the_walk_tells_an_object_the_caller_sees_from_a_missing_one(world: World) -> None:
    """The comparison is not vacuous: with B's own ids in place of A's, every read differs."""
    mirror = World(world.server, world.key_a, world.key_b, a=dict(world.b), b=world.b)
    reads = [case for op in OPERATIONS if op.method == "GET" and op.cursor is None for case in cases(op)]
    assert len(reads) >= 10
    with world.http(world.key_b) as b:
        for case in reads:
            assert isinstance(_compare(mirror, b, case), str), case.describe()


def test_foreign_ids_inside_bodies_are_refused_as_missing_ones(world: World) -> None:
    passed, differences = _walk(world, REFERENCES)
    _report("references", passed, differences)
    assert not differences, "\n".join(differences)
    for what, status in passed:
        if not what.startswith("list"):
            assert 400 <= status < 500, what


def test_a_file_b_uploads_is_missing_for_a(world: World) -> None:
    with world.http(world.key_b) as b, world.http(world.key_a) as a:
        uploaded = b.post(
            "/files", files={"file": ("b.txt", b"b's own words")}, data={"purpose": "assistants"}
        )
        assert uploaded.status_code == 200, uploaded.text
        file_id = uploaded.json()["id"]
        made_up = _made_up("file", file_id)
        for suffix in ("", "/content"):
            seen, missing = a.get(f"/files/{file_id}{suffix}"), a.get(f"/files/{made_up}{suffix}")
            assert seen.status_code == missing.status_code == 404
            assert seen.json() == json.loads(missing.text.replace(made_up, file_id))
        assert file_id not in a.get("/files", params={"limit": 100}).text
        assert b.delete(f"/files/{file_id}").status_code == 200


def _ids_in(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def test_lists_show_only_the_callers_objects(world: World) -> None:
    lists = {
        "/assistants": "assistant",
        "/files": "file",
        "/vector_stores": "vector_store",
        "/threads": "thread",
        f"/threads/{world.b['thread']}/messages": "message",
        f"/threads/{world.b['thread']}/runs": "run",
        f"/vector_stores/{world.b['vector_store']}/files": "file",
    }
    a_ids = set(world.a.values())
    with world.http(world.key_b) as b:
        for path, kind in lists.items():
            for order in ("asc", "desc"):
                page = b.get(path, params={"limit": 100, "order": order}).json()
                ids = _ids_in(page)
                assert ids and not a_ids & set(ids), (path, page)
                # A's id as a cursor splits B's list where its position says, as a made-up one would.
                for cursor in ("after", "before"):
                    with_a = b.get(path, params={"limit": 100, "order": order, cursor: world.a[kind]}).json()
                    assert not a_ids & set(_ids_in(with_a)), (path, with_a)
        # The cursors do split: B has objects made before and after A's.
        page = b.get("/assistants", params={"after": world.a["assistant"], "order": "asc"}).json()
        assert _ids_in(page)[0] == world.b["assistant"]
        page = b.get("/assistants", params={"before": world.a["assistant"], "order": "asc"}).json()
        assert _ids_in(page)[-1] == world.b_before["assistant"]


def test_file_search_in_bs_runs_never_returns_as_content(world: World, fake: FakeModelServer) -> None:
    with make_client(world.server.base_url, world.key_b) as b:
        # B's assistant searches B's store; the model asks for A's words.
        thread = b.beta.threads.create(messages=[{"role": "user", "content": "walrus?"}])
        fake.script(
            ToolCalls([Call("file_search", '{"query": "vermilion walrus guards treasury vault 7391"}')]),
            ToolCalls([Call("file_search", '{"query": "saffron lanterns quarry midnight"}')]),
            Text("done"),
        )
        run = b.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=world.b["assistant"], poll_interval_ms=50
        )
        assert run.status == "completed", run.last_error
        outputs = [m["content"] for r in fake.requests for m in r["messages"] if m["role"] == "tool"]
        assert outputs
        for output in outputs:
            assert "walrus" not in output.lower() and "lantern" not in output.lower(), output
        steps = b.beta.threads.runs.steps.list(run.id, thread_id=thread.id, include=[INCLUDE_CONTENT])
        text = steps.model_dump_json()
        assert "walrus" not in text.lower() and "lantern" not in text.lower()
        for a_id in world.a.values():
            assert a_id not in text
        # B's own search of B's store finds nothing of A's either.
        hits = b.vector_stores.search(world.b["vector_store"], query="vermilion walrus treasury").data
        assert all(hit.file_id not in world.a.values() for hit in hits)
        assert "walrus" not in json.dumps([h.model_dump() for h in hits]).lower()


def test_as_objects_are_unchanged_after_bs_walk(world: World) -> None:
    # Runs last (the walk above happened); on its own it still compares A's view with the setup's.
    assert _a_views(world) == world.snapshot


def test_keys_are_required_once_projects_have_keys(world: World) -> None:
    for key in (None, "sk-proj-unknown"):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = httpx.get(f"{world.server.base_url}/assistants/{world.a['assistant']}", headers=headers)
        assert response.status_code == 401, response.text
        assert world.a["assistant"] not in response.text
