"""Runs and run steps as plain objects (what storage returns, what services and the executor rule on)."""

from __future__ import annotations

from dataclasses import dataclass, field

from threadline.domain.json_object import JsonObject
from threadline.domain.run_states import RunStatus


@dataclass(slots=True)
class Run:
    """One run; the fields are the wire's, already resolved to effective values (run overrides or
    the assistant's), so the executor needs nothing but the run to build a request."""

    id: str
    thread_id: str
    assistant_id: str
    created_at: int
    status: RunStatus
    model: str
    instructions: str
    tools: list[JsonObject]
    metadata: dict[str, str]
    truncation_strategy: JsonObject
    tool_choice: str | JsonObject
    parallel_tool_calls: bool
    response_format: str | JsonObject
    expires_at: int | None = None
    required_action: JsonObject | None = None
    last_error: JsonObject | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_details: JsonObject | None = None
    usage: JsonObject | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None
    # Executor bookkeeping, never on the wire (see storage/tables.py).
    lease_owner: str | None = None
    lease_expires_at: float | None = None


@dataclass(slots=True)
class RunStep:
    id: str
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: int
    type: str  # message_creation | tool_calls
    status: str  # in_progress | cancelled | failed | completed | expired
    # {"type": "message_creation", "message_creation": {"message_id"}} or
    # {"type": "tool_calls", "tool_calls": [{"id", "type", "function": {name, arguments, output}}]}
    step_details: JsonObject
    last_error: JsonObject | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    usage: JsonObject | None = None
