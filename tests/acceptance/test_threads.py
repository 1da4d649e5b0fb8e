"""Threads through the official SDK (strict validation) on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.beta import thread_create_params
from openai.types.beta.threads.message_create_params import Attachment

from tests.support.errors import assert_api_error
from tests.support.fake_model import FakeModelServer, Text
from tests.support.server import ServerProcess


def test_create_with_no_body_and_empty_body(client: OpenAI, server: ServerProcess) -> None:
    thread = client.beta.threads.create()
    assert thread.id.startswith("thread_") and len(thread.id) == len("thread_") + 24
    assert thread.object == "thread"
    assert thread.metadata == {}
    raw = httpx.post(f"{server.base_url}/threads", headers={"Authorization": "Bearer x"})
    assert raw.status_code == 200
    assert raw.json()["tool_resources"] == {}
    raw = httpx.post(f"{server.base_url}/threads", json={})
    assert raw.status_code == 200 and raw.json()["object"] == "thread"


def _file_id(client: OpenAI) -> str:
    """A real file: ids in messages and tool_resources must exist (issue 4)."""
    return client.files.create(file=b"x", purpose="assistants").id


def test_create_with_messages_in_order(client: OpenAI) -> None:
    image_id, attached_id = _file_id(client), _file_id(client)
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first", "metadata": {"n": "1"}},
            {"role": "assistant", "content": [{"type": "text", "text": "second"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "third"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                    },
                    {"type": "image_file", "image_file": {"file_id": image_id}},
                ],
                "attachments": [{"file_id": attached_id, "tools": [{"type": "code_interpreter"}]}],
            },
        ]
    )
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    first, second, third = messages
    assert first.content[0].type == "text" and first.content[0].text.value == "first"
    assert first.content[0].text.annotations == []
    assert first.metadata == {"n": "1"}
    assert second.content[0].text.value == "second"  # type: ignore[union-attr]
    assert [part.type for part in third.content] == ["text", "image_url", "image_file"]
    assert third.content[1].image_url.detail == "low"  # type: ignore[union-attr]
    assert third.content[2].image_file.file_id == image_id  # type: ignore[union-attr]
    assert third.attachments is not None and third.attachments[0].file_id == attached_id
    for message in messages:
        assert message.thread_id == thread.id
        assert message.status == "completed"
        assert message.assistant_id is None and message.run_id is None


def test_tool_resources_stored_as_given(client: OpenAI) -> None:
    file_ids = [_file_id(client), _file_id(client)]
    store_id = client.vector_stores.create().id
    thread = client.beta.threads.create(
        tool_resources={
            "code_interpreter": {"file_ids": file_ids},
            "file_search": {"vector_store_ids": [store_id]},
        }
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter.file_ids == file_ids  # type: ignore[union-attr]
    assert thread.tool_resources.file_search.vector_store_ids == [store_id]  # type: ignore[union-attr]


def test_tool_resources_limits(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": [f"file-{i}" for i in range(21)]}}
        )
    assert_api_error(
        exc.value, 400, param="tool_resources.code_interpreter.file_ids", code="array_above_max_length"
    )
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": ["vs_a", "vs_b"]}})
    assert_api_error(exc.value, 400, param="tool_resources.file_search.vector_store_ids")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            tool_resources={
                "file_search": {"vector_store_ids": ["vs_a"], "vector_stores": [{"file_ids": []}]}
            }
        )
    assert_api_error(exc.value, 400, param="tool_resources.file_search", contains="Only one of")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            tool_resources={
                "file_search": {
                    "vector_stores": [
                        {
                            "chunking_strategy": {
                                "type": "static",
                                "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
                            }
                        }
                    ]
                }
            }
        )
    assert_api_error(
        exc.value,
        400,
        param="tool_resources.file_search.vector_stores[0].chunking_strategy.static.max_chunk_size_tokens",
        code="integer_below_min_value",
    )
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            tool_resources={
                "file_search": {
                    "vector_stores": [
                        {
                            "chunking_strategy": {
                                "type": "static",
                                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401},
                            }
                        }
                    ]
                }
            }
        )
    assert_api_error(exc.value, 400, contains="half")


def test_modify_replaces_metadata_and_tool_resources(client: OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"a": "1", "b": "2"})
    updated = client.beta.threads.update(thread.id, metadata={"c": "3"})
    assert updated.metadata == {"c": "3"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"c": "3"}
    file_id = _file_id(client)
    updated = client.beta.threads.update(
        thread.id, tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    assert updated.metadata == {"c": "3"}, "fields not sent keep their value"
    assert updated.tool_resources.code_interpreter.file_ids == [file_id]  # type: ignore[union-attr]


def test_delete_removes_thread_and_messages(client: OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "bye"}])
    message_id = client.beta.threads.messages.list(thread.id).data[0].id
    result = client.beta.threads.delete(thread.id)
    assert (result.id, result.object, result.deleted) == (thread.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.retrieve(thread.id)
    assert_api_error(exc.value, 404, message=f"No thread found with id '{thread.id}'.", param=None, code=None)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete(thread.id)


def test_unknown_and_malformed_ids(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.retrieve("thread_doesnotexist")
    assert_api_error(exc.value, 404, message="No thread found with id 'thread_doesnotexist'.")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.retrieve("undefined")
    assert_api_error(
        bad.value,
        400,
        message="Invalid 'thread_id': 'undefined'. Expected an ID that begins with 'thread'.",
        param="thread_id",
        code="invalid_value",
    )
    for method in (client.beta.threads.update, client.beta.threads.delete):
        with pytest.raises(openai.BadRequestError):
            method("asst_wrongkind")


def test_list_threads_extension_with_metadata_filter(client: OpenAI, server: ServerProcess) -> None:
    marker = client.beta.threads.create().id  # a unique value to filter on
    made = [client.beta.threads.create(metadata={"suite": marker, "i": str(i)}) for i in range(3)]
    client.beta.threads.create(metadata={"suite": "other"})
    page = httpx.get(f"{server.base_url}/threads", params={"metadata[suite]": marker}).json()
    assert [t["id"] for t in page["data"]] == [t.id for t in reversed(made)]
    assert page["object"] == "list" and page["has_more"] is False
    page = httpx.get(
        f"{server.base_url}/threads", params={"metadata[suite]": marker, "metadata[i]": "1", "order": "asc"}
    ).json()
    assert [t["id"] for t in page["data"]] == [made[1].id]
    page = httpx.get(f"{server.base_url}/threads", params={"metadata[suite]": marker, "limit": 2}).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    assert page["first_id"] == made[2].id and page["last_id"] == made[1].id


def _code(file_id: str) -> Attachment:
    return {"file_id": file_id, "tools": [{"type": "code_interpreter"}]}


def test_thread_creation_caps_code_interpreter_files_with_attachments(
    client: OpenAI, server: ServerProcess
) -> None:
    files = [_file_id(client) for _ in range(21)]
    marker = client.beta.threads.create().id  # a unique value to look for threads by
    # tool_resources and attachments together may name 20 distinct files; repeats count once.
    thread = client.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": files[:15]}},
        messages=[
            {"role": "user", "content": "a", "attachments": [_code(f) for f in files[10:18]]},
            {"role": "user", "content": "b", "attachments": [_code(f) for f in files[15:20]]},
        ],
    )
    assert thread.tool_resources is not None and thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == files[:20]

    over: list[thread_create_params.Message] = [
        {"role": "user", "content": "a", "attachments": [_code(f) for f in files[:11]]},
        {"role": "user", "content": "b", "attachments": [_code(f) for f in files[11:]]},
    ]
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.create(messages=over, metadata={"marker": marker})
    assert_api_error(
        bad.value, 400, param="attachments", code="array_above_max_length", contains="bring it to 21"
    )
    page = httpx.get(f"{server.base_url}/threads", params={"metadata[marker]": marker}).json()
    assert page["data"] == [], "a refused thread is not stored"


def test_create_and_run_caps_code_interpreter_files_with_attachments(
    client: OpenAI, server: ServerProcess, fake: FakeModelServer
) -> None:
    fake.script(Text("ok"))
    files = [_file_id(client) for _ in range(21)]
    assistant = client.beta.assistants.create(model="fake-model")
    # The request's tool_resources become the thread's; attachments add to them, repeats once.
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        tool_resources={"code_interpreter": {"file_ids": files[:19]}},
        thread={
            "messages": [{"role": "user", "content": "a", "attachments": [_code(files[19]), _code(files[0])]}]
        },
    )
    assert run.status == "completed"
    resources = client.beta.threads.retrieve(run.thread_id).tool_resources
    assert resources is not None and resources.code_interpreter is not None
    assert resources.code_interpreter.file_ids == files[:20]

    marker = run.thread_id
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            tool_resources={"code_interpreter": {"file_ids": files[:20]}},
            thread={
                "messages": [{"role": "user", "content": "b", "attachments": [_code(files[20])]}],
                "metadata": {"marker": marker},
            },
        )
    assert_api_error(bad.value, 400, param="attachments", code="array_above_max_length")
    page = httpx.get(f"{server.base_url}/threads", params={"metadata[marker]": marker}).json()
    assert page["data"] == [], "a refused thread and run are not stored"
