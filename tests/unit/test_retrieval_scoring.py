"""The 0..1 search score: a chunk's own match to the query, independent of the rest of the store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.retrieval.scoring import chunk_terms, keyword_score, match_score, stem

CHUNK = "Refund policies: refunds are granted within thirty days. Refunds need a receipt."


def test_all_query_words_score_high_some_score_less() -> None:
    terms = chunk_terms(CHUNK)
    full = keyword_score("What is the refund policy?", terms)
    assert full >= 0.75  # every content word present (refund: 3 times, policy: as "policies")
    half = keyword_score("refund lighthouse", terms)
    assert 0.3 < half < 0.5
    assert keyword_score("lighthouse keepers", terms) == 0.0
    assert keyword_score("the of and", terms) == 0.0  # only stop words, none in the chunk


def test_repetition_raises_the_score_but_saturates() -> None:
    once = keyword_score("receipt", chunk_terms(CHUNK))
    thrice = keyword_score("refund", chunk_terms(CHUNK))
    assert once == pytest.approx(0.75) and once < thrice < 1.0


def test_plurals_match_their_singular() -> None:
    assert [stem(w) for w in ["policies", "tariffs", "classes", "class", "status", "days"]] == [
        "policy",
        "tariff",
        "class",
        "class",
        "status",
        "day",
    ]


def test_best_of_queries_and_similarities() -> None:
    assert match_score(["lighthouse", "receipt"], CHUNK) == pytest.approx(0.75)
    assert match_score(["lighthouse"], CHUNK, [0.9, 0.2]) == pytest.approx(0.9)
    assert match_score(["lighthouse"], CHUNK, [-0.4]) == 0.0
    assert match_score([], CHUNK) == 0.0


@given(st.text(max_size=40), st.text(max_size=200), st.lists(st.floats(allow_nan=True), max_size=3))
def test_score_is_bounded(query: str, text: str, similarities: list[float]) -> None:
    assert 0.0 <= match_score([query], text, similarities) <= 1.0
