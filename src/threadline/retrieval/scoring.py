"""file_search's 0..1 ``score``: how well one chunk matches the query, whatever else the store holds.

OpenAI's search results and run-step results carry ``score`` in 0..1 and ``ranking_options.
score_threshold`` filters on it, so the score must mean the same on a one-file store as on one with
thousands of files. BM25 does not: its idf part is relative to the corpus (FTS5 gives a one-file
store's perfect match a relevance of ~1e-6), and RRF scores only say where a chunk ranked. So the
engines (FTS5 or tsvector BM25, vector nearest neighbours, their RRF fusion) only choose and order
the candidates; the score of each candidate is computed here from the chunk and the query alone:

* **keyword score**: the mean over the query's content words (``query_terms``: stop words dropped)
  of ``tf / (tf + 1/3)``, where ``tf`` is how often the chunk contains the word. A word present once
  counts 0.75, twice 0.86, absent 0; so a chunk containing every query word scores at least 0.75,
  one containing half of them about 0.4. Words are compared case-insensitively after reducing English
  plurals (``policies`` = ``policy``, ``tariffs`` = ``tariff``).
* **semantic score** (hybrid search): the cosine similarity of the query's and the chunk's
  embeddings, clamped to 0..1.
* A chunk's score is the best of its keyword and semantic scores over the request's queries.

Results are ordered by that score (ties keep the engines' order), so scores never increase down a
result list and ``score_threshold`` cuts it at a predictable place.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from threadline.retrieval.query import query_terms

# tf / (tf + k): one occurrence of a word is 0.75 of a full match.
TERM_SATURATION = 1.0 / 3.0
_WORD = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")
_MIN_STEM = 3


def stem(word: str) -> str:
    """English plurals to their singular, as Porter's step 1a does (sses -> ss, ies -> y, ss stays,
    s goes; also "us" stays): enough for a query word and its plural in a chunk to agree. Applied to
    both sides, so an imperfect singular ("lenses" -> "lense") still matches itself."""
    if len(word) <= _MIN_STEM:
        return word
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("ss") or word.endswith("us") or not word.endswith("s"):
        return word
    return word[:-1]


def chunk_terms(text: str) -> Counter[str]:
    """How often each (stemmed, lower-cased) word occurs in ``text``."""
    normalized = unicodedata.normalize("NFC", text).lower()
    return Counter(stem(match.group()) for match in _WORD.finditer(normalized))


def keyword_score(query: str, terms: Counter[str]) -> float:
    """How well a chunk whose words are ``terms`` (``chunk_terms``) matches ``query``, 0..1."""
    words = list(dict.fromkeys(stem(word) for word in query_terms(query)))
    if not words:
        return 0.0
    total = 0.0
    for word in words:
        tf = terms.get(word, 0)
        total += tf / (tf + TERM_SATURATION)
    return _clamp(total / len(words))


def semantic_score(cosine_similarity: float) -> float:
    return _clamp(cosine_similarity)


def match_score(queries: Iterable[str], text: str, similarities: Iterable[float] = ()) -> float:
    """A chunk's score for a request: the best keyword score over ``queries`` and semantic score
    over the ``similarities`` (its cosine similarity to each query's embedding)."""
    terms = chunk_terms(text)
    keyword = max((keyword_score(query, terms) for query in queries), default=0.0)
    semantic = max((semantic_score(s) for s in similarities), default=0.0)
    return max(keyword, semantic)


def _clamp(value: float) -> float:
    if value != value:  # NaN
        return 0.0
    return min(1.0, max(0.0, value))
