"""Loops that retry a failing step (observability/logs.py, ``RetryLog``): the per-project request
counter's flush (api/rate_limits.py) through a database outage, and what they log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.engine import database, in_loop
from threadline.api.rate_limits import FLUSH_S, RequestLimiter
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.observability.logs import RetryLog
from threadline.storage.scope import ALL_PROJECTS
from threadline.storage.uow import UnitOfWork


def _rename(db_table: str, to: str) -> Callable[[UnitOfWork], None]:
    def work(uow: UnitOfWork) -> None:
        uow.conn.execute(sa.text(f"ALTER TABLE {db_table} RENAME TO {to}"))

    return work


@in_loop
async def test_an_outage_logs_one_traceback_and_its_end_and_loses_no_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with database(tmp_path) as db:
        limiter = RequestLimiter(per_minute=100)
        db.transaction_sync(_rename("request_counts", "request_counts_away"), scope=ALL_PROJECTS)
        with caplog.at_level(logging.INFO, logger="threadline.api"):
            await limiter.start(db)
            for _ in range(3):
                limiter.admit(DEFAULT_PROJECT_ID)
            await asyncio.sleep(FLUSH_S * 6)  # several flushes, each failing
            db.transaction_sync(_rename("request_counts_away", "request_counts"), scope=ALL_PROJECTS)
            await asyncio.sleep(FLUSH_S * 3)
            await limiter.aclose()
        messages = [record.getMessage() for record in caplog.records]
        failed = [m for m in messages if m.startswith("flushing request counts failed")]
        recovered = [m for m in messages if m.startswith("flushing request counts works again")]
        assert len(failed) == 1 and caplog.records[messages.index(failed[0])].exc_info is not None
        assert len(recovered) == 1 and "after " in recovered[0], messages
        counted = db.transaction_sync(
            lambda uow: uow.conn.execute(sa.text("SELECT requests FROM request_counts")).scalar_one(),
            scope=ALL_PROJECTS,
        )
        assert counted == 3  # the counts kept pending through the outage went in once it ended


def test_a_retry_log_says_a_line_a_minute_while_failing_and_one_when_it_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [1000.0]
    failures = RetryLog(logging.getLogger("threadline.test"), "doing it", clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="threadline.test"):
        for _ in range(4 * 90):  # 90 s of a step failing 4 times a second
            try:
                raise OSError("database down")
            except OSError:
                failures.failed()
            clock[0] += 0.25
        failures.succeeded()
        failures.succeeded()  # nothing to say: it was not failing
    said = [(record.levelname, record.getMessage(), record.exc_info is not None) for record in caplog.records]
    assert said == [
        ("ERROR", "doing it failed; retrying", True),
        ("ERROR", "doing it still failing: 241 attempts in 60 s", False),
        ("WARNING", "doing it works again, after 360 failed attempts in 90 s", False),
    ]
