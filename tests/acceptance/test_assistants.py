"""Assistants through the official SDK."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.support.errors import assert_api_error


def test_assistant_every_field(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(
        model="any-model-name:7b",
        name="Math Tutor",
        description="Helps with math",
        instructions="You are a personal math tutor.",
        tools=[
            {"type": "code_interpreter"},
            {
                "type": "file_search",
                "file_search": {"max_num_results": 5, "ranking_options": {"score_threshold": 0.5}},
            },
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
        ],
        # Ids in tool_resources must name real files (issue 4).
        tool_resources={
            "code_interpreter": {"file_ids": [client.files.create(file=b"x", purpose="assistants").id]}
        },
        metadata={"team": "edu"},
        temperature=0.2,
        top_p=0.9,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}},
        },
        reasoning_effort="low",
    )
    assert assistant.id.startswith("asst_") and assistant.object == "assistant"
    assert assistant.model == "any-model-name:7b"
    assert (assistant.name, assistant.description) == ("Math Tutor", "Helps with math")
    assert [tool.type for tool in assistant.tools] == ["code_interpreter", "file_search", "function"]
    assert assistant.tools[1].file_search.max_num_results == 5  # type: ignore[union-attr]
    assert assistant.tools[2].function.name == "get_weather"  # type: ignore[union-attr]
    assert assistant.temperature == 0.2 and assistant.top_p == 0.9
    assert assistant.response_format.json_schema.schema_ == {"type": "object"}  # type: ignore[union-attr]
    assert assistant.to_dict()["reasoning_effort"] == "low"  # not a field of every SDK's Assistant
    assert client.beta.assistants.retrieve(assistant.id) == assistant


def test_assistant_defaults_modify_delete(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="m")
    assert assistant.tools == [] and assistant.metadata == {}
    assert assistant.temperature == 1.0 and assistant.top_p == 1.0 and assistant.response_format == "auto"
    assert assistant.name is None and assistant.instructions is None
    updated = client.beta.assistants.update(assistant.id, name="New", tools=[{"type": "code_interpreter"}])
    assert updated.name == "New" and updated.model == "m"
    assert [t.type for t in updated.tools] == ["code_interpreter"]
    updated = client.beta.assistants.update(
        assistant.id, model="other", response_format={"type": "json_object"}
    )
    assert updated.model == "other" and updated.name == "New"
    assert updated.response_format.type == "json_object"  # type: ignore[union-attr]
    result = client.beta.assistants.delete(assistant.id)
    assert (result.id, result.object, result.deleted) == (assistant.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.retrieve(assistant.id)
    assert_api_error(exc.value, 404, message=f"No assistant found with id '{assistant.id}'.")


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"name": "x" * 257}, "name", "string_above_max_length"),
        ({"description": "x" * 513}, "description", "string_above_max_length"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": -0.1}, "top_p", "decimal_below_min_value"),
        ({"tools": [{"type": "code_interpreter"}] * 129}, "tools", "array_above_max_length"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
            "invalid_value",
        ),
        ({"tools": [{"type": "browser"}]}, "tools[0]", "invalid_value"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
        ({"response_format": "json"}, "response_format", "invalid_value"),
    ],
)
def test_assistant_validation(client: OpenAI, kwargs: dict[str, object], param: str, code: str) -> None:
    before = client.beta.assistants.list(limit=100).data
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="m", **kwargs)  # type: ignore[arg-type]
    assert_api_error(exc.value, 400, param=param, code=code)
    assert client.beta.assistants.list(limit=100).data == before


def test_model_is_required(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/assistants", body={"name": "no model"}, cast_to=object)
    assert_api_error(
        exc.value,
        400,
        message="Missing required parameter: 'model'.",
        param="model",
        code="missing_required_parameter",
    )
