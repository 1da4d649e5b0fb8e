"""Prometheus metrics: every Threadline metric is declared here, on one registry, so ``/metrics`` and
``threadline worker --metrics-port`` expose the same set. To add one, declare it below with a
``threadline_`` name and import it where the thing happens; keep label values bounded (route
templates, statuses, model names — never ids or user text).

Several processes (``serve --workers N``): the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the API processes start, prometheus-client then keeps each process's values in a
memory-mapped file there, and ``render()`` sums them, so any process answers for all of them. Gauges
therefore declare how they aggregate (``livesum``: the sum over live processes).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

# Request latencies are mostly sub-millisecond to tens of ms; streams and uploads run longer.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

HTTP_REQUESTS = Counter(
    "threadline_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "threadline_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the body; whole stream for SSE).",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RUNS = Counter(
    "threadline_runs",
    "Runs that stopped executing, by status (completed, failed, requires_action, ...) and model.",
    ["status", "model"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "threadline_run_duration_seconds",
    "Time from an executor claiming a run to it stopping (terminal or requires_action).",
    ["model"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
RUN_TTFT = Histogram(
    "threadline_run_time_to_first_token_seconds",
    "Time from an executor claiming a run to the first text token from the model.",
    ["model"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "threadline_tokens",
    "Tokens reported by the upstream model, by model and direction (in: prompt, out: completion).",
    ["model", "direction"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "threadline_upstream_errors",
    "Failed upstream model calls (each attempt, retried or not), by kind.",
    ["kind"],
    registry=REGISTRY,
)
ACTIVE_RUNS = Gauge(
    "threadline_active_runs",
    "Runs executing now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
ACTIVE_STREAMS = Gauge(
    "threadline_active_streams",
    "Server-sent event streams open now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
RUN_QUEUE = Gauge(
    "threadline_run_queue_depth",
    "Runs queued or executing in the deployment, which THREADLINE_RUN_QUEUE_MAX bounds (read from the "
    "database at scrape time).",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
ADMISSION_REFUSALS = Counter(
    "threadline_admission_refusals",
    "Requests turned away by a bound: run_queue and streams answer 429; poll_holds answers at once "
    "instead of holding the GET.",
    ["reason"],
    registry=REGISTRY,
)
INGESTION_QUEUE = Gauge(
    "threadline_ingestion_queue_depth",
    "Vector-store files waiting for or in indexing (read from the database at scrape time).",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
INGESTION_FILES = Counter(
    "threadline_ingestion_files",
    "Vector-store files indexed, by outcome (completed, failed).",
    ["status"],
    registry=REGISTRY,
)
INGESTION_FAILURES = Counter(
    "threadline_ingestion_failures",
    "Vector-store files that failed to index, by last_error code.",
    ["code"],
    registry=REGISTRY,
)
DB_POOL_IN_USE = Gauge(
    "threadline_db_pool_in_use",
    "Database connections checked out of the pool now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> bytes:
    """The text exposition of every metric (summed over processes in multiprocess mode)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def serve_on_port(host: str, port: int) -> None:
    """Expose ``render()`` on its own port (a daemon thread), for ``threadline worker`` or a
    ``serve`` that keeps metrics off the API port."""
    from prometheus_client import start_http_server

    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=host, registry=registry)
    else:
        start_http_server(port, addr=host, registry=REGISTRY)


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (multiprocess mode)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
