"""The one renderer of OpenAI's error envelope, for our errors and the framework's."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from threadline.api.http import json_response
from threadline.domain.errors import (
    InternalError,
    MethodNotAllowed,
    RateLimited,
    RouteNotFound,
    ThreadlineError,
)

log = logging.getLogger("threadline.api")


def error_body(error: ThreadlineError) -> dict[str, dict[str, str | None]]:
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def error_headers(error: ThreadlineError) -> dict[str, str]:
    """``retry-after`` on a 429, which the SDKs wait before retrying, and OpenAI's rate-limit headers
    when a per-project limit refused the request."""
    if not isinstance(error, RateLimited):
        return {}
    headers = {"retry-after": str(error.retry_after_s)}
    if error.limit is not None:
        headers["x-ratelimit-limit-requests"] = str(error.limit)
        headers["x-ratelimit-remaining-requests"] = "0"
        headers["x-ratelimit-reset-requests"] = f"{error.retry_after_s}s"
    return headers


def render(error: ThreadlineError) -> Response:
    return json_response(error_body(error), status_code=error.status, headers=error_headers(error))


async def threadline_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ThreadlineError)
    return render(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in our envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render(RouteNotFound(f"Invalid URL ({request.method} {request.url.path})"))
    if exc.status_code == 405:
        response = render(MethodNotAllowed(f"Method {request.method} not allowed for {request.url.path}"))
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    error = ThreadlineError(str(exc.detail))
    error.status = exc.status_code
    return render(error)


def internal_error() -> ThreadlineError:
    return InternalError("The server had an error while processing your request. Sorry about that!")
