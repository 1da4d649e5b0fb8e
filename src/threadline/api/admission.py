"""Bounds on what one API process holds open for clients: event streams and the poll helpers' held
GETs. Each is a counter of slots (the event loop is single-threaded, so no lock is needed). A
streamed create over the bound answers 429 before anything is written; a poll-helper GET over its
bound is answered at once instead of being held, which the helper handles by polling again."""

from __future__ import annotations

from dataclasses import dataclass

from threadline.domain.errors import RateLimited
from threadline.observability.metrics import ADMISSION_REFUSALS

# A client told that streams are full waits this long before retrying (the SDKs honour it).
STREAM_RETRY_AFTER_S = 1


@dataclass
class Slots:
    limit: int
    in_use: int = 0

    def try_take(self) -> bool:
        if self.limit > 0 and self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


@dataclass
class Admission:
    streams: Slots
    poll_holds: Slots

    def take_stream(self) -> None:
        """A stream slot, or 429: the caller releases it when its stream ends (or is never sent)."""
        if not self.streams.try_take():
            ADMISSION_REFUSALS.labels(reason="streams").inc()
            raise RateLimited(
                f"Too many event streams are open on this server ({self.streams.limit}). Retry after "
                f"{STREAM_RETRY_AFTER_S} s.",
                retry_after_s=STREAM_RETRY_AFTER_S,
            )
