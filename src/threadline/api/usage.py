"""``GET /v1/organization/usage/completions`` (Admin API; admin keys only, see api/middleware.py)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, query_limit
from threadline.domain.errors import InvalidParameter
from threadline.services import usage
from threadline.storage.scope import ALL_PROJECTS


def _int(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise InvalidParameter(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"Invalid '{name}': expected an integer, got {raw!r}.", param=name) from None


def _list(request: Request, name: str) -> tuple[str, ...]:
    """``name=a&name=b`` or ``name[]=a``, as HTTP clients send arrays."""
    return (*request.query_params.getlist(name), *request.query_params.getlist(f"{name}[]"))


async def usage_completions(request: Request) -> Response:
    width = request.query_params.get("bucket_width", "1d")
    if width != "1d":
        raise InvalidParameter(
            f"Invalid 'bucket_width': {width!r}. This server keeps usage per day: use '1d'.",
            param="bucket_width",
        )
    page = request.query_params.get("page")
    start = _int(request, "start_time")
    if page is not None:
        try:
            start = int(page)
        except ValueError:
            raise InvalidParameter(f"Invalid 'page': {page!r}.", param="page") from None
    query = usage.UsageQuery(
        start_time=start,
        end_time=_int(request, "end_time", int(time.time()) + 1),
        limit=query_limit(request.query_params.get("limit"), usage.MAX_DAYS, usage.DEFAULT_DAYS),
        project_ids=_list(request, "project_ids"),
        models=_list(request, "models"),
        group_by=_list(request, "group_by"),
    )
    body = await context(request).db.transaction(
        lambda uow: usage.completions(uow, query), scope=ALL_PROJECTS
    )
    return json_response(body)


routes = [Route("/organization/usage/completions", usage_completions, methods=["GET"])]
