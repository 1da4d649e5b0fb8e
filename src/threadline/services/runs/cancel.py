"""Cancel a run."""

from __future__ import annotations

from threadline.domain.errors import RunStateConflict
from threadline.domain.events import RunChanged, RunEvent
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run
from threadline.services.runs import transitions
from threadline.services.runs.queries import get
from threadline.storage.uow import UnitOfWork


def cancel(uow: UnitOfWork, thread_id: str, run_id: str) -> tuple[Run, list[RunEvent], bool]:
    """queued/in_progress -> cancelling (the executor finishes it as cancelled once it has stopped the
    model call); requires_action -> cancelled at once (nothing is executing); cancelling stays.
    Returns the run, the events to publish after commit, and whether the executor must be told."""
    get(uow, thread_id, run_id)
    run = uow.runs.get_for_update(run_id)
    assert run is not None  # just read it in this transaction
    if run.status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS):
        run.status = RunStatus.CANCELLING
        uow.runs.update(run)
        return run, [RunChanged("cancelling", run)], True
    if run.status == RunStatus.REQUIRES_ACTION:
        events = transitions.end(uow, run_id, RunStatus.CANCELLED)
        cancelled = uow.runs.get(thread_id, run_id)
        assert cancelled is not None
        return cancelled, events, False
    if run.status == RunStatus.CANCELLING:
        return run, [], True
    raise RunStateConflict(f"Cannot cancel run with status '{run.status}'.")
