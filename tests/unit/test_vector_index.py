"""The SQLite vector index (sqlite-vec): nearest neighbours equal an exact scan, filters and stores
narrow it, deleting chunks deletes their vectors, and migration 0002 moves old embeddings into it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.config import Settings
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.retrieval.vectors import cosine_top_k, pack
from threadline.storage import vector_index
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.uow import UnitOfWork

DIMS = 32


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(Settings(data_dir=tmp_path))
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.close()


def _vectors(rng: random.Random, n: int, dims: int = DIMS) -> list[bytes]:
    return [pack([rng.gauss(0, 1) for _ in range(dims)]) for _ in range(n)]


def _add_file(db: Database, store_id: str, file_id: str, vectors: list[bytes | None]) -> None:
    def write(uow: UnitOfWork) -> None:
        if uow.vector_stores.get(store_id) is None:
            uow.vector_stores.insert(VectorStore(store_id, 0, "t", {}, 0))
        if uow.files.get(file_id, 0) is None:
            uow.files.insert(StoredFile(file_id, 0, 1, f"{file_id}.txt", "assistants"))
        uow.vector_stores.put_file(VectorStoreFile(file_id, store_id, 0, "in_progress", {"type": "static"}))
        chunks = [NewChunk(i, f"chunk {i}", i, v) for i, v in enumerate(vectors)]
        assert uow.chunks.complete(store_id, file_id, chunks, 1)

    db.transaction_sync(write)


def _chunk_ids(db: Database, store_id: str) -> dict[int, tuple[str, int]]:
    rows = db.transaction_sync(
        lambda uow: uow.conn.execute(
            sa.text("SELECT id, file_id, chunk_index FROM chunks WHERE vector_store_id = :s"), {"s": store_id}
        ).all()
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _vector_rows(db: Database, dims: int = DIMS) -> int:
    table = vector_index.table_name(dims)
    return int(
        db.transaction_sync(lambda uow: uow.conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar())
    )


def test_nearest_equals_an_exact_scan(db: Database) -> None:
    rng = random.Random(3)
    stored = {f"file-{n}": _vectors(rng, 40) for n in range(5)}
    for file_id, vectors in stored.items():
        _add_file(db, "vs_a", file_id, list(vectors))
    ids = _chunk_ids(db, "vs_a")
    by_key = {key: chunk_id for chunk_id, key in ids.items()}
    candidates = [(by_key[(f, i)], v) for f, vectors in stored.items() for i, v in enumerate(vectors)]
    for _ in range(10):
        query = [rng.gauss(0, 1) for _ in range(DIMS)]
        expected = cosine_top_k(query, candidates, 15)
        got = db.transaction_sync(lambda uow, q=query: uow.chunks.nearest(["vs_a"], pack(q), 15))
        assert [c for c, _ in got] == [c for c, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_file_filter_and_several_stores(db: Database) -> None:
    rng = random.Random(4)
    _add_file(db, "vs_a", "file-a", list(_vectors(rng, 20)))
    _add_file(db, "vs_b", "file-b", list(_vectors(rng, 20)))
    _add_file(db, "vs_b", "file-c", list(_vectors(rng, 20)))
    files = {**_chunk_ids(db, "vs_a"), **_chunk_ids(db, "vs_b")}
    query = pack([rng.gauss(0, 1) for _ in range(DIMS)])

    only_c = db.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a", "vs_b"], query, 10, {"file-c"}))
    assert len(only_c) == 10 and {files[c][0] for c, _ in only_c} == {"file-c"}

    both = db.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a", "vs_b"], query, 60))
    assert len(both) == 60, "every chunk of both stores"
    scores = [s for _, s in both]
    assert scores == sorted(scores, reverse=True), "the stores' results are merged best first"
    assert db.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a"], query, 10, set())) == []


def test_other_dimensions_and_unembedded_chunks(db: Database) -> None:
    rng = random.Random(5)
    _add_file(db, "vs_a", "file-a", [*_vectors(rng, 3), None])
    assert _vector_rows(db) == 3, "a chunk without an embedding has no vector"
    other = pack([1.0] * (DIMS * 2))
    assert db.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a"], other, 5)) == []
    # The chunks table keeps no second copy of the vectors on SQLite.
    stored = db.transaction_sync(
        lambda uow: uow.conn.execute(
            sa.text("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL")
        ).scalar()
    )
    assert stored == 0


def test_deleting_chunks_deletes_their_vectors(db: Database) -> None:
    rng = random.Random(6)
    _add_file(db, "vs_a", "file-a", list(_vectors(rng, 5)))
    _add_file(db, "vs_a", "file-b", list(_vectors(rng, 5)))
    _add_file(db, "vs_b", "file-a", list(_vectors(rng, 5)))
    assert _vector_rows(db) == 15
    db.transaction_sync(lambda uow: uow.vector_stores.delete_file("vs_a", "file-b"))
    assert _vector_rows(db) == 10
    db.transaction_sync(lambda uow: uow.vector_stores.remove_file_everywhere("file-a"))
    assert _vector_rows(db) == 0
    _add_file(db, "vs_c", "file-d", list(_vectors(rng, 4)))
    db.transaction_sync(lambda uow: uow.vector_stores.delete("vs_c"))
    assert _vector_rows(db) == 0


def test_reindexing_replaces_vectors(db: Database) -> None:
    rng = random.Random(7)
    _add_file(db, "vs_a", "file-a", list(_vectors(rng, 6)))
    _add_file(db, "vs_a", "file-a", list(_vectors(rng, 2)))
    assert _vector_rows(db) == 2


def test_a_rolled_back_write_leaves_no_vectors(db: Database) -> None:
    rng = random.Random(8)

    def write_then_fail(uow: UnitOfWork) -> None:
        uow.vector_stores.insert(VectorStore("vs_a", 0, "t", {}, 0))
        uow.files.insert(StoredFile("file-a", 0, 1, "a.txt", "assistants"))
        uow.vector_stores.put_file(VectorStoreFile("file-a", "vs_a", 0, "in_progress", {"type": "static"}))
        uow.chunks.complete("vs_a", "file-a", [NewChunk(0, "x", 0, _vectors(rng, 1)[0])], 1)
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        db.transaction_sync(write_then_fail)
    exists = db.transaction_sync(lambda uow: DIMS in vector_index.dimensions(uow.conn))
    assert not exists or _vector_rows(db) == 0


def test_migration_moves_stored_embeddings_into_the_index(tmp_path: Path) -> None:
    database = Database(Settings(data_dir=tmp_path))
    try:
        upgrade(database.engine, "0001")
        rng = random.Random(9)
        vectors = _vectors(rng, 3)
        with database.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO vector_stores (id, created_at, name, metadata, last_active_at) "
                    "VALUES ('vs_a', 0, 't', '{}', 0)"
                )
            )
            for i, vector in enumerate(vectors):
                conn.execute(
                    sa.text(
                        "INSERT INTO chunks (vector_store_id, file_id, chunk_index, text, start_char, "
                        "embedding) VALUES ('vs_a', 'file-a', :i, 'x', 0, :e)"
                    ),
                    {"i": i, "e": vector},
                )
        upgrade(database.engine)
        assert _vector_rows(database) == 3
        nearest = database.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a"], vectors[1], 1))
        assert _chunk_ids(database, "vs_a")[nearest[0][0]] == ("file-a", 1)
        assert nearest[0][1] == pytest.approx(1.0, abs=1e-5)
    finally:
        database.close()
