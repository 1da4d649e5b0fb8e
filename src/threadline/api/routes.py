"""Every route under /v1, assembled from the per-resource routers."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount

from threadline.api import assistants, files, messages, run_steps, runs, threads, vector_stores


def v1_routes() -> list[BaseRoute]:
    # runs first: POST /threads/runs must match before POST /threads/{thread_id}.
    routes: list[BaseRoute] = [
        *runs.routes,
        *run_steps.routes,
        *threads.routes,
        *messages.routes,
        *assistants.routes,
        *files.routes,
        *vector_stores.routes,
    ]
    return [Mount("/v1", routes=routes)]
