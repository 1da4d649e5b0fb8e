"""Wall-clock time in the API's unit (integer Unix seconds)."""

from __future__ import annotations

import time


def now() -> int:
    return int(time.time())
