"""Schema-driven fuzzing of every operation: no input gives a 5xx.

The operations are the app's own route table, so a new route is fuzzed without touching this file.
Bodies come from the JSON Schema of the request model each operation parses (near-valid requests
reach deep into the services), mixed with mutations of them and plain JSON noise; path parameters
are real ids of live objects or garbage; list operations get random query strings. The example
budget keeps the suite fast (a few seconds per backend)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.support.errors import error_of
from tests.support.server import ServerProcess
from threadline.api.routes import v1_routes
from threadline.schemas.assistants import AssistantCreate, AssistantModify
from threadline.schemas.messages import MessageCreate, MessageModify
from threadline.schemas.runs import RunCreate, RunModify, ThreadAndRunCreate, ToolOutputsSubmit
from threadline.schemas.threads import ThreadCreate, ThreadModify
from threadline.schemas.vector_stores import (
    FileBatchCreate,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileModify,
    VectorStoreModify,
    VectorStoreSearch,
)

BODY_MODELS: dict[str, type[BaseModel]] = {
    "/assistants": AssistantCreate,
    "/assistants/{assistant_id}": AssistantModify,
    "/threads": ThreadCreate,
    "/threads/{thread_id}": ThreadModify,
    "/threads/{thread_id}/messages": MessageCreate,
    "/threads/{thread_id}/messages/{message_id}": MessageModify,
    "/threads/runs": ThreadAndRunCreate,
    "/threads/{thread_id}/runs": RunCreate,
    "/threads/{thread_id}/runs/{run_id}": RunModify,
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": ToolOutputsSubmit,
    "/vector_stores": VectorStoreCreate,
    "/vector_stores/{vector_store_id}": VectorStoreModify,
    "/vector_stores/{vector_store_id}/search": VectorStoreSearch,
    "/vector_stores/{vector_store_id}/files": VectorStoreFileCreate,
    "/vector_stores/{vector_store_id}/files/{file_id}": VectorStoreFileModify,
    "/vector_stores/{vector_store_id}/file_batches": FileBatchCreate,
}


def _operations() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in v1_routes():
        for sub in getattr(route, "routes", [route]):
            for method in sorted(getattr(sub, "methods", None) or ()):
                if method != "HEAD":
                    found.append((method, sub.path))
    return found


OPERATIONS = _operations()

# --- JSON Schema -> hypothesis -----------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
noise = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by ``schema``: mostly valid, sometimes off by a limit or a type (``noise``)."""
    if depth > 6:
        return scalars
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, defs, depth + 1) for s in schema[key]])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], defs, depth + 1)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        # Lengths around the cap find off-by-one limits without sending megabytes every time.
        cap = schema.get("maxLength")
        texts = st.text(max_size=12)
        if cap is not None:
            texts = st.one_of(texts, st.sampled_from([cap, cap + 1]).map(lambda n: "s" * n))
        return texts
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v for b in (low, high) if b is not None for v in (b - 1, b, b + 1)]
        return st.one_of(st.integers(-1000, 100_000), st.sampled_from(edges)) if edges else st.integers()
    if kind == "number":
        return st.floats(-10, 10, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, depth + 1)
        return st.lists(items, max_size=min(schema.get("maxItems", 3) + 1, 4))
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not properties:
            extra = schema.get("additionalProperties")
            values = from_schema(extra if isinstance(extra, dict) else {}, defs, depth + 1)
            return st.dictionaries(st.text(max_size=8), values, max_size=4)
        required = set(schema.get("required", []))
        fields = {name: _field(name, sub, defs, depth) for name, sub in properties.items()}
        optional = {name: strategy for name, strategy in fields.items() if name not in required}
        return st.fixed_dictionaries(
            {name: strategy for name, strategy in fields.items() if name in required}, optional=optional
        )
    return noise


# Fields that name objects: half the time the name of a live one (filled in per request), so that
# requests get past the lookups into the services.
ID_FIELDS = {
    "assistant_id": "assistant_id",
    "file_id": "file_id",
    "file_ids": "file_id",
    "vector_store_ids": "vector_store_id",
}


def _field(name: str, schema: dict[str, Any], defs: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    shaped = from_schema(schema, defs, depth + 1)
    if name not in ID_FIELDS:
        return shaped
    live = st.just("@" + ID_FIELDS[name])
    return st.one_of(shaped, st.lists(live, min_size=1, max_size=1) if name.endswith("s") else live)


def _fill_ids(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@") and value[1:] in world:
        return world[value[1:]]
    if isinstance(value, list):
        return [_fill_ids(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill_ids(v, world) for k, v in value.items()}
    return value


def _body_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    schema = model.model_json_schema()
    shaped = from_schema(schema, schema.get("$defs", {}))
    mutated = st.tuples(shaped, st.text(max_size=10), noise).map(
        lambda t: {**t[0], t[1]: t[2]} if isinstance(t[0], dict) else t[0]
    )
    return st.one_of(shaped, shaped, mutated, noise)


BODIES = {path: _body_strategy(model) for path, model in BODY_MODELS.items()}
LIST_PARAMS = st.dictionaries(
    st.sampled_from(["limit", "order", "after", "before", "run_id", "filter", "purpose", "include[]"]),
    st.one_of(st.text(max_size=12), st.sampled_from(["1", "100", "101", "0", "asc", "desc", "completed"])),
    max_size=3,
)


# --- live objects the path parameters can name ---------------------------------------------------
@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[dict[str, str]]:
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        assistant = http.post("/assistants", json={"model": "m"}).json()["id"]
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
        message = http.get(f"/threads/{thread}/messages").json()["data"][0]["id"]
        upload = http.post("/files", files={"file": ("a.txt", b"fuzz words")}, data={"purpose": "assistants"})
        file_id = upload.json()["id"]
        store = http.post("/vector_stores", json={"file_ids": [file_id]}).json()["id"]
        batch = http.post(f"/vector_stores/{store}/file_batches", json={"file_ids": [file_id]}).json()["id"]
        run_thread = http.post("/threads").json()["id"]
        run = http.post(f"/threads/{run_thread}/runs", json={"assistant_id": assistant}).json()["id"]
        deadline = time.monotonic() + 10
        steps: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            steps = http.get(f"/threads/{run_thread}/runs/{run}/steps").json()["data"]
            status = http.get(f"/threads/{run_thread}/runs/{run}").json()["status"]
            if status not in {"queued", "in_progress"}:
                break
            time.sleep(0.05)
        yield {
            "assistant_id": assistant,
            "thread_id": thread,
            "run_thread_id": run_thread,
            "message_id": message,
            "file_id": file_id,
            "vector_store_id": store,
            "batch_id": batch,
            "run_id": run,
            "step_id": steps[0]["id"] if steps else "step_none",
        }


def _path(template: str, world: dict[str, str], data: st.DataObject) -> str:
    path = template
    uses_run = "{run_id}" in template
    for name in (
        "thread_id",
        "message_id",
        "run_id",
        "step_id",
        "assistant_id",
        "file_id",
        "vector_store_id",
        "batch_id",
    ):
        placeholder = "{" + name + "}"
        if placeholder not in path:
            continue
        real = world["run_thread_id"] if name == "thread_id" and uses_run else world[name]
        value = data.draw(st.one_of(st.just(real), st.just(real), st.text(min_size=1, max_size=30)))
        path = path.replace(placeholder, quote(value, safe="") or "x")
    return path


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:500])
    if response.status_code >= 400:
        error_of(response)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(operation=st.sampled_from(OPERATIONS), data=st.data())
def test_no_operation_answers_5xx(
    server: ServerProcess, world: dict[str, str], operation: tuple[str, str], data: st.DataObject
) -> None:
    method, template = operation
    path = _path(template, world, data)
    with httpx.Client(base_url=server.base_url, timeout=20) as http:
        if method == "GET":
            _check(http.get(path, params=data.draw(LIST_PARAMS)))
        elif method == "DELETE":
            # Deleting the live objects would leave later examples only garbage ids to try.
            if any(world[k] in path for k in world):
                return
            _check(http.delete(path))
        elif template == "/files":
            form = data.draw(
                st.dictionaries(
                    st.sampled_from(["purpose", "expires_after[anchor]", "expires_after[seconds]", "x"]),
                    st.one_of(
                        st.text(max_size=12), st.sampled_from(["assistants", "created_at", "3600", "-1"])
                    ),
                    max_size=3,
                )
            )
            name = data.draw(st.text(max_size=20))
            content = data.draw(st.binary(max_size=64))
            _check(http.post(path, data=form, files={"file": (name, content)}))
        else:
            body = _fill_ids(data.draw(BODIES.get(template, noise)), world)
            if isinstance(body, dict):
                body.pop("stream", None)  # streams are fuzzed as plain requests; SSE is tested elsewhere
            _check(http.post(path, json=body))
