"""Combine rankings: reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

A document scores ``sum(1 / (k + rank))`` over the rankings it appears in, ranks counted from 1.
Search uses the fused order to pick and tie-break candidates only; the 0..1 ``score`` a result
carries is its own match to the query (``retrieval/scoring.py``), because RRF scores say where a
chunk ranked, not how well it matches.
"""

from __future__ import annotations

RRF_K = 60


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
