"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.schemas.common import deleted, list_envelope
from threadline.schemas.messages import MessageCreate, MessageModify, message_to_wire
from threadline.services import messages


async def create_message(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    body = await parse_body(request, MessageCreate)
    message = await context(request).db.transaction(lambda uow: messages.create(uow, thread_id, body))
    return json_response(message_to_wire(message))


async def list_messages(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    params = list_params(request)
    run_id = request.query_params.get("run_id") or None
    page = await context(request).db.transaction(
        lambda uow: messages.list_messages(uow, thread_id, params, run_id)
    )
    return json_response(list_envelope([message_to_wire(m) for m in page.items], page.has_more))


async def retrieve_message(request: Request) -> Response:
    thread_id, message_id = request.path_params["thread_id"], request.path_params["message_id"]
    message = await context(request).db.transaction(lambda uow: messages.get(uow, thread_id, message_id))
    return json_response(message_to_wire(message))


async def modify_message(request: Request) -> Response:
    thread_id, message_id = request.path_params["thread_id"], request.path_params["message_id"]
    body = await parse_body(request, MessageModify)
    message = await context(request).db.transaction(
        lambda uow: messages.modify(uow, thread_id, message_id, body)
    )
    return json_response(message_to_wire(message))


async def delete_message(request: Request) -> Response:
    thread_id, message_id = request.path_params["thread_id"], request.path_params["message_id"]
    await context(request).db.transaction(lambda uow: messages.delete(uow, thread_id, message_id))
    return json_response(deleted(message_id, "thread.message"))


routes = [
    Route("/threads/{thread_id}/messages", create_message, methods=["POST"]),
    Route("/threads/{thread_id}/messages", list_messages, methods=["GET"]),
    Route("/threads/{thread_id}/messages/{message_id}", retrieve_message, methods=["GET"]),
    Route("/threads/{thread_id}/messages/{message_id}", modify_message, methods=["POST"]),
    Route("/threads/{thread_id}/messages/{message_id}", delete_message, methods=["DELETE"]),
]
