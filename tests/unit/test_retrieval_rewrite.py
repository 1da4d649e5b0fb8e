"""retrieval.rewrite_query: the offline keyword rewrite behind search's ``rewrite_query``."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.retrieval import fts5_match_query, rewrite_query

# Words a property test mixes into queries: stop words, question words, clitics, punctuation.
VOCABULARY = [
    "What",
    "is",
    "our",
    "refund",
    "policy",
    "for",
    "damaged",
    "items",
    "?",
    "Can",
    "you",
    "tell",
    "me",
    "what's",
    "company's",
    "don't",
    "O'Neill",
    "follow-up",
    "v2.1",
    "-",
    "...",
    "REFUND",
    "\u2019s",
    "naïve",
    "日本語",
]


@pytest.mark.parametrize(
    ("query", "rewritten"),
    [
        ("What is our refund policy for damaged items?", "refund policy damaged items"),
        ("how long do refunds take?", "long refunds take"),
        ("Can you please tell me where I can find the invoice?", "invoice"),
        ("WHAT IS THE REFUND POLICY", "REFUND POLICY"),
        ("refund policy", "refund policy"),
        ("  refund,   policy!!  ", "refund policy"),
    ],
)
def test_questions_become_keywords(query: str, rewritten: str) -> None:
    assert rewrite_query(query) == rewritten


def test_content_words_keep_order_and_case_each_once() -> None:
    assert rewrite_query("Is Acme's SLA better than the SLA of Globex?") == "Acme SLA better Globex"
    assert rewrite_query("refund Refund REFUND policy") == "refund policy"


def test_clitics_and_contractions() -> None:
    assert rewrite_query("What's the company's policy?") == "company policy"
    assert rewrite_query("What\u2019s the company\u2019s policy?") == "company policy"
    assert rewrite_query("Why don't refunds work and isn't it late?") == "refunds work late"
    assert rewrite_query("I'm sure we've got O'Neill's report") == "sure got O'Neill report"


def test_inner_punctuation_stays_in_a_word() -> None:
    assert rewrite_query("How do I book a follow-up for v2.1?") == "book follow-up v2.1"
    assert rewrite_query("error 404 on /api/v1_users") == "error 404 api v1 users"


def test_unicode_words_are_kept() -> None:
    assert rewrite_query("Where is the naïve café in 東京?") == "naïve café 東京"


@pytest.mark.parametrize("query", ["", "   ", "?!", "What is it?", "to be or not to be", "Can you tell me?"])
def test_nothing_left_keeps_the_original(query: str) -> None:
    assert rewrite_query(query) == query


@settings(max_examples=300, deadline=None)
@given(
    query=st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(VOCABULARY), max_size=12).map(" ".join),
    )
)
def test_rewrite_is_idempotent_and_only_keeps_words_of_the_query(query: str) -> None:
    rewritten = rewrite_query(query)
    assert rewrite_query(rewritten) == rewritten
    if rewritten != query:
        source = unicodedata.normalize("NFC", query).replace("\u2019", "'").casefold()
        assert rewritten == " ".join(rewritten.split()), "single spaces, no padding"
        assert all(word.casefold() in source for word in rewritten.split())
        assert fts5_match_query(rewritten), "a rewritten query always has something to search"
