"""file_citation annotations: the source markers a model copies from file_search output into its
answer (``【3†report.pdf】``), found in the final text and tied back to the files they cite.

The file_search tool numbers its results across the whole run (a second search, in a later round or
in parallel in the same round, continues where the one before it stopped), so marker ``i`` is the
``i``-th result of the run's file_search calls in step order, then call order within a step. Both
sides derive it from the stored steps only, the prompt builder (``FileSearchTool.replay`` given the
run's earlier calls, ``first_marker_index``) and the annotations (``run_search_results``), so it is
the same after the prompt is rebuilt or the run moves to another worker process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from threadline.domain.runs import RunStep
from threadline.storage.uow import UnitOfWork

# 【index†label】; OpenAI's own markers sometimes read 【index:chunk†label】, accepted too.
MARKER = re.compile(r"【(\d+)(?::\d+)?†([^】\n]{0,256})】")
# What a marker can look like before its closing 】 has arrived (fullmatch on the text from a 【).
# The label's bound is MARKER's: text held back waiting for a close is never longer than a marker.
_UNFINISHED = re.compile(r"【(?:\d+(?::\d*)?(?:†[^】\n]{0,256})?)?")


def marker(index: int, filename: str) -> str:
    return f"【{index}†{filename}】"


def file_citations(
    text: str, results: list[dict[str, Any]], start: int = 0, end: int | None = None
) -> list[dict[str, Any]]:
    """An annotation per marker in ``text`` (or ``text[start:end]``) that names an existing result.
    ``text``/``start_index``/``end_index`` locate the marker exactly in the whole ``text`` (clients do
    ``value.replace(annotation.text, ...)``)."""
    annotations: list[dict[str, Any]] = []
    for match in MARKER.finditer(text, start, len(text) if end is None else end):
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


class CitationMarkers:
    """file_citation as a ``services.annotations.MarkerSource``: the markers of a streaming message,
    resolved against the run's file_search results so far (``search_results``)."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results

    def pending(self, text: str, start: int) -> int:
        if not self.results:
            return len(text)  # nothing to cite: a 【 is plain text
        at = text.find("【", start)
        while at >= 0:
            if _UNFINISHED.fullmatch(text, at):
                return at
            at = text.find("【", at + 1)
        return len(text)

    def find(self, text: str, start: int, end: int) -> list[dict[str, Any]]:
        if not self.results or "【" not in text[start:end]:
            return []
        return file_citations(text, self.results, start, end)


def file_search_calls(steps: Iterable[RunStep]) -> Iterator[dict[str, Any]]:
    """The ``file_search`` details of every file_search call in ``steps`` (a run's steps, oldest
    first), in the order their results are numbered."""
    for step in steps:
        for call in step.step_details.get("tool_calls", []) if step.type == "tool_calls" else []:
            if call.get("type") == "file_search":
                yield call.get("file_search") or {}


def first_marker_index(earlier_calls: Iterable[dict[str, Any]]) -> int:
    """Where a file_search call's numbering starts: after every result of the run's earlier calls
    (their ``file_search`` details, as ``file_search_calls`` gives them)."""
    return sum(len(details.get("results") or []) for details in earlier_calls)


def search_results(steps: Iterable[RunStep]) -> list[dict[str, Any]]:
    """Every file_search result of ``steps`` (a run's steps, oldest first), in the order the tool
    numbered them."""
    return [result for details in file_search_calls(steps) for result in details.get("results") or []]


def run_search_results(uow: UnitOfWork, run_id: str) -> list[dict[str, Any]]:
    """Every file_search result of the run so far, in the order the tool numbered them."""
    return search_results(uow.run_steps.all_for_run(run_id))


def run_citations(uow: UnitOfWork, run_id: str, text: str) -> list[dict[str, Any]]:
    """The annotations for a run's final message text (``[]`` when it cites nothing)."""
    if "【" not in text:
        return []
    return file_citations(text, run_search_results(uow, run_id))
