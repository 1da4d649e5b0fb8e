"""Message attachments and image_file parts: their file ids must exist, and attachments are helpers
that add files to the thread's tool_resources (runtime-behaviours §6): ``file_search`` puts the file
in the thread's vector store (made on first use, expiring 7 days after last activity) and
``code_interpreter`` appends it to ``code_interpreter.file_ids``."""

from __future__ import annotations

from typing import Any

from threadline.domain.ids import check_id
from threadline.domain.threads import Message
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


def apply_attachments(uow: UnitOfWork, thread_id: str, messages: list[Message]) -> None:
    """Validate the files ``messages`` reference (404 ``No such File object``) and apply their
    attachments to the thread's tool_resources, in the caller's transaction."""
    require_files(uow, _referenced_files(messages), "attachments")
    search_ids = _files_for(messages, "file_search")
    code_ids = _files_for(messages, "code_interpreter")
    if not search_ids and not code_ids:
        return
    thread = uow.threads.get(thread_id)
    if thread is None:
        return
    resources: dict[str, Any] = dict(thread.tool_resources or {})
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
    if code_ids:
        existing = list((resources.get("code_interpreter") or {}).get("file_ids") or [])
        resources["code_interpreter"] = {"file_ids": list(dict.fromkeys(existing + code_ids))}
    thread.tool_resources = resources
    uow.threads.update(thread)
