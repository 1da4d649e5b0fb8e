"""Run steps on the wire, and the stream's delta objects."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from threadline.domain.runs import RunStep

# The only value the spec defines for ``include[]`` on steps.
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


# A server tool's stored call may keep what only the server needs under keys starting with "_" (the
# model's own arguments, replayed to it in later rounds); they never go on the wire.
PRIVATE_PREFIX = "_"


def _public_details(details: dict[str, Any], with_result_content: bool) -> dict[str, Any]:
    """The stored details as the wire shows them: private keys dropped, and file_search results
    without chunk text unless the client asked for it with include[]."""
    if details.get("type") != "tool_calls":
        return details
    calls = details.get("tool_calls", [])
    private = any(k.startswith(PRIVATE_PREFIX) for c in calls for k in (c.get(c.get("type", "")) or {}))
    strip_content = not with_result_content and any(c.get("type") == "file_search" for c in calls)
    if not private and not strip_content:
        return details
    details = copy.deepcopy(details)
    for call in details["tool_calls"]:
        inner = call.get(call.get("type", ""))
        if not isinstance(inner, dict):
            continue
        for key in [k for k in inner if k.startswith(PRIVATE_PREFIX)]:
            del inner[key]
        if strip_content and call.get("type") == "file_search":
            for result in inner.get("results") or []:
                result.pop("content", None)
    return details


def step_to_wire(step: RunStep, include: frozenset[str] = frozenset()) -> dict[str, Any]:
    details = _public_details(step.step_details, FILE_SEARCH_CONTENT in include)
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


def message_delta_to_wire(
    message_id: str, index: int, text: str, first: bool, annotations: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    text_part: dict[str, Any] = {"value": text}
    if first or annotations:
        text_part["annotations"] = list(annotations)
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {"content": [{"index": index, "type": "text", "text": text_part}]},
    }
