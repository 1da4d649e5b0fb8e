"""/v1/assistants"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.schemas.assistants import AssistantCreate, AssistantModify, assistant_to_wire
from threadline.schemas.common import deleted, list_envelope
from threadline.services import assistants


async def create_assistant(request: Request) -> Response:
    body = await parse_body(request, AssistantCreate)
    assistant = await context(request).db.transaction(lambda uow: assistants.create(uow, body))
    return json_response(assistant_to_wire(assistant))


async def list_assistants(request: Request) -> Response:
    params = list_params(request)
    page = await context(request).db.transaction(lambda uow: assistants.list_assistants(uow, params))
    return json_response(list_envelope([assistant_to_wire(a) for a in page.items], page.has_more))


async def retrieve_assistant(request: Request) -> Response:
    assistant_id = request.path_params["assistant_id"]
    assistant = await context(request).db.transaction(lambda uow: assistants.get(uow, assistant_id))
    return json_response(assistant_to_wire(assistant))


async def modify_assistant(request: Request) -> Response:
    assistant_id = request.path_params["assistant_id"]
    body = await parse_body(request, AssistantModify)
    assistant = await context(request).db.transaction(lambda uow: assistants.modify(uow, assistant_id, body))
    return json_response(assistant_to_wire(assistant))


async def delete_assistant(request: Request) -> Response:
    assistant_id = request.path_params["assistant_id"]
    await context(request).db.transaction(lambda uow: assistants.delete(uow, assistant_id))
    return json_response(deleted(assistant_id, "assistant"))


routes = [
    Route("/assistants", create_assistant, methods=["POST"]),
    Route("/assistants", list_assistants, methods=["GET"]),
    Route("/assistants/{assistant_id}", retrieve_assistant, methods=["GET"]),
    Route("/assistants/{assistant_id}", modify_assistant, methods=["POST"]),
    Route("/assistants/{assistant_id}", delete_assistant, methods=["DELETE"]),
]
