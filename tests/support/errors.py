"""Assertions on OpenAI's error envelope."""

from __future__ import annotations

from typing import Any, Protocol

import openai


class JsonResponse(Protocol):
    """httpx's Response, or the one the openai SDK's own HTTP client returns."""

    def json(self) -> Any: ...


def error_of(response: JsonResponse) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def assert_api_error(
    exc: openai.APIStatusError,
    status: int,
    *,
    message: str | None = None,
    param: str | None = None,
    code: str | None = None,
    contains: str | None = None,
) -> dict[str, Any]:
    assert exc.status_code == status, (exc.status_code, exc.response.text)
    error = error_of(exc.response)
    assert exc.response.headers.get("x-request-id"), "every response carries x-request-id"
    if message is not None:
        assert error["message"] == message, error
    if contains is not None:
        assert contains in error["message"], error
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error
