"""Messages of a thread. Adding one is refused while a run holds the thread lock."""

from __future__ import annotations

from threadline.domain.errors import MessageNotFound, ThreadLocked, ThreadNotFound
from threadline.domain.ids import check_id, new_id
from threadline.domain.threads import ListParams, Message, Page
from threadline.schemas.common import dump
from threadline.schemas.messages import MessageCreate, MessageModify, content_parts
from threadline.services.clock import now
from threadline.services.vector_stores.attachments import apply_attachments
from threadline.storage.uow import UnitOfWork


def build(thread_id: str, request: MessageCreate) -> Message:
    """A new completed message from a create request (not yet stored)."""
    return Message(
        id=new_id("message"),
        thread_id=thread_id,
        created_at=now(),
        role=request.role,
        content=content_parts(request.content),
        attachments=[dump(a) for a in request.attachments or []],
        metadata=request.metadata or {},
    )


def _require_thread(uow: UnitOfWork, thread_id: str) -> None:
    check_id("thread", "thread_id", thread_id)
    if uow.threads.get(thread_id) is None:
        raise ThreadNotFound(thread_id)


def create(uow: UnitOfWork, thread_id: str, request: MessageCreate) -> Message:
    _require_thread(uow, thread_id)
    active = uow.runs.active_run_id(thread_id)
    if active is not None:
        raise ThreadLocked(f"Can't add messages to {thread_id} while a run {active} is active.")
    message = build(thread_id, request)
    uow.messages.insert_many([message])
    apply_attachments(uow, thread_id, [message])
    return message


def get(uow: UnitOfWork, thread_id: str, message_id: str) -> Message:
    _require_thread(uow, thread_id)
    check_id("message", "message_id", message_id)
    message = uow.messages.get(thread_id, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message


def modify(uow: UnitOfWork, thread_id: str, message_id: str, request: MessageModify) -> Message:
    message = get(uow, thread_id, message_id)
    if "metadata" in request.model_fields_set:
        message.metadata = request.metadata or {}
        uow.messages.update(message)
    return message


def delete(uow: UnitOfWork, thread_id: str, message_id: str) -> None:
    _require_thread(uow, thread_id)
    check_id("message", "message_id", message_id)
    if not uow.messages.delete(thread_id, message_id):
        raise MessageNotFound(message_id)


def list_messages(uow: UnitOfWork, thread_id: str, params: ListParams, run_id: str | None) -> Page[Message]:
    _require_thread(uow, thread_id)
    return uow.messages.list(thread_id, params, run_id)
