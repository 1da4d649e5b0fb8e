"""Assistants on the wire."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from threadline.domain.threads import Assistant
from threadline.schemas.common import (
    Metadata,
    Model,
    ReasoningEffort,
    ResponseFormat,
    Strict,
    Tool,
    ToolResources,
    ToolResourcesCreate,
)

Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(ge=0, le=1)]
Name = Annotated[str, StringConstraints(max_length=256)]
Description = Annotated[str, StringConstraints(max_length=512)]
Instructions = Annotated[str, StringConstraints(max_length=256000)]
Tools = Annotated[list[Tool], Field(max_length=128)]


class AssistantCreate(Strict):
    model: Model
    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Tools | None = None
    tool_resources: ToolResourcesCreate | None = None
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None


class AssistantModify(Strict):
    model: Model | None = None
    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Tools | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None


def assistant_to_wire(assistant: Assistant) -> dict[str, Any]:
    return {
        "id": assistant.id,
        "object": "assistant",
        "created_at": assistant.created_at,
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant.model,
        "instructions": assistant.instructions,
        "tools": assistant.tools,
        "tool_resources": assistant.tool_resources,
        "metadata": assistant.metadata,
        "temperature": assistant.temperature,
        "top_p": assistant.top_p,
        "response_format": assistant.response_format,
        "reasoning_effort": assistant.reasoning_effort,
    }
