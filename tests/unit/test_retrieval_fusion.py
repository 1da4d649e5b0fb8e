from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.retrieval.fusion import reciprocal_rank_fusion


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


@given(
    rankings=st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=10), max_size=4),
    k=st.integers(min_value=0, max_value=100),
)
def test_rrf_properties(rankings: list[list[str]], k: int) -> None:
    fused = reciprocal_rank_fusion(rankings, k=k)
    assert {doc_id for doc_id, _ in fused} == {doc_id for ranking in rankings for doc_id in ranking}
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
