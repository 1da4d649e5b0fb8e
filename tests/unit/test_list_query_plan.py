"""Listing a page is an indexed keyset query: its plan never sorts or scans the whole thread.

The statements are captured from the real repository call, then explained by SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

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
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    try:
        upgrade(db.engine)
        event.listen(db.engine, "before_cursor_execute", capture)
        db.transaction_sync(lambda uow: uow.messages.list("thread_x", params))
        event.remove(db.engine, "before_cursor_execute", capture)
        assert captured, "the repository ran a query"
        with db.engine.connect() as conn:
            for statement, parameters in captured:
                plan = " | ".join(
                    str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
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
