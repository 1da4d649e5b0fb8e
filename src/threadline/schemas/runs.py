"""Runs on the wire: create run, create thread and run, modify, submit tool outputs; the run object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from threadline.domain.run_states import TERMINAL_RUN_STATUSES
from threadline.domain.runs import Run
from threadline.schemas.assistants import Instructions, Temperature, TopP
from threadline.schemas.common import (
    Metadata,
    Model,
    ReasoningEffort,
    ResponseFormat,
    Strict,
    Tool,
    ToolResources,
)
from threadline.schemas.messages import MessageCreate
from threadline.schemas.threads import ThreadCreate

# The spec's minimum for both budgets (how-it-works.txt: "Max Completion and Max Prompt Tokens").
TokenBudget = Annotated[int, Field(ge=256)]
RunTools = Annotated[list[Tool], Field(max_length=20)]


class TruncationStrategy(Strict):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1)] | None = None


class ToolChoiceFunction(Strict):
    name: Annotated[str, StringConstraints(min_length=1)]


class NamedToolChoice(Strict):
    type: Literal["function", "code_interpreter", "file_search"]
    function: ToolChoiceFunction | None = None

    @model_validator(mode="after")
    def _function_named(self) -> NamedToolChoice:
        if self.type == "function" and self.function is None:
            raise ValueError("'function' is required when type is 'function'.")
        return self


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class _RunOptions(Strict):
    """Fields shared by create run and create thread and run."""

    assistant_id: str
    model: Model | None = None
    instructions: Instructions | None = None
    tools: RunTools | None = None
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool | None = None
    max_prompt_tokens: TokenBudget | None = None
    max_completion_tokens: TokenBudget | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class RunCreate(_RunOptions):
    reasoning_effort: ReasoningEffort | None = None
    additional_instructions: Instructions | None = None
    additional_messages: list[MessageCreate] | None = None


class ThreadAndRunCreate(_RunOptions):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunModify(Strict):
    metadata: Metadata | None = None


class ToolOutput(Strict):
    tool_call_id: str | None = None
    output: str | None = None


class ToolOutputsSubmit(Strict):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


def run_to_wire(run: Run) -> dict[str, Any]:
    terminal = run.status in TERMINAL_RUN_STATUSES
    return {
        "id": run.id,
        "object": "thread.run",
        "created_at": run.created_at,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": run.status,
        "required_action": run.required_action,
        "last_error": run.last_error,
        # Official examples: +600 s while live, null once terminal.
        "expires_at": None if terminal else run.expires_at,
        "started_at": run.started_at,
        "cancelled_at": run.cancelled_at,
        "failed_at": run.failed_at,
        "completed_at": run.completed_at,
        "incomplete_details": run.incomplete_details,
        "model": run.model,
        "instructions": run.instructions,
        "tools": run.tools,
        "metadata": run.metadata,
        "usage": run.usage if terminal else None,
        "temperature": run.temperature,
        "top_p": run.top_p,
        "max_prompt_tokens": run.max_prompt_tokens,
        "max_completion_tokens": run.max_completion_tokens,
        "truncation_strategy": run.truncation_strategy,
        "tool_choice": run.tool_choice,
        "parallel_tool_calls": run.parallel_tool_calls,
        "response_format": run.response_format,
        "reasoning_effort": run.reasoning_effort,
    }
