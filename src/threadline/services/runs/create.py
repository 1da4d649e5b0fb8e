"""Create a run on a thread, or a thread and a run in one request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadline.domain.errors import RateLimited, ThreadLocked
from threadline.domain.ids import new_id
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run
from threadline.domain.threads import Assistant, Thread
from threadline.observability.metrics import ADMISSION_REFUSALS
from threadline.schemas.common import dump
from threadline.schemas.runs import RunCreate, ThreadAndRunCreate, TruncationStrategy
from threadline.schemas.threads import ThreadCreate
from threadline.services import assistants as assistants_service
from threadline.services import messages as messages_service
from threadline.services import threads as threads_service
from threadline.services.clock import now
from threadline.services.vector_stores.attachments import apply_attachments
from threadline.storage.uow import UnitOfWork

# What ``retry-after`` says when the run queue is full: runs take seconds, so a second's wait is
# enough for the queue to move and short enough that a retrying client is not kept idle.
RETRY_AFTER_S = 1
DEFAULT_TRUNCATION: dict[str, Any] = {"type": "auto", "last_messages": None}
# OpenAI echoes 1.0 for temperature and top_p when neither the run nor the assistant set them.
DEFAULT_SAMPLING = 1.0


def _first(override: float | None, inherited: float | None, default: float) -> float:
    # Not ``or``: 0.0 is a legitimate temperature.
    if override is not None:
        return override
    return inherited if inherited is not None else default


def effective_instructions(run_instructions: str | None, assistant: Assistant, additional: str | None) -> str:
    """Run ``instructions`` replace the assistant's; ``additional_instructions`` are appended after a
    blank line. Never None: the SDK types ``Run.instructions`` as a non-null string."""
    base = run_instructions if run_instructions is not None else (assistant.instructions or "")
    if additional:
        return f"{base}\n\n{additional}" if base else additional
    return base


def _truncation(strategy: TruncationStrategy | None) -> dict[str, Any]:
    if strategy is None:
        return dict(DEFAULT_TRUNCATION)
    return {"type": strategy.type, "last_messages": strategy.last_messages}


def build_run(
    thread_id: str,
    assistant: Assistant,
    request: RunCreate | ThreadAndRunCreate,
    instructions: str,
    expiry_s: int,
) -> Run:
    """A new ``queued`` run whose fields are the effective values (overrides, else the assistant's)."""
    created_at = now()
    return Run(
        id=new_id("run"),
        thread_id=thread_id,
        assistant_id=assistant.id,
        created_at=created_at,
        status=RunStatus.QUEUED,
        expires_at=created_at + expiry_s,
        model=request.model or assistant.model,
        instructions=instructions,
        tools=dump(request.tools) if request.tools is not None else list(assistant.tools),
        metadata=request.metadata or {},
        temperature=_first(request.temperature, assistant.temperature, DEFAULT_SAMPLING),
        top_p=_first(request.top_p, assistant.top_p, DEFAULT_SAMPLING),
        max_prompt_tokens=request.max_prompt_tokens,
        max_completion_tokens=request.max_completion_tokens,
        truncation_strategy=_truncation(request.truncation_strategy),
        tool_choice=dump(request.tool_choice) if request.tool_choice is not None else "auto",
        parallel_tool_calls=True if request.parallel_tool_calls is None else request.parallel_tool_calls,
        response_format=(
            dump(request.response_format)
            if request.response_format is not None
            else (assistant.response_format or "auto")
        ),
        reasoning_effort=getattr(request, "reasoning_effort", None) or assistant.reasoning_effort,
    )


@dataclass(frozen=True, slots=True)
class RunBounds:
    queue_max: int  # runs queued or executing in the deployment
    project_max: int  # runs queued or executing in the caller's project


def admit(uow: UnitOfWork, bounds: RunBounds) -> None:
    """Refuse a new run while ``queue_max`` runs are already queued or executing in the deployment,
    or ``project_max`` in the caller's project (every process shares the counts: they are read from
    the database). A full queue answers 429 at once rather than keeping the run waiting for tens of
    seconds; the SDKs wait ``retry-after`` and retry. Two creates racing in separate transactions may
    both pass at ``max - 1``: the bound is soft by the number of concurrent creates, which is what
    admission needs."""
    project_max = bounds.project_max
    if project_max > 0 and uow.runs.executing_count(project_max, in_project=True) >= project_max:
        ADMISSION_REFUSALS.labels(reason="project_runs").inc()
        raise RateLimited(
            f"Rate limit reached for runs in this project: {project_max} runs queued or in progress. "
            f"Retry after {RETRY_AFTER_S} s.",
            retry_after_s=RETRY_AFTER_S,
            limit=project_max,
        )
    queue_max = bounds.queue_max
    if queue_max > 0 and uow.runs.executing_count(queue_max) >= queue_max:
        ADMISSION_REFUSALS.labels(reason="run_queue").inc()
        raise RateLimited(
            f"The run queue is full ({queue_max} runs queued or in progress). Retry after {RETRY_AFTER_S} s.",
            retry_after_s=RETRY_AFTER_S,
        )


def queue_depth(uow: UnitOfWork) -> int:
    """Runs queued or executing now (the metric that shows how full admission's queue is)."""
    return uow.runs.executing_count(1_000_000)


def create(uow: UnitOfWork, thread_id: str, request: RunCreate, expiry_s: int, bounds: RunBounds) -> Run:
    """Store a queued run. ``additional_messages`` are added first, in the same transaction, so they
    never trip the thread lock; another active run does. A full run queue (``bounds``) refuses
    the run before anything is written."""
    threads_service.get(uow, thread_id)
    assistant = assistants_service.get(uow, request.assistant_id)
    active = uow.runs.active_run_id(thread_id)
    if active is not None:
        raise ThreadLocked(f"Thread {thread_id} already has an active run {active}.")
    admit(uow, bounds)
    additional = [messages_service.build(thread_id, m) for m in request.additional_messages or []]
    uow.messages.insert_many(additional)
    apply_attachments(uow, thread_id, additional)
    instructions = effective_instructions(request.instructions, assistant, request.additional_instructions)
    run = build_run(thread_id, assistant, request, instructions, expiry_s)
    uow.runs.insert(run)
    return run


def create_thread_and_run(
    uow: UnitOfWork, request: ThreadAndRunCreate, expiry_s: int, bounds: RunBounds
) -> tuple[Thread, Run]:
    """A new thread (with its messages) and a queued run on it. ``tool_resources`` of the request
    become the thread's when the thread itself names none; its messages' attachments add to them.
    A full run queue refuses both: no thread is created."""
    assistant = assistants_service.get(uow, request.assistant_id)
    admit(uow, bounds)
    thread = threads_service.create(uow, request.thread or ThreadCreate(), request.tool_resources)
    instructions = effective_instructions(request.instructions, assistant, None)
    run = build_run(thread.id, assistant, request, instructions, expiry_s)
    uow.runs.insert(run)
    return thread, run
