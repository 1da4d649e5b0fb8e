"""Every route under /v1, assembled from the per-resource routers."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount

from threadline.api import assistants, messages, threads


def v1_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [*threads.routes, *messages.routes, *assistants.routes]
    return [Mount("/v1", routes=routes)]
