"""Function calling: requires_action, submit_tool_outputs (and its errors), parallel calls, tool_choice."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from tests.support.errors import assert_api_error
from tests.support.fake_model import Call, FakeModelServer, Text, ToolCalls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def _assistant(client: OpenAI) -> str:
    return client.beta.assistants.create(model="fake-model", tools=[WEATHER, TIME]).id  # type: ignore[list-item]


def test_function_call_round_trip(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(
        ToolCalls([Call("get_weather", '{"city": "Paris"}', id="call_w1")], usage=(20, 5)),
        Text("It is sunny in Paris.", usage=(40, 6)),
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=_assistant(client))
    assert run.status == "requires_action" and run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_w1", "function", "get_weather", {"city": "Paris"})
    ]
    assert run.usage is None and run.expires_at is not None
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_w1", "output": "22C sunny"}]
    )
    assert run.status == "completed" and run.required_action is None
    assert run.usage is not None and (run.usage.prompt_tokens, run.usage.completion_tokens) == (60, 11)
    second = fake.requests[1]["messages"]
    assert second[-2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_w1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert second[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "22C sunny"}
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_step = steps[0]
    assert tool_step.status == "completed" and tool_step.step_details.type == "tool_calls"
    call = tool_step.step_details.tool_calls[0]
    assert call.type == "function" and call.function.output == "22C sunny"
    assert tool_step.usage is not None and tool_step.usage.total_tokens == 25
    assert steps[1].step_details.type == "message_creation"
    message_id = steps[1].step_details.message_creation.message_id
    assert client.beta.threads.messages.retrieve(message_id, thread_id=thread.id).content[0].text.value == (  # type: ignore[union-attr]
        "It is sunny in Paris."
    )


def test_parallel_calls_need_all_outputs_in_one_request(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(
        ToolCalls([Call("get_weather", '{"city": "A"}', id="call_a"), Call("get_time", "{}", id="call_b")]),
        Text("done"),
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "both"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=_assistant(client))
    assert run.required_action is not None
    assert [c.id for c in run.required_action.submit_tool_outputs.tool_calls] == ["call_a", "call_b"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_a", "output": "x"}]
        )
    assert_api_error(exc.value, 400, contains="call_b")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id,
            thread_id=thread.id,
            tool_outputs=[
                {"tool_call_id": "call_a", "output": "x"},
                {"tool_call_id": "call_b", "output": "y"},
                {"tool_call_id": "call_zzz", "output": "z"},
            ],
        )
    assert_api_error(exc.value, 400, contains="call_zzz")
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[
            {"tool_call_id": "call_b", "output": "noon"},
            {"tool_call_id": "call_a", "output": "rain"},
        ],
    )
    assert run.status == "completed"
    tool_messages = [m for m in fake.requests[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("call_a", "rain"),
        ("call_b", "noon"),
    ]


def test_submit_outside_requires_action_is_refused(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(Text("plain"))
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=_assistant(client))
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_x", "output": "x"}]
        )
    assert_api_error(exc.value, 400, message='Runs in status "completed" do not accept tool outputs.')


@pytest.mark.parametrize(
    ("tool_choice", "sent"),
    [
        ("required", "required"),
        ("none", "none"),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_is_passed_in_chat_form(
    client: OpenAI, fake: FakeModelServer, tool_choice: object, sent: object
) -> None:
    fake.script(Text("ok"))
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=_assistant(client),
        tool_choice=tool_choice,  # type: ignore[arg-type]
    )
    assert run.status == "completed"
    assert fake.requests[0]["tool_choice"] == sent
    assert fake.requests[0]["parallel_tool_calls"] is True


def test_cancel_requires_action_run_unlocks_thread(client: OpenAI, fake: FakeModelServer) -> None:
    fake.script(ToolCalls([Call("get_time", "{}", id="call_t")]))
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=_assistant(client))
    assert run.status == "requires_action"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [s.status for s in steps] == ["cancelled"] and steps[0].cancelled_at is not None
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert_api_error(exc.value, 400, message="Cannot cancel run with status 'cancelled'.")
    client.beta.threads.messages.create(thread.id, role="user", content="unlocked")
