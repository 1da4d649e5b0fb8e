"""Ingestion's failure branches in-process: a scripted extractor (the ``Extractor`` seam the child
process pool fills in production), real extraction on a thread, and the ingestion loop's claims under a
manual clock (a crashed loop is one whose lease simply runs out)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.engine import WAIT_S, database, in_loop
from tests.support.scripted_model import ManualClock
from threadline.blobs import BlobStore, blob_store_from_settings
from threadline.domain.errors import InvalidFile
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.ingestion.loop import IngestionLoop
from threadline.services import ingestion
from threadline.storage import tables
from threadline.storage.database import Database
from threadline.storage.scope import Scope
from threadline.storage.uow import UnitOfWork

STORE = "vs_ingest"
STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}


class ScriptedExtractor:
    """An ``Extractor`` that raises ``error`` or returns ``text`` as one chunk."""

    def __init__(self, text: str = "", error: Exception | None = None) -> None:
        self.text, self.error, self.calls = text, error, 0

    async def extract(
        self, pieces: Iterable[bytes], filename: str, max_chunk_tokens: int, overlap_tokens: int
    ) -> tuple[int, list[tuple[int, str, int]]]:
        self.calls += 1
        assert b"".join(pieces)  # the file's bytes reach the extractor
        if self.error is not None:
            raise self.error
        return len(self.text.encode()), [(0, self.text, 0)]


def queue_file(db: Database, blobs: BlobStore, file_id: str, filename: str, data: bytes) -> None:
    """A File with bytes, added to the store: in_progress and unclaimed, as the API leaves it."""
    blobs.put(file_id, io.BytesIO(data))

    def put(uow: UnitOfWork) -> None:
        if uow.vector_stores.get(STORE) is None:
            uow.vector_stores.insert(VectorStore(STORE, 0, "ingest", {}, 0))
        uow.files.insert(StoredFile(file_id, 0, len(data), filename, "assistants"))
        uow.vector_stores.put_file(VectorStoreFile(file_id, STORE, 0, "in_progress", STATIC))

    db.transaction_sync(put, scope=Scope(DEFAULT_PROJECT_ID))


def vs_file(db: Database, file_id: str) -> VectorStoreFile:
    found = db.transaction_sync(lambda uow: uow.vector_stores.get_file(STORE, file_id))
    assert found is not None
    return found


def chunk_count(db: Database, file_id: str) -> int:
    query = sa.select(sa.func.count()).where(tables.chunks.c.file_id == file_id)
    return int(db.transaction_sync(lambda uow: uow.conn.execute(query).scalar_one()))


OWNER = "loop-a"


def claim(
    db: Database, now_s: float, max_attempts: int | None = None, owner: str = OWNER
) -> list[VectorStoreFile]:
    """A claim by the ingestion loop named ``owner``."""
    return db.transaction_sync(
        partial(ingestion.claim, owner=owner, now_s=now_s, limit=4, max_attempts=max_attempts)
    )


def lease(db: Database, file_id: str) -> tuple[str | None, float | None]:
    """The file's lease: (owner, expiry)."""
    vsf = tables.vector_store_files
    query = sa.select(vsf.c.lease_owner, vsf.c.lease_expires_at).where(vsf.c.id == file_id)
    owner, expires = db.transaction_sync(lambda uow: uow.conn.execute(query).one())
    return owner, expires


def re_claimed(
    db: Database, file_id: str, filename: str, data: bytes
) -> tuple[BlobStore, ManualClock, VectorStoreFile, VectorStoreFile]:
    """A queued file that loop A claimed and, once A's lease ran out, loop B claimed again:
    (blobs, clock, A's job, B's job)."""
    blobs = blob_store_from_settings(db.settings)
    queue_file(db, blobs, file_id, filename, data)
    clock = ManualClock(10_000.0)
    [job_a] = claim(db, clock(), owner="loop-a")
    clock.advance(ingestion.LEASE_S + 1)  # A's lease is gone: B takes the file
    [job_b] = claim(db, clock(), owner="loop-b")
    return blobs, clock, job_a, job_b


@in_loop
async def test_extraction_failure_fails_the_file_with_the_extractors_code(tmp_path: Path) -> None:
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-bad", "bad.pdf", b"%PDF-1.7 not really")
        [job] = claim(db, 1000.0)
        extractor = ScriptedExtractor(error=InvalidFile("The PDF is encrypted."))

        await ingestion.index_file(db, blobs, None, job, OWNER, extractor)

        assert extractor.calls == 1
        failed = vs_file(db, "file-bad")
        assert failed.status == "failed"
        assert failed.last_error == {"code": "invalid_file", "message": "The PDF is encrypted."}
        assert chunk_count(db, "file-bad") == 0


@in_loop
async def test_extraction_of_an_unsupported_file_fails_it_unsupported(tmp_path: Path) -> None:
    """No extractor: parsed on a thread of this process, by the real extraction code."""
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-bin", "tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04")
        [job] = claim(db, 1000.0)

        await ingestion.index_file(db, blobs, None, job, OWNER)

        failed = vs_file(db, "file-bin")
        assert failed.status == "failed"
        assert failed.last_error is not None and failed.last_error["code"] == "unsupported_file"


@in_loop
async def test_an_unexpected_extractor_crash_fails_the_file_as_server_error(tmp_path: Path) -> None:
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-boom", "boom.txt", b"text")
        [job] = claim(db, 1000.0)

        await ingestion.index_file(db, blobs, None, job, OWNER, ScriptedExtractor(error=RuntimeError("boom")))

        failed = vs_file(db, "file-boom")
        assert failed.status == "failed"
        assert failed.last_error == {
            "code": "server_error",
            "message": "An internal error occurred while processing the file.",
        }


@in_loop
async def test_missing_file_bytes_fail_the_file_invalid(tmp_path: Path) -> None:
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-gone", "gone.txt", b"text")
        blobs.delete("file-gone")
        [job] = claim(db, 1000.0)

        await ingestion.index_file(db, blobs, None, job, OWNER, ScriptedExtractor("unused"))

        failed = vs_file(db, "file-gone")
        assert failed.status == "failed"
        assert failed.last_error == {"code": "invalid_file", "message": "The file's content is missing."}


@in_loop
async def test_the_loop_fails_a_file_that_exceeded_its_max_attempts(tmp_path: Path) -> None:
    with database(tmp_path, ingestion_max_attempts=2) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-poison", "poison.txt", b"kills the parser")
        clock = ManualClock(10_000.0)
        # Two loops claimed it and died with it: each lease simply ran out.
        for attempt in (1, 2):
            assert [job.id for job in claim(db, clock(), 2)] == ["file-poison"], attempt
            clock.advance(ingestion.LEASE_S + 1)
        loop = IngestionLoop(db, blobs, None, sole_process=False, settings=db.settings, clock=clock)
        try:
            worked = await loop._tick()
        finally:
            await loop.stop()

        assert worked is False  # nothing claimed: the file failed instead
        failed = vs_file(db, "file-poison")
        assert failed.status == "failed"
        assert failed.last_error == {
            "code": "server_error",
            "message": "Ingestion crashed the worker 2 times while processing this file; "
            "it was not retried again.",
        }


@in_loop
async def test_the_loop_leaves_a_live_lease_alone_until_it_runs_out(tmp_path: Path) -> None:
    """The control for the above: the same loop claims only once the other's lease has expired."""
    with database(tmp_path, ingestion_max_attempts=3) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-slow", "slow.txt", b"slow")
        clock = ManualClock(10_000.0)
        assert len(claim(db, clock(), 3)) == 1  # another loop holds it
        clock.advance(ingestion.LEASE_S - 1)
        assert claim(db, clock(), 3) == []
        clock.advance(2)
        assert [job.id for job in claim(db, clock(), 3)] == ["file-slow"]


@in_loop
async def test_a_stale_loop_cannot_complete_a_file_another_loop_claimed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Loop A's lease runs out mid-file (it stalled); B claims the file again. A's completion finds
    the lease in B's name and writes nothing; B indexes the file, once, with its own chunks."""
    with database(tmp_path) as db:
        blobs, _, job_a, job_b = re_claimed(db, "file-race", "race.txt", b"some text")
        assert lease(db, "file-race")[0] == "loop-b"

        with caplog.at_level(logging.INFO, "threadline.ingestion"):
            await ingestion.index_file(db, blobs, None, job_a, "loop-a", ScriptedExtractor("from A"))
        assert vs_file(db, "file-race").status == "in_progress"  # A's result was dropped
        [dropped] = [r for r in caplog.records if "claimed by another ingestion loop" in r.getMessage()]
        assert dropped.levelno == logging.INFO
        assert chunk_count(db, "file-race") == 0
        assert lease(db, "file-race")[0] == "loop-b"

        await ingestion.index_file(db, blobs, None, job_b, "loop-b", ScriptedExtractor("from B"))
        done = vs_file(db, "file-race")
        assert done.status == "completed" and done.last_error is None
        assert chunk_count(db, "file-race") == 1
        document = db.transaction_sync(lambda uow: uow.chunks.document(STORE, "file-race"))
        assert document == "from B"
        assert lease(db, "file-race") == (None, None)


@in_loop
async def test_a_stale_loop_cannot_fail_a_file_another_loop_claimed(tmp_path: Path) -> None:
    """The failing branch of the same race: A's error is dropped, B's chunks stand."""
    with database(tmp_path) as db:
        blobs, _, job_a, job_b = re_claimed(db, "file-race", "race.txt", b"some text")

        stale = ScriptedExtractor(error=InvalidFile("A's parser gave up."))
        await ingestion.index_file(db, blobs, None, job_a, "loop-a", stale)
        assert vs_file(db, "file-race").status == "in_progress"

        await ingestion.index_file(db, blobs, None, job_b, "loop-b", ScriptedExtractor("from B"))
        done = vs_file(db, "file-race")
        assert done.status == "completed" and done.last_error is None
        assert chunk_count(db, "file-race") == 1


@in_loop
async def test_a_stale_loop_cannot_renew_the_new_holders_lease(tmp_path: Path) -> None:
    """A, which lost the file to B, renews in vain: B's lease stays B's and expires when B's does,
    so a stalled A cannot keep a file B abandoned alive; B renews its own."""
    with database(tmp_path) as db:
        _, clock, job_a, job_b = re_claimed(db, "file-held", "held.txt", b"text")
        b_until = clock() + ingestion.LEASE_S

        assert await ingestion.renew(db, job_a, "loop-a", clock() + 1000) is False
        assert lease(db, "file-held") == ("loop-b", b_until)

        assert await ingestion.renew(db, job_b, "loop-b", clock() + 1000) is True
        assert lease(db, "file-held") == ("loop-b", clock() + 1000)


@in_loop
async def test_a_loop_past_its_lease_still_completes_a_file_nobody_reclaimed(tmp_path: Path) -> None:
    """Only another claim takes a file away: a lease that ran out with no one claiming after it is
    still the loop's, which completes the file."""
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-late", "late.txt", b"text")
        clock = ManualClock(10_000.0)
        [job] = claim(db, clock())
        clock.advance(ingestion.LEASE_S + 1)

        await ingestion.index_file(db, blobs, None, job, OWNER, ScriptedExtractor("late but alone"))

        assert vs_file(db, "file-late").status == "completed"
        assert chunk_count(db, "file-late") == 1


@in_loop
async def test_the_loops_heartbeat_stops_once_another_loop_holds_the_file(tmp_path: Path) -> None:
    """The heartbeat of a loop that lost its file returns instead of renewing for ever."""
    with database(tmp_path) as db:
        blobs = blob_store_from_settings(db.settings)
        queue_file(db, blobs, "file-hb", "hb.txt", b"text")
        clock = ManualClock(10_000.0)
        loop = IngestionLoop(db, blobs, None, sole_process=False, settings=db.settings, clock=clock)
        try:
            [job] = claim(db, clock(), owner=loop.owner)
            clock.advance(ingestion.LEASE_S + 1)
            claim(db, clock(), owner="loop-b")
            loop.heartbeat_s = 0.0  # renew at once; the manual clock decides what the lease says
            await asyncio.wait_for(loop._heartbeat(job), WAIT_S)
        finally:
            await loop.stop()
        assert lease(db, "file-hb")[0] == "loop-b"


@in_loop
async def test_a_clean_shutdown_releases_only_its_own_leases(tmp_path: Path) -> None:
    with database(tmp_path) as db:
        _, clock, job_a, _ = re_claimed(db, "file-rel", "rel.txt", b"text")

        await ingestion.release(db, job_a, "loop-a")
        assert lease(db, "file-rel") == ("loop-b", clock() + ingestion.LEASE_S)

        await ingestion.release(db, job_a, "loop-b")
        assert lease(db, "file-rel") == (None, None)
        assert [job.id for job in claim(db, clock(), owner="loop-c")] == ["file-rel"]
