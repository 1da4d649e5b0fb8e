"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): request ids, bearer auth, last-resort 500."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.api.errors import error_body, internal_error
from threadline.domain.errors import AuthenticationFailed, DiskFull, ThreadlineError
from threadline.storage.disk import DiskReserve, is_disk_full

log = logging.getLogger("threadline.api")


class RequestContextMiddleware:
    """Adds ``x-request-id`` to every response, checks ``Authorization: Bearer`` when keys are set,
    and turns any unexpected exception into a 500 envelope (never a bare traceback). A write that
    failed for lack of disk space is a 503; a DELETE that did is retried once after the disk
    reserve is released, so that space can always be freed through the API."""

    def __init__(
        self, app: ASGIApp, api_keys: tuple[str, ...], disk_reserve: DiskReserve | None = None
    ) -> None:
        self.app = app
        self.api_keys = tuple(key.encode() for key in api_keys)
        self.disk_reserve = disk_reserve

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
        # Routing rewrites the scope in place (root_path); a DELETE may be retried (``_disk_full``),
        # so it runs on a copy and the retry on the untouched original.
        deleting = scope.get("method") == "DELETE"
        first_scope = dict(scope) if deleting else scope
        try:
            await self.app(first_scope, receive, send_with_id)
            if deleting and self.disk_reserve is not None and not self.disk_reserve.held:
                # Hold the reserve again once deletes have made room (see ``_disk_full``).
                await asyncio.to_thread(self.disk_reserve.ensure, only_with_room=True)
        except Exception as exc:
            if started:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            elif is_disk_full(exc):
                await self._disk_full(scope, send_with_id)
            else:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                await _send_error(send_with_id, internal_error())

    async def _disk_full(self, scope: Scope, send: Send) -> None:
        reserve = self.disk_reserve
        if (
            scope.get("method") == "DELETE"
            and reserve is not None
            and await asyncio.to_thread(reserve.release)
        ):
            try:
                # DELETE requests carry no body; the retry gets an empty one.
                await self.app(scope, _empty_body, send)
            except Exception as exc:
                if not is_disk_full(exc):
                    log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                    await _send_error(send, internal_error())
                    return
            else:
                await asyncio.to_thread(reserve.ensure, only_with_room=True)
                return
        log.warning("disk full on %s %s: answered 503", scope.get("method"), scope.get("path"))
        await _send_error(send, DiskFull())


async def _empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


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
