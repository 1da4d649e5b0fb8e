"""Assistants: any model string is accepted (the provider is resolved when a run starts)."""

from __future__ import annotations

from threadline.domain.errors import AssistantNotFound
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import Assistant, ListParams, Page
from threadline.schemas.assistants import AssistantCreate, AssistantModify
from threadline.schemas.common import dump
from threadline.services.clock import now
from threadline.services.tool_resources import tool_resources_to_stored
from threadline.storage.uow import UnitOfWork

# OpenAI echoes these when the client sent nothing (official examples).
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_RESPONSE_FORMAT = "auto"


def create(uow: UnitOfWork, request: AssistantCreate) -> Assistant:
    assistant = Assistant(
        id=new_id("assistant"),
        created_at=now(),
        model=request.model,
        name=request.name,
        description=request.description,
        instructions=request.instructions,
        tools=dump(request.tools or []),
        # An assistant's helper-made store does not expire (only thread stores do).
        tool_resources=tool_resources_to_stored(uow, request.tool_resources, store_expires=False),
        metadata=request.metadata or {},
        temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
        response_format=dump(request.response_format) or DEFAULT_RESPONSE_FORMAT,
        reasoning_effort=request.reasoning_effort,
    )
    uow.assistants.insert(assistant)
    return assistant


def get(uow: UnitOfWork, assistant_id: str) -> Assistant:
    check_id("assistant", "assistant_id", assistant_id)
    assistant = uow.assistants.get(assistant_id)
    if assistant is None:
        raise AssistantNotFound(assistant_id)
    return assistant


def modify(uow: UnitOfWork, assistant_id: str, request: AssistantModify) -> Assistant:
    assistant = get(uow, assistant_id)
    given = request.model_fields_set
    if "model" in given and request.model is not None:
        assistant.model = request.model
    for name in ("name", "description", "instructions", "reasoning_effort"):
        if name in given:
            setattr(assistant, name, getattr(request, name))
    if "tools" in given:
        assistant.tools = dump(request.tools or [])
    if "tool_resources" in given:
        assistant.tool_resources = tool_resources_to_stored(uow, request.tool_resources)
    if "metadata" in given:
        assistant.metadata = request.metadata or {}
    if "temperature" in given:
        assistant.temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
    if "top_p" in given:
        assistant.top_p = DEFAULT_TOP_P if request.top_p is None else request.top_p
    if "response_format" in given:
        assistant.response_format = dump(request.response_format) or DEFAULT_RESPONSE_FORMAT
    uow.assistants.update(assistant)
    return assistant


def delete(uow: UnitOfWork, assistant_id: str) -> None:
    check_id("assistant", "assistant_id", assistant_id)
    if not uow.assistants.delete(assistant_id):
        raise AssistantNotFound(assistant_id)


def list_assistants(uow: UnitOfWork, params: ListParams) -> Page[Assistant]:
    return uow.assistants.list(params)
