"""/v1/vector_stores: stores, their files, file batches and search.

Every response carries ``openai-poll-after-ms``: the SDK's ``create_and_poll``/``upload_and_poll``
helpers sleep that long between polls (1 s without it).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.schemas.common import deleted, list_envelope
from threadline.schemas.vector_stores import (
    FileBatchCreate,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileModify,
    VectorStoreModify,
    VectorStoreSearch,
    file_batch_to_wire,
    file_content_page,
    vector_store_file_to_wire,
    vector_store_to_wire,
)
from threadline.services.clock import now
from threadline.services.vector_stores import batches, stores
from threadline.services.vector_stores import files as vs_files
from threadline.services.vector_stores.search import search_store


def _respond(request: Request, content: Any) -> Response:
    return json_response(
        content, headers={"openai-poll-after-ms": str(context(request).settings.poll_after_ms)}
    )


def _ids(request: Request) -> tuple[str, str]:
    return request.path_params["vector_store_id"], request.path_params.get("file_id", "")


# --- stores ----------------------------------------------------------------------------------------
async def create_vector_store(request: Request) -> Response:
    body = await parse_body(request, VectorStoreCreate)
    store = await context(request).db.transaction(lambda uow: stores.create(uow, body))
    context(request).wake_ingestion()
    return _respond(request, vector_store_to_wire(store, now()))


async def list_vector_stores(request: Request) -> Response:
    params = list_params(request)
    page = await context(request).db.transaction(lambda uow: stores.list_stores(uow, params))
    at = now()
    return _respond(request, list_envelope([vector_store_to_wire(s, at) for s in page.items], page.has_more))


async def retrieve_vector_store(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    store = await context(request).db.transaction(lambda uow: stores.get(uow, vector_store_id))
    return _respond(request, vector_store_to_wire(store, now()))


async def modify_vector_store(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    body = await parse_body(request, VectorStoreModify)
    store = await context(request).db.transaction(lambda uow: stores.modify(uow, vector_store_id, body))
    return _respond(request, vector_store_to_wire(store, now()))


async def delete_vector_store(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    await context(request).db.transaction(lambda uow: stores.delete(uow, vector_store_id), offload=True)
    return _respond(request, deleted(vector_store_id, "vector_store"))


async def search_vector_store(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    body = await parse_body(request, VectorStoreSearch)
    queries, results = await search_store(
        context(request).db, context(request).embedder, vector_store_id, body
    )
    data = [
        {
            "file_id": r.hit.file_id,
            "filename": r.filename,
            "score": r.hit.score,
            "attributes": r.attributes,
            "content": [{"type": "text", "text": r.hit.text}],
        }
        for r in results
    ]
    page = {
        "object": "vector_store.search_results.page",
        # The schema says an array (the official example's string is the quirk).
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
    return _respond(request, page)


# --- files of a store ------------------------------------------------------------------------------
async def create_vector_store_file(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    body = await parse_body(request, VectorStoreFileCreate)
    file = await context(request).db.transaction(lambda uow: vs_files.create(uow, vector_store_id, body))
    context(request).wake_ingestion()
    return _respond(request, vector_store_file_to_wire(file))


async def list_vector_store_files(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    params = list_params(request)
    status = request.query_params.get("filter") or None
    page = await context(request).db.transaction(
        lambda uow: vs_files.list_files(uow, vector_store_id, params, status)
    )
    return _respond(request, list_envelope([vector_store_file_to_wire(f) for f in page.items], page.has_more))


async def retrieve_vector_store_file(request: Request) -> Response:
    vector_store_id, file_id = _ids(request)
    file = await context(request).db.transaction(lambda uow: vs_files.get(uow, vector_store_id, file_id))
    return _respond(request, vector_store_file_to_wire(file))


async def update_vector_store_file(request: Request) -> Response:
    vector_store_id, file_id = _ids(request)
    body = await parse_body(request, VectorStoreFileModify)
    file = await context(request).db.transaction(
        lambda uow: vs_files.update_attributes(uow, vector_store_id, file_id, body)
    )
    return _respond(request, vector_store_file_to_wire(file))


async def delete_vector_store_file(request: Request) -> Response:
    vector_store_id, file_id = _ids(request)
    await context(request).db.transaction(
        lambda uow: vs_files.delete(uow, vector_store_id, file_id), offload=True
    )
    return _respond(request, deleted(file_id, "vector_store.file"))


async def vector_store_file_content(request: Request) -> Response:
    vector_store_id, file_id = _ids(request)
    text = await context(request).db.transaction(
        lambda uow: vs_files.content(uow, vector_store_id, file_id), offload=True
    )
    return _respond(request, file_content_page(text))


# --- batches ---------------------------------------------------------------------------------------
async def create_file_batch(request: Request) -> Response:
    vector_store_id, _ = _ids(request)
    body = await parse_body(request, FileBatchCreate)
    batch = await context(request).db.transaction(lambda uow: batches.create(uow, vector_store_id, body))
    context(request).wake_ingestion()
    return _respond(request, file_batch_to_wire(batch))


async def retrieve_file_batch(request: Request) -> Response:
    vector_store_id, batch_id = request.path_params["vector_store_id"], request.path_params["batch_id"]
    batch = await context(request).db.transaction(lambda uow: batches.get(uow, vector_store_id, batch_id))
    return _respond(request, file_batch_to_wire(batch))


async def cancel_file_batch(request: Request) -> Response:
    vector_store_id, batch_id = request.path_params["vector_store_id"], request.path_params["batch_id"]
    batch = await context(request).db.transaction(
        lambda uow: batches.cancel(uow, vector_store_id, batch_id), offload=True
    )
    return _respond(request, file_batch_to_wire(batch))


async def list_file_batch_files(request: Request) -> Response:
    vector_store_id, batch_id = request.path_params["vector_store_id"], request.path_params["batch_id"]
    params = list_params(request)
    status = request.query_params.get("filter") or None
    page = await context(request).db.transaction(
        lambda uow: batches.list_files(uow, vector_store_id, batch_id, params, status)
    )
    return _respond(request, list_envelope([vector_store_file_to_wire(f) for f in page.items], page.has_more))


_STORE = "/vector_stores/{vector_store_id}"
_FILE = _STORE + "/files/{file_id}"
_BATCH = _STORE + "/file_batches/{batch_id}"

routes = [
    Route("/vector_stores", create_vector_store, methods=["POST"]),
    Route("/vector_stores", list_vector_stores, methods=["GET"]),
    Route(_STORE, retrieve_vector_store, methods=["GET"]),
    Route(_STORE, modify_vector_store, methods=["POST"]),
    Route(_STORE, delete_vector_store, methods=["DELETE"]),
    Route(_STORE + "/search", search_vector_store, methods=["POST"]),
    Route(_STORE + "/files", create_vector_store_file, methods=["POST"]),
    Route(_STORE + "/files", list_vector_store_files, methods=["GET"]),
    Route(_FILE, retrieve_vector_store_file, methods=["GET"]),
    Route(_FILE, update_vector_store_file, methods=["POST"]),
    Route(_FILE, delete_vector_store_file, methods=["DELETE"]),
    Route(_FILE + "/content", vector_store_file_content, methods=["GET"]),
    Route(_STORE + "/file_batches", create_file_batch, methods=["POST"]),
    Route(_BATCH, retrieve_file_batch, methods=["GET"]),
    Route(_BATCH + "/cancel", cancel_file_batch, methods=["POST"]),
    Route(_BATCH + "/files", list_file_batch_files, methods=["GET"]),
]
