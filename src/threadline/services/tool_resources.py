"""tool_resources of assistants and threads: from request models to the stored/wire shape.

Ids must name existing objects (404 ``No such File object`` / ``No vector store found``); the
``vector_stores`` helper creates a store and stores its id. A store made for a thread expires 7 days
after its last activity, as OpenAI's do; an assistant's (``store_expires=False``) does not.
"""

from __future__ import annotations

from typing import Any

from threadline.schemas.common import FileSearchResourcesCreate, ToolResources, ToolResourcesCreate
from threadline.services.vector_stores.common import require_files
from threadline.services.vector_stores.stores import create_store, create_thread_store, require_stores
from threadline.storage.uow import UnitOfWork


def tool_resources_to_stored(
    uow: UnitOfWork, resources: ToolResources | ToolResourcesCreate | None, *, store_expires: bool = True
) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    if resources is None:
        return stored
    if resources.code_interpreter is not None:
        file_ids = list(resources.code_interpreter.file_ids or [])
        require_files(uow, file_ids, "tool_resources.code_interpreter.file_ids")
        stored["code_interpreter"] = {"file_ids": file_ids}
    file_search = resources.file_search
    if file_search is not None:
        vector_store_ids = list(file_search.vector_store_ids or [])
        require_stores(uow, vector_store_ids, "tool_resources.file_search.vector_store_ids")
        if isinstance(file_search, FileSearchResourcesCreate) and file_search.vector_stores:
            vector_store_ids = [_helper_store(uow, file_search, store_expires)]
        stored["file_search"] = {"vector_store_ids": vector_store_ids}
    return stored


def _helper_store(uow: UnitOfWork, file_search: FileSearchResourcesCreate, store_expires: bool) -> str:
    helper = (file_search.vector_stores or [])[0]
    param = "tool_resources.file_search.vector_stores[0].file_ids"
    file_ids = list(helper.file_ids or [])
    if store_expires:
        return create_thread_store(uow, file_ids, helper.chunking_strategy, helper.metadata, param).id
    store = create_store(
        uow,
        name=None,
        metadata=helper.metadata,
        expires_after=None,
        file_ids=file_ids,
        chunking=helper.chunking_strategy,
        file_ids_param=param,
    )
    return store.id
