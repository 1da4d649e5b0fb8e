"""tool_resources of assistants and threads: from request models to the stored/wire shape.

Until files and vector stores exist the ids are stored as given; the vector_stores helper (which
creates a store) is resolved by the vector-stores service once it exists.
"""

from __future__ import annotations

from typing import Any

from threadline.schemas.common import ToolResources, ToolResourcesCreate
from threadline.storage.uow import UnitOfWork


def tool_resources_to_stored(
    uow: UnitOfWork, resources: ToolResources | ToolResourcesCreate | None
) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    if resources is None:
        return stored
    if resources.code_interpreter is not None:
        stored["code_interpreter"] = {"file_ids": list(resources.code_interpreter.file_ids or [])}
    file_search = resources.file_search
    if file_search is not None:
        vector_store_ids = list(file_search.vector_store_ids or [])
        stored["file_search"] = {"vector_store_ids": vector_store_ids}
    return stored
