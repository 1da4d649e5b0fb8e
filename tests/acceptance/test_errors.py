"""Transport-level errors: envelope, metadata limits, unknown fields, JSON, routes, methods, auth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import make_client
from tests.support.errors import assert_api_error, error_of
from tests.support.server import ServerProcess


@pytest.mark.parametrize(
    ("metadata", "param", "code"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "object_above_max_properties"),
        ({"k" * 65: "v"}, "metadata", "string_above_max_length"),
        ({"k": "v" * 513}, "metadata.k", "string_above_max_length"),
        ({"k": 1}, "metadata.k", "invalid_type"),
        ({"k": None}, "metadata.k", "invalid_type"),
    ],
)
def test_metadata_limits(client: OpenAI, metadata: dict[str, object], param: str, code: str) -> None:
    thread = client.beta.threads.create(metadata={"keep": "me"})
    creators: list[Callable[[], object]] = [
        lambda: client.beta.threads.create(metadata=metadata),  # type: ignore[arg-type]
        lambda: client.beta.threads.update(thread.id, metadata=metadata),  # type: ignore[arg-type]
        lambda: client.beta.assistants.create(model="m", metadata=metadata),  # type: ignore[arg-type]
        lambda: client.beta.threads.messages.create(thread.id, role="user", content="x", metadata=metadata),  # type: ignore[arg-type]
    ]
    for create in creators:
        with pytest.raises(openai.BadRequestError) as exc:
            create()
        error = assert_api_error(exc.value, 400, code=code)
        assert error["param"].startswith(param.split(".")[0]), error
    assert client.beta.threads.retrieve(thread.id).metadata == {"keep": "me"}, (
        "a refused modify changed nothing"
    )
    assert client.beta.threads.messages.list(thread.id).data == []


def test_metadata_at_the_limits_is_accepted(client: OpenAI) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert client.beta.threads.create(metadata=metadata).metadata == metadata


def test_unknown_field_is_rejected(server: ServerProcess) -> None:
    response = httpx.post(f"{server.base_url}/threads", json={"metadata": {}, "colour": "blue"})
    assert response.status_code == 400
    error = error_of(response)
    assert error == {
        "message": "Unrecognized request argument supplied: colour",
        "type": "invalid_request_error",
        "param": "colour",
        "code": "unknown_parameter",
    }
    response = httpx.post(
        f"{server.base_url}/threads", json={"messages": [{"role": "user", "content": "x", "x": 1}]}
    )
    assert response.status_code == 400 and error_of(response)["param"] == "messages[0].x"


def test_malformed_json_and_content_type(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.base_url}/threads", content=b'{"metadata": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in error_of(response)["message"]
    response = httpx.post(
        f"{server.base_url}/threads", content=b"metadata=1", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert "Content-Type" in error_of(response)["message"]
    response = httpx.post(
        f"{server.base_url}/threads", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and error_of(response)["type"] == "invalid_request_error"


def test_unknown_route_and_wrong_method(client: OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.get("/_stainless_unknown_path", cast_to=object)
    assert_api_error(exc.value, 404)
    response = httpx.put(f"{server.base_url}/threads")
    assert response.status_code == 405
    assert error_of(response)["type"] == "invalid_request_error"
    assert response.headers["x-request-id"].startswith("req_")
    response = httpx.get(f"{server.base_url.removesuffix('/v1')}/nothing")
    assert response.status_code == 404 and error_of(response)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "integer_below_min_value"),
        ({"limit": 101}, "integer_above_max_value"),
        ({"limit": "ten"}, "invalid_type"),
        ({"order": "sideways"}, "invalid_value"),
    ],
)
def test_list_parameter_errors(server: ServerProcess, params: dict[str, Any], code: str) -> None:
    thread_id = httpx.post(f"{server.base_url}/threads").json()["id"]
    for path in ("/assistants", f"/threads/{thread_id}/messages", "/threads"):
        response = httpx.get(f"{server.base_url}{path}", params=params)
        assert response.status_code == 400, (path, response.text)
        error = error_of(response)
        assert error["code"] == code and error["param"] in {"limit", "order"}


def test_sdk_limit_error_text(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.list(limit=101)
    assert_api_error(
        exc.value,
        400,
        message="Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 instead.",
        param="limit",
        code="integer_above_max_value",
    )


def test_beta_header_is_optional(server: ServerProcess) -> None:
    with_header = httpx.post(f"{server.base_url}/threads", headers={"OpenAI-Beta": "assistants=v2"})
    without = httpx.post(f"{server.base_url}/threads")
    assert with_header.status_code == without.status_code == 200


def test_api_keys_enforced_when_set(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"THREADLINE_API_KEYS": "sk-one,sk-two"}).start()
    try:
        for key in ("sk-one", "sk-two"):
            with make_client(server.base_url, api_key=key) as sdk:
                assert sdk.beta.threads.create().object == "thread"
        with (
            make_client(server.base_url, api_key="sk-wrong") as sdk,
            pytest.raises(openai.AuthenticationError) as exc,
        ):
            sdk.beta.threads.create()
        assert_api_error(exc.value, 401, code="invalid_api_key")
        response = httpx.post(f"{server.base_url}/threads")
        assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"
        assert response.headers["x-request-id"]
    finally:
        server.stop()
    assert "any API key is accepted" not in server.log()


def test_any_key_accepted_when_unset_and_logged(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        with make_client(server.base_url, api_key="whatever") as sdk:
            assert sdk.beta.threads.create().object == "thread"
        assert httpx.post(f"{server.base_url}/threads").status_code == 200
    finally:
        server.stop()
    assert "any API key is accepted" in server.log()


def test_nul_characters_are_refused_on_every_backend(server: ServerProcess) -> None:
    thread_id = httpx.post(f"{server.base_url}/threads").json()["id"]
    response = httpx.post(
        f"{server.base_url}/threads/{thread_id}/messages", json={"role": "user", "content": "a\x00b"}
    )
    assert response.status_code == 400 and "NUL" in error_of(response)["message"]
    assert httpx.get(f"{server.base_url}/threads/{thread_id}/messages").json()["data"] == []
