"""The cost of the bearer-key check per request: a cached lookup (every request of a known key but
the first in each 0.9 s), development mode (no keys), and a cache miss (one indexed SQLite lookup).

    .venv/bin/python bench/keys.py [--n 200000]

Run in-process against a temporary SQLite database: it times ``KeyRing.resolve`` alone, which is
what the middleware adds to a request."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from threadline.api.auth import KeyRing
from threadline.config import Settings
from threadline.services import projects
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade
from threadline.storage.scope import ALL_PROJECTS


async def _time(ring: KeyRing, key: bytes, n: int, *, clear: bool = False) -> float:
    start = time.perf_counter()
    for _ in range(n):
        if clear:
            ring._cache.clear()  # every call a miss
        await ring.resolve(key)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Settings(data_dir=Path(tmp)))
        try:
            upgrade(db.engine)
            new = db.transaction_sync(
                lambda uow: projects.create_project_key(uow, "default", "bench"), scope=ALL_PROJECTS
            )
            ring = KeyRing(())
            ring.open(db)
            key = new.secret.encode()
            await ring.resolve(key)
            hit = await _time(ring, key, n)
            open_mode = await _time(KeyRing(()), key, n)
            miss = await _time(ring, key, max(n // 100, 100), clear=True)
        finally:
            db.close()
    print(f"key check per request: cached {hit:.2f} µs, development mode {open_mode:.2f} µs, ", end="")
    print(f"cache miss (SQLite lookup) {miss:.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().n))
