"""Request parsing and JSON responses shared by every router."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from threadline.domain.errors import InvalidParameter, InvalidRequest
from threadline.domain.threads import ListParams
from threadline.schemas.validation import parse_model

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY_BYTES = 32 * 1024 * 1024


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status_code, headers=headers)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The decoded JSON body. An empty body is ``{}`` (POST /threads may come with none)."""
    body = await request.body()
    if not body.strip():
        return {}
    if len(body) > MAX_JSON_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
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
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in text or JSONB; refuse it on every backend alike.
        raise InvalidRequest("Invalid body: strings may not contain the NUL character (\\u0000).")
    return data


async def parse_body(request: Request, model: type[M]) -> M:
    return parse_model(model, await read_json(request))


def _limit(raw: str | None, maximum: int, default: int) -> int:
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
        limit=_limit(query.get("limit"), max_limit, default_limit),
        order=order,
        after=query.get("after") or None,
        before=query.get("before") or None,
    )
