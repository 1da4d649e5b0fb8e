"""No input may produce a 5xx: random JSON bodies and query strings against every write endpoint."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.errors import assert_api_error, error_of
from tests.support.server import ServerProcess

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies near the real shapes find deeper paths than pure noise does.
field_names = st.sampled_from(
    [
        "messages",
        "role",
        "content",
        "metadata",
        "tool_resources",
        "model",
        "tools",
        "name",
        "instructions",
        "temperature",
        "top_p",
        "response_format",
        "attachments",
        "file_search",
        "code_interpreter",
        "vector_store_ids",
        "vector_stores",
        "file_ids",
        "type",
        "text",
        "image_url",
        "chunking_strategy",
    ]
)
bodies = st.dictionaries(field_names, json_values, max_size=5)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error_of(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(bodies, json_values), which=st.integers(0, 6))
def test_random_bodies_never_5xx(server: ServerProcess, body: Any, which: int) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        thread_id = http.post("/threads").json()["id"]
        assistant_id = http.post("/assistants", json={"model": "m"}).json()["id"]
        message_id = http.post(
            f"/threads/{thread_id}/messages", json={"role": "user", "content": "x"}
        ).json()["id"]
        targets = [
            "/threads",
            f"/threads/{thread_id}",
            f"/threads/{thread_id}/messages",
            f"/threads/{thread_id}/messages/{message_id}",
            "/assistants",
            f"/assistants/{assistant_id}",
            "/threads",
        ]
        _check(http.post(targets[which], json=body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["limit", "order", "after", "before", "run_id", "metadata[k]"]), st.text(max_size=20)
    )
)
def test_random_list_params_never_5xx(server: ServerProcess, params: dict[str, str]) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        thread_id = http.post("/threads").json()["id"]
        for path in ("/threads", "/assistants", f"/threads/{thread_id}/messages"):
            _check(http.get(path, params=params))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(object_id=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in {".", ".."}))
def test_random_ids_never_5xx(server: ServerProcess, object_id: str) -> None:
    object_id = quote(object_id, safe="")  # any id, sent as a client library would escape it
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for path in (f"/threads/{object_id}", f"/assistants/{object_id}", f"/threads/{object_id}/messages"):
            _check(http.get(path))
            _check(http.delete(path))


def test_refusals_first_on_every_database_thread_leave_it_serving(backend: str, tmp_path: Path) -> None:
    """On a fresh server, 404s sent 16 at a time make a refusal the first transaction of most of its
    database threads (PostgreSQL runs them on 10); every request after them is still answered, not
    a 500 (a thread whose first transaction raised once answered 500 to all it served after)."""
    env, pg_url = server_env(backend)
    server = ServerProcess(tmp_path, env).start()
    try:
        with make_client(server.base_url) as sdk:
            thread = sdk.beta.threads.create()

            def miss(_: int) -> None:
                with pytest.raises(openai.NotFoundError) as exc:
                    sdk.beta.threads.retrieve("thread_missing")
                assert_api_error(exc.value, 404, message="No thread found with id 'thread_missing'.")

            def hit(_: int) -> str:
                return sdk.beta.threads.retrieve(thread.id).id

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(miss, range(64)))
                assert set(pool.map(hit, range(64))) == {thread.id}
    finally:
        server.stop()
        if pg_url:
            databases.drop_database(pg_url)
