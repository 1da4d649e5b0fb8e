"""Log set-up: one format for every line (``text`` or ``json``), Threadline's own loggers at the chosen
level and library chatter kept out of INFO.

Structured fields travel as ``extra={"fields": {...}}`` on a log call: the text form appends none of
them (the message already reads well), the json form merges them into the line's object, so a log
pipeline can filter on ``run_id`` or ``status`` without parsing prose. Use ``fields(...)`` to build
the ``extra`` argument. User text (message content, instructions, tool arguments) and API keys are
never logged at INFO or above.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

FORMATS = ("text", "json")

# Libraries whose INFO lines are noise to an operator (alembic's "Context impl"/"Will assume
# transactional DDL", httpx/httpcore per-request lines, sse-starlette's chunk logging). They still
# log warnings; at --log-level debug they log everything.
_NOISY = ("alembic", "httpx", "httpx2", "httpcore", "sse_starlette", "openai", "multipart", "uvicorn.access")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call carrying structured fields (shown in json lines)."""
    return {"fields": values}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (RFC 3339, UTC, ms), ``level``, ``logger``, ``msg``, the
    record's structured fields, and ``exc`` when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "info", fmt: str = "text", *, access_log: bool = True) -> None:
    """Configure the root logger (idempotent: replaces the handlers it installed before)."""
    if fmt not in FORMATS:
        raise ValueError(f"THREADLINE_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"THREADLINE_LOG_LEVEL must be debug, info, warning or error, not {level!r}")
    root.setLevel(numeric)
    for name in _NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    if not access_log:
        logging.getLogger("threadline.access").setLevel(logging.WARNING)
    # uvicorn installs its own handlers when it starts; route its lines through ours instead.
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers = []
        uv.propagate = True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: keep our handlers (uvicorn's default config would replace them)."""
    return {"version": 1, "disable_existing_loggers": False}


class RetryLog:
    """How a loop that retries forever (claiming runs, flushing counts, ingestion ticks) reports a
    failing step: the first failure with its traceback, then one line a minute while it goes on, and
    one line when the step works again. A database outage fails such steps several times a second;
    a traceback per attempt would bury everything else the server logs."""

    REPEAT_S = 60.0

    def __init__(
        self, log: logging.Logger, what: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.what = what
        self.failures = 0
        self._clock = clock
        self._since = 0.0
        self._said = 0.0

    def failed(self) -> None:
        """Call in the ``except`` block of a failed attempt."""
        self.failures += 1
        now = self._clock()
        if self.failures == 1:
            self._since = self._said = now
            self.log.exception("%s failed; retrying", self.what)
        elif now - self._said >= self.REPEAT_S:
            self._said = now
            self.log.error(
                "%s still failing: %d attempts in %.0f s", self.what, self.failures, now - self._since
            )

    def succeeded(self) -> None:
        if self.failures:
            self.log.warning(
                "%s works again, after %d failed attempts in %.0f s",
                self.what,
                self.failures,
                self._clock() - self._since,
            )
            self.failures = 0
