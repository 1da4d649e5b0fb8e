"""Annotations while a message streams: the text goes out in deltas, and each annotation goes out in
the delta that carries its marker, exactly once.

OpenAI streams ``thread.message.delta`` events whose ``text.annotations`` hold the annotations of the
markers in that delta (``{index, type, text, start_index, end_index, <type>: {...}}``), and the SDKs
build their snapshots (openai-python's ``on_text_delta`` snapshot, openai-node's ``finalMessages()``)
by merging deltas by ``index``: an annotation sent twice would be merged into itself (numbers added),
one never sent is missing from the snapshot. Models stream word-sized pieces, so a marker such as
``【3†report.pdf】`` arrives split; ``AnnotatedStream`` holds back a piece that may still become a marker
(no longer than a marker can be) until it closes or cannot be one, then sends its text and its
annotation together.

Each kind of annotation is a ``MarkerSource`` (file_search's ``file_citation`` is
``services.vector_stores.citations.CitationMarkers``); another kind is one more source in the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class MarkerSource(Protocol):
    def pending(self, text: str, start: int) -> int:
        """Where, at or after ``start``, an unfinished marker of this kind begins in ``text`` (it may
        still become a marker with more text); ``len(text)`` when none does."""
        ...

    def find(self, text: str, start: int, end: int) -> list[dict[str, Any]]:
        """Annotations (without ``index``) of the complete markers inside ``text[start:end]``,
        ``start_index``/``end_index`` counted in the whole ``text``."""
        ...


@dataclass(frozen=True, slots=True)
class Piece:
    """Text to send in one delta, with the annotations of the markers it completes (each with its
    ``index`` in the message's annotation list)."""

    text: str
    annotations: tuple[dict[str, Any], ...]
    first: bool  # the first piece of the content part


@dataclass(slots=True)
class AnnotatedStream:
    """One text content part as it streams. ``feed`` each model delta; ``flush`` at the end."""

    sources: Sequence[MarkerSource]
    text: str = ""
    sent: int = 0
    annotations: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, delta: str) -> Piece | None:
        self.text += delta
        end = min((source.pending(self.text, self.sent) for source in self.sources), default=len(self.text))
        return self._release(end)

    def flush(self) -> Piece | None:
        """The held-back rest (an unfinished marker is plain text after all)."""
        return self._release(len(self.text))

    def _release(self, end: int) -> Piece | None:
        start = self.sent
        if end <= start:
            return None
        found = sorted(
            (a for source in self.sources for a in source.find(self.text, start, end)),
            key=lambda a: int(a["start_index"]),
        )
        numbered = tuple({"index": len(self.annotations) + i, **a} for i, a in enumerate(found))
        self.annotations.extend(numbered)
        self.sent = end
        return Piece(self.text[start:end], numbered, first=start == 0)
