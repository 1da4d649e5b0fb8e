"""Pure retrieval functions for file_search: no storage, no HTTP.

Ingestion runs ``extract_text`` → ``chunk_text``; storage builds keyword queries with
``fts5_match_query`` / ``tsquery_terms``, filters with ``validate_filter`` / ``matches_filter``, and
merges result lists with ``reciprocal_rank_fusion`` and scores results 0..1 with ``match_score``;
``rewrite_query`` turns a natural-language query into a keyword query (search's ``rewrite_query``).
"""

from threadline.retrieval.chunking import (
    DEFAULT_CHUNK_OVERLAP_TOKENS,
    DEFAULT_MAX_CHUNK_SIZE_TOKENS,
    Chunk,
    chunk_text,
    validate_chunking,
)
from threadline.retrieval.extract import extract_text
from threadline.retrieval.filters import matches_filter, validate_filter
from threadline.retrieval.fusion import reciprocal_rank_fusion
from threadline.retrieval.query import fts5_match_query, query_terms, tsquery_terms
from threadline.retrieval.rewrite import rewrite_query
from threadline.retrieval.scoring import match_score
from threadline.retrieval.tokens import count_tokens, decode, encode, truncate

__all__ = [
    "DEFAULT_CHUNK_OVERLAP_TOKENS",
    "DEFAULT_MAX_CHUNK_SIZE_TOKENS",
    "Chunk",
    "chunk_text",
    "count_tokens",
    "decode",
    "encode",
    "extract_text",
    "fts5_match_query",
    "match_score",
    "matches_filter",
    "query_terms",
    "reciprocal_rank_fusion",
    "rewrite_query",
    "truncate",
    "tsquery_terms",
    "validate_chunking",
    "validate_filter",
]
