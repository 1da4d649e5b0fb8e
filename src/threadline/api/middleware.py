"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): request ids, bearer auth, last-resort 500."""

from __future__ import annotations

import hmac
import logging
import secrets

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.api.errors import error_body, internal_error
from threadline.domain.errors import AuthenticationFailed, ThreadlineError

log = logging.getLogger("threadline.api")


class RequestContextMiddleware:
    """Adds ``x-request-id`` to every response, checks ``Authorization: Bearer`` when keys are set,
    and turns any unexpected exception into a 500 envelope (never a bare traceback)."""

    def __init__(self, app: ASGIApp, api_keys: tuple[str, ...]) -> None:
        self.app = app
        self.api_keys = tuple(key.encode() for key in api_keys)

    def _authorised(self, scope: Scope) -> bool:
        if not self.api_keys:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, key = value.partition(b" ")
                key = key.strip()
                return scheme.lower() == b"bearer" and any(hmac.compare_digest(key, k) for k in self.api_keys)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b"req_" + secrets.token_hex(16).encode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        if not self._authorised(scope):
            await _send_error(
                send_with_id,
                AuthenticationFailed(
                    "Incorrect API key provided. You can find your API key in THREADLINE_API_KEYS."
                ),
            )
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_error(send_with_id, internal_error())


async def _send_error(send: Send, error: ThreadlineError) -> None:
    body = orjson.dumps(error_body(error))
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
