"""file_citation annotations: the source markers a model copies from file_search output into its
answer (``【3†report.pdf】``), found in the final text and tied back to the files they cite.

The file_search tool numbers its results across the whole run (a second search continues where the
first stopped), so marker ``i`` is the ``i``-th result of the run's file_search calls, in order.
"""

from __future__ import annotations

import re
from typing import Any

from threadline.storage.uow import UnitOfWork

# 【index†label】; OpenAI's own markers sometimes read 【index:chunk†label】, accepted too.
MARKER = re.compile(r"【(\d+)(?::\d+)?†([^】\n]{0,256})】")


def marker(index: int, filename: str) -> str:
    return f"【{index}†{filename}】"


def file_citations(text: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An annotation per marker in ``text`` that names an existing result. ``text``/``start_index``/
    ``end_index`` locate the marker exactly (clients do ``value.replace(annotation.text, ...)``)."""
    annotations: list[dict[str, Any]] = []
    for match in MARKER.finditer(text):
        index = int(match.group(1))
        if index >= len(results):
            continue  # a marker the model made up: leave it as plain text
        annotations.append(
            {
                "type": "file_citation",
                "text": match.group(0),
                "file_citation": {"file_id": results[index]["file_id"]},
                "start_index": match.start(),
                "end_index": match.end(),
            }
        )
    return annotations


def run_search_results(uow: UnitOfWork, run_id: str) -> list[dict[str, Any]]:
    """Every file_search result of the run so far, in the order the tool numbered them."""
    results: list[dict[str, Any]] = []
    for step in uow.run_steps.all_for_run(run_id):
        for call in step.step_details.get("tool_calls", []) if step.type == "tool_calls" else []:
            if call.get("type") == "file_search":
                results.extend((call.get("file_search") or {}).get("results") or [])
    return results


def run_citations(uow: UnitOfWork, run_id: str, text: str) -> list[dict[str, Any]]:
    """The annotations for a run's final message text (``[]`` when it cites nothing)."""
    if "【" not in text:
        return []
    return file_citations(text, run_search_results(uow, run_id))
