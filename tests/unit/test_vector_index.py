"""The vector indexes, sqlite-vec on SQLite and pgvector on PostgreSQL: nearest neighbours equal an
exact scan, filters and stores narrow them, deleting chunks deletes their vectors, and vectors stored
before the index existed move into it (migration 0002 on SQLite, ``pg_vectors.ensure`` on PostgreSQL)."""

from __future__ import annotations

import random
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql as psql

from tests.support import databases
from threadline.config import Settings
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.retrieval.vectors import pack
from threadline.storage import pg_vectors, sqlite_vectors
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.migrate import require_vector_index, upgrade, vector_index_ready
from threadline.storage.scope import ALL_PROJECTS, acting_for
from threadline.storage.uow import UnitOfWork

DIMS = 32


def _open(backend: str, tmp_path: Path) -> Iterator[Database]:
    url = ""
    if backend == "postgres":
        reason = databases.pgvector_unavailable_reason()
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


@pytest.fixture(autouse=True)
def _in_default_project() -> Iterator[None]:
    """The tests write stores and files, which belong to a project."""
    with acting_for(DEFAULT_PROJECT_ID):
        yield


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from _open(request.param, tmp_path)


@pytest.fixture()
def pg_db(tmp_path: Path) -> Iterator[Database]:
    yield from _open("postgres", tmp_path)


def _exact_top_k(query: list[float], candidates: list[tuple[int, bytes]], k: int) -> list[tuple[int, float]]:
    """The reference: every candidate's cosine similarity to ``query``, the best ``k``."""
    unit = struct.unpack(f"<{len(query)}f", pack(query))
    scored = []
    for chunk_id, data in candidates:
        vector = struct.unpack(f"<{len(data) // 4}f", data)
        scored.append((chunk_id, sum(a * b for a, b in zip(unit, vector, strict=True))))
    scored.sort(key=lambda hit: (-hit[1], hit[0]))
    return scored[:k]


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
        uow.chunks.replace(store_id, file_id, chunks)

    db.transaction_sync(write)


def _chunk_ids(db: Database, store_id: str) -> dict[int, tuple[str, int]]:
    rows = db.transaction_sync(
        lambda uow: uow.conn.execute(
            sa.text("SELECT id, file_id, chunk_index FROM chunks WHERE vector_store_id = :s"), {"s": store_id}
        ).all()
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _vector_rows(db: Database, dims: int = DIMS) -> int:
    if db.dialect == "sqlite":
        sql = f"SELECT count(*) FROM {sqlite_vectors.table_name(dims)}"
    else:
        sql = f"SELECT count(*) FROM {pg_vectors.TABLE} WHERE vector_dims(embedding) = {dims}"
    return int(db.transaction_sync(lambda uow: uow.conn.exec_driver_sql(sql).scalar_one()))


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
        expected = _exact_top_k(query, candidates, 15)

        def nearest(uow: UnitOfWork, q: list[float] = query) -> list[tuple[int, float]]:
            return uow.chunks.nearest(["vs_a"], pack(q), 15)

        got = db.transaction_sync(nearest)
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
        uow.chunks.replace("vs_a", "file-a", [NewChunk(0, "x", 0, _vectors(rng, 1)[0])])
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        db.transaction_sync(write_then_fail)
    if db.dialect == "sqlite" and not db.transaction_sync(
        lambda uow: DIMS in sqlite_vectors.dimensions(uow.conn)
    ):
        return  # the vector table itself was rolled back
    assert _vector_rows(db) == 0


def _store_old_style(conn: sa.Connection, vectors: list[bytes]) -> None:
    """Chunks of store vs_a / file-a with their embeddings in ``chunks.embedding``, as the first
    release (and PostgreSQL without pgvector) stored them."""
    conn.execute(
        sa.text(
            "INSERT INTO vector_stores (id, created_at, name, metadata, last_active_at) "
            "VALUES ('vs_a', 0, 't', '{}', 0)"
        )
    )
    for i, vector in enumerate(vectors):
        conn.execute(
            sa.text(
                "INSERT INTO chunks (vector_store_id, file_id, chunk_index, text, start_char, embedding) "
                "VALUES ('vs_a', 'file-a', :i, 'x', 0, :e)"
            ),
            {"i": i, "e": vector},
        )


def test_migration_moves_stored_embeddings_into_the_index(tmp_path: Path) -> None:
    database = Database(Settings(data_dir=tmp_path))
    try:
        upgrade(database.engine, "0001")
        rng = random.Random(9)
        vectors = _vectors(rng, 3)
        with database.engine.begin() as conn:
            _store_old_style(conn, vectors)
        upgrade(database.engine)
        assert _vector_rows(database) == 3
        nearest = database.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a"], vectors[1], 1))
        assert _chunk_ids(database, "vs_a")[nearest[0][0]] == ("file-a", 1)
        assert nearest[0][1] == pytest.approx(1.0, abs=1e-5)
    finally:
        database.close()


def test_postgres_moves_vectors_stored_before_pgvector(pg_db: Database) -> None:
    """A server that gets pgvector after it stored embeddings (float32 bytes in ``chunks.embedding``):
    the next start makes the index and moves them in."""
    db = pg_db
    vectors = _vectors(random.Random(10), 3)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {pg_vectors.TABLE}")
        _store_old_style(conn, vectors)
    db.engine.dispose()  # pooled connections cached "no vector table"
    upgrade(db.engine)
    assert _vector_rows(db) == 3
    nearest = db.transaction_sync(lambda uow: uow.chunks.nearest(["vs_a"], vectors[2], 1))
    assert _chunk_ids(db, "vs_a")[nearest[0][0]] == ("file-a", 2)
    left = db.transaction_sync(
        lambda uow: uow.conn.exec_driver_sql(
            "SELECT count(*) FROM chunks WHERE embedding IS NOT NULL"
        ).scalar()
    )
    assert left == 0


def test_embeddings_without_pgvector_refuse_to_start(pg_db: Database) -> None:
    """What a server without pgvector sees (its ``ensure`` found no extension): no vector table,
    so an embeddings model is refused at start with a message that says what to install."""
    assert vector_index_ready(pg_db.engine)
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {pg_vectors.TABLE}")
    pg_db.engine.dispose()
    assert not vector_index_ready(pg_db.engine)
    with pytest.raises(ValueError, match="pgvector"):
        require_vector_index(pg_db.engine)
    # Keyword search keeps working: nearest has nothing to offer, and says so with no error.
    nearest = pg_db.transaction_sync(
        lambda uow: uow.chunks.nearest(["vs_a"], pack([1.0] * DIMS), 5), scope=ALL_PROJECTS
    )
    assert nearest == []


def test_a_role_that_cannot_create_the_extension_still_migrates(tmp_path: Path) -> None:
    """pgvector is not a trusted extension: a database owner that is no superuser gets the schema,
    keyword search and a warning, not a failed start."""
    reason = databases.pgvector_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    role = f"threadline_plain_{secrets.token_hex(4)}"
    name = f"threadline_test_{secrets.token_hex(6)}"
    admin = databases.admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE ROLE {} LOGIN").format(psql.Identifier(role)))
        owner = psql.Identifier(role)
        conn.execute(psql.SQL("CREATE DATABASE {} OWNER {}").format(psql.Identifier(name), owner))
    url = sa.make_url(admin).set(username=role, password=None, database=name)
    database = Database(Settings(data_dir=tmp_path, database_url=url.render_as_string(hide_password=False)))
    try:
        upgrade(database.engine)
        assert not vector_index_ready(database.engine)
        assert database.transaction_sync(lambda uow: uow.vector_stores.get("vs_missing")) is None
    finally:
        database.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(name)))
            conn.execute(psql.SQL("DROP ROLE IF EXISTS {}").format(psql.Identifier(role)))
