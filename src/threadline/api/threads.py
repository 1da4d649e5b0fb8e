"""/v1/threads"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.schemas.common import deleted, list_envelope
from threadline.schemas.threads import ThreadCreate, ThreadModify, thread_to_wire
from threadline.services import threads

_METADATA_PARAM = re.compile(r"^metadata\[(.+)\]$")


async def create_thread(request: Request) -> Response:
    body = await parse_body(request, ThreadCreate)
    thread = await context(request).db.transaction(lambda uow: threads.create(uow, body))
    return json_response(thread_to_wire(thread))


async def retrieve_thread(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    thread = await context(request).db.transaction(lambda uow: threads.get(uow, thread_id))
    return json_response(thread_to_wire(thread))


async def modify_thread(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    body = await parse_body(request, ThreadModify)
    thread = await context(request).db.transaction(lambda uow: threads.modify(uow, thread_id, body))
    return json_response(thread_to_wire(thread))


async def delete_thread(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    await context(request).db.transaction(lambda uow: threads.delete(uow, thread_id))
    return json_response(deleted(thread_id, "thread"))


async def list_threads(request: Request) -> Response:
    """Threadline extension: OpenAI never offered a thread list. ``metadata[key]=value`` filters."""
    params = list_params(request)
    metadata_filter = {
        match.group(1): value
        for key, value in request.query_params.items()
        if (match := _METADATA_PARAM.match(key))
    }
    page = await context(request).db.transaction(
        lambda uow: threads.list_threads(uow, params, metadata_filter)
    )
    return json_response(list_envelope([thread_to_wire(t) for t in page.items], page.has_more))


routes = [
    Route("/threads", create_thread, methods=["POST"]),
    Route("/threads", list_threads, methods=["GET"]),
    Route("/threads/{thread_id}", retrieve_thread, methods=["GET"]),
    Route("/threads/{thread_id}", modify_thread, methods=["POST"]),
    Route("/threads/{thread_id}", delete_thread, methods=["DELETE"]),
]
