"""Run steps on the wire, and the stream's delta objects."""

from __future__ import annotations

import copy
from typing import Any

from threadline.domain.runs import RunStep

# The only value the spec defines for ``include[]`` on steps.
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _without_result_content(details: dict[str, Any]) -> dict[str, Any]:
    # file_search results carry chunk text only when the client asked for it with include[].
    if details.get("type") != "tool_calls":
        return details
    if not any(call.get("type") == "file_search" for call in details.get("tool_calls", [])):
        return details
    details = copy.deepcopy(details)
    for call in details["tool_calls"]:
        for result in (call.get("file_search") or {}).get("results") or []:
            result.pop("content", None)
    return details


def step_to_wire(step: RunStep, include: frozenset[str] = frozenset()) -> dict[str, Any]:
    details = (
        step.step_details if FILE_SEARCH_CONTENT in include else _without_result_content(step.step_details)
    )
    return {
        "id": step.id,
        "object": "thread.run.step",
        "created_at": step.created_at,
        "assistant_id": step.assistant_id,
        "thread_id": step.thread_id,
        "run_id": step.run_id,
        "type": step.type,
        "status": step.status,
        "step_details": details,
        "last_error": step.last_error,
        "expired_at": step.expired_at,
        "cancelled_at": step.cancelled_at,
        "failed_at": step.failed_at,
        "completed_at": step.completed_at,
        "metadata": step.metadata,
        "usage": None if step.status == "in_progress" else step.usage,
    }


def step_delta_to_wire(step_id: str, tool_call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
    }


def message_delta_to_wire(message_id: str, index: int, text: str, first: bool) -> dict[str, Any]:
    text_part: dict[str, Any] = {"value": text}
    if first:
        text_part["annotations"] = []
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {"content": [{"index": index, "type": "text", "text": text_part}]},
    }
