"""Threads: create (with messages), retrieve, modify, delete, list (a Threadline extension)."""

from __future__ import annotations

from threadline.domain.errors import ThreadNotFound
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import ListParams, Page, Thread
from threadline.schemas.common import ToolResources
from threadline.schemas.threads import ThreadCreate, ThreadModify
from threadline.services import messages as messages_service
from threadline.services.clock import now
from threadline.services.tool_resources import tool_resources_to_stored
from threadline.services.vector_stores.attachments import apply_attachments
from threadline.storage.uow import UnitOfWork


def get(uow: UnitOfWork, thread_id: str) -> Thread:
    check_id("thread", "thread_id", thread_id)
    thread = uow.threads.get(thread_id)
    if thread is None:
        raise ThreadNotFound(thread_id)
    return thread


def create(
    uow: UnitOfWork, request: ThreadCreate, default_tool_resources: ToolResources | None = None
) -> Thread:
    """A new thread with its messages. ``default_tool_resources`` (create-thread-and-run's) stand in
    when the request names none; message attachments then add to whichever apply."""
    resources = request.tool_resources if request.tool_resources is not None else default_tool_resources
    thread = Thread(
        id=new_id("thread"),
        created_at=now(),
        tool_resources=tool_resources_to_stored(uow, resources),
        metadata=request.metadata or {},
    )
    uow.threads.insert(thread)
    # Messages are created in the order given; their ids sort after the thread's and each other's.
    created = [messages_service.build(thread.id, m) for m in request.messages or []]
    uow.messages.insert_many(created)
    updated = apply_attachments(uow, thread.id, created)
    if updated is not None:
        thread.tool_resources = updated
    return thread


def modify(uow: UnitOfWork, thread_id: str, request: ThreadModify) -> Thread:
    thread = get(uow, thread_id)
    given = request.model_fields_set
    if "metadata" in given:
        thread.metadata = request.metadata or {}
    if "tool_resources" in given:
        thread.tool_resources = tool_resources_to_stored(uow, request.tool_resources)
    uow.threads.update(thread)
    return thread


def delete(uow: UnitOfWork, thread_id: str) -> None:
    check_id("thread", "thread_id", thread_id)
    if not uow.threads.delete(thread_id):
        raise ThreadNotFound(thread_id)


def list_threads(uow: UnitOfWork, params: ListParams, metadata_filter: dict[str, str]) -> Page[Thread]:
    return uow.threads.list(params, metadata_filter)
