"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): request ids, bearer auth and the project a
request acts for, last-resort 500, and per request one access-log line and the HTTP metrics."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import orjson
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.api.auth import KeyRing
from threadline.api.errors import error_body, error_headers, internal_error
from threadline.api.rate_limits import RequestLimiter
from threadline.domain.errors import (
    AuthenticationFailed,
    DiskFull,
    PermissionDenied,
    RateLimited,
    ThreadlineError,
)
from threadline.domain.projects import KeyKind, Principal
from threadline.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from threadline.storage.disk import DiskReserve, is_disk_full
from threadline.storage.scope import acting_for

log = logging.getLogger("threadline.api")
access_log = logging.getLogger("threadline.access")

# Answered without a key: a load balancer or Prometheus holds none, and they carry no user data.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The Admin API: admin keys only, and admin keys nowhere else.
ADMIN_PREFIX = "/v1/organization"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/threads/{thread_id}``), bounded for metric labels;
    ``unmatched`` for a path no route serves."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None or isinstance(route, Mount):
        return "unmatched"
    return f"{scope.get('root_path', '')}{path}"


class RequestContextMiddleware:
    """Adds ``x-request-id`` to every response, checks ``Authorization: Bearer`` (api/auth.py) and
    runs the request in its key's project scope (storage/scope.py), and turns any unexpected exception
    into a 500 envelope (never a bare traceback). A write that failed for lack of disk space is a 503;
    a DELETE that did is retried once after the disk reserve is released, so that space can always be
    freed through the API."""

    def __init__(
        self,
        app: ASGIApp,
        keyring: KeyRing,
        limiter: RequestLimiter,
        disk_reserve: DiskReserve | None = None,
    ) -> None:
        self.app = app
        self.keyring = keyring
        self.limiter = limiter
        self.disk_reserve = disk_reserve

    async def _principal(self, scope: Scope) -> Principal | None:
        presented: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, key = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    presented = key.strip()
                break
        return await self.keyring.resolve(presented)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        request_id = b"req_" + secrets.token_hex(16).encode()
        started = False
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        key_name = "open"
        principal: Principal | None = None
        try:
            try:
                open_path = scope["path"] in OPEN_PATHS
                principal = None if open_path else await self._principal(scope)
                if principal is not None:
                    key_name = principal.key_id
                    refused = _refusal(principal, scope["path"])
                    if refused is not None:
                        await _send_error(send_with_id, refused)
                        return
                    if principal.kind is not KeyKind.ADMIN and principal.project_id is not None:
                        try:
                            self.limiter.admit(principal.project_id)
                        except RateLimited as limited:
                            await _send_error(send_with_id, limited)
                            return
                elif not open_path:
                    key_name = "invalid"
                    await _send_error(send_with_id, AuthenticationFailed("Incorrect API key provided."))
                    return
                # Routing rewrites the scope in place (root_path); a DELETE may be retried
                # (``_disk_full``), so it runs on a copy and the retry on the untouched original.
                deleting = scope.get("method") == "DELETE"
                first_scope = dict(scope) if deleting else scope
                with acting_for(None if principal is None else principal.project_id):
                    await self.app(first_scope, receive, send_with_id)
                if deleting and self.disk_reserve is not None and not self.disk_reserve.held:
                    # Hold the reserve again once deletes have made room (see ``_disk_full``).
                    await asyncio.to_thread(self.disk_reserve.ensure, only_with_room=True)
            except Exception as exc:
                if started:
                    log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                elif is_disk_full(exc):
                    with acting_for(None if principal is None else principal.project_id):
                        await self._disk_full(scope, send_with_id)
                else:
                    log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                    await _send_error(send_with_id, internal_error())
        finally:
            _record(scope, status, time.perf_counter() - t0, request_id.decode(), key_name)

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


def _refusal(principal: Principal, path: str) -> ThreadlineError | None:
    """Admin keys serve the Admin API and nothing else; project keys everything else."""
    admin_route = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
    if admin_route and principal.kind is not KeyKind.ADMIN:
        if principal.kind is None:
            return AuthenticationFailed(
                "The Admin API needs an admin key (sk-admin-...): "
                "create one with `threadline admin create-key`."
            )
        return PermissionDenied(
            "You have insufficient permissions for this operation: the Admin API needs an admin key."
        )
    if not admin_route and principal.kind is KeyKind.ADMIN:
        return PermissionDenied("Admin keys can be used only with the Admin API (/v1/organization).")
    return None


async def _empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send_error(send: Send, error: ThreadlineError) -> None:
    body = orjson.dumps(error_body(error))
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((name.encode(), value.encode()) for name, value in error_headers(error).items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _record(scope: Scope, status: int, duration_s: float, request_id: str, key_name: str) -> None:
    method: str = scope["method"]
    path: str = scope["path"]
    route = route_template(scope)
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(duration_s)
    if access_log.isEnabledFor(logging.INFO):
        duration_ms = round(duration_s * 1000, 1)
        access_log.info(
            "%s %s %d %.1fms %s %s",
            method,
            path,
            status,
            duration_ms,
            request_id,
            key_name,
            extra={
                "fields": {
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "key": key_name,
                }
            },
        )
