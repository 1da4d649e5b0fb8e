"""Listing a page is an indexed keyset query: its plan never sorts or scans the whole thread.

The statements are captured from the real repository call as SQLite ran them (its trace callback
gives each statement with its values in place), then explained by SQLite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from threadline.config import Settings
from threadline.domain.threads import ListParams
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.uow import UnitOfWork


@pytest.mark.parametrize(
    "params",
    [
        ListParams(limit=20, order="desc"),
        ListParams(limit=20, order="asc", after="msg_0000"),
        ListParams(limit=20, order="desc", before="msg_zzzz"),
    ],
)
def test_message_page_plan_uses_the_thread_index(tmp_path: Path, params: ListParams) -> None:
    db = Database(Settings(data_dir=tmp_path))
    captured: list[str] = []
    try:
        upgrade(db.engine)
        with db.engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.set_trace_callback(captured.append)
            UnitOfWork(conn).messages.list("thread_x", params)
            driver.set_trace_callback(None)
        selects = [statement for statement in captured if statement.lstrip().upper().startswith("SELECT")]
        assert selects, "the repository ran a query"
        with db.engine.connect() as conn:
            for statement in selects:
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))
                assert "ix_messages_thread_id_id" in plan, plan
                assert "TEMP B-TREE" not in plan, plan
    finally:
        db.close()


def test_unit_of_work_is_lazy(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path))
    try:
        upgrade(db.engine)
        assert db.transaction_sync(lambda uow: isinstance(uow, UnitOfWork) and "threads" not in vars(uow))
    finally:
        db.close()
