"""Reading runs and steps, and modifying a run's metadata."""

from __future__ import annotations

from threadline.domain.errors import RunNotFound, RunStepNotFound
from threadline.domain.ids import check_id
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import ListParams, Page
from threadline.schemas.runs import RunModify
from threadline.services import threads as threads_service
from threadline.storage.uow import UnitOfWork


def get(uow: UnitOfWork, thread_id: str, run_id: str) -> Run:
    threads_service.get(uow, thread_id)
    check_id("run", "run_id", run_id)
    run = uow.runs.get(thread_id, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def list_runs(uow: UnitOfWork, thread_id: str, params: ListParams) -> Page[Run]:
    threads_service.get(uow, thread_id)
    return uow.runs.list(thread_id, params)


def modify(uow: UnitOfWork, thread_id: str, run_id: str, request: RunModify) -> Run:
    run = get(uow, thread_id, run_id)
    if "metadata" in request.model_fields_set:
        run.metadata = request.metadata or {}
        uow.runs.update(run)
    return run


def get_step(uow: UnitOfWork, thread_id: str, run_id: str, step_id: str) -> RunStep:
    get(uow, thread_id, run_id)
    check_id("step", "step_id", step_id)
    step = uow.run_steps.get(run_id, step_id)
    if step is None:
        raise RunStepNotFound(step_id)
    return step


def list_steps(uow: UnitOfWork, thread_id: str, run_id: str, params: ListParams) -> Page[RunStep]:
    get(uow, thread_id, run_id)
    return uow.run_steps.list(run_id, params)
