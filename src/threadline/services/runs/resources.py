"""What a run's built-in tools read and write: the vector stores ``file_search`` searches, the files
``code_interpreter`` copies into its sandbox, the figures a run has not shown yet and the files its
code writes. Each function works inside the caller's transaction, in the run's project's scope (the
executor enters it in each run's task), so a tool reaches only that project's objects."""

from __future__ import annotations

from typing import Any

from threadline.domain.errors import InvalidRequest
from threadline.domain.files import StoredFile
from threadline.domain.runs import Run
from threadline.services.clock import now
from threadline.storage.uow import UnitOfWork


def search_scope(uow: UnitOfWork, run: Run) -> tuple[list[str], list[str]]:
    """(every vector store the run's file_search searches: the assistant's then the thread's, the
    thread's alone). An expired store refuses the search, as OpenAI's do."""
    assistant = uow.assistants.get(run.assistant_id)
    thread = uow.threads.get(run.thread_id)
    assistant_ids = _resource_ids(assistant.tool_resources if assistant else None, "file_search")
    thread_ids = _resource_ids(thread.tool_resources if thread else None, "file_search")
    store_ids = list(dict.fromkeys(assistant_ids + thread_ids))
    at = now()
    for store_id in store_ids:
        store = uow.vector_stores.get(store_id)
        if store is not None and store.expired(at):
            raise InvalidRequest(f"Vector store '{store_id}' has expired")
    return store_ids, thread_ids


def any_ingesting(uow: UnitOfWork, store_ids: list[str]) -> bool:
    """Whether any of the stores still has files being indexed."""
    return any((s := uow.vector_stores.get(i)) is not None and s.file_counts.in_progress for i in store_ids)


def code_files(uow: UnitOfWork, run: Run) -> list[StoredFile]:
    """The files of the assistant's, then the thread's ``code_interpreter.file_ids`` that still exist
    (message attachments for code_interpreter are added to the thread's)."""
    assistant = uow.assistants.get(run.assistant_id)
    thread = uow.threads.get(run.thread_id)
    ids = _resource_ids(assistant.tool_resources if assistant else None, "code_interpreter")
    ids += _resource_ids(thread.tool_resources if thread else None, "code_interpreter")
    at = now()
    return [f for f in (uow.files.get(i, at) for i in dict.fromkeys(ids)) if f is not None]


def store_output(uow: UnitOfWork, file: StoredFile) -> None:
    """Record a file the run's code wrote (its bytes are already in the blob store)."""
    uow.files.insert(file)


def unshown_images(uow: UnitOfWork, run_id: str) -> list[str]:
    """The file ids of the run's code_interpreter images that none of its messages shows yet."""
    images: list[str] = []
    shown: set[str] = set()
    for step in uow.run_steps.all_for_run(run_id):
        if step.type == "message_creation":
            message = uow.messages.get(step.thread_id, step.step_details["message_creation"]["message_id"])
            for part in message.content if message is not None else []:
                if part.get("type") == "image_file":
                    shown.add(part["image_file"]["file_id"])
            continue
        for call in step.step_details.get("tool_calls", []):
            if call.get("type") == "code_interpreter":
                for output in (call.get("code_interpreter") or {}).get("outputs") or []:
                    if output.get("type") == "image":
                        images.append(output["image"]["file_id"])
    return [i for i in images if i not in shown]


def live_threads(uow: UnitOfWork, thread_ids: list[str]) -> set[str]:
    """Those of ``thread_ids`` that still exist (a session of a deleted thread is closed)."""
    return {t for t in thread_ids if uow.threads.get(t) is not None}


def _resource_ids(resources: dict[str, Any] | None, tool: str) -> list[str]:
    """``tool_resources.file_search.vector_store_ids`` or ``tool_resources.code_interpreter.file_ids``."""
    key = "vector_store_ids" if tool == "file_search" else "file_ids"
    return list(((resources or {}).get(tool) or {}).get(key) or [])
