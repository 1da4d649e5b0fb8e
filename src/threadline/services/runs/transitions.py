"""The state changes the executor makes while running a run, each meant for its own short transaction.

Every function locks the run row first (``get_for_update``) and re-checks its status, because a
cancel request or the expiry sweep may have moved the run since the executor last looked. Each
returns the events to publish once the caller has committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from threadline.domain.events import MessageChanged, RunChanged, RunEvent, StepChanged, StreamEnd
from threadline.domain.ids import new_id
from threadline.domain.run_states import (
    LEASED_RUN_STATUSES,
    MESSAGE_REASON_FOR_RUN_END,
    RUN_END_TIMESTAMP,
    STEP_END_TIMESTAMP,
    STEP_STATUS_FOR_RUN_END,
    MessageStatus,
    RunStatus,
    StepStatus,
    is_terminal,
)
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Message
from threadline.services.clock import now
from threadline.services.vector_stores.citations import run_citations
from threadline.storage.uow import UnitOfWork


@dataclass(slots=True)
class RunStart:
    """What the executor needs to run one round: the run, the thread's messages (oldest first) and
    the run's earlier steps (tool calls and outputs from before a requires_action), and the project
    the run belongs to: the executor acts for it, and only it, while executing the run."""

    run: Run
    messages: list[Message]
    steps: list[RunStep]
    events: list[RunEvent]
    project_id: str
    # The first round's message and step, when the claim opened them (see ``claim``).
    opened: tuple[Message, RunStep] | None = None


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def text_content(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": text, "annotations": []}}]


def claim(
    uow: UnitOfWork,
    owner: str,
    lease_expires_at: float,
    limit: int,
    opens: Callable[[Run], bool] = lambda run: False,
) -> list[RunStart]:
    """queued -> in_progress for up to ``limit`` runs, each leased to ``owner`` until
    ``lease_expires_at``. Runs another worker is claiming at the same moment are skipped (exactly
    one claim wins: see ``storage/runs.py``). A fresh run for which ``opens`` is true (its first
    round can only answer with text) also gets its message and step here: one transaction fewer
    per run, and the message exists before the model is called, as it would otherwise."""
    started: list[RunStart] = []
    for run_id in uow.runs.claimable_ids(limit):
        if not uow.runs.claim(run_id, owner, lease_expires_at, now()):
            continue
        found = uow.runs.with_project(run_id)
        assert found is not None  # just claimed in this transaction
        run, project_id = found
        start = RunStart(
            run=run,
            messages=uow.messages.all_in_thread(run.thread_id),
            steps=uow.run_steps.all_for_run(run.id),
            events=[RunChanged("in_progress", run)],
            project_id=project_id,
        )
        if not start.steps and opens(run):
            message, step, events = open_message(uow, run)
            start.opened = (message, step)
            start.events += events
        started.append(start)
    return started


def _new_step(run: Run, kind: str, details: dict[str, Any]) -> RunStep:
    return RunStep(
        id=new_id("step"),
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        created_at=now(),
        type=kind,
        status=StepStatus.IN_PROGRESS,
        step_details=details,
    )


def history(uow: UnitOfWork, run: Run) -> tuple[list[Message], list[RunStep]]:
    """What the next model call's prompt is built from: the thread's messages and the run's steps."""
    return uow.messages.all_in_thread(run.thread_id), uow.run_steps.all_for_run(run.id)


def open_message(uow: UnitOfWork, run: Run) -> tuple[Message, RunStep, list[RunEvent]]:
    """An in_progress assistant message (content []) and its message_creation step."""
    message = Message(
        id=new_id("message"),
        thread_id=run.thread_id,
        created_at=now(),
        role="assistant",
        content=[],
        attachments=[],
        metadata={},
        assistant_id=run.assistant_id,
        run_id=run.id,
        status=MessageStatus.IN_PROGRESS,
    )
    step = _new_step(
        run, "message_creation", {"type": "message_creation", "message_creation": {"message_id": message.id}}
    )
    # The step first: the reference stream announces the step before the message it creates.
    uow.run_steps.insert(step)
    uow.messages.insert_many([message])
    events: list[RunEvent] = [
        StepChanged("created", step),
        StepChanged("in_progress", step),
        MessageChanged("created", message),
        MessageChanged("in_progress", message),
    ]
    return message, step, events


def open_tool_step(uow: UnitOfWork, run: Run) -> tuple[RunStep, list[RunEvent]]:
    step = _new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
    uow.run_steps.insert(step)
    return step, [StepChanged("created", step), StepChanged("in_progress", step)]


def finish_message(
    uow: UnitOfWork,
    step_id: str,
    run_id: str,
    text: str,
    usage: dict[str, int] | None,
    *,
    incomplete: bool,
    extra_annotations: list[dict[str, Any]] | None = None,
    extra_parts: list[dict[str, Any]] | None = None,
) -> list[RunEvent]:
    """Store the message's final text; complete it (or mark it incomplete: max_tokens) and its step.
    Server tools may add annotations (code_interpreter's file_path) and content parts after the text
    (its image_file figures; the text stays part 0, as streamed)."""
    step = uow.run_steps.get(run_id, step_id)
    if step is None or step.status != StepStatus.IN_PROGRESS:
        return []
    message = uow.messages.get(step.thread_id, step.step_details["message_creation"]["message_id"])
    events: list[RunEvent] = []
    stamp = now()
    if message is not None:
        message.content = text_content(text) if text else []
        if text:
            # file_citation annotations for the 【i†file】 markers the model quoted from file_search.
            message.content[0]["text"]["annotations"] = run_citations(uow, run_id, text)
            if extra_annotations:
                merged = message.content[0]["text"]["annotations"] + extra_annotations
                message.content[0]["text"]["annotations"] = sorted(merged, key=lambda a: a["start_index"])
        message.content += extra_parts or []
        if incomplete:
            message.status, message.incomplete_at = MessageStatus.INCOMPLETE, stamp
            message.incomplete_details = {"reason": "max_tokens"}
        else:
            message.status, message.completed_at = MessageStatus.COMPLETED, stamp
        uow.messages.update(message)
        events.append(MessageChanged(message.status, message))
    step.status, step.completed_at, step.usage = StepStatus.COMPLETED, stamp, usage
    uow.run_steps.update(step)
    events.append(StepChanged("completed", step))
    return events


def record_tool_calls(
    uow: UnitOfWork,
    run_id: str,
    step_id: str,
    tool_calls: list[dict[str, Any]],
    usage: dict[str, int] | None,
    *,
    complete: bool,
) -> list[RunEvent]:
    """Store a tool step's calls (and outputs known so far). ``complete`` when no call waits for the
    client (server-side tools only); otherwise the step stays in_progress until submit_tool_outputs."""
    step = uow.run_steps.get(run_id, step_id)
    if step is None:
        return []
    step.step_details = {"type": "tool_calls", "tool_calls": tool_calls}
    step.usage = usage
    if not complete:
        uow.run_steps.update(step)
        return []
    step.status, step.completed_at = StepStatus.COMPLETED, now()
    uow.run_steps.update(step)
    return [StepChanged("completed", step)]


def require_action(uow: UnitOfWork, run_id: str, calls: list[dict[str, Any]]) -> list[RunEvent]:
    """in_progress -> requires_action with the function calls the client must answer."""
    run = uow.runs.get_for_update(run_id)
    if run is None or run.status != RunStatus.IN_PROGRESS:
        return []
    run.status = RunStatus.REQUIRES_ACTION
    run.required_action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}
    run.lease_owner = run.lease_expires_at = None
    uow.runs.update(run)
    return [RunChanged("requires_action", run), StreamEnd(run.id)]


def end(
    uow: UnitOfWork,
    run_id: str,
    status: RunStatus,
    *,
    last_error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    partial_text: dict[str, str] | None = None,
) -> list[RunEvent]:
    """Move a live run to terminal ``status``, closing its unfinished steps and messages the same way
    (steps follow the run). A run already terminal is left alone; a run that
    was asked to cancel meanwhile ends ``cancelled`` whatever the executor had reached."""
    run = uow.runs.get_for_update(run_id)
    if run is None or is_terminal(run.status):
        return []
    if run.status == RunStatus.CANCELLING and status != RunStatus.EXPIRED:
        status, last_error, incomplete_reason = RunStatus.CANCELLED, None, None
    # One read of the run's steps serves both: closing the unfinished ones (in place) and the totals.
    steps = uow.run_steps.all_for_run(run.id)
    events = _close_steps(uow, run, steps, status, last_error, partial_text or {})
    stamp = now()
    run.status = status
    stamp_field = RUN_END_TIMESTAMP[status]
    if stamp_field is not None:
        setattr(run, stamp_field, stamp)
    run.required_action = None
    run.last_error = last_error
    run.incomplete_details = {"reason": incomplete_reason} if incomplete_reason else None
    run.lease_owner = run.lease_expires_at = None
    totals = [step.usage for step in steps if step.usage]
    run.usage = usage_dict(
        sum(u["prompt_tokens"] for u in totals), sum(u["completion_tokens"] for u in totals)
    )
    uow.runs.update(run)
    project_id = uow.runs.project_of(run.id)
    if project_id is not None:  # each run is counted once, when it ends, with every model call it made
        usage = run.usage
        uow.usage.add(
            project_id, run.model, stamp, usage["prompt_tokens"], usage["completion_tokens"], len(totals)
        )
    events += [RunChanged(status, run), StreamEnd(run.id)]
    return events


def checkpoint_message(uow: UnitOfWork, thread_id: str, message_id: str, text: str) -> None:
    """Save the text an in-progress message has streamed so far, so that a crash keeps it (the run's
    recovery ends the message ``incomplete`` with this text). No event: clients saw the deltas."""
    message = uow.messages.get(thread_id, message_id)
    if message is not None and message.status == MessageStatus.IN_PROGRESS:
        message.content = text_content(text) if text else []
        uow.messages.update(message)


def _close_steps(
    uow: UnitOfWork,
    run: Run,
    steps: list[RunStep],
    status: RunStatus,
    last_error: dict[str, Any] | None,
    partial_text: dict[str, str],
) -> list[RunEvent]:
    step_status = STEP_STATUS_FOR_RUN_END.get(status, StepStatus.COMPLETED)
    reason = MESSAGE_REASON_FOR_RUN_END.get(status, "run_failed")
    stamp = now()
    events: list[RunEvent] = []
    for step in steps:
        if step.status != StepStatus.IN_PROGRESS:
            continue
        if step.type == "message_creation":
            message = uow.messages.get(run.thread_id, step.step_details["message_creation"]["message_id"])
            if message is not None and message.status == MessageStatus.IN_PROGRESS:
                # Without the executor's own copy (it died), the last checkpoint stays.
                text = partial_text.get(message.id)
                if text is not None:
                    message.content = text_content(text) if text else []
                message.status, message.incomplete_at = MessageStatus.INCOMPLETE, stamp
                message.incomplete_details = {"reason": reason}
                uow.messages.update(message)
                events.append(MessageChanged("incomplete", message))
        step.status = step_status
        setattr(step, STEP_END_TIMESTAMP[step_status], stamp)
        if step_status == StepStatus.FAILED:
            step.last_error = last_error
        uow.run_steps.update(step)
        events.append(StepChanged(step_status, step))
    return events


RESTART_MESSAGE = "The run was interrupted by a server restart."
LEASE_LOST_MESSAGE = (
    "The run was interrupted: the worker executing it stopped responding and its lease expired."
)
SHUTDOWN_MESSAGE = "The run was interrupted: the worker executing it shut down."


def recover(uow: UnitOfWork, run_id: str, *, now_s: float, dead_owner: str | None = None) -> list[RunEvent]:
    """Finish a run whose executor is gone: its lease expired (or it never had one: a queued run
    cancelled while no worker held it), or ``dead_owner`` still holds it and is known dead.
    in_progress fails (its model call is lost; replaying it could repeat what the client already saw
    streamed), cancelling completes the cancel. A run that is held with a live lease is left alone."""
    run = uow.runs.get_for_update(run_id)
    if run is None or run.status not in LEASED_RUN_STATUSES:
        return []
    if dead_owner is not None:
        if run.lease_owner != dead_owner:
            return []
        message = RESTART_MESSAGE
    elif run.lease_expires_at is not None and run.lease_expires_at >= now_s:
        return []
    else:
        message = LEASE_LOST_MESSAGE
    if run.status == RunStatus.CANCELLING:
        return end(uow, run_id, RunStatus.CANCELLED)
    return end(uow, run_id, RunStatus.FAILED, last_error={"code": "server_error", "message": message})
