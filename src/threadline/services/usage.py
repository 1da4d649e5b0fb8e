"""Completions usage per project, model and day, in the Admin API's bucket shape.

Runs add to it when they end (services/runs/transitions.py): tokens in and out summed over the run's
model calls, the number of those calls, and one run. Only day buckets are kept (``bucket_width=1d``),
aligned to UTC midnight; ``1h``/``1m`` and grouping by user, key, batch or service tier are refused
with a 400 rather than answered with figures we do not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadline.domain.errors import InvalidParameter
from threadline.storage.uow import UnitOfWork
from threadline.storage.usage import DAY_S, UsageRow, day_of

GROUPS = frozenset({"project_id", "model"})
DEFAULT_DAYS, MAX_DAYS = 7, 31


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start_time: int
    end_time: int
    limit: int = DEFAULT_DAYS
    project_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()


def check(query: UsageQuery) -> None:
    unsupported = [group for group in query.group_by if group not in GROUPS]
    if unsupported:
        raise InvalidParameter(
            f"Invalid 'group_by': {unsupported[0]!r}. This server groups usage by project_id and model only.",
            param="group_by",
        )
    if query.end_time <= query.start_time:
        raise InvalidParameter("'end_time' must be after 'start_time'.", param="end_time")


def completions(uow: UnitOfWork, query: UsageQuery) -> dict[str, Any]:
    """One page of day buckets from ``start_time`` (its UTC day) up to ``end_time``, ``limit`` at most;
    ``next_page`` is the next bucket's start."""
    check(query)
    first = day_of(query.start_time)
    last = min(first + query.limit * DAY_S, query.end_time)
    rows = uow.usage.totals(
        first,
        last,
        project_ids=query.project_ids,
        models=query.models,
        by_project="project_id" in query.group_by,
        by_model="model" in query.group_by,
    )
    by_day: dict[int, list[UsageRow]] = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
    buckets = []
    day = first
    while day < last:
        results = [_result(row) for row in by_day.get(day, [])]
        buckets.append({"object": "bucket", "start_time": day, "end_time": day + DAY_S, "results": results})
        day += DAY_S
    has_more = day < query.end_time
    return {
        "object": "page",
        "data": buckets,
        "has_more": has_more,
        "next_page": str(day) if has_more else None,
    }


def _result(row: UsageRow) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "input_cached_tokens": 0,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": row.model_requests,
        "project_id": row.project_id,
        "user_id": None,
        "api_key_id": None,
        "model": row.model,
        "batch": None,
    }
