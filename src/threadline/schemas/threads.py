"""Threads on the wire."""

from __future__ import annotations

from typing import Any

from threadline.domain.threads import Thread
from threadline.schemas.common import Metadata, Strict, ToolResources, ToolResourcesCreate
from threadline.schemas.messages import MessageCreate


class ThreadCreate(Strict):
    messages: list[MessageCreate] | None = None
    tool_resources: ToolResourcesCreate | None = None
    metadata: Metadata | None = None


class ThreadModify(Strict):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


def thread_to_wire(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "tool_resources": thread.tool_resources,
        "metadata": thread.metadata,
    }
