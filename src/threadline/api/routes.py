"""Every route under /v1, assembled from the per-resource routers, and the router that finds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

from threadline.api import (
    assistants,
    files,
    messages,
    models,
    organization,
    run_steps,
    runs,
    threads,
    usage,
    vector_stores,
)


def v1_routes() -> list[BaseRoute]:
    """Every API route, with its full path (``/v1/threads/{thread_id}``): no ``Mount``, so a request
    is matched once, by the shape index, instead of by the app's scan, the mount's regex and then the
    mounted router."""
    # runs first: POST /threads/runs must match before POST /threads/{thread_id}.
    routes: list[BaseRoute] = [
        *runs.routes,
        *run_steps.routes,
        *threads.routes,
        *messages.routes,
        *assistants.routes,
        *files.routes,
        *vector_stores.routes,
        *models.routes,
        *usage.routes,
        *organization.routes,
    ]
    return [_under("/v1", route) for route in routes]


def _under(prefix: str, route: BaseRoute) -> Route:
    if not isinstance(route, Route):
        raise TypeError(f"only plain routes are served under {prefix}: {route!r}")
    return Route(prefix + route.path, route.endpoint, methods=route.methods, name=route.name)


# The leading segments a shape names: enough to tell the resources under /v1 apart.
_SHAPE_SEGMENTS = 2


def _shape(path: str) -> tuple[int, tuple[str, ...]]:
    """(number of segments, the first two): ``/v1/threads/{thread_id}/runs`` -> (4, ("v1", "threads"))."""
    segments = path.strip("/").split("/")
    return len(segments), tuple(segments[:_SHAPE_SEGMENTS])


class ShapeIndexedRouter(Router):
    """Starlette's Router with the routes indexed by the shape of their path: a request is matched
    against the few routes with its number of segments and its first two segments, in their original
    order, instead of trying every route's regex in turn (about 50; the scan, with the mount it went
    through before, was ~10 % of the CPU of a small request). What the index does not settle (no
    candidate matches: a 404 or a trailing-slash redirect) goes to Starlette's own scan, so the
    behaviour is Starlette's. ``router_options`` are Starlette's (the lifespan)."""

    def __init__(self, routes: Sequence[BaseRoute], **router_options: Any) -> None:
        super().__init__(routes=list(routes), **router_options)
        self._by_shape: dict[tuple[int, tuple[str, ...]], list[BaseRoute]] = {}
        for route in self.routes:
            path = getattr(route, "path", "")
            leading = path.strip("/").split("/")[:_SHAPE_SEGMENTS]
            if not path or any(segment.startswith("{") for segment in leading):
                raise ValueError(f"route {path!r} must start with literal segments to be indexed")
            self._by_shape.setdefault(_shape(path), []).append(route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            partial: BaseRoute | None = None
            partial_scope: Scope = {}
            for route in self._by_shape.get(_shape(scope["path"]), ()):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
                if match is Match.PARTIAL and partial is None:
                    partial, partial_scope = route, child_scope
            if partial is not None:  # the path exists, the method does not: Starlette's 405
                scope["route"] = partial
                scope.update(partial_scope)
                await partial.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
