"""Operator endpoints outside /v1, answered without an API key: ``/healthz`` (the process is up),
``/readyz`` (its database answers and is migrated; 503 with the reason otherwise) and ``/metrics``
(Prometheus text format; it carries no user data)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from threadline.api.context import context
from threadline.api.http import json_response
from threadline.observability import metrics
from threadline.services.ingestion import queue_depth
from threadline.services.runs.create import queue_depth as run_queue_depth
from threadline.storage.health import not_ready_reason

READY_TIMEOUT_S = 5.0


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    db = context(request).db
    try:
        reason = await asyncio.wait_for(asyncio.to_thread(not_ready_reason, db), READY_TIMEOUT_S)
    except TimeoutError:
        reason = f"database did not answer within {READY_TIMEOUT_S:g} s"
    if reason is not None:
        return json_response({"status": "unavailable", "reason": reason}, status_code=503)
    return json_response({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    # Read at scrape time rather than kept up to date: one count, and exact across processes.
    try:
        depth, runs = await context(request).db.transaction(
            lambda uow: (queue_depth(uow), run_queue_depth(uow))
        )
    except Exception:  # the metrics page must answer even when the database does not
        depth, runs = -1, -1
    metrics.INGESTION_QUEUE.set(depth)
    metrics.RUN_QUEUE.set(runs)
    body = await asyncio.to_thread(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def operation_routes(*, serve_metrics: bool) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if serve_metrics:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    return routes
