"""Retrieval benchmark (in-process, no HTTP): ingestion throughput and search latency at 10,000 chunks.

    .venv/bin/python bench/retrieval.py [--database-url postgresql://...] [--chunks 10000]

Ingestion = extract + chunk (800/400 tokens) + store/index, in MB of text per second. Search = the
service's ``search_in`` (BM25 alone, then hybrid with 256-dimension vectors scanned by brute force),
p50/p99 over 200 queries. Run on an idle machine; figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from threadline.config import Settings
from threadline.domain.files import StoredFile, VectorStore, VectorStoreFile
from threadline.retrieval import chunk_text, extract_text
from threadline.retrieval.vectors import pack
from threadline.services.vector_stores.search import SearchRequest, search_in
from threadline.storage.chunks import NewChunk
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade

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
        lambda uow: uow.vector_stores.insert(VectorStore(store_id, 0, "bench", {}, int(time.time())))
    )


def ingest(
    db: Database, store_id: str, target_chunks: int, rng: random.Random, vocab: list[str]
) -> tuple[int, float]:
    """Index documents of ~100 chunks each until ``target_chunks``; returns (text bytes, seconds) of
    extract + chunk + store (generating the documents is not timed)."""
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    pool = [pack([rng.gauss(0, 1) for _ in range(DIMS)]) for _ in range(64)]  # stand-in embeddings
    total_bytes, chunks_done, elapsed, n = 0, 0, 0.0, 0
    while chunks_done < target_chunks:
        file_id = f"file-bench{n:06d}"
        n += 1
        raw = _document(rng, vocab, weights, 40_000).encode()
        started = time.perf_counter()
        text = extract_text(raw, "doc.txt")
        rows = [
            NewChunk(c.index, c.text, c.start_char, pool[c.index % 64]) for c in chunk_text(text, 800, 400)
        ]

        def store(
            uow: object, file_id: str = file_id, rows: list[NewChunk] = rows, size: int = len(text)
        ) -> None:
            uow.files.insert(StoredFile(file_id, 0, size, "doc.txt", "assistants"))  # type: ignore[attr-defined]
            vsf = VectorStoreFile(file_id, store_id, 0, "in_progress", {"type": "static"})
            uow.vector_stores.put_file(vsf)  # type: ignore[attr-defined]
            uow.chunks.complete(store_id, file_id, rows, size)  # type: ignore[attr-defined]

        db.transaction_sync(store)
        elapsed += time.perf_counter() - started
        total_bytes += len(text.encode())
        chunks_done += len(rows)
    return total_bytes, elapsed


def latencies(
    db: Database, store_id: str, rng: random.Random, vocab: list[str], hybrid: bool, runs: int
) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        # Mid-frequency words, as a user's content words tend to be.
        query = " ".join(rng.sample(vocab[50:2000], 3))
        vectors = [[rng.gauss(0, 1) for _ in range(DIMS)]] if hybrid else []
        request = SearchRequest([store_id], [query], max_num_results=20)
        started = time.perf_counter()
        db.transaction_sync(lambda uow, r=request, q=query, v=vectors: search_in(uow, r, [q], v))
        samples.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--chunks", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Settings(data_dir=Path(tmp), database_url=args.database_url))
        upgrade(db.engine)
        rng = random.Random(7)
        try:
            _store(db, "vs_bench")
            vocab = _vocabulary(rng)
            size, seconds = ingest(db, "vs_bench", args.chunks, rng, vocab)
            rate = size / 1e6 / seconds
            print(f"ingestion: {size / 1e6:.1f} MB of text in {seconds:.1f} s = {rate:.2f} MB/s")
            for hybrid in (False, True):
                p50, p99 = latencies(db, "vs_bench", rng, vocab, hybrid, runs=30 if hybrid else 200)
                kind = "hybrid" if hybrid else "bm25"
                print(f"search {kind} @ {args.chunks} chunks: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        finally:
            db.close()


if __name__ == "__main__":
    main()
