"""The ingestion queue's claim counting on both backends: a file claimed max_attempts times without
finishing is failed instead of claimed again; a clean hand-back does not count."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import databases
from threadline.config import Settings
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.scope import Scope
from threadline.storage.uow import UnitOfWork


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = ""
    if request.param == "postgres":
        reason = databases.postgres_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        url = databases.create_database()
    database = Database(Settings(data_dir=tmp_path, database_url=url))
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.close()
        if url:
            databases.drop_database(url)


def _queue_file(uow: UnitOfWork) -> None:
    uow.vector_stores.insert(VectorStore("vs_q", 0, "q", {}, 0))
    uow.files.insert(StoredFile("file-q", 0, 1, "q.txt", "assistants"))
    uow.vector_stores.put_file(VectorStoreFile("file-q", "vs_q", 0, "in_progress", {"type": "static"}))


def _claim(uow: UnitOfWork, now: float) -> list[VectorStoreFile]:
    return uow.ingestion_queue.claim("loop-a", now, 10, 4, 2)


def test_claims_are_counted_and_the_last_one_fails_the_file(db: Database) -> None:
    db.transaction_sync(_queue_file, scope=Scope(DEFAULT_PROJECT_ID))
    now = 1000.0
    for attempt in (1, 2):
        # Each claim's lease runs out unfinished, as when the process dies with the file.
        claimed = db.transaction_sync(functools.partial(_claim, now=now))
        assert [job.id for job in claimed] == ["file-q"], attempt
        now += 11
    assert db.transaction_sync(lambda uow: uow.ingestion_queue.claim("loop-a", now, 10, 4, 2)) == []
    vs_file = db.transaction_sync(lambda uow: uow.vector_stores.get_file("vs_q", "file-q"))
    assert vs_file is not None and vs_file.status == "failed"
    assert vs_file.last_error is not None and vs_file.last_error["code"] == "server_error"
    assert vs_file.last_error["message"].startswith("Ingestion crashed the worker 2 times")


def test_a_released_claim_does_not_count(db: Database) -> None:
    db.transaction_sync(_queue_file, scope=Scope(DEFAULT_PROJECT_ID))
    for _ in range(5):
        claimed = db.transaction_sync(lambda uow: uow.ingestion_queue.claim("loop-a", 1000.0, 10, 4, 2))
        assert [job.id for job in claimed] == ["file-q"]
        db.transaction_sync(lambda uow: uow.ingestion_queue.release("vs_q", "file-q", "loop-a"))


def test_only_the_leases_owner_renews_completes_or_fails_the_file(db: Database) -> None:
    db.transaction_sync(_queue_file, scope=Scope(DEFAULT_PROJECT_ID))
    assert len(db.transaction_sync(lambda uow: uow.ingestion_queue.claim("loop-a", 1000.0, 10, 4))) == 1
    # A's lease ran out; B claims the file.
    assert len(db.transaction_sync(lambda uow: uow.ingestion_queue.claim("loop-b", 1011.0, 10, 4))) == 1

    def stale(uow: UnitOfWork) -> tuple[bool, bool, bool]:
        queue = uow.ingestion_queue
        return (
            queue.renew("vs_q", "file-q", "loop-a", 5000.0),
            queue.fail("vs_q", "file-q", "loop-a", "invalid_file", "A gave up."),
            queue.complete("vs_q", "file-q", "loop-a", [NewChunk(0, "from A", 0)], 6),
        )

    assert db.transaction_sync(stale) == (False, False, False)
    vs_file = db.transaction_sync(lambda uow: uow.vector_stores.get_file("vs_q", "file-q"))
    assert vs_file is not None and vs_file.status == "in_progress"
    done = db.transaction_sync(
        lambda uow: uow.ingestion_queue.complete("vs_q", "file-q", "loop-b", [NewChunk(0, "from B", 0)], 6)
    )
    assert done is True
    document = db.transaction_sync(lambda uow: uow.chunks.document("vs_q", "file-q"))
    assert document == "from B"
