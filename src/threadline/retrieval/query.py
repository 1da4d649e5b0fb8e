"""Turn a free-text search query into safe full-text-search input for SQLite FTS5 and PostgreSQL.

The query is whatever a user or a model typed: quotes, ``AND``/``OR``/``NOT``/``NEAR``, ``*``, ``^``,
``col:`` filters, parentheses, unicode. None of that may reach the FTS engine as syntax: FTS5 raises
on unbalanced quotes and would let ``col:`` address another column. So the query is split into words
and every word becomes a double-quoted FTS5 string, which FTS5 treats as literal text whatever it
contains. Words are OR-joined: BM25 then ranks chunks that match more (and rarer) words higher, which
suits natural-language queries better than FTS5's implicit AND (one missing word drops a good hit).

Words are runs of the characters SQLite's default ``unicode61`` tokenizer keeps (categories L*, N*
and Co); everything else separates, as it does for the tokenizer, so each quoted word is one token
for it. Common English function words are dropped unless nothing else is left: with OR they match
nearly every chunk, slowing the query and diluting the ranking.
"""

from __future__ import annotations

import re
import unicodedata

# Enough for any sensible query; bounds the work a pathological one can ask of the index.
MAX_QUERY_TERMS = 32
# [^\W_] is Python's "letter or number"; the ranges are the Co (private use) planes unicode61 keeps.
_WORD = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")
_STOPWORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased words of ``query`` in order, stop words dropped unless all are, at most
    ``MAX_QUERY_TERMS``. Every term matches ``_WORD`` entirely, so it holds no syntax of any engine."""
    words: list[str] = []
    seen: set[str] = set()
    # Lower-case before splitting: lower() can add combining marks ("İ" -> "i\u0307"), which must
    # separate words like any other non-word character.
    for match in _WORD.finditer(unicodedata.normalize("NFC", query).lower()):
        word = match.group()
        if word not in seen:
            seen.add(word)
            words.append(word)
    content = [word for word in words if word not in STOPWORDS]
    return (content or words)[:MAX_QUERY_TERMS]


def fts5_match_query(query: str) -> str:
    """A safe FTS5 ``MATCH`` expression such as ``"refund" OR "policy"``; ``""`` when ``query`` has
    no words (the caller should then skip the search: ``MATCH ''`` is an FTS5 syntax error)."""
    return " OR ".join(_fts5_string(term) for term in query_terms(query))


def _fts5_string(term: str) -> str:
    # An FTS5 string literal escapes '"' by doubling it. Terms hold none today; escaping anyway keeps
    # this safe if the word pattern ever widens.
    return '"' + term.replace('"', '""') + '"'


def tsquery_terms(query: str) -> list[str]:
    """Plain words for PostgreSQL, e.g. for ``to_tsquery('simple', ' | '.join(terms))`` or one
    ``plainto_tsquery`` per term. Terms are letters and digits only, so joining them with `` | ``
    cannot form tsquery operators (``& | ! <-> : * ( )``) or quotes."""
    return query_terms(query)
