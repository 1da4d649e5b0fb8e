"""Ingestion never leaves a file stuck in_progress: a worker that died mid-file is recovered."""

from __future__ import annotations

import io
import time

import pytest

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.database_access import execute_sql
from tests.support.documents import text_document, wait_for_store
from tests.support.server import ServerProcess


def test_file_left_in_progress_by_a_dead_worker_is_indexed_after_restart(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env, pg_url = server_env(backend)
    server = ServerProcess(tmp_path_factory.mktemp(f"recovery-{backend}"), env).start()
    try:
        with make_client(server.base_url) as client:
            file = client.files.create(
                file=("tide.txt", io.BytesIO(text_document("Silver tides return at noon."))),
                purpose="assistants",
            )
            store = client.vector_stores.create(file_ids=[file.id])
            wait_for_store(client, store.id)
        server.kill()
        # As if the process died mid-file: still in_progress, no chunks, and a lease that a dead
        # worker held (on SQLite a lease from a previous process is void at start; on PostgreSQL
        # another worker may be alive, so recovery waits for the lease to run out: here it has).
        lease = time.time() + 3600 if backend == "sqlite" else time.time() - 1
        execute_sql(
            server,
            "UPDATE vector_store_files SET status = 'in_progress', lease_expires_at = :lease WHERE id = :id",
            lease=lease,
            id=file.id,
        )
        execute_sql(server, "DELETE FROM chunks WHERE file_id = :id", id=file.id)
        server.start()
        with make_client(server.base_url) as client:
            recovered = wait_for_store(client, store.id)
            assert recovered.status == "completed" and recovered.file_counts.completed == 1
            assert client.vector_stores.search(store.id, query="silver tides").data[0].file_id == file.id
    finally:
        server.stop()
        if pg_url:
            databases.drop_database(pg_url)
