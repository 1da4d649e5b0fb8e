"""The run state machine (runtime-behaviours.md §3)."""

from __future__ import annotations

# A run in one of these holds the thread lock: no new messages, no new runs.
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_RUN_STATUSES = ("completed", "failed", "cancelled", "incomplete", "expired")
