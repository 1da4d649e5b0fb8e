from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.domain.errors import InvalidParameter
from threadline.retrieval import tokens
from threadline.retrieval.chunking import Chunk, chunk_text, validate_chunking

WORDS = [
    "alpha",
    "beta",
    "γάμμα",
    "дельта",
    "日本語",
    "🎉",
    "👩‍💻",
    "naïve",
    "\n",
    "\t",
    "x",
    "1234",
    "<|endoftext|>",
]


def check_invariants(source: str, chunks: list[Chunk], size: int, overlap: int) -> None:
    text = tokens.clean_text(source)
    total = tokens.count_tokens(text)
    if total == 0:
        assert chunks == []
        return
    stride = size - overlap
    expected = 1 if total <= size else 1 + math.ceil((total - size) / stride)
    assert len(chunks) == expected
    assert chunks[0].start_char == 0
    assert chunks[-1].end_char == len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text == text[chunk.start_char : chunk.end_char]
        assert "\ufffd" not in chunk.text or "\ufffd" in text
        assert 1 <= chunk.token_count <= size
        if position < len(chunks) - 1:
            assert chunk.token_count == size  # only the last window may be short
    for previous, current in itertools.pairwise(chunks):
        assert previous.start_char <= current.start_char  # moves forward
        assert current.start_char <= previous.end_char  # no gap: every character is in some chunk
    # The windows' tokens add up: each start is `stride` tokens after the previous one.
    assert sum(chunk.token_count for chunk in chunks) - overlap * (len(chunks) - 1) == total


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=300),
    size=st.integers(min_value=4, max_value=48),
    data=st.data(),
)
def test_chunk_invariants(pieces: list[str], size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(min_value=0, max_value=size - 1))
    source = " ".join(pieces)
    check_invariants(source, chunk_text(source, size, overlap), size, overlap)


@settings(max_examples=25, deadline=None)
@given(repeat=st.integers(min_value=1, max_value=40), overlap=st.sampled_from([0, 50, 200, 400]))
def test_chunk_invariants_at_api_sizes(repeat: int, overlap: int) -> None:
    source = "The quick brown fox jumps over the lazy dog; 日本語のテキスト 🎉. " * repeat * 10
    check_invariants(source, chunk_text(source, 800, overlap), 800, overlap)


def test_openai_defaults_on_a_1000_token_text() -> None:
    source = " ".join(f"w{i}" for i in range(2000))
    ids = tokens.encode(source)[:1000]
    text = tokens.decode(ids)
    chunks = chunk_text(text)
    assert [chunk.token_count for chunk in chunks] == [800, 600]
    # ASCII: every window is exactly the decoded token window.
    assert chunks[0].text == tokens.decode(ids[:800])
    assert chunks[1].text == tokens.decode(ids[400:])


def test_short_and_empty_texts() -> None:
    assert chunk_text("") == []
    [only] = chunk_text("just a few words")
    assert only == Chunk(index=0, text="just a few words", token_count=4, start_char=0, end_char=16)


def test_windows_never_split_a_character() -> None:
    # A family emoji is one character of many bytes and several tokens: many cuts land inside it.
    source = "👩‍👩‍👧‍👦" * 200
    for chunk in chunk_text(source, 5, 2):
        assert "\ufffd" not in chunk.text
        assert chunk.text == source[chunk.start_char : chunk.end_char]


def test_lone_surrogates_keep_offsets() -> None:
    source = "before \ud800 after " * 50
    chunks = chunk_text(source, 10, 3)
    assert chunks[-1].end_char == len(source)


def test_refuses_sizes_it_cannot_honour() -> None:
    with pytest.raises(ValueError):
        chunk_text("text", 3, 0)
    with pytest.raises(ValueError):
        chunk_text("text", 100, 100)
    with pytest.raises(ValueError):
        chunk_text("text", 100, -1)


def test_ten_megabytes_in_a_few_seconds() -> None:
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Zaïre 東京 🎉 1234567.\n"
    source = paragraph * (10_000_000 // len(paragraph))
    tokens.count_tokens("warm up")  # keep the one-off load out of the measurement
    started = time.perf_counter()
    chunks = chunk_text(source)
    elapsed = time.perf_counter() - started
    assert chunks[-1].end_char == len(source)
    assert elapsed < 15, f"chunking 10 MB took {elapsed:.1f}s"


@pytest.mark.parametrize(
    ("size", "overlap"), [(800, 400), (100, 0), (100, 50), (4096, 2048), (4096, 0), (101, 50)]
)
def test_valid_chunking(size: int, overlap: int) -> None:
    validate_chunking(size, overlap)


@pytest.mark.parametrize(
    ("size", "overlap", "param", "code"),
    [
        (99, 0, "max_chunk_size_tokens", "integer_below_min_value"),
        (4097, 0, "max_chunk_size_tokens", "integer_above_max_value"),
        (800, -1, "chunk_overlap_tokens", "integer_below_min_value"),
        (800, 401, "chunk_overlap_tokens", "invalid_value"),
        (101, 51, "chunk_overlap_tokens", "invalid_value"),
        ("800", 400, "max_chunk_size_tokens", "invalid_type"),
        (800.0, 400, "max_chunk_size_tokens", "invalid_type"),
        (800, True, "chunk_overlap_tokens", "invalid_type"),
        (800, None, "chunk_overlap_tokens", "invalid_type"),
    ],
)
def test_invalid_chunking(size: object, overlap: object, param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_chunking(size, overlap)
    assert caught.value.param == f"chunking_strategy.static.{param}"
    assert caught.value.code == code
    assert caught.value.status == 400
    assert f"'chunking_strategy.static.{param}'" in caught.value.message


def test_param_prefix_is_configurable() -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_chunking(50, 0, param_prefix="chunking_strategy")
    assert caught.value.param == "chunking_strategy.max_chunk_size_tokens"
