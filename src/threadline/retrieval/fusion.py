"""Combine rankings and map raw scores into file_search's 0..1 ``score``.

OpenAI's search results and run-step results carry ``score`` in 0..1, and ``ranking_options.
score_threshold`` (0..1, default 0) filters on it (runtime-behaviours §7). Our raw scores are not
on that scale, so they are mapped:

* **RRF** (reciprocal rank fusion, Cormack, Clarke & Büttcher, SIGIR 2009): a document scores
  ``sum(1 / (k + rank))`` over the rankings it appears in, ranks counted from 1. The best possible
  score is ``n / (k + 1)`` for ``n`` rankings (first everywhere), so ``rrf_unit_score`` divides by
  that: 1.0 means "first in every ranking", 0.5 with two rankings roughly "first in one of them".
  It is a rank-based score: the top hit of a single ranking always gets 1.0, however weak.
* **BM25** (SQLite FTS5 ``bm25()``, PostgreSQL ``ts_rank``): relevance ``r >= 0`` is unbounded and
  corpus-dependent, so ``bm25_unit_score`` saturates it as ``r / (r + h)``: monotone, 0 for no
  match, 0.5 at ``r == h``, approaching 1. FTS5's ``bm25()`` is negative (lower is better), so pass
  ``-bm25()``. ``h`` defaults to a typical single strong-term BM25 score (idf ~ 4-8 times a tf
  factor ~ 1 with k1=1.2, b=0.75), so a document matching one rare query term well lands near 0.5
  and one matching several lands near 1.
"""

from __future__ import annotations

import math

RRF_K = 60
# Relevance at which bm25_unit_score gives 0.5 (see the module docstring).
BM25_HALF_SATURATION = 5.0


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse best-first id lists into ``(id, score)`` pairs, best first.

    An id repeated within one ranking counts only at its best rank there. Ties (an id first in one
    list and another first in the other) are broken by the best rank achieved, then by the order the
    ids were first seen, so the result is deterministic.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    scores: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    for ranking in rankings:
        seen: set[str] = set()
        for rank, doc_id in enumerate(ranking, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
            best_rank[doc_id] = min(best_rank.get(doc_id, rank), rank)
    first_seen = {doc_id: position for position, doc_id in enumerate(scores)}
    ordered = sorted(scores, key=lambda doc_id: (-scores[doc_id], best_rank[doc_id], first_seen[doc_id]))
    return [(doc_id, scores[doc_id]) for doc_id in ordered]


def rrf_unit_score(score: float, num_rankings: int, k: int = RRF_K) -> float:
    """An RRF score scaled to 0..1 by the best score ``num_rankings`` rankings allow."""
    if num_rankings <= 0:
        return 0.0
    return _clamp(score * (k + 1) / num_rankings)


def normalize_rrf(
    fused: list[tuple[str, float]], num_rankings: int, k: int = RRF_K
) -> list[tuple[str, float]]:
    """``reciprocal_rank_fusion`` output with each score passed through ``rrf_unit_score``."""
    return [(doc_id, rrf_unit_score(score, num_rankings, k)) for doc_id, score in fused]


def bm25_unit_score(relevance: float, half_saturation: float = BM25_HALF_SATURATION) -> float:
    """Map a BM25-like relevance (``>= 0``, higher is better) to 0..1 as ``r / (r + h)``.

    For SQLite FTS5 pass ``-bm25(table)``. Negative or NaN relevance maps to 0.
    """
    if half_saturation <= 0:
        raise ValueError("half_saturation must be > 0")
    if math.isnan(relevance) or relevance <= 0:
        return 0.0
    if math.isinf(relevance):
        return 1.0
    return _clamp(relevance / (relevance + half_saturation))


def _clamp(value: float) -> float:
    # Float rounding can put a perfect RRF score a hair above 1; the wire contract is 0..1.
    return min(1.0, max(0.0, value))
