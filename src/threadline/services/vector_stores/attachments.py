"""Message attachments and image_file parts: their file ids must exist, and attachments are helpers
that add files to the thread's tool_resources: ``file_search`` puts the file
in the thread's vector store (made on first use, expiring 7 days after last activity) and
``code_interpreter`` appends it to ``code_interpreter.file_ids``, which holds at most
``CODE_INTERPRETER_MAX_FILES`` distinct files (the spec's maxItems on a thread's tool_resources)."""

from __future__ import annotations

from typing import Any

from threadline.domain.errors import InvalidParameter
from threadline.domain.ids import check_id
from threadline.domain.threads import Message
from threadline.schemas.common import CODE_INTERPRETER_MAX_FILES
from threadline.services.vector_stores.common import new_vs_file, require_files, stored_chunking
from threadline.services.vector_stores.stores import create_thread_store
from threadline.storage.uow import UnitOfWork


def _referenced_files(messages: list[Message]) -> list[str]:
    file_ids: list[str] = []
    for message in messages:
        for index, attachment in enumerate(message.attachments):
            check_id("file", f"attachments[{index}].file_id", attachment["file_id"])
            file_ids.append(attachment["file_id"])
        for index, part in enumerate(message.content):
            if part.get("type") == "image_file":
                check_id("file", f"content[{index}].image_file.file_id", part["image_file"]["file_id"])
                file_ids.append(part["image_file"]["file_id"])
    return list(dict.fromkeys(file_ids))


def _files_for(messages: list[Message], tool: str) -> list[str]:
    ids = [
        a["file_id"]
        for m in messages
        for a in m.attachments
        if any(t.get("type") == tool for t in a.get("tools") or [])
    ]
    return list(dict.fromkeys(ids))


def _code_interpreter_files(resources: dict[str, Any], code_ids: list[str]) -> list[str]:
    """The thread's code_interpreter files with ``code_ids`` appended, each file once. OpenAI caps the
    list at 20 in every request that sets it, so attachments may not push a thread past it either."""
    existing = list((resources.get("code_interpreter") or {}).get("file_ids") or [])
    merged = list(dict.fromkeys(existing + code_ids))
    if len(merged) > CODE_INTERPRETER_MAX_FILES:
        raise InvalidParameter(
            "Invalid 'attachments': too many code_interpreter files for the thread. Expected "
            f"tool_resources.code_interpreter.file_ids to hold at most {CODE_INTERPRETER_MAX_FILES} "
            f"files, but these attachments would bring it to {len(merged)} instead.",
            param="attachments",
            code="array_above_max_length",
        )
    return merged


def apply_attachments(uow: UnitOfWork, thread_id: str, messages: list[Message]) -> dict[str, Any] | None:
    """Validate the files ``messages`` reference (404 ``No such File object``) and apply their
    attachments to the thread's tool_resources, in the caller's transaction; the thread's new
    tool_resources, or None when they are unchanged. Every check runs before this writes anything;
    a refusal (400 past the code_interpreter cap) raises, and the caller's transaction then rolls
    back the messages and thread it wrote."""
    require_files(uow, _referenced_files(messages), "attachments")
    search_ids = _files_for(messages, "file_search")
    code_ids = _files_for(messages, "code_interpreter")
    if not search_ids and not code_ids:
        return None
    thread = uow.threads.get(thread_id)
    if thread is None:
        return None
    resources: dict[str, Any] = dict(thread.tool_resources or {})
    if code_ids:
        resources["code_interpreter"] = {"file_ids": _code_interpreter_files(resources, code_ids)}
    if search_ids:
        store_ids = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
        if store_ids:
            for file_id in search_ids:
                if uow.vector_stores.get_file(store_ids[0], file_id) is None:
                    uow.vector_stores.put_file(
                        new_vs_file(store_ids[0], file_id, stored_chunking(None), None)
                    )
        else:
            store = create_thread_store(uow, search_ids, None, None, "attachments")
            resources["file_search"] = {"vector_store_ids": [store.id]}
    thread.tool_resources = resources
    uow.threads.update(thread)
    return resources
