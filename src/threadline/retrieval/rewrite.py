"""``rewrite_query`` of vector store search, done offline: a natural-language question becomes a
keyword query.

OpenAI rewrites the query with a model ("Whether to rewrite the natural language query for vector
search"). The search endpoint has no model to ask, so the rewrite is deterministic: English stop
words, question words and request phrasing ("can you tell me") are dropped, with punctuation, and
the content words are kept in order, each once, as typed. "What is our refund policy for damaged
items?" becomes "refund policy damaged items". A query with no content word is kept as it is.

Words are runs of letters and digits, as for the full-text index, but an apostrophe, hyphen or dot
between two of them stays inside the word ("follow-up", "v2.1", "O'Neill"). Clitics go: a
possessive or contracted ``'s``, ``'re``, ``'ve``, ``'ll``, ``'d``, ``'m`` is cut ("company's" ->
"company"), and a word contracted with ``n't`` is a negated function word, dropped like ``not``.
The rewrite is idempotent: rewriting a rewritten query changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

# The stop words keyword search ignores anyway: a rewrite never keeps a word search would drop.
from threadline.retrieval.query import STOPWORDS

# Words of a question or request that carry no topic, beyond the search stop words.
_REQUEST_WORDS_TEXT = """
also cannot describe explain find hello hey hi kindly know let lets may might must please shall tell
thank thanks us whose
"""
_REQUEST_WORDS = frozenset(_REQUEST_WORDS_TEXT.split())
_DROPPED = STOPWORDS | _REQUEST_WORDS
_CLITICS = frozenset({"s", "re", "ve", "ll", "d", "m", "t"})
# Letters and digits ([^\W_]), joined by single apostrophes, hyphens or dots.
_WORD = re.compile(r"[^\W_]+(?:['\-.][^\W_]+)*")


def rewrite_query(query: str) -> str:
    """``query`` as a keyword query: its content words in order, case kept, each once (compared
    case-insensitively), separated by single spaces. ``query`` itself when no content word is left."""
    words: list[str] = []
    seen: set[str] = set()
    text = unicodedata.normalize("NFC", query).replace("\u2019", "'")
    for match in _WORD.finditer(text):
        word = _content_word(match.group())
        if word is not None and word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    return " ".join(words) if words else query


def _content_word(word: str) -> str | None:
    """``word`` without trailing clitics; None for a stop word, question word or negated contraction."""
    base, apostrophe, clitic = word.rpartition("'")
    while apostrophe and clitic.lower() in _CLITICS:
        if clitic.lower() == "t" and base.lower().endswith("n"):
            return None  # don't, isn't, can't, won't: negated function words, like "not"
        word = base
        base, apostrophe, clitic = word.rpartition("'")
    return None if word.lower() in _DROPPED else word
