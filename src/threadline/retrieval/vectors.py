"""Embedding vectors as bytes, and brute-force cosine ranking over them.

Vectors are stored as little-endian float32 (4 bytes a dimension: 1 KB for 256 dimensions). Search
is a linear scan in Python: no vector index yet (sqlite-vec / pgvector are the planned upgrade), so
hybrid search costs O(chunks x dimensions) per query; keyword search stays the fast default.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Iterable, Sequence


def pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack(data: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(data) // 4}f", data)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def cosine_top_k(
    query: Sequence[float], candidates: Iterable[tuple[int, bytes]], k: int
) -> list[tuple[int, float]]:
    """The ``k`` candidates most similar to ``query``, best first, as (id, cosine similarity).
    Candidates whose dimension differs from the query's (a model change) are skipped."""
    unit_query = _unit(query)
    dims = len(unit_query)
    scored: list[tuple[float, int]] = []
    for candidate_id, data in candidates:
        if len(data) != dims * 4:
            continue
        vector = unpack(data)
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0:
            continue
        scored.append((sum(map(float.__mul__, unit_query, vector)) / norm, candidate_id))
    best = heapq.nlargest(k, scored)
    return [(candidate_id, similarity) for similarity, candidate_id in best]
