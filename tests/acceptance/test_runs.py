"""Runs: creation, the run object, overrides, the prompt the model receives, thread lock, budgets."""

from __future__ import annotations

import base64

import openai
import pytest
from openai import OpenAI

from tests.support.errors import assert_api_error
from tests.support.fake_model import FakeModelServer, Text

MODEL = "fake-model"


def _assistant(client: OpenAI, **kwargs: object) -> str:
    return client.beta.assistants.create(model=MODEL, **kwargs).id  # type: ignore[arg-type]


def _texts(client: OpenAI, thread_id: str) -> list[tuple[str, str]]:
    page = client.beta.threads.messages.list(thread_id, order="asc")
    return [(m.role, "".join(p.text.value for p in m.content if p.type == "text")) for m in page.data]


def test_create_and_poll_completes_with_the_models_answer(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("Hello there!", usage=(12, 3)))
    assistant_id = _assistant(client, instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert run.status == "completed"
    assert run.instructions == "Be brief."
    assert run.expires_at is None and run.completed_at is not None and run.started_at is not None
    assert run.usage is not None and (run.usage.prompt_tokens, run.usage.completion_tokens) == (12, 3)
    assert run.usage.total_tokens == 15
    assert run.truncation_strategy is not None and run.truncation_strategy.type == "auto"
    assert run.tool_choice == "auto" and run.response_format == "auto" and run.parallel_tool_calls is True
    assert (run.temperature, run.top_p) == (1.0, 1.0)
    assert _texts(client, thread.id) == [("user", "Hi"), ("assistant", "Hello there!")]
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert (reply.assistant_id, reply.run_id, reply.status) == (assistant_id, run.id, "completed")
    sent = fake.requests[0]
    assert sent["model"] == MODEL
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_new_run_is_queued_with_live_expiry_and_no_usage(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("ok"))
    thread = client.beta.threads.create()
    raw = client.beta.threads.runs.with_raw_response.create(
        thread_id=thread.id, assistant_id=_assistant(client)
    )
    run = raw.parse()
    assert raw.headers["openai-poll-after-ms"] == "100"
    assert run.status == "queued" and run.usage is None and run.instructions == ""
    assert run.expires_at == run.created_at + 600
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert final.status == "completed"


def test_overrides_are_echoed_and_sent_to_the_model(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("ok"))
    assistant_id = _assistant(client, instructions="assistant text", temperature=0.3)
    thread = client.beta.threads.create()
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant_id,
        model="other-model",
        instructions="run text",
        additional_instructions="extra text",
        additional_messages=[{"role": "user", "content": "first"}, {"role": "user", "content": "second"}],
        tools=[tool],  # type: ignore[list-item]
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
        tool_choice="none",
        parallel_tool_calls=False,
        metadata={"k": "v"},
        max_completion_tokens=1000,
        truncation_strategy={"type": "last_messages", "last_messages": 5},
    )
    assert run.status == "completed"
    assert run.model == "other-model" and run.instructions == "run text\n\nextra text"
    assert (run.temperature, run.top_p, run.metadata) == (0.5, 0.9, {"k": "v"})
    assert run.tools[0].type == "function" and run.tool_choice == "none" and run.parallel_tool_calls is False
    assert run.max_completion_tokens == 1000
    assert run.truncation_strategy is not None and run.truncation_strategy.last_messages == 5
    sent = fake.requests[0]
    assert sent["model"] == "other-model"
    assert sent["messages"] == [
        {"role": "system", "content": "run text\n\nextra text"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ]
    assert (sent["temperature"], sent["top_p"], sent["tool_choice"]) == (0.5, 0.9, "none")
    assert sent["parallel_tool_calls"] is False and sent["response_format"] == {"type": "json_object"}
    assert sent["tools"] == [{"type": "function", "function": tool["function"]}]
    assert sent["max_tokens"] == 1000


def test_prompt_keeps_thread_order_and_truncates_to_last_messages(
    client: OpenAI, fake: FakeModelServer
) -> None:
    fake.script(Text("one"), Text("two"))
    assistant_id = _assistant(client)
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "m1"},
            {"role": "assistant", "content": "m2"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "m3"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
        ]
    )
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert [m["role"] for m in fake.requests[0]["messages"]] == ["user", "assistant", "user"]
    assert fake.requests[0]["messages"][2]["content"] == [
        {"type": "text", "text": "m3"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "auto"}},
    ]
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant_id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
    )
    second = fake.requests[1]["messages"]
    assert [m["content"] if isinstance(m["content"], str) else "m3+image" for m in second] == [
        "m3+image",
        "one",
    ]


def test_thread_lock_refuses_messages_and_runs_while_active(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("slow", first_token_delay_s=1.0))
    assistant_id = _assistant(client)
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    assert_api_error(exc.value, 400, message=f"Thread {thread.id} already has an active run {run.id}.")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread.id, role="user", content="x")
    assert_api_error(
        exc.value, 400, message=f"Can't add messages to {thread.id} while a run {run.id} is active."
    )
    assert client.beta.threads.runs.poll(run.id, thread_id=thread.id).status == "completed"
    client.beta.threads.messages.create(thread.id, role="user", content="now allowed")


def test_unknown_assistant_thread_and_bad_prefixes(client: OpenAI, fake: FakeModelServer) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")
    assert_api_error(exc.value, 404, message="No assistant found with id 'asst_missing'.")
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="nope")
    assert_api_error(
        bad.value, 400, message="Invalid 'assistant_id': 'nope'. Expected an ID that begins with 'asst'."
    )
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.retrieve("run_missing", thread_id=thread.id)
    assert_api_error(exc.value, 404, message="No run found with id 'run_missing'.")
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.retrieve("bad", thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.list("thread_missing")


def test_request_validation(client: OpenAI, fake: FakeModelServer) -> None:
    assistant_id = _assistant(client)
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, max_prompt_tokens=100)
    assert_api_error(exc.value, 400, param="max_prompt_tokens", code="integer_below_min_value")
    tool = {"type": "function", "function": {"name": "f"}}
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, tools=[tool] * 21)  # type: ignore[list-item]
    assert_api_error(exc.value, 400, param="tools", code="array_above_max_length")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant_id, extra_body={"bogus": 1}
        )
    assert_api_error(exc.value, 400, param="bogus", code="unknown_parameter")
    assert client.beta.threads.runs.list(thread.id).data == []


def test_list_retrieve_modify(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("a"), Text("b"))
    assistant_id = _assistant(client)
    thread = client.beta.threads.create()
    first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    second = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [second.id, first.id]
    assert [r.id for r in client.beta.threads.runs.list(thread.id, order="asc", limit=1).data] == [first.id]
    modified = client.beta.threads.runs.update(first.id, thread_id=thread.id, metadata={"x": "y"})
    assert modified.metadata == {"x": "y"}
    assert client.beta.threads.runs.retrieve(first.id, thread_id=thread.id).metadata == {"x": "y"}


def test_create_thread_and_run_poll(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("hi back"))
    assistant_id = _assistant(client)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "hi"}], "metadata": {"t": "1"}},
        instructions="override",
    )
    assert run.status == "completed" and run.instructions == "override"
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"t": "1"}
    assert _texts(client, run.thread_id) == [("user", "hi"), ("assistant", "hi back")]


def test_max_completion_tokens_budget_ends_incomplete(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("cut short", finish_reason="length", usage=(10, 256)))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "write a lot"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=_assistant(client), max_completion_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    assert fake.requests[0]["max_tokens"] == 256
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"


def test_max_prompt_tokens_budget_drops_old_messages_then_ends_incomplete(
    client: OpenAI, fake: FakeModelServer
) -> None:
    fake.script(Text("ok"))
    big = "word " * 300  # ~300 tokens each
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": big}, {"role": "user", "content": "short question"}]
    )
    assistant_id = _assistant(client)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, max_prompt_tokens=256
    )
    assert run.status == "completed"
    assert fake.requests[0]["messages"] == [{"role": "user", "content": "short question"}]
    client.beta.threads.messages.create(thread.id, role="user", content=big * 2)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, max_prompt_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    assert len(fake.requests) == 1


def test_uploaded_image_reaches_the_model_as_image_input(client: OpenAI, fake: FakeModelServer) -> None:
    # A real (1x1) PNG uploaded for vision; the model must receive its bytes, not a file id.
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201a5f6a3f40000000049454e44ae426082"
    )
    image = client.files.create(file=("dot.png", png), purpose="vision")
    fake.script(Text("a dot"))
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
                ],
            }
        ]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=_assistant(client))
    assert run.status == "completed"
    content = fake.requests[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode(), "detail": "low"},
    }
