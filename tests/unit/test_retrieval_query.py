from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.retrieval.query import MAX_QUERY_TERMS, fts5_match_query, query_terms, tsquery_terms

DOCS = [
    "The refund policy allows returns within 30 days.",
    "Shipping policy: we ship worldwide.",
    "Refund requests need a receipt; the refund policy is strict.",
    "Unrelated text about zeppelins and naïve cafés.",
    "日本語 テキスト and AND OR NOT NEAR words",
]

HOSTILE = [
    '"unbalanced',
    'a "b" c""',
    "refund AND",
    "OR OR OR",
    "NOT refund",
    "NEAR(refund policy, 2)",
    "refund*",
    "*",
    "^refund",
    "body:refund",
    "secret : refund",
    "{body secret}: refund",
    "- refund",
    "refund + policy",
    "(refund",
    ")",
    "'; DROP TABLE docs; --",
    "\x00refund\x00",
    "refund\npolicy\tnow",
    "naïve CAFÉS",
    "日本語",
    "🎉🎉",
    "\ud800 lone surrogate",
    "a" * 5000,
    "",
    "   ",
    "?!.,;:",
]


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE docs USING fts5(body, secret)")
    connection.executemany(
        "INSERT INTO docs (rowid, body, secret) VALUES (?, ?, 'classified')", list(enumerate(DOCS, start=1))
    )
    yield connection
    connection.close()


def search(connection: sqlite3.Connection, query: str) -> list[int]:
    expression = fts5_match_query(query)
    if not expression:
        return []
    rows = connection.execute(
        "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs), rowid", (expression,)
    )
    return [row[0] for row in rows]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_safe(fts: sqlite3.Connection, query: str) -> None:
    expression = fts5_match_query(query)
    # Only quoted words joined by OR: no operator, column filter or prefix syntax survives.
    assert re.fullmatch(r'(?:"[^"]+"(?: OR "[^"]+")*)?', expression)
    search(fts, query)  # must not raise


@settings(max_examples=300, deadline=None)
@given(query=st.text(max_size=200))
def test_any_text_is_a_valid_match_expression(fts: sqlite3.Connection, query: str) -> None:
    search(fts, query)


def test_more_matching_terms_rank_higher(fts: sqlite3.Connection) -> None:
    assert fts5_match_query("refund policy") == '"refund" OR "policy"'
    hits = search(fts, "What is the refund policy?")
    assert hits[0] == 3  # both words, "refund" twice
    assert set(hits) == {1, 2, 3}


def test_operators_are_just_words(fts: sqlite3.Connection) -> None:
    assert search(fts, "NEAR") == [5]
    assert fts5_match_query("x NEAR(y z)") == '"x" OR "near" OR "y" OR "z"'


def test_column_filters_do_not_reach_other_columns(fts: sqlite3.Connection) -> None:
    # As a column filter, "secret:zeppelins" would search the secret column and find nothing.
    raw = fts.execute("SELECT rowid FROM docs WHERE docs MATCH 'secret:zeppelins'").fetchall()
    assert raw == []
    assert search(fts, "secret:zeppelins") == [4]


@pytest.mark.parametrize("query", ['"unbalanced', "refund AND", "*", "(refund", "- refund"])
def test_the_hostile_queries_do_break_a_raw_match(fts: sqlite3.Connection, query: str) -> None:
    # Proof that the safety test above tests something.
    with pytest.raises(sqlite3.OperationalError):
        fts.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (query,)).fetchall()


def test_unicode_matches_the_unicode61_tokenizer(fts: sqlite3.Connection) -> None:
    assert search(fts, "NAÏVE") == [4]
    assert search(fts, "naive") == [4]  # unicode61 folds diacritics on both sides
    assert search(fts, "日本語") == [5]


def test_empty_queries() -> None:
    for query in ["", "   ", "?!", "***", '"" ""']:
        assert fts5_match_query(query) == ""
        assert tsquery_terms(query) == []


def test_terms_are_deduplicated_lowercased_and_capped() -> None:
    assert query_terms("Refund REFUND refund policy") == ["refund", "policy"]
    many = " ".join(f"w{i}" for i in range(100))
    assert len(query_terms(many)) == MAX_QUERY_TERMS


def test_stop_words_dropped_unless_nothing_else() -> None:
    assert query_terms("what is the refund policy") == ["refund", "policy"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]


def test_tsquery_terms_are_plain_words() -> None:
    terms = tsquery_terms("foo & bar | !baz <-> qux:* (x) 'quoted' don't Straße")
    assert terms == ["foo", "bar", "baz", "qux", "x", "quoted", "don", "t", "straße"]
    for term in terms:
        assert re.fullmatch(r"[^\W_]+", term)
