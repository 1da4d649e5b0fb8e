"""/v1/threads/{thread_id}/runs/{run_id}/steps[/{step_id}]"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params
from threadline.schemas.common import list_envelope
from threadline.schemas.run_steps import step_to_wire
from threadline.services.runs import queries


def _include(request: Request) -> frozenset[str]:
    # The SDK sends ``include[]=...``; accept the bare name too.
    query = request.query_params
    return frozenset(query.getlist("include[]") + query.getlist("include"))


async def list_steps(request: Request) -> Response:
    thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
    params = list_params(request)
    include = _include(request)
    page = await context(request).db.transaction(
        lambda uow: queries.list_steps(uow, thread_id, run_id, params)
    )
    return json_response(list_envelope([step_to_wire(s, include) for s in page.items], page.has_more))


async def retrieve_step(request: Request) -> Response:
    thread_id, run_id, step_id = (request.path_params[k] for k in ("thread_id", "run_id", "step_id"))
    include = _include(request)
    step = await context(request).db.transaction(
        lambda uow: queries.get_step(uow, thread_id, run_id, step_id)
    )
    return json_response(step_to_wire(step, include))


routes = [
    Route("/threads/{thread_id}/runs/{run_id}/steps", list_steps, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/steps/{step_id}", retrieve_step, methods=["GET"]),
]
