"""The run state machine: the statuses, the sets the rules use, and why an executor stops a run."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's ``status`` on the wire (a str: it compares, formats and serialises as its value)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


# A run in one of these holds the thread lock: no new messages, no new runs.
ACTIVE_RUN_STATUSES = (
    RunStatus.QUEUED,
    RunStatus.IN_PROGRESS,
    RunStatus.REQUIRES_ACTION,
    RunStatus.CANCELLING,
)
TERMINAL_RUN_STATUSES = (
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.INCOMPLETE,
    RunStatus.EXPIRED,
)
# Statuses the executor may still be working in (a task may hold the run).
EXECUTING_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.CANCELLING)
# Statuses a worker holds under a lease (claimed, not yet stopped).
LEASED_RUN_STATUSES = (RunStatus.IN_PROGRESS, RunStatus.CANCELLING)
# Where a run waits for someone else: a poll or a stream stops here.
STOPPED_RUN_STATUSES = (RunStatus.REQUIRES_ACTION, *TERMINAL_RUN_STATUSES)


class StepStatus(StrEnum):
    """A run step's ``status`` on the wire."""

    IN_PROGRESS = "in_progress"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    EXPIRED = "expired"


class MessageStatus(StrEnum):
    """A message's ``status`` on the wire (a user's message is created ``completed``)."""

    IN_PROGRESS = "in_progress"
    INCOMPLETE = "incomplete"
    COMPLETED = "completed"


# The timestamp field each ended step status sets.
STEP_END_TIMESTAMP = {
    StepStatus.COMPLETED: "completed_at",
    StepStatus.CANCELLED: "cancelled_at",
    StepStatus.FAILED: "failed_at",
    StepStatus.EXPIRED: "expired_at",
}

# What an unfinished step / message becomes when its run ends without completing it.
STEP_STATUS_FOR_RUN_END = {
    RunStatus.CANCELLED: StepStatus.CANCELLED,
    RunStatus.FAILED: StepStatus.FAILED,
    RunStatus.EXPIRED: StepStatus.EXPIRED,
}
MESSAGE_REASON_FOR_RUN_END = {
    RunStatus.CANCELLED: "run_cancelled",
    RunStatus.FAILED: "run_failed",
    RunStatus.EXPIRED: "run_expired",
    RunStatus.INCOMPLETE: "max_tokens",
}
# The timestamp field each terminal run status sets.
RUN_END_TIMESTAMP = {
    RunStatus.COMPLETED: "completed_at",
    RunStatus.FAILED: "failed_at",
    RunStatus.CANCELLED: "cancelled_at",
    RunStatus.EXPIRED: None,  # the wire has no expired_at on runs; expires_at already says when
    RunStatus.INCOMPLETE: None,
}


class Interrupt(StrEnum):
    """Why an executor stops a run it is executing."""

    CANCEL = "cancel"  # the user cancelled it (the run is cancelling)
    EXPIRE = "expire"  # its expires_at passed
    LOST = "lost"  # another worker took its lease over
    SHUTDOWN = "shutdown"  # this process is stopping


def is_terminal(status: str) -> bool:
    return status in TERMINAL_RUN_STATUSES
