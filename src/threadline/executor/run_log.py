"""Run lifecycle lines and run metrics, taken from the events the runner publishes.

Every state change an executor makes goes out as a ``RunChanged`` event through ``Runner.publish``,
so watching that one place sees them all without another database read: ``started`` when the
executor claims a run (``in_progress``), then one line when it stops executing (terminal or
``requires_action``) with duration, time to first token and the tokens of this stretch. A failed
run's line carries its ``last_error``. Lines carry ids, the model and statuses, never user text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from threadline.domain.events import MessageDelta, RunChanged, RunEvent
from threadline.domain.run_states import STOPPED_RUN_STATUSES, RunStatus
from threadline.domain.runs import Run
from threadline.observability.logs import fields
from threadline.observability.metrics import ACTIVE_RUNS, RUN_DURATION, RUN_TTFT, RUNS, TOKENS

log = logging.getLogger("threadline.runs")

# Statuses at which an executor lets go of a run.
STOPPED = frozenset(STOPPED_RUN_STATUSES)


@dataclass(slots=True)
class _Timing:
    started: float
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    first_token: float | None = None


def _usage(run: Run) -> tuple[int, int]:
    usage = run.usage or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class RunLog:
    """One per executor. ``observe`` sees every published batch of events."""

    def __init__(self) -> None:
        self._runs: dict[str, _Timing] = {}

    def started(self, run: Run, provider: str) -> None:
        prompt, completion = _usage(run)
        self._runs[run.id] = _Timing(time.monotonic(), run.model, provider, prompt, completion)
        ACTIVE_RUNS.inc()
        log.info(
            "run %s started: thread %s assistant %s model %s provider %s",
            run.id,
            run.thread_id,
            run.assistant_id,
            run.model,
            provider,
            extra=fields(
                run_id=run.id,
                thread_id=run.thread_id,
                assistant_id=run.assistant_id,
                model=run.model,
                provider=provider,
                status="in_progress",
            ),
        )

    def observe(self, run_id: str, events: list[RunEvent]) -> None:
        timing = self._runs.get(run_id)
        if timing is None:
            return
        for event in events:
            if isinstance(event, MessageDelta) and timing.first_token is None:
                timing.first_token = time.monotonic()
                RUN_TTFT.labels(timing.model).observe(timing.first_token - timing.started)
            elif isinstance(event, RunChanged) and event.run.status == RunStatus.CANCELLING:
                log.info(
                    "run %s cancelling",
                    run_id,
                    extra=fields(run_id=run_id, thread_id=event.run.thread_id, status="cancelling"),
                )
            elif isinstance(event, RunChanged) and event.run.status in STOPPED:
                self._stopped(timing, event.run)

    def forget(self, run_id: str) -> None:
        """The executor is done with the run (however it ended); idempotent."""
        if self._runs.pop(run_id, None) is not None:
            ACTIVE_RUNS.dec()

    def _stopped(self, timing: _Timing, run: Run) -> None:
        self.forget(run.id)
        duration = time.monotonic() - timing.started
        prompt, completion = _usage(run)
        tokens_in = max(0, prompt - timing.prompt_tokens)
        tokens_out = max(0, completion - timing.completion_tokens)
        RUNS.labels(run.status, timing.model).inc()
        RUN_DURATION.labels(timing.model).observe(duration)
        if tokens_in:
            TOKENS.labels(timing.model, "in").inc(tokens_in)
        if tokens_out:
            TOKENS.labels(timing.model, "out").inc(tokens_out)
        ttft_ms = None if timing.first_token is None else (timing.first_token - timing.started) * 1000
        error = run.last_error or {}
        extra = fields(
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            model=timing.model,
            provider=timing.provider,
            status=run.status,
            duration_ms=round(duration * 1000, 1),
            ttft_ms=None if ttft_ms is None else round(ttft_ms, 1),
            prompt_tokens=tokens_in,
            completion_tokens=tokens_out,
            last_error=run.last_error,
        )
        ttft = "-" if ttft_ms is None else f"{ttft_ms:.1f}ms"
        summary = f"in {duration * 1000:.1f}ms (ttft {ttft}, tokens {tokens_in} in / {tokens_out} out)"
        if run.status == RunStatus.FAILED:
            log.warning(
                "run %s failed %s: %s: %s",
                run.id,
                summary,
                error.get("code"),
                error.get("message"),
                extra=extra,
            )
        else:
            log.info("run %s %s %s", run.id, run.status, summary, extra=extra)
