"""Retrieval benchmark (in-process, no HTTP): ingestion throughput and search latency at 10,000 chunks.

    .venv/bin/python bench/retrieval.py [--database-url postgresql://...] [--chunks 10000]
        [--in-process] [--ingest-only]

Ingestion = extract + chunk (800/400 tokens) + store/index, in MB of text per second. Extract and
chunk run in the server's ingestion pool (one child process with the default limits), as the server
does it; ``--in-process`` calls them in this process instead (the path before the pool). Search = the
service's ``search_in`` (BM25 alone, then hybrid: BM25 plus the nearest 256-dimension vectors, from
sqlite-vec on SQLite and pgvector's HNSW index on PostgreSQL), p50/p99 over 200 queries each, against
a floor measured in the same run on the same queries: the bare index statements (FTS5 MATCH and
sqlite-vec KNN; tsquery + ts_rank_cd and the pgvector ORDER BY <=> LIMIT) with nothing of Threadline
around them. Run on an idle machine; figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import struct
import tempfile
import time
from pathlib import Path

from threadline.config import Settings
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.domain.projects import DEFAULT_PROJECT_ID
from threadline.ingestion.pool import IngestionPool, PoolLimits
from threadline.retrieval import chunk_text, extract_text, fts5_match_query, tsquery_terms
from threadline.retrieval.vectors import pack
from threadline.services.vector_stores.search import SearchRequest, search_in
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.scope import Scope

# A Zipf-distributed vocabulary of pseudo-words: like real text, a few words are everywhere and most
# are rare (a 36-word vocabulary would make every query match every chunk).
_VOCAB_SIZE = 20_000
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vi", "zo", "pa", "qu", "del", "mor", "tin"]


def _vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < _VOCAB_SIZE:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


DIMS = 256


def _document(rng: random.Random, vocab: list[str], weights: list[float], words: int) -> str:
    picked = rng.choices(vocab, weights=weights, k=words)
    return " ".join(w + ("." if rng.random() < 0.08 else "") for w in picked)


def _store(db: Database, store_id: str) -> None:
    db.transaction_sync(
        lambda uow: uow.vector_stores.insert(VectorStore(store_id, 0, "bench", {}, int(time.time()))),
        scope=Scope(DEFAULT_PROJECT_ID),
    )


def _chunks_in_process(raw: bytes) -> tuple[int, list[tuple[int, str, int]]]:
    text = extract_text(raw, "doc.txt")
    return len(text.encode()), [(c.index, c.text, c.start_char) for c in chunk_text(text, 800, 400)]


def ingest(
    db: Database,
    store_id: str,
    target_chunks: int,
    rng: random.Random,
    vocab: list[str],
    pool: IngestionPool | None = None,
) -> tuple[int, float]:
    """Index documents of ~100 chunks each until ``target_chunks``; returns (text bytes, seconds) of
    extract + chunk + store (generating the documents is not timed)."""
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    # Stand-in embeddings, one per chunk and all distinct (an HNSW graph of repeated vectors is not
    # what a real model gives it), made before the clock starts.
    vectors = [pack([rng.gauss(0, 1) for _ in range(DIMS)]) for _ in range(target_chunks + 200)]
    total_bytes, chunks_done, elapsed, n = 0, 0, 0.0, 0
    loop = asyncio.new_event_loop()
    if pool is not None:  # start the child (and load its tokenizer) before the clock starts
        loop.run_until_complete(pool.extract([b"warm up"], "warm.txt", 800, 400))
    while chunks_done < target_chunks:
        file_id = f"file-bench{n:06d}"
        n += 1
        raw = _document(rng, vocab, weights, 40_000).encode()
        started = time.perf_counter()
        if pool is None:
            size, chunks = _chunks_in_process(raw)
        else:
            size, chunks = loop.run_until_complete(pool.extract([raw], "doc.txt", 800, 400))
        rows = [
            NewChunk(index, text, start, vectors[(chunks_done + index) % len(vectors)])
            for index, text, start in chunks
        ]

        def store(uow: object, file_id: str = file_id, rows: list[NewChunk] = rows, size: int = size) -> None:
            uow.files.insert(StoredFile(file_id, 0, size, "doc.txt", "assistants"))  # type: ignore[attr-defined]
            vsf = VectorStoreFile(file_id, store_id, 0, "in_progress", {"type": "static"})
            uow.vector_stores.put_file(vsf)  # type: ignore[attr-defined]

        def index(uow: object, file_id: str = file_id, rows: list[NewChunk] = rows, size: int = size) -> None:
            # As the ingestion loop does: claim (bookkeeping, across projects), then complete.
            uow.ingestion_queue.claim("bench", 0.0, 60.0, 1)  # type: ignore[attr-defined]
            uow.ingestion_queue.complete(store_id, file_id, "bench", rows, size)  # type: ignore[attr-defined]

        db.transaction_sync(store, scope=Scope(DEFAULT_PROJECT_ID))
        db.transaction_sync(index)
        elapsed += time.perf_counter() - started
        total_bytes += size
        chunks_done += len(rows)
    loop.close()
    return total_bytes, elapsed


# What search_in asks each ranking for: max(50, 3 x max_num_results) candidates.
_CANDIDATES = 60


def _floor_search(db: Database, store_id: str, query: str, vectors: list[list[float]]) -> None:
    """The floor: the database's own work for one search with nothing of Threadline around it, the
    bare keyword statement on the index and (hybrid) the bare nearest-vector statement."""
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql(
                "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (fts5_match_query(query), _CANDIDATES),
            ).all()
            for vector in vectors:
                conn.exec_driver_sql(
                    f"SELECT chunk_id, distance FROM chunk_vectors_{DIMS} "
                    "WHERE embedding MATCH ? AND k = ? AND vector_store_id = ?",
                    (pack(vector), _CANDIDATES, store_id),
                ).all()
            return
        conn.exec_driver_sql(
            "SELECT id, ts_rank_cd(search_vector, q, 32) AS s FROM chunks, to_tsquery('english', %s) q "
            "WHERE search_vector @@ q ORDER BY s DESC LIMIT %s",
            (" | ".join(tsquery_terms(query)), _CANDIDATES),
        ).all()
        for vector in vectors:
            conn.exec_driver_sql(f"SET hnsw.ef_search = {_CANDIDATES}")
            conn.exec_driver_sql(
                f"SELECT chunk_id, (embedding::vector({DIMS})) <=> %s::vector({DIMS}) AS d "
                f"FROM chunk_vectors WHERE vector_dims(embedding) = {DIMS} AND vector_store_id = %s "
                "ORDER BY d LIMIT %s",
                (str(list(struct.unpack(f"<{DIMS}f", pack(vector)))), store_id, _CANDIDATES),
            ).all()


def latencies(
    db: Database, store_id: str, rng: random.Random, vocab: list[str], hybrid: bool, runs: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """((p50, p99) of Threadline's search_in, (p50, p99) of the floor), in ms, over the same
    queries, the two interleaved so that machine noise falls on both alike."""
    samples: list[float] = []
    floor: list[float] = []
    for _ in range(runs):
        # Mid-frequency words, as a user's content words tend to be.
        query = " ".join(rng.sample(vocab[50:2000], 3))
        vectors = [[rng.gauss(0, 1) for _ in range(DIMS)]] if hybrid else []
        request = SearchRequest([store_id], [query], max_num_results=20)
        started = time.perf_counter()
        db.transaction_sync(functools.partial(search_in, request=request, queries=[query], vectors=vectors))
        samples.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        _floor_search(db, store_id, query, vectors)
        floor.append((time.perf_counter() - started) * 1000)
    ours, bare = statistics.quantiles(samples, n=100), statistics.quantiles(floor, n=100)
    return (ours[49], ours[98]), (bare[49], bare[98])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--in-process", action="store_true", help="extract and chunk without the pool")
    parser.add_argument("--ingest-only", action="store_true", help="skip the search latencies")
    args = parser.parse_args()
    pool = None if args.in_process else IngestionPool(PoolLimits())
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Settings(data_dir=Path(tmp), database_url=args.database_url))
        upgrade(db.engine)
        rng = random.Random(7)
        try:
            _store(db, "vs_bench")
            vocab = _vocabulary(rng)
            size, seconds = ingest(db, "vs_bench", args.chunks, rng, vocab, pool)
            rate = size / 1e6 / seconds
            where = "in process" if pool is None else "in the ingestion pool"
            print(f"ingestion ({where}): {size / 1e6:.1f} MB of text in {seconds:.1f} s = {rate:.2f} MB/s")
            if args.ingest_only:
                return
            if db.dialect == "postgresql":
                # What autovacuum does after a bulk load; without statistics the planner cannot tell
                # that the HNSW index beats sorting the store's rows.
                with db.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            for hybrid in (False, True):
                (p50, p99), (f50, f99) = latencies(db, "vs_bench", rng, vocab, hybrid, runs=200)
                kind = "hybrid" if hybrid else "bm25"
                print(
                    f"search {kind} @ {args.chunks} chunks: p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
                    f"floor p50 {f50:.1f} ms, p99 {f99:.1f} ms; floor/Threadline p50 {f50 / p50:.2f}"
                )
        finally:
            if pool is not None:
                pool.close()
            db.close()


if __name__ == "__main__":
    main()
