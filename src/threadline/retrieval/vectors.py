"""Embedding vectors as bytes: the one format both vector indexes (storage/sqlite_vectors.py,
storage/pg_vectors.py) take.

Vectors are little-endian float32 unit vectors (4 bytes a dimension: 1 KB for 256 dimensions).
Scaling to unit length once, here, makes cosine similarity a plain dot product for any index.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence


def pack(vector: Sequence[float]) -> bytes:
    """``vector`` scaled to unit length, as bytes."""
    unit = _unit(vector)
    return struct.pack(f"<{len(unit)}f", *unit)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)
