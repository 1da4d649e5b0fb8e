"""Split text into overlapping token windows, the way file_search's ``static`` chunking strategy does.

OpenAI's rules: ``auto`` means 800-token chunks with 400 tokens of overlap;
``static`` allows ``max_chunk_size_tokens`` in 100..4096 and ``chunk_overlap_tokens`` in
0..max_chunk_size_tokens/2. Windows start every ``max - overlap`` tokens, and the last window is the
one that reaches the end of the text, so a 1,000-token text gives [0, 800) and [400, 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline.domain.errors import InvalidParameter
from threadline.retrieval import tokens

DEFAULT_MAX_CHUNK_SIZE_TOKENS = 800
DEFAULT_CHUNK_OVERLAP_TOKENS = 400
MIN_MAX_CHUNK_SIZE_TOKENS = 100
MAX_MAX_CHUNK_SIZE_TOKENS = 4096
# Below this a window could lie inside one multi-byte character (4 bytes at most, 1+ byte per token)
# and have no text of its own.
_SMALLEST_WINDOW_TOKENS = 4


@dataclass(frozen=True, slots=True)
class Chunk:
    """One window. ``text == source[start_char:end_char]`` for the text given to ``chunk_text``
    (after lone surrogates became U+FFFD, which keeps offsets)."""

    index: int
    text: str
    token_count: int
    start_char: int
    end_char: int


def validate_chunking(
    max_chunk_size_tokens: object,
    chunk_overlap_tokens: object,
    *,
    param_prefix: str = "chunking_strategy.static",
) -> None:
    """Check a ``static`` chunking strategy against OpenAI's bounds; raise ``InvalidParameter``."""
    max_param = f"{param_prefix}.max_chunk_size_tokens"
    overlap_param = f"{param_prefix}.chunk_overlap_tokens"
    size = _require_int(max_chunk_size_tokens, max_param)
    overlap = _require_int(chunk_overlap_tokens, overlap_param)
    if size < MIN_MAX_CHUNK_SIZE_TOKENS:
        raise InvalidParameter(
            f"Invalid '{max_param}': integer below minimum value. Expected a value >= "
            f"{MIN_MAX_CHUNK_SIZE_TOKENS}, but got {size} instead.",
            param=max_param,
            code="integer_below_min_value",
        )
    if size > MAX_MAX_CHUNK_SIZE_TOKENS:
        raise InvalidParameter(
            f"Invalid '{max_param}': integer above maximum value. Expected a value <= "
            f"{MAX_MAX_CHUNK_SIZE_TOKENS}, but got {size} instead.",
            param=max_param,
            code="integer_above_max_value",
        )
    if overlap < 0:
        raise InvalidParameter(
            f"Invalid '{overlap_param}': integer below minimum value. Expected a value >= 0, "
            f"but got {overlap} instead.",
            param=overlap_param,
            code="integer_below_min_value",
        )
    if overlap * 2 > size:
        raise InvalidParameter(
            f"Invalid '{overlap_param}': chunk_overlap_tokens must be less than or equal to half of "
            f"max_chunk_size_tokens ({size}), but got {overlap} instead.",
            param=overlap_param,
            code="invalid_value",
        )


def _require_int(value: object, param: str) -> int:
    # bool is an int subclass, but JSON true is not a token count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(
            f"Invalid type for '{param}': expected an integer, but got {type(value).__name__} instead.",
            param=param,
            code="invalid_type",
        )
    return value


def chunk_text(
    text: str,
    max_chunk_size_tokens: int = DEFAULT_MAX_CHUNK_SIZE_TOKENS,
    chunk_overlap_tokens: int = DEFAULT_CHUNK_OVERLAP_TOKENS,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Token windows of at most ``max_chunk_size_tokens``, each starting ``max - overlap`` tokens after
    the previous one; ``[]`` for text without tokens.

    Bounds are the caller's business (``validate_chunking`` checks the API's); this only refuses sizes
    it cannot honour, with ``ValueError``. Windows are cut on UTF-8 character boundaries (see
    ``tokens.char_boundary``), so ``text`` never contains U+FFFD that the source did not, and
    consecutive chunks overlap or touch: none leaves a gap. A text of more than ``max_tokens`` tokens
    raises ``tokens.TokenLimitExceeded`` (before any chunk is built).
    """
    if max_chunk_size_tokens < _SMALLEST_WINDOW_TOKENS:
        raise ValueError(f"max_chunk_size_tokens must be >= {_SMALLEST_WINDOW_TOKENS}")
    if not 0 <= chunk_overlap_tokens < max_chunk_size_tokens:
        raise ValueError("chunk_overlap_tokens must be >= 0 and < max_chunk_size_tokens")
    text = tokens.clean_text(text)
    ids = tokens.encode(text, max_tokens)
    if not ids:
        return []
    data = text.encode()
    offsets = tokens.byte_offsets(ids)
    starts = _CharCursor(data)
    ends = _CharCursor(data)
    stride = max_chunk_size_tokens - chunk_overlap_tokens
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + max_chunk_size_tokens, len(ids))
        start_byte = tokens.char_boundary(data, offsets[first])
        end_byte = tokens.char_boundary(data, offsets[last])
        chunks.append(
            Chunk(
                index=len(chunks),
                text=data[start_byte:end_byte].decode(),
                token_count=last - first,
                start_char=starts.advance_to(start_byte),
                end_char=ends.advance_to(end_byte),
            )
        )
        if last == len(ids):
            return chunks
        first += stride


class _CharCursor:
    """Turns non-decreasing byte offsets into character offsets in O(total bytes) overall.

    Decoding ``data[:offset]`` for every chunk would be quadratic on a 10 MB file; both the start
    and the end offsets only move forward, so each gets its own cursor that decodes only the step.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._byte = 0
        self._char = 0

    def advance_to(self, byte_offset: int) -> int:
        # Offsets come from tokens.char_boundary, so the step is whole characters and decodes strictly.
        self._char += len(self._data[self._byte : byte_offset].decode())
        self._byte = byte_offset
        return self._char
