"""Embedding vectors as bytes, and brute-force cosine ranking over them.

Vectors are stored as little-endian float32 unit vectors (4 bytes a dimension: 1 KB for 256
dimensions). Search is an exact scan: the store's vectors become one numpy matrix and one
matrix-vector product ranks them. No approximate index yet (sqlite-vec / pgvector are the planned
upgrade), so hybrid search costs O(chunks x dimensions) per query, plus reading the vectors.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np


def pack(vector: Sequence[float]) -> bytes:
    """``vector`` scaled to unit length, as bytes: stored vectors are unit vectors, so a search
    needs one dot product per chunk and no norms."""
    unit = _unit(vector)
    return struct.pack(f"<{len(unit)}f", *unit)


def unpack(data: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(data) // 4}f", data)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def cosine_top_k(
    query: Sequence[float], candidates: Iterable[tuple[int, bytes]], k: int
) -> list[tuple[int, float]]:
    """The ``k`` candidates (unit vectors from ``pack``) most similar to ``query``, best first, as
    (id, cosine similarity). Candidates whose dimension differs from the query's (a model change)
    are skipped."""
    unit_query = np.asarray(_unit(query), dtype="<f4")
    size = unit_query.size * 4
    ids: list[int] = []
    blobs: list[bytes] = []
    for candidate_id, data in candidates:
        if len(data) == size:
            ids.append(candidate_id)
            blobs.append(data)
    if not ids or k <= 0:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), unit_query.size)
    similarities = matrix @ unit_query
    top = min(k, len(ids))
    best = np.argpartition(-similarities, top - 1)[:top]
    best = best[np.argsort(-similarities[best], kind="stable")]
    return [(ids[i], float(similarities[i])) for i in best]
