"""Search over vector stores: BM25 keyword search, plus vector similarity merged by reciprocal-rank
fusion when an embeddings model is configured. Used by ``POST /vector_stores/{id}/search`` and by
the file_search tool of runs.

Scores are on OpenAI's 0..1 scale and do not depend on the corpus: the engines (BM25, vector
nearest neighbours, their RRF fusion) pick the candidates, ``retrieval.match_score`` scores each
from the chunk and the query alone, and results are ordered by that score (ties in the engines'
order). The same on SQLite and PostgreSQL, keyword and hybrid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from threadline.domain.files import ChunkHit
from threadline.llm.types import EmbeddingModel
from threadline.retrieval import (
    fts5_match_query,
    match_score,
    matches_filter,
    reciprocal_rank_fusion,
    rewrite_query,
    tsquery_terms,
    validate_filter,
)
from threadline.retrieval.vectors import pack
from threadline.schemas.vector_stores import VectorStoreSearch
from threadline.services.clock import now
from threadline.services.vector_stores.common import require_store
from threadline.storage.chunks import KeywordHit
from threadline.storage.database import Database
from threadline.storage.uow import UnitOfWork

DEFAULT_MAX_NUM_RESULTS = 10
# Each ranking contributes this many candidates (at least) to the fusion.
_MIN_CANDIDATES = 50


@dataclass(frozen=True, slots=True)
class SearchRequest:
    vector_store_ids: list[str]
    queries: list[str]
    max_num_results: int = DEFAULT_MAX_NUM_RESULTS
    score_threshold: float = 0.0
    filters: Mapping[str, Any] | None = None


@dataclass(slots=True)
class SearchResult:
    hit: ChunkHit
    filename: str
    attributes: dict[str, Any] = field(default_factory=dict)


async def search(db: Database, embedder: EmbeddingModel | None, request: SearchRequest) -> list[SearchResult]:
    """The best chunks, best first, at most ``max_num_results``, none below ``score_threshold``.
    Query embeddings are fetched before the transaction: no transaction waits on the network."""
    queries = [q for q in request.queries if q.strip()]
    vectors = await embedder.embed(queries) if embedder is not None and queries else []
    # Offloaded: ranking thousands of chunks (and the nearest-vector query) must not block the event loop.
    return await db.transaction(lambda uow: search_in(uow, request, queries, vectors), offload=True)


def search_in(
    uow: UnitOfWork, request: SearchRequest, queries: list[str], vectors: list[list[float]]
) -> list[SearchResult]:
    store_ids = request.vector_store_ids
    allowed = _allowed_files(uow, store_ids, request.filters)
    allowed_files = None if allowed is None else {file_id for _, file_id in allowed}
    candidates = max(_MIN_CANDIDATES, request.max_num_results * 3)
    rankings: list[list[str]] = []
    hits: dict[int, KeywordHit] = {}
    similarities: dict[int, list[float]] = {}
    for query in queries:
        match = (
            fts5_match_query(query) if uow.chunks.dialect == "sqlite" else " | ".join(tsquery_terms(query))
        )
        found = uow.chunks.keyword_search(store_ids, match, candidates, allowed_files)
        found = [h for h in found if allowed is None or (h.vector_store_id, h.file_id) in allowed]
        hits.update((h.chunk_id, h) for h in found)
        rankings.append([str(h.chunk_id) for h in found])
    for vector in vectors:
        nearest = uow.chunks.nearest(store_ids, pack(vector), candidates, allowed_files)
        for chunk_id, similarity in nearest:
            similarities.setdefault(chunk_id, []).append(similarity)
        rankings.append([str(chunk_id) for chunk_id, _ in nearest])
    # The engines choose and order the candidates; the score is the chunk's own match (see
    # retrieval/scoring.py), so it means the same whatever else the store holds.
    fused = [int(chunk_id) for chunk_id, _ in reciprocal_rank_fusion([r for r in rankings if r])]
    hits.update(uow.chunks.by_ids([chunk_id for chunk_id in fused if chunk_id not in hits]))
    scored: list[tuple[float, int, KeywordHit]] = []
    for rank, chunk_id in enumerate(fused):
        hit = hits.get(chunk_id)
        if hit is None or (allowed is not None and (hit.vector_store_id, hit.file_id) not in allowed):
            continue
        score = match_score(queries, hit.text, similarities.get(chunk_id, ()))
        if score > 0.0 and score >= request.score_threshold:
            scored.append((score, rank, hit))
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    results = [
        ChunkHit(hit.vector_store_id, hit.file_id, hit.chunk_index, hit.text, score)
        for score, _, hit in scored[: request.max_num_results]
    ]
    uow.vector_stores.touch(store_ids, now())
    return _with_files(uow, results)


def _allowed_files(
    uow: UnitOfWork, store_ids: list[str], filters: Mapping[str, Any] | None
) -> set[tuple[str, str]] | None:
    """(store, file) pairs whose attributes satisfy ``filters``; None when there is no filter."""
    if filters is None:
        return None
    pairs = uow.vector_stores.completed_files(store_ids)
    return {key for key, attributes in pairs.items() if matches_filter(attributes, filters)}


def _with_files(uow: UnitOfWork, hits: list[ChunkHit]) -> list[SearchResult]:
    keys = {(h.vector_store_id, h.file_id) for h in hits}
    attributes = uow.vector_stores.attributes_of(keys)
    names = uow.files.filenames({h.file_id for h in hits})
    return [
        SearchResult(hit, names.get(hit.file_id, ""), attributes.get((hit.vector_store_id, hit.file_id), {}))
        for hit in hits
    ]


async def search_store(
    db: Database, embedder: EmbeddingModel | None, vector_store_id: str, body: VectorStoreSearch
) -> tuple[list[str], list[SearchResult]]:
    """``POST /vector_stores/{id}/search``: the queries searched, as a list (``search_query``), and
    the results. With ``rewrite_query`` each query is searched, and reported, as the keyword query
    ``retrieval.rewrite_query`` makes of it (offline: no model rewrites it)."""
    await db.transaction(lambda uow: require_store(uow, vector_store_id))
    if body.filters is not None:
        validate_filter(body.filters)
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    if body.rewrite_query:
        queries = [rewrite_query(query) for query in queries]
    options = body.ranking_options
    request = SearchRequest(
        vector_store_ids=[vector_store_id],
        queries=queries,
        max_num_results=body.max_num_results or DEFAULT_MAX_NUM_RESULTS,
        score_threshold=0.0
        if options is None or options.score_threshold is None
        else options.score_threshold,
        filters=body.filters,
    )
    return queries, await search(db, embedder, request)
