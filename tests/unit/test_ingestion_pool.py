"""The ingestion pool's children and their limits, driven directly (real child processes)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.bombs import pptx_bomb, whitespace_free_text
from threadline.domain.errors import InvalidFile
from threadline.ingestion.pool import IngestionPool, PoolLimits

# ~25 MB of ordinary words: a few seconds of BPE, far more than the CPU and wall limits below.
_SLOW_TEXT = b"alpha beta gamma delta epsilon zeta eta theta " * 550_000


def _extract(pool: IngestionPool, data: bytes, name: str) -> tuple[int, list[tuple[int, str, int]]]:
    return asyncio.run(pool.extract([data], name, 800, 400))


def test_children_are_reused_and_replaced_after_a_death() -> None:
    pool = IngestionPool(PoolLimits(memory_bytes=512 << 20, timeout_s=0.5))
    try:
        size, chunks = _extract(pool, b"hello world", "a.txt")
        assert (size, chunks) == (11, [(0, "hello world", 0)])
        first = pool._idle[0].process.pid
        _extract(pool, b"again", "b.txt")
        assert pool._idle[0].process.pid == first  # no process per file
        with pytest.raises(InvalidFile, match=r"time limit \(0.5 s\)"):
            _extract(pool, _SLOW_TEXT, "slow.txt")
        assert not pool._idle
        assert _extract(pool, b"still works", "c.txt")[0] == 11
        assert pool._idle[0].process.pid != first
    finally:
        pool.close()


def test_cpu_limit_kills_the_child() -> None:
    pool = IngestionPool(PoolLimits(cpu_s=1, timeout_s=60))
    try:
        with pytest.raises(InvalidFile, match=r"CPU time limit \(1 s\)"):
            _extract(pool, _SLOW_TEXT, "slow.txt")
    finally:
        pool.close()


def test_memory_limit_fails_the_file_not_the_caller() -> None:
    pool = IngestionPool(PoolLimits(memory_bytes=384 << 20, timeout_s=60))
    try:
        with pytest.raises(InvalidFile, match=r"memory limit.*384 MiB"):
            _extract(pool, pptx_bomb(400), "bomb.pptx")
        assert _extract(pool, b"fine", "d.txt")[0] == 4
    finally:
        pool.close()


def test_token_cap_and_whitespace_free_runs() -> None:
    pool = IngestionPool(PoolLimits(max_tokens=200_000, timeout_s=60))
    try:
        # 1 MiB without whitespace is split before BPE and chunks like any text.
        size, chunks = _extract(pool, whitespace_free_text(1), "run.txt")
        assert size == 1 << 20 and len(chunks) > 10
        with pytest.raises(InvalidFile, match=r"more than 200,000 tokens"):
            _extract(pool, whitespace_free_text(8), "big.txt")
    finally:
        pool.close()


def test_pool_runs_files_side_by_side_up_to_its_size() -> None:
    pool = IngestionPool(PoolLimits(processes=2))

    async def three() -> list[tuple[int, list[tuple[int, str, int]]]]:
        return await asyncio.gather(*(pool.extract([b"one two"], f"{i}.txt", 800, 400) for i in range(3)))

    try:
        assert [size for size, _ in asyncio.run(three())] == [7, 7, 7]
        assert len({child.process.pid for child in pool._idle}) == 2  # bounded: never a third child
    finally:
        pool.close()


def test_a_bad_file_keeps_its_healthy_child() -> None:
    pool = IngestionPool(PoolLimits())
    try:
        _extract(pool, b"ok", "a.txt")
        first = pool._idle[0].process.pid
        with pytest.raises(InvalidFile, match="not a readable PDF"):
            _extract(pool, b"%PDF-1.4 garbage", "broken.pdf")
        assert [child.process.pid for child in pool._idle] == [first]
    finally:
        pool.close()
