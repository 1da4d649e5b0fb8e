from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.retrieval.fusion import (
    bm25_unit_score,
    normalize_rrf,
    reciprocal_rank_fusion,
    rrf_unit_score,
)


def test_rrf_rewards_agreement() -> None:
    keyword = ["a", "b", "c"]
    semantic = ["b", "d", "a"]
    fused = reciprocal_rank_fusion([keyword, semantic], k=60)
    # b (2nd and 1st) beats a (1st and 3rd); both beat ids only one ranking found.
    assert [doc_id for doc_id, _ in fused] == ["b", "a", "d", "c"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["d"] == pytest.approx(1 / 62)


def test_rrf_ties_are_deterministic() -> None:
    # x and y both score 1/61 + nothing: best rank ties too, so first-seen order decides.
    assert [doc_id for doc_id, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert [doc_id for doc_id, _ in reciprocal_rank_fusion([["y"], ["x"]])] == ["y", "x"]


def test_rrf_counts_a_repeated_id_once_per_ranking() -> None:
    assert reciprocal_rank_fusion([["a", "a", "b"]]) == [("a", 1 / 61), ("b", 1 / 63)]


def test_rrf_edge_cases() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_rrf_unit_scores() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["a", "c"]])
    normalised = dict(normalize_rrf(fused, num_rankings=2))
    assert normalised["a"] == 1.0  # first everywhere
    assert normalised["b"] == pytest.approx(61 / 62 / 2)
    assert rrf_unit_score(1 / 61, num_rankings=1) == 1.0
    assert rrf_unit_score(0.5, num_rankings=0) == 0.0


@given(
    rankings=st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=10), max_size=4),
    k=st.integers(min_value=0, max_value=100),
)
def test_rrf_properties(rankings: list[list[str]], k: int) -> None:
    fused = reciprocal_rank_fusion(rankings, k=k)
    assert {doc_id for doc_id, _ in fused} == {doc_id for ranking in rankings for doc_id in ranking}
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
    for _, unit in normalize_rrf(fused, len(rankings), k):
        assert 0.0 < unit <= 1.0


def test_bm25_unit_score() -> None:
    assert bm25_unit_score(0.0) == 0.0
    assert bm25_unit_score(-3.0) == 0.0
    assert bm25_unit_score(math.nan) == 0.0
    assert bm25_unit_score(math.inf) == 1.0
    assert bm25_unit_score(5.0) == 0.5
    assert bm25_unit_score(2.0, half_saturation=2.0) == 0.5
    with pytest.raises(ValueError):
        bm25_unit_score(1.0, half_saturation=0)


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1e6))
def test_bm25_unit_score_is_monotone_and_bounded(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= bm25_unit_score(low) <= bm25_unit_score(high) <= 1.0
