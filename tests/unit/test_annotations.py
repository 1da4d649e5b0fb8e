"""Streaming annotations: markers held back until they close, each annotation sent exactly once."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from threadline.services.annotations import AnnotatedStream, Piece
from threadline.services.vector_stores.citations import CitationMarkers, file_citations

RESULTS = [{"file_id": "file-a"}, {"file_id": "file-b"}]


def _stream(pieces: list[str], results: list[dict[str, Any]] = RESULTS) -> list[Piece]:
    stream = AnnotatedStream([CitationMarkers(results)])
    out = [stream.feed(p) for p in pieces] + [stream.flush()]
    return [p for p in out if p is not None]


def test_a_split_marker_goes_out_whole_with_its_annotation() -> None:
    sent = _stream(["Zebras ", "trade 【", "1", "†zeb", "ra.pdf", "】", " daily."])
    assert [p.text for p in sent] == ["Zebras ", "trade ", "【1†zebra.pdf】", " daily."]
    assert [p.first for p in sent] == [True, False, False, False]
    assert sent[2].annotations == (
        {
            "index": 0,
            "type": "file_citation",
            "text": "【1†zebra.pdf】",
            "file_citation": {"file_id": "file-b"},
            "start_index": 13,
            "end_index": 26,
        },
    )
    assert all(not p.annotations for i, p in enumerate(sent) if i != 2)


def test_annotations_are_numbered_across_deltas() -> None:
    sent = _stream(["A 【0†a】 b 【", "1†b】 c 【0", ":3†a】"])
    annotations = [a for p in sent for a in p.annotations]
    assert [a["index"] for a in annotations] == [0, 1, 2]
    assert [a["file_citation"]["file_id"] for a in annotations] == ["file-a", "file-b", "file-a"]


def test_text_that_cannot_be_a_marker_is_not_held() -> None:
    assert [p.text for p in _stream(["Look 【note】 ", "here"])] == ["Look 【note】 ", "here"]
    # A marker naming no result is plain text; so is every 【 when the run searched nothing.
    assert [p.annotations for p in _stream(["x 【7†a】"])] == [()]
    assert [p.text for p in _stream(["x 【", "0†a】"], results=[])] == ["x 【", "0†a】"]


def test_an_unfinished_marker_is_released_at_the_end_or_past_a_marker_length() -> None:
    assert [p.text for p in _stream(["x 【0†never closed"])] == ["x ", "【0†never closed"]
    stream = AnnotatedStream([CitationMarkers(RESULTS)])
    assert stream.feed("x 【0†") == Piece("x ", (), True)
    assert stream.feed("a" * 300) is not None  # longer than any marker: plain text


@given(st.lists(st.sampled_from(["【", "0", "1", "†", "a", "】", " ", "\n", ":", "x"]), max_size=30))
def test_streamed_annotations_equal_the_final_ones(pieces: list[str]) -> None:
    sent = _stream(pieces)
    text = "".join(pieces)
    assert "".join(p.text for p in sent) == text
    streamed = [{k: v for k, v in a.items() if k != "index"} for p in sent for a in p.annotations]
    assert streamed == file_citations(text, RESULTS)
