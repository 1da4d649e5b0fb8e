"""The file_search server tool: the model calls ``file_search(query)``, we search the assistant's and
the thread's vector stores and hand the chunks back, each behind a citation marker it can quote.

Defaults follow OpenAI: ``max_num_results`` 20, ranker ``auto`` with
``score_threshold`` 0, at most 16,000 tokens of retrieved text, and up to 60 s of waiting while the
thread's store still has files in progress. An expired store fails the run ("Vector store '…' has
expired").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson

from threadline.domain.runs import Run
from threadline.executor.tools import ToolResult
from threadline.llm.types import EmbeddingModel
from threadline.retrieval import truncate
from threadline.services.runs import resources
from threadline.services.vector_stores.citations import first_marker_index, marker
from threadline.services.vector_stores.search import SearchRequest, SearchResult, search
from threadline.storage.database import Database

DEFAULT_MAX_NUM_RESULTS = 20
MAX_RESULT_TOKENS = 16_000
THREAD_STORE_WAIT_S = 60.0
_WAIT_POLL_S = 0.2
# Where a call's own arguments are stored in its details (a private key: schemas/run_steps.py).
ARGUMENTS_KEY = "_arguments"

_PARAMETERS = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to look for in the files."}},
    "required": ["query"],
}
_DESCRIPTION = (
    "Search the user's uploaded files. Returns passages, each introduced by a source marker such as "
    "【0†name】. When you use a passage, quote its marker verbatim right after the statement it supports."
)


class FileSearchTool:
    type = "file_search"
    name = "file_search"

    def __init__(self, db: Database, embedder: EmbeddingModel | None) -> None:
        self.db = db
        self.embedder = embedder

    def chat_tool(self, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": _DESCRIPTION, "parameters": _PARAMETERS},
        }

    async def call(self, run: Run, arguments: str) -> ToolResult:
        query = _query(arguments)
        settings = next((t.get("file_search") or {} for t in run.tools if t.get("type") == "file_search"), {})
        options = settings.get("ranking_options") or {}
        threshold = float(options.get("score_threshold") or 0.0)
        ranking = {"ranker": options.get("ranker") or "default_2024_08_21", "score_threshold": threshold}
        store_ids, thread_store_ids = await self.db.transaction(lambda uow: resources.search_scope(uow, run))
        await self._wait_for_thread_stores(thread_store_ids)
        results = await search(
            self.db,
            self.embedder,
            SearchRequest(
                vector_store_ids=store_ids,
                queries=[query] if query else [],
                max_num_results=int(settings.get("max_num_results") or DEFAULT_MAX_NUM_RESULTS),
                score_threshold=threshold,
            ),
        )
        details = {"ranking_options": ranking, "results": [_wire(r) for r in results]}
        # Kept for the next rounds' prompt (the model must see the call it made); not on the wire.
        details[ARGUMENTS_KEY] = arguments
        return ToolResult(details=details)

    def replay(self, details: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> tuple[str, str]:
        # Markers are numbered across the run: this call's first result follows the last result of
        # the run's earlier calls, so 【i†…】 means the same result to the model in every round and
        # to the annotations built from the stored steps (citations.run_search_results).
        arguments = details.get(ARGUMENTS_KEY)
        # Calls stored before the arguments were kept replay as "{}".
        replayed = arguments if isinstance(arguments, str) and arguments else "{}"
        return replayed, _output(details.get("results") or [], first_marker_index(earlier))

    async def _wait_for_thread_stores(self, store_ids: list[str]) -> None:
        deadline = time.monotonic() + THREAD_STORE_WAIT_S
        while store_ids and time.monotonic() < deadline:
            busy = await self.db.transaction(lambda uow: resources.any_ingesting(uow, store_ids))
            if not busy:
                return
            await asyncio.sleep(_WAIT_POLL_S)


def _query(arguments: str) -> str:
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments  # a model that sent plain text still meant it as the query
    if isinstance(parsed, dict):
        query = parsed.get("query")
        if isinstance(query, list):
            return " ".join(str(q) for q in query)
        return str(query or "")
    return str(parsed)


def _wire(result: SearchResult) -> dict[str, Any]:
    return {
        "file_id": result.hit.file_id,
        "file_name": result.filename,
        "score": result.hit.score,
        "content": [{"type": "text", "text": result.hit.text}],
    }


def _output(results: list[dict[str, Any]], first_index: int) -> str:
    """What the model reads for one call's stored results: each passage behind its marker."""
    if not results:
        return "No results found."
    passages = [
        f"{marker(first_index + i, r.get('file_name', ''))}\n{(r.get('content') or [{}])[0].get('text', '')}"
        for i, r in enumerate(results)
    ]
    return truncate("\n\n".join(passages), MAX_RESULT_TOKENS)
