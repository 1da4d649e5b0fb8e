"""Submit the outputs of a requires_action run's function calls; the run goes back to queued."""

from __future__ import annotations

from typing import Any

from threadline.domain.errors import InvalidParameter, RunStateConflict
from threadline.domain.events import RunChanged, RunEvent, StepChanged
from threadline.domain.run_states import RunStatus, StepStatus
from threadline.domain.runs import Run
from threadline.schemas.runs import ToolOutputsSubmit
from threadline.services.clock import now
from threadline.services.runs.queries import get
from threadline.storage.uow import UnitOfWork


def _outputs_by_call(request: ToolOutputsSubmit, expected: list[str]) -> dict[str, str]:
    """Outputs keyed by tool_call_id; every expected call exactly once, nothing else (the docs: "All
    outputs must be submitted in a single request")."""
    outputs: dict[str, str] = {}
    for i, item in enumerate(request.tool_outputs):
        if item.tool_call_id is None:
            raise InvalidParameter(
                f"Missing required parameter: 'tool_outputs[{i}].tool_call_id'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="missing_required_parameter",
            )
        if item.tool_call_id in outputs:
            raise InvalidParameter(
                f"Duplicate tool output for tool_call_id '{item.tool_call_id}'.", param="tool_outputs"
            )
        outputs[item.tool_call_id] = item.output or ""
    unknown = [call_id for call_id in outputs if call_id not in expected]
    if unknown:
        raise InvalidParameter(
            f"Unknown tool_call_id(s): {', '.join(unknown)}. This run expects outputs for: "
            f"{', '.join(expected)}.",
            param="tool_outputs",
        )
    missing = [call_id for call_id in expected if call_id not in outputs]
    if missing:
        raise InvalidParameter(
            f"Missing tool outputs for tool_call_id(s): {', '.join(missing)}. All outputs must be "
            "submitted in a single request.",
            param="tool_outputs",
        )
    return outputs


def submit(
    uow: UnitOfWork, thread_id: str, run_id: str, request: ToolOutputsSubmit
) -> tuple[Run, list[RunEvent]]:
    """Fill the pending tool step's outputs, complete it, and queue the run again. The events are
    those a streamed submit starts with: the completed step, then ``thread.run.queued``."""
    get(uow, thread_id, run_id)
    run = uow.runs.get_for_update(run_id)
    assert run is not None
    if run.status != "requires_action" or run.required_action is None:
        raise RunStateConflict(f'Runs in status "{run.status}" do not accept tool outputs.')
    expected = [call["id"] for call in run.required_action["submit_tool_outputs"]["tool_calls"]]
    outputs = _outputs_by_call(request, expected)
    events: list[RunEvent] = []
    for step in uow.run_steps.in_progress_for_run(run_id):
        if step.type != "tool_calls":
            continue
        calls: list[dict[str, Any]] = step.step_details["tool_calls"]
        for call in calls:
            if call.get("type") == "function" and call["id"] in outputs:
                call["function"]["output"] = outputs[call["id"]]
        step.status, step.completed_at = StepStatus.COMPLETED, now()
        uow.run_steps.update(step)
        events.append(StepChanged("completed", step))
    run.status = RunStatus.QUEUED
    run.required_action = None
    uow.runs.update(run)
    events.append(RunChanged("queued", run))
    return run, events
