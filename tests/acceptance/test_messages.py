"""Messages through the official SDK."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI
from openai.types.beta.threads.message_create_params import Attachment

from tests.support.errors import assert_api_error


def test_message_lifecycle(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="Hello", metadata={"k": "v"}
    )
    assert message.id.startswith("msg_")
    assert message.object == "thread.message"
    assert message.thread_id == thread.id
    assert message.status == "completed"
    assert message.incomplete_details is None and message.incomplete_at is None
    assert message.assistant_id is None and message.run_id is None
    assert message.attachments == []
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "Hello" and message.content[0].text.annotations == []
    fetched = client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched == message
    updated = client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"x": "y"})
    assert updated.metadata == {"x": "y"}
    assert updated.content == message.content
    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (message.id, "thread.message.deleted", True)
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert_api_error(exc.value, 404, message=f"No message found with id '{message.id}'.")


def test_message_errors(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.create("thread_missing", role="user", content="x")
    assert_api_error(exc.value, 404, message="No thread found with id 'thread_missing'.")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.messages.retrieve("message_id", thread_id=thread.id)
    assert_api_error(bad.value, 400, param="message_id", contains="Expected an ID that begins with 'msg'.")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.messages.create(thread.id, role="system", content="x")  # type: ignore[arg-type]
    assert_api_error(bad.value, 400, param="role", code="invalid_value")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.messages.create(thread.id, role="user", content=[])
    assert_api_error(bad.value, 400, param="content")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[{"type": "text", "text": 5}],  # type: ignore[list-item,typeddict-item]
        )
    assert_api_error(bad.value, 400, param="content[0].text", code="invalid_type")
    with pytest.raises(openai.BadRequestError) as bad:
        client.post(f"/threads/{thread.id}/messages", body={"role": "user"}, cast_to=object)
    assert_api_error(
        bad.value, 400, message="Missing required parameter: 'content'.", code="missing_required_parameter"
    )
    assert client.beta.threads.messages.list(thread.id).data == [], "failed creates wrote nothing"


def test_list_filters_by_run_id(client: OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "a"}])
    assert client.beta.threads.messages.list(thread.id, run_id="run_none").data == []
    assert len(client.beta.threads.messages.list(thread.id).data) == 1


CODE_INTERPRETER_MAX_FILES = 20


def _files(client: OpenAI, count: int) -> list[str]:
    data = b"a,b\n1,2\n"
    return [client.files.create(file=(f"f{i}.csv", data), purpose="assistants").id for i in range(count)]


def _code(file_id: str) -> Attachment:
    return {"file_id": file_id, "tools": [{"type": "code_interpreter"}]}


def _code_files(client: OpenAI, thread_id: str) -> list[str]:
    resources = client.beta.threads.retrieve(thread_id).tool_resources
    assert resources is not None and resources.code_interpreter is not None
    return resources.code_interpreter.file_ids or []


def test_code_interpreter_attachments_are_capped_at_20_distinct_files(client: OpenAI) -> None:
    files = _files(client, CODE_INTERPRETER_MAX_FILES + 1)
    thread = client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": files[:19]}})
    # A file already on the thread, or attached twice, counts once: 19 + 1 = 20 is allowed.
    twentieth = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="twentieth",
        attachments=[_code(files[0]), _code(files[19]), _code(files[19])],
    )
    assert _code_files(client, thread.id) == files[:20]
    again = client.beta.threads.messages.create(
        thread.id, role="user", content="again", attachments=[_code(files[3])]
    )
    assert _code_files(client, thread.id) == files[:20]

    search_file = client.files.create(file=("notes.txt", b"Amber moths."), purpose="assistants").id
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="one too many",
            attachments=[
                {"file_id": search_file, "tools": [{"type": "file_search"}]},
                _code(files[20]),
            ],
        )
    assert_api_error(
        bad.value,
        400,
        message=(
            "Invalid 'attachments': too many code_interpreter files for the thread. Expected "
            "tool_resources.code_interpreter.file_ids to hold at most 20 files, but these attachments "
            "would bring it to 21 instead."
        ),
        param="attachments",
        code="array_above_max_length",
    )
    assert bad.value.type == "invalid_request_error"
    # Nothing was written: no message, no new file, no thread vector store for the file_search one.
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [again.id, twentieth.id]
    after = client.beta.threads.retrieve(thread.id).tool_resources
    assert after is not None and after.code_interpreter is not None
    assert after.code_interpreter.file_ids == files[:20]
    assert after.file_search is None or not after.file_search.vector_store_ids


def test_run_additional_messages_respect_the_code_interpreter_cap(client: OpenAI) -> None:
    files = _files(client, CODE_INTERPRETER_MAX_FILES + 1)
    assistant = client.beta.assistants.create(model="fake-model", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": files[:20]}})
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant.id,
            additional_messages=[
                {"role": "user", "content": "ok", "attachments": [_code(files[0])]},
                {"role": "user", "content": "over", "attachments": [_code(files[20])]},
            ],
        )
    assert_api_error(bad.value, 400, param="attachments", code="array_above_max_length")
    assert client.beta.threads.runs.list(thread.id).data == []
    assert client.beta.threads.messages.list(thread.id).data == []
    assert _code_files(client, thread.id) == files[:20]
