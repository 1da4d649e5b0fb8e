"""Raw Server-Sent Events reads: what the server writes, frame by frame, without an SDK in between."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test-key"}


def read_sse(base_url: str, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST ``body`` with ``stream: true`` semantics and return ``(event, data)`` pairs; every frame
    must be exactly one ``event:`` and one ``data:`` line (as OpenAI's transcripts are)."""
    events: list[tuple[str, Any]] = []
    with httpx.stream("POST", base_url + path, json=body, headers=HEADERS, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    for frame in raw.split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, frame
        data = lines[1][len("data: ") :]
        events.append((lines[0][len("event: ") :], data if data == "[DONE]" else json.loads(data)))
    return events


def collapsed_names(events: list[tuple[str, Any]]) -> list[str]:
    """Event names with runs of the same name (consecutive deltas) collapsed to one."""
    return [name for name, _ in itertools.groupby(name for name, _ in events)]
