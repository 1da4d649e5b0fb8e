"""Who is calling: a bearer key resolved to a project key, an admin key, or nobody.

Keys come from two places: THREADLINE_API_KEYS (the ``default`` project's, kept in memory) and the
database (created by the CLI or the Admin API, stored as SHA-256 hashes). With neither, the server is
in development mode and accepts any key (or none) for the default project. As soon as one key has
been created, every request needs a valid one, even after every key is revoked.

A lookup's answer, yes or no, is cached for under a second, so each key costs at most about one
query a second in each process, and a key created or revoked anywhere (another process, the CLI)
takes effect everywhere within that second. ``last_used_at`` is written at most once a minute a key.
"""

from __future__ import annotations

import hmac
import time
from functools import partial

from threadline.domain.projects import DEFAULT_PROJECT_ID, KeyKind, Principal, key_hash
from threadline.storage.database import Database
from threadline.storage.scope import ALL_PROJECTS
from threadline.storage.uow import UnitOfWork

CACHE_S = 0.9
LAST_USED_EVERY_S = 60
# Bounds the memory a stream of made-up keys can take: the cache is emptied when it is full.
MAX_CACHED_KEYS = 10_000

OPEN = Principal(None, DEFAULT_PROJECT_ID, "open")


class KeyRing:
    def __init__(self, env_keys: tuple[str, ...]) -> None:
        self._env = [
            (key_hash(key), Principal(KeyKind.PROJECT, DEFAULT_PROJECT_ID, f"key-{position}"))
            for position, key in enumerate(env_keys, start=1)
        ]
        self._db: Database | None = None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._required_until = 0.0
        self._required = bool(env_keys)

    def open(self, db: Database) -> None:
        self._db = db

    async def keys_required(self) -> bool:
        if self._env:
            return True
        if self._db is None:
            return False
        moment = time.monotonic()
        if moment >= self._required_until:
            self._required = await self._db.transaction(lambda uow: uow.keys.any_key(), scope=ALL_PROJECTS)
            self._required_until = moment + CACHE_S
        return self._required

    async def resolve(self, presented: bytes | None) -> Principal | None:
        """The caller for ``presented`` (the bearer token), ``OPEN`` in development mode, None when
        the key is missing, unknown, revoked or its project archived."""
        if not await self.keys_required():
            return OPEN
        if not presented:
            return None
        digest = key_hash(presented)
        for known, principal in self._env:
            if hmac.compare_digest(known, digest):
                return principal
        moment = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > moment:
            return cached[1]
        assert self._db is not None  # keys are required only once a database is open
        found = await self._db.transaction(partial(_lookup, digest=digest), scope=ALL_PROJECTS)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[digest] = (moment + CACHE_S, found)
        return found


def _lookup(uow: UnitOfWork, digest: str) -> Principal | None:
    row = uow.keys.lookup(digest)
    if row is None:
        return None
    now = int(time.time())
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY_S:
        uow.keys.touch(row.id, now)
    return Principal(KeyKind(row.kind), row.project_id, row.id)
