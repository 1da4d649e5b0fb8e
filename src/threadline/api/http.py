"""Request parsing and JSON responses shared by every router."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from threadline.domain.errors import InvalidParameter, InvalidRequest, PayloadTooLarge
from threadline.domain.threads import ListParams
from threadline.schemas.validation import parse_model

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY_BYTES = 32 * 1024 * 1024
_NUL_ESCAPE = b"\\u0000"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status_code, headers=headers)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The decoded JSON body. An empty body is ``{}`` (POST /threads may come with none).

    A body over the limit is refused (413) from its Content-Length before any byte is read, or, when
    it comes chunked, as soon as the bytes read pass the limit: never read whole first."""
    api = getattr(request.app.state, "context", None)  # absent only in an app without a runtime
    limit: int = api.settings.max_json_body_bytes if api is not None else MAX_JSON_BODY_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
    body = b"".join(parts)
    if not body.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.split(";")[0]:
        raise InvalidRequest(
            f"Invalid Content-Type header ({content_type or 'none'}), expected application/json."
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid body: expected a JSON object.")
    # PostgreSQL cannot store NUL in text or JSONB; refuse it on every backend alike. JSON can only
    # carry a NUL as the escape \\u0000, so bodies without that text skip the walk; the walk looks at
    # decoded strings, so an escaped backslash followed by "u0000" is not a NUL.
    if _NUL_ESCAPE in body and _has_nul(data):
        raise InvalidRequest("Invalid body: strings may not contain the NUL character (\\u0000).")
    return data


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is too large: the maximum is {limit} bytes.")


def _has_nul(data: Any) -> bool:
    """Whether any string (key or value) in decoded JSON holds NUL. Iterative: nesting depth is the
    client's choice."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return True
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return False


async def parse_body(request: Request, model: type[M]) -> M:
    return parse_model(model, await read_json(request))


def query_limit(raw: str | None, maximum: int, default: int) -> int:
    """A ``limit`` query parameter, 1..``maximum``, with OpenAI's error texts."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            param="limit",
            code="invalid_type",
        ) from None
    if value < 1:
        raise InvalidParameter(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if value > maximum:
        raise InvalidParameter(
            f"Invalid 'limit': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    return value


def list_params(request: Request, *, max_limit: int = 100, default_limit: int = 20) -> ListParams:
    """``limit`` (1..max), ``order`` (asc|desc, default desc), ``after``/``before`` object-id cursors."""
    query = request.query_params
    order = query.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise InvalidParameter(
            f"Invalid 'order': expected one of 'asc' or 'desc', but got '{order}' instead.",
            param="order",
            code="invalid_value",
        )
    return ListParams(
        limit=query_limit(query.get("limit"), max_limit, default_limit),
        order=order,
        after=query.get("after") or None,
        before=query.get("before") or None,
    )
