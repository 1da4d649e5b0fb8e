from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from threadline.retrieval import tokens


@pytest.fixture
def fresh_tokenizer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the loaded tokenizer so a test sees the first, lazy load."""
    monkeypatch.setattr(tokens, "_tokenizer", None)
    yield


def test_known_cl100k_ids() -> None:
    # Published cl100k_base ids (e.g. the tiktoken README and OpenAI's tokenizer page).
    assert tokens.encode("hello world") == [15339, 1917]
    assert tokens.count_tokens("hello world") == 2
    assert tokens.decode([15339, 1917]) == "hello world"


def test_round_trip_of_unicode_and_special_token_text() -> None:
    text = "Grüße, 世界! 🎉 <|endoftext|> <|fim_prefix|>\r\n\ttabs"
    ids = tokens.encode(text)
    assert tokens.decode(ids) == text
    # Special-token strings in a document are plain text, never the special ids.
    assert 100257 not in ids
    assert 100258 not in ids


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    assert tokens.decode(tokens.encode("a\ud800b")) == "a\ufffdb"
    assert tokens.clean_text("x\udfffy") == "x\ufffdy"


def test_truncate_cuts_on_a_character_boundary() -> None:
    text = "🎉" * 50  # each emoji is several tokens' worth of bytes
    for budget in range(1, 30):
        prefix = tokens.truncate(text, budget)
        assert text.startswith(prefix)
        assert "\ufffd" not in prefix
    assert tokens.truncate("short", 100) == "short"
    assert tokens.truncate("anything", 0) == ""
    long = "word " * 1000
    assert tokens.count_tokens(tokens.truncate(long, 100)) <= 100


def test_byte_offsets_match_utf8_lengths() -> None:
    text = "naïve café 日本語 🎉 end"
    ids = tokens.encode(text)
    offsets = tokens.byte_offsets(ids)
    assert offsets[0] == 0
    assert offsets[-1] == len(text.encode())
    assert all(a < b for a, b in itertools.pairwise(offsets))


def test_loads_offline_from_the_installed_wheel(
    fresh_tokenizer: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No network and an empty tiktoken cache: the load must come from the package data alone.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert tokens.count_tokens("offline works") == 2
    assert os.listdir(tmp_path) == []  # nothing was cached, so nothing was fetched


def test_a_tampered_rank_file_is_refused(fresh_tokenizer: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_DATA_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="not OpenAI's cl100k_base"):
        tokens.count_tokens("x")


def test_loads_once_under_concurrent_first_use(
    fresh_tokenizer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_load = tokens._load

    def counting_load() -> tokens._Tokenizer:
        calls.append(1)
        return real_load()

    monkeypatch.setattr(tokens, "_load", counting_load)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        results.append(tokens.count_tokens("hello world"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [2] * 8
    assert len(calls) == 1


def test_long_texts_encode_in_segments_with_the_same_tokens() -> None:
    words = ["alpha", "épée", "x1", "42", "don't", "end.\n\n", "tab\t", "Zürich", "naïve"]
    text = " ".join(itertools.islice(itertools.cycle(words), 400_000))
    assert len(text) > 2 * tokens._SEGMENT_CHARS
    assert tokens.encode(text) == tokens._get().encoding.encode_ordinary(text)


def test_whitespace_free_runs_are_cut_and_offsets_stay_exact() -> None:
    text = "head " + "ab" * 600_000 + " tail"
    ids = tokens.encode(text)
    assert tokens.byte_offsets(ids)[-1] == len(text.encode())
    assert tokens.decode(ids) == text


def test_token_limit_stops_early() -> None:
    with pytest.raises(tokens.TokenLimitExceeded) as exc:
        tokens.encode("word " * 3_000_000, limit=1000)
    assert exc.value.limit == 1000
    assert len(tokens.encode("word word", limit=2)) == 2  # at the limit is fine
