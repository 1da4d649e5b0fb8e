"""Object ids: ``<prefix><24 base62 chars>``, sortable by creation.

The first 11 characters encode a value that strictly increases within a process
(milliseconds << 22 | counter), the last 13 are random. Sorting ids as byte strings
therefore gives creation order, which makes list cursors (``after``/``before``) keyset
comparisons that keep working even when the cursor object has since been deleted.
Across processes ids order by millisecond, then arbitrarily but stably.
"""

from __future__ import annotations

import secrets
import threading
import time

from threadline.domain.errors import InvalidId

# ASCII order, so that byte-wise comparison of encoded strings equals numeric comparison.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ORDERED_CHARS = 11
_RANDOM_CHARS = 13
_COUNTER_BITS = 22

PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "call": "call_",
    "file": "file-",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
    "project": "proj_",
    "service_account": "svc_acct_",
    "api_key": "key_",
}

_lock = threading.Lock()
_last = 0


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _next_ordered() -> int:
    global _last
    with _lock:
        candidate = int(time.time() * 1000) << _COUNTER_BITS
        _last = candidate if candidate > _last else _last + 1
        return _last


def new_id(kind: str) -> str:
    """A fresh id for ``kind`` (a key of PREFIXES)."""
    random_part = _encode(secrets.randbelow(62**_RANDOM_CHARS), _RANDOM_CHARS)  # one CSPRNG call
    return PREFIXES[kind] + _encode(_next_ordered(), _ORDERED_CHARS) + random_part


def check_id(kind: str, param: str, value: str) -> None:
    """Raise the 400 OpenAI gives for an id with the wrong prefix (before any lookup)."""
    if not value.startswith(PREFIXES[kind]):
        raise InvalidId(param, value, PREFIXES[kind].rstrip("_-"))
