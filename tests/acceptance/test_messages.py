"""Messages through the official SDK."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

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
