"""The run state machine."""

from __future__ import annotations

# A run in one of these holds the thread lock: no new messages, no new runs.
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_RUN_STATUSES = ("completed", "failed", "cancelled", "incomplete", "expired")
# Statuses the executor may still be working in (a task may hold the run).
EXECUTING_RUN_STATUSES = ("queued", "in_progress", "cancelling")

# What an unfinished step / message becomes when its run ends without completing it.
STEP_STATUS_FOR_RUN_END = {"cancelled": "cancelled", "failed": "failed", "expired": "expired"}
MESSAGE_REASON_FOR_RUN_END = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
    "incomplete": "max_tokens",
}
# The timestamp field each terminal run status sets.
RUN_END_TIMESTAMP = {
    "completed": "completed_at",
    "failed": "failed_at",
    "cancelled": "cancelled_at",
    "expired": None,  # the wire has no expired_at on runs; expires_at already says when
    "incomplete": None,
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_RUN_STATUSES
