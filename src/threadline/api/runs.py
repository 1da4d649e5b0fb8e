"""/v1/threads/runs and /v1/threads/{thread_id}/runs[/{run_id}[/cancel|/submit_tool_outputs]]

Each handler commits one transaction through a service and only then hands the run to the executor
(design habit 2). A streamed request subscribes to the bus before the hand-off so no event is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.api.sse import event_stream
from threadline.domain.events import RunChanged, RunEvent, StreamEnd, ThreadCreated
from threadline.domain.run_states import STOPPED_RUN_STATUSES, Interrupt
from threadline.domain.runs import Run
from threadline.events.bus import each
from threadline.observability.metrics import ADMISSION_REFUSALS
from threadline.schemas.common import list_envelope
from threadline.schemas.runs import RunCreate, RunModify, ThreadAndRunCreate, ToolOutputsSubmit, run_to_wire
from threadline.services.runs import cancel as cancel_service
from threadline.services.runs import create as create_service
from threadline.services.runs import queries
from threadline.services.runs import submit_tool_outputs as submit_service
from threadline.storage.uow import UnitOfWork

T = TypeVar("T")

# The SDK's poll helpers (create_and_poll, create_and_run_poll, submit_tool_outputs_and_poll, poll)
# send ``X-Stainless-Poll-Helper: true`` on their GETs and stop at these statuses; such a GET of a run
# still on its way is held until it gets there, for at most this long (far below the SDK's timeout).
POLL_HOLD_S = 5.0
_POLL_STOP_STATUSES = frozenset(STOPPED_RUN_STATUSES)


def run_response(request: Request, run: Run) -> Response:
    # The SDK's poll helpers sleep this long between GETs (1 s without it).
    headers = {"openai-poll-after-ms": str(context(request).settings.poll_after_ms)}
    return json_response(run_to_wire(run), headers=headers)


def _queue(
    request: Request, stream: bool | None, work: Callable[[UnitOfWork], T], run_of: Callable[[T], Run]
) -> Callable[[UnitOfWork], tuple[T, int | None]]:
    """``work`` (a transaction that queues a run) and, for a stream, in the same transaction, where
    the stream starts (``EventBus.watch``): no process can claim the run before that commits."""
    bus = context(request).bus

    def queue(uow: UnitOfWork) -> tuple[T, int | None]:
        done = work(uow)
        return done, (bus.watch(uow, run_of(done).id) if stream else None)

    return queue


async def _start(request: Request, run: Run, stream_from: int | None, prelude: list[RunEvent]) -> Response:
    """Hand the committed run to the executor; answer with the run, or (``stream_from``: where its
    stream starts) with its event stream, whose slot the caller took (``_stream_slot``)."""
    slots = context(request).admission.streams
    try:
        subscription = (
            None if stream_from is None else await context(request).bus.subscribe(run.id, after=stream_from)
        )
    except BaseException:
        slots.release()
        raise
    context(request).run_dispatch.submit(run.id)
    if subscription is None:
        return run_response(request, run)
    return event_stream(prelude, subscription, on_close=slots.release)


@contextlib.contextmanager
def _stream_slot(request: Request, stream: bool | None) -> Iterator[None]:
    """For a streamed request, a stream slot taken before anything is written (429 when none is
    free), and given back if the request fails before its stream starts."""
    if not stream:
        yield
        return
    context(request).admission.take_stream()
    try:
        yield
    except BaseException:
        context(request).admission.streams.release()
        raise


def _run_bounds(request: Request) -> create_service.RunBounds:
    values = context(request).settings
    return create_service.RunBounds(values.run_queue_max, values.project_max_active_runs)


async def create_run(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    body = await parse_body(request, RunCreate)
    expiry_s, bounds = context(request).settings.run_expiry_s, _run_bounds(request)
    with _stream_slot(request, body.stream):
        run, stream_from = await context(request).db.transaction(
            _queue(
                request,
                body.stream,
                lambda uow: create_service.create(uow, thread_id, body, expiry_s, bounds),
                lambda run: run,
            )
        )
    return await _start(request, run, stream_from, [RunChanged("created", run), RunChanged("queued", run)])


async def create_thread_and_run(request: Request) -> Response:
    body = await parse_body(request, ThreadAndRunCreate)
    expiry_s, bounds = context(request).settings.run_expiry_s, _run_bounds(request)
    with _stream_slot(request, body.stream):
        (thread, run), stream_from = await context(request).db.transaction(
            _queue(
                request,
                body.stream,
                lambda uow: create_service.create_thread_and_run(uow, body, expiry_s, bounds),
                lambda created: created[1],
            )
        )
    prelude: list[RunEvent] = [ThreadCreated(thread), RunChanged("created", run), RunChanged("queued", run)]
    return await _start(request, run, stream_from, prelude)


async def retrieve_run(request: Request) -> Response:
    thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
    db = context(request).db
    if request.headers.get("x-stainless-poll-helper") != "true":
        return run_response(request, await db.transaction(lambda uow: queries.get(uow, thread_id, run_id)))
    holds = context(request).admission.poll_holds
    if holds.try_take():
        try:
            run = await _hold_until_settled(request, thread_id, run_id)
        finally:
            holds.release()
    else:
        run = await db.transaction(lambda uow: queries.get(uow, thread_id, run_id))
        if run.status not in _POLL_STOP_STATUSES:
            # Over the bound the GET answers at once, as a GET without the header would: the
            # helper sleeps ``openai-poll-after-ms`` and asks again.
            ADMISSION_REFUSALS.labels(reason="poll_holds").inc()
    return run_response(request, run)


async def _hold_until_settled(request: Request, thread_id: str, run_id: str) -> Run:
    """The run once it reaches a status the SDK's poll helpers stop at, or as it is after
    ``POLL_HOLD_S``: the helper's GET answers the moment the run settles, instead of up to one
    ``openai-poll-after-ms`` later, and the GETs in between are saved. Two transactions (the read
    that subscribes, the final read); never holds one open."""
    db = context(request).db
    subscription, run = await context(request).bus.subscribe_reading(
        db, run_id, lambda uow: queries.get(uow, thread_id, run_id)
    )
    try:
        if run.status in _POLL_STOP_STATUSES:
            return run
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_HOLD_S):
                async for event in each(subscription):
                    if isinstance(event, StreamEnd) or (
                        isinstance(event, RunChanged) and event.run.status in _POLL_STOP_STATUSES
                    ):
                        break
        return await db.transaction(lambda uow: queries.get(uow, thread_id, run_id))
    finally:
        subscription.close()


async def modify_run(request: Request) -> Response:
    thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
    body = await parse_body(request, RunModify)
    run = await context(request).db.transaction(lambda uow: queries.modify(uow, thread_id, run_id, body))
    return run_response(request, run)


async def list_runs(request: Request) -> Response:
    thread_id = request.path_params["thread_id"]
    params = list_params(request)
    page = await context(request).db.transaction(lambda uow: queries.list_runs(uow, thread_id, params))
    return json_response(list_envelope([run_to_wire(r) for r in page.items], page.has_more))


async def cancel_run(request: Request) -> Response:
    thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
    outcome: list[tuple[Run, bool]] = []

    def cancel(uow: UnitOfWork) -> list[RunEvent]:
        run, events, notify = cancel_service.cancel(uow, thread_id, run_id)
        outcome.append((run, notify))
        return events

    # Through the bus: cancelling a queued run ends it, and its events must commit with that.
    await context(request).bus.transaction(context(request).db, run_id, cancel)
    run, notify = outcome[-1]
    if notify:
        context(request).run_dispatch.interrupt(run.id, Interrupt.CANCEL)
    return run_response(request, run)


async def submit_tool_outputs(request: Request) -> Response:
    thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
    body = await parse_body(request, ToolOutputsSubmit)
    # A submitted run was admitted when it was created: the run queue does not refuse it again.
    with _stream_slot(request, body.stream):
        (run, events), stream_from = await context(request).db.transaction(
            _queue(
                request,
                body.stream,
                lambda uow: submit_service.submit(uow, thread_id, run_id, body),
                lambda submitted: submitted[0],
            )
        )
    return await _start(request, run, stream_from, events)


routes = [
    # Before threads' "/threads/{thread_id}" so that "runs" is not taken for a thread id.
    Route("/threads/runs", create_thread_and_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", create_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", retrieve_run, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", modify_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", submit_tool_outputs, methods=["POST"]),
]
