"""code_interpreter sandbox benchmark: bubblewrap sessions against the same kernel run unsandboxed.

    .venv/bin/python bench/code_interpreter.py [--cold 10] [--starts 20] [--calls 200] [--imports 5]
        [--max-sessions 64] [--rounds 20] [--budget-s 100]

In-process (no HTTP, no database): ``SessionPool``s built as ``code_interpreter_from_settings`` builds
them (the server's default ``Limits``, this interpreter as the sandbox's Python, the data directory
hidden), one on ``BubblewrapBackend`` and, as **the floor**, one on ``UnsandboxedBackend``: the same
kernel script, the same rlimits and pids cgroup handling, as a plain subprocess. Both sides alternate
one by one so that drift on the shared machine lands on both. Measured:
  1. session start (pool.session + Session.start, until the kernel's ready line): *cold*, the first
     session of a fresh pool and backend with the ``python_layout`` cache cleared (so it pays the
     bwrap probe, the pids-cgroup probe and the layout probe as a server's first call does), and
     *warm*, later sessions of one pool; p50/p90 and the ratio sandbox/floor;
  2. per-call time of ``print(1)`` on a started session (p50/p99);
  3. the first ``import pandas, matplotlib.pyplot`` of a fresh session (what a typical first call
     costs), and the memory of that session afterwards (Rss and Pss summed over its process tree:
     bwrap, bwrap as the namespace's init, the kernel);
  4. how many sessions one machine holds: N = 8, 16, 32, 64 (doubling up to ``--max-sessions``)
     sandboxed sessions alive in one pool, each having imported pandas; memory per session (Rss, Pss,
     and the drop of MemAvailable), and the ``print(1)`` latency when all N are called at once,
     against the single-session p50 of 2. Growing stops when the next N would take more than half the
     MemAvailable measured at the start of the phase (by the Rss per session, an overestimate) or
     overrun ``--budget-s``.
Read the ratios: absolute figures move with whatever else runs on the machine (the CPU time other
processes took during the run is printed; it and the load average are in the JSON). Raw figures:
bench/results/code-interpreter-<UTC time>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import machine
from threadline.config import Settings
from threadline.executor.sandbox import (
    Backend,
    BubblewrapBackend,
    Limits,
    Session,
    SessionPool,
    UnsandboxedBackend,
    python_layout,
)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PYTHON = sys.executable
IMPORT = "import pandas, matplotlib.pyplot"
# Timed as two calls (one round trip more, ≈ 0.3 ms) to show where the time goes: pyplot's first
# import in a session with an empty MPLCONFIGDIR builds matplotlib's font cache there, and the
# sandbox's /tmp (hence MPLCONFIGDIR) is new with every session while the floor's is the host's.
IMPORT_PARTS = ("import pandas", "import matplotlib.pyplot")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def dist(values: list[float], high: float = 99) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), f"p{high:g}": pct(values, high), "max": max(values)}


def limits() -> Limits:
    # The server's defaults, as code_interpreter_from_settings turns them into Limits.
    s = Settings()
    return Limits(
        memory_bytes=s.code_interpreter_memory_mb * 1024 * 1024,
        timeout_s=s.code_interpreter_timeout_s,
        max_processes=s.code_interpreter_max_processes,
        max_file_bytes=s.code_interpreter_max_file_mb * 1024 * 1024,
        cpu_s=s.code_interpreter_cpu_s,
    )


class Side:
    """One backend's pool under a data directory of its own (hidden from the sandbox, as the
    server's data directory is)."""

    def __init__(self, name: str, data_dir: Path, max_sessions: int = 16) -> None:
        self.name, self.data_dir = name, data_dir
        self.keys = 0
        backend: Backend = (
            BubblewrapBackend(hidden=[data_dir]) if name == "bubblewrap" else UnsandboxedBackend()
        )
        root = (data_dir / "code-interpreter" / str(os.getpid())).resolve()
        # idle_s: no session may be swept while it is measured.
        self.pool = SessionPool(root, backend, limits(), PYTHON, 3600.0, max_sessions)

    async def start(self) -> tuple[Session, float, float]:
        """A new session, started: (session, ms in pool.session, ms in Session.start)."""
        self.keys += 1
        t0 = time.perf_counter()
        session = self.pool.session(f"{self.name}-{self.keys}")
        t1 = time.perf_counter()
        await session.start()
        t2 = time.perf_counter()
        return session, (t1 - t0) * 1e3, (t2 - t1) * 1e3

    async def end(self, session: Session) -> None:
        _count_cpu(session)
        await self.pool.end(session.key)

    async def close(self) -> None:
        for session in self.pool.sessions.values():
            _count_cpu(session)
        await self.pool.aclose()


# CPU seconds of the sessions' processes that this process never reaps (what runs inside bwrap dies
# with the sandbox's pid namespace, so its time reaches no RUSAGE_CHILDREN of ours): read before a kill.
_unreaped_cpu_s = 0.0


def _count_cpu(session: Session) -> None:
    global _unreaped_cpu_s
    if session._proc is None:
        return
    for pid in list(tree(session._proc.pid))[1:]:  # the first is our child: reaped, so counted
        try:
            _unreaped_cpu_s += machine.process_cpu_s(pid)
        except OSError:  # it exited meanwhile
            continue


async def run(session: Session, code: str) -> float:
    """ms for one execution; the bench stops on any error (a figure of a failed call is no figure)."""
    t0 = time.perf_counter()
    result = await session.execute(code)
    elapsed = (time.perf_counter() - t0) * 1e3
    if result.error is not None or result.timed_out:
        raise RuntimeError(f"{session.key}: {code!r} failed: {result.error}")
    return elapsed


def tree(pid: int) -> Iterator[int]:
    """``pid`` and its descendants (bwrap forks the namespace's init, which forks the kernel)."""
    yield pid
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            yield from tree(int(child))


def memory_kb(session: Session) -> dict[str, int]:
    """Rss and Pss (kB) summed over the session's processes. Rss counts the shared libraries (numpy,
    pandas, libpython) in full for every session; Pss splits shared pages among their users."""
    total = {"rss_kb": 0, "pss_kb": 0, "processes": 0}
    proc = session._proc  # the bench looks inside: the pool does not expose pids
    if proc is None:
        return total
    for pid in tree(proc.pid):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total["processes"] += 1
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                total[f"{key.lower()}_kb"] += int(value.split()[0])
    return total


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def own_cpu_s() -> float:
    """This process, its reaped children (probes, bwrap, unsandboxed kernels) and the processes inside
    the sandboxes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _unreaped_cpu_s


async def cold_starts(tmp: Path, count: int) -> dict[str, Any]:
    """A fresh pool and backend per start, and no cached layout: a server's first session."""
    samples: dict[str, list[dict[str, float]]] = {"bubblewrap": [], "unsandboxed": []}
    for i in range(count + 1):  # the first pair warms the page cache and is not counted
        order = ("bubblewrap", "unsandboxed") if i % 2 else ("unsandboxed", "bubblewrap")
        for name in order:
            python_layout.cache_clear()
            side = Side(name, tmp / f"cold-{name}-{i}")
            try:
                _, in_pool, in_start = await side.start()
            finally:
                await side.close()
            if i:
                samples[name].append({"pool_session_ms": in_pool, "start_ms": in_start})
    return samples


async def warm_starts(sides: dict[str, Side], count: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(count + 1):
        order = list(sides) if i % 2 else list(reversed(sides))
        for name in order:
            side = sides[name]
            session, in_pool, in_start = await side.start()
            await side.end(session)
            if i:
                samples[name].append(in_pool + in_start)
    return samples


async def calls(sides: dict[str, Side], count: int) -> dict[str, list[float]]:
    sessions = {name: (await side.start())[0] for name, side in sides.items()}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(count + 10):  # 10 warm-up calls each
        order = list(sessions) if i % 2 else list(reversed(sessions))
        for name in order:
            elapsed = await run(sessions[name], "print(1)")
            if i >= 10:
                samples[name].append(elapsed)
    for name, session in sessions.items():
        await sides[name].end(session)
    return samples


async def imports(sides: dict[str, Side], count: int) -> dict[str, dict[str, list[float]]]:
    fields = ("ms", *IMPORT_PARTS, "rss_kb", "pss_kb")
    samples: dict[str, dict[str, list[float]]] = {n: {f: [] for f in fields} for n in sides}
    for i in range(count + 1):  # the first pair warms the page cache (a running server's is warm)
        order = list(sides) if i % 2 else list(reversed(sides))
        for name in order:
            session = (await sides[name].start())[0]
            parts = [await run(session, code) for code in IMPORT_PARTS]
            mem = memory_kb(session)
            await sides[name].end(session)
            if i:
                samples[name]["ms"].append(sum(parts))
                for code, elapsed in zip(IMPORT_PARTS, parts, strict=True):
                    samples[name][code].append(elapsed)
                samples[name]["rss_kb"].append(mem["rss_kb"])
                samples[name]["pss_kb"].append(mem["pss_kb"])
    return samples


async def capacity(tmp: Path, max_sessions: int, rounds: int, budget_s: float) -> list[dict[str, Any]]:
    """Grow one sandboxed pool through 8, 16, 32, ... sessions (up to ``max_sessions``), each having
    imported pandas; at each size call all sessions at once ``rounds`` times."""
    side = Side("bubblewrap", tmp / "capacity", max_sessions=max_sessions + 1)
    available_at_start = mem_available_kb()
    began = time.monotonic()
    sessions: list[Session] = []
    setup_ms: list[float] = []
    steps: list[dict[str, Any]] = []
    # One per core: starting is CPU-bound (the import), so more at once would only stretch each start.
    limit = asyncio.Semaphore(os.cpu_count() or 2)

    async def one() -> Session:
        async with limit:
            t0 = time.perf_counter()
            session = (await side.start())[0]
            await run(session, "import pandas")
            setup_ms.append((time.perf_counter() - t0) * 1e3)
            return session

    try:
        sizes = [8 << i for i in range(12) if 8 << i < max_sessions] + [max_sessions]
        for size in sizes:
            if steps:
                last = steps[-1]
                projected_kb = last["per_session_kb"]["rss"] * size
                projected_s = (
                    (size - len(sessions)) * statistics.fmean(setup_ms) / 1e3 / (os.cpu_count() or 2)
                )
                if projected_kb > available_at_start / 2:
                    steps.append({"sessions": size, "skipped": f"needs ≈ {projected_kb / 2**20:.1f} GiB"})
                    break
                if time.monotonic() - began + projected_s > budget_s:
                    steps.append({"sessions": size, "skipped": f"would take ≈ {projected_s:.0f} s more"})
                    break
            sessions += await asyncio.gather(*(one() for _ in range(size - len(sessions))))
            await asyncio.sleep(0.5)  # let the last imports' freed pages settle before reading memory
            mems = [memory_kb(s) for s in sessions]
            dropped_kb = available_at_start - mem_available_kb()
            latencies: list[float] = []
            walls: list[float] = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                latencies += await asyncio.gather(*(run(s, "print(1)") for s in sessions))
                walls.append((time.perf_counter() - t0) * 1e3)
            steps.append(
                {
                    "sessions": size,
                    "processes": sum(m["processes"] for m in mems),
                    "total_kb": {
                        "rss": sum(m["rss_kb"] for m in mems),
                        "pss": sum(m["pss_kb"] for m in mems),
                    },
                    "per_session_kb": {
                        "rss": sum(m["rss_kb"] for m in mems) / size,
                        "pss": sum(m["pss_kb"] for m in mems) / size,
                        "mem_available_drop": dropped_kb / size,
                    },
                    "call_ms": dist(latencies),
                    "round_wall_ms": dist(walls),
                    "setup_ms_so_far": dist(setup_ms, 90),
                    "elapsed_s": time.monotonic() - began,
                }
            )
            print(f"capacity: {size} sessions, {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    finally:
        await side.close()
    return steps


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(r: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []
    cold = {n: [s["pool_session_ms"] + s["start_ms"] for s in v] for n, v in r["cold_start_ms"].items()}
    for label, data, high in (
        ("session start, cold (fresh pool: probes)", cold, 90),
        ("session start, warm", r["warm_start_ms"], 90),
        ("`print(1)` on a started session", r["call_ms"], 99),
        (f"first `{IMPORT}`", {n: v["ms"] for n, v in r["import"].items()}, 90),
        *((f"... of which `{c}`", {n: v[c] for n, v in r["import"].items()}, 90) for c in IMPORT_PARTS),
    ):
        b, u = dist(data["bubblewrap"], high), dist(data["unsandboxed"], high)
        key = f"p{high:g}"
        rows.append(
            (
                f"{label}, p50 / {key}",
                f"{ms(b['p50'])} / {ms(b[key])} ms",
                f"{ms(u['p50'])} / {ms(u[key])} ms",
                f"{ratio(b['p50'], u['p50'])} / {ratio(b[key], u[key])}",
            )
        )
    mem = {
        n: (statistics.fmean(v["rss_kb"]) / 1024, statistics.fmean(v["pss_kb"]) / 1024)
        for n, v in r["import"].items()
    }
    rows.append(
        (
            "memory of one session after that import, Rss / Pss",
            f"{mem['bubblewrap'][0]:.0f} / {mem['bubblewrap'][1]:.0f} MiB",
            f"{mem['unsandboxed'][0]:.0f} / {mem['unsandboxed'][1]:.0f} MiB",
            f"{ratio(mem['bubblewrap'][0], mem['unsandboxed'][0])} / "
            f"{ratio(mem['bubblewrap'][1], mem['unsandboxed'][1])}",
        )
    )
    lines = ["| Measure | bubblewrap | floor (unsandboxed) | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    single = dist(r["call_ms"]["bubblewrap"])
    lines += [
        "",
        f"Sessions alive at once, each having imported pandas (single-session `print(1)`: p50 "
        f"{single['p50']:.2f} ms, p99 {single['p99']:.2f} ms):",
        "",
        "| sessions | per session Rss / Pss / MemAvailable drop | all called at once: `print(1)` p50 / p99 "
        "| vs single p50 | round wall p50 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for step in r["capacity"]:
        if "skipped" in step:
            lines.append(f"| {step['sessions']} | not run: {step['skipped']} | | | |")
            continue
        per, call = step["per_session_kb"], step["call_ms"]
        lines.append(
            f"| {step['sessions']} | {per['rss'] / 1024:.0f} / {per['pss'] / 1024:.0f} / "
            f"{per['mem_available_drop'] / 1024:.0f} MiB | {ms(call['p50'])} / {ms(call['p99'])} ms "
            f"| {ratio(call['p50'], single['p50'])} | {ms(step['round_wall_ms']['p50'])} ms |"
        )
    return lines


async def run_all(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"args": vars(args), "phase_s": {}}
    began = time.monotonic()

    def done(phase: str) -> None:
        nonlocal began
        results["phase_s"][phase] = time.monotonic() - began
        print(f"{phase}: {results['phase_s'][phase]:.1f} s", file=sys.stderr, flush=True)
        began = time.monotonic()

    results["cold_start_ms"] = await cold_starts(tmp, args.cold)
    done("cold starts")
    sides = {name: Side(name, tmp / name) for name in ("bubblewrap", "unsandboxed")}
    try:
        results["warm_start_ms"] = await warm_starts(sides, args.starts)
        done("warm starts")
        results["call_ms"] = await calls(sides, args.calls)
        done("calls")
        results["import"] = await imports(sides, args.imports)
        done("imports")
    finally:
        for side in sides.values():
            await side.close()
    results["capacity"] = await capacity(tmp, args.max_sessions, args.rounds, args.budget_s)
    done("capacity")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", type=int, default=10, help="cold starts per side (default 10)")
    parser.add_argument("--starts", type=int, default=20, help="warm starts per side (default 20)")
    parser.add_argument("--calls", type=int, default=200, help="print(1) calls per side (default 200)")
    parser.add_argument("--imports", type=int, default=5, help="first imports per side (default 5)")
    parser.add_argument("--max-sessions", type=int, default=64, help="largest N of phase 4 (default 64)")
    parser.add_argument(
        "--rounds", type=int, default=20, help="concurrent print(1) rounds per N (default 20)"
    )
    parser.add_argument("--budget-s", type=float, default=100.0, help="time budget of phase 4 (default 100)")
    args = parser.parse_args()
    # pool.session warns on every unsandboxed session (a development setting): expected here.
    logging.basicConfig(level=logging.ERROR)
    tag = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    load_before, busy_before, began = os.getloadavg(), machine.busy_s(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="threadline-bench-ci-") as tmp:
        results = asyncio.run(run_all(args, Path(tmp)))
    wall = time.monotonic() - began
    lines = table(results)
    results |= {
        "date": tag,
        "machine": machine.describe(),
        "wall_s": wall,
        "machine_busy_cpu_s": machine.busy_s() - busy_before,
        "own_cpu_s": own_cpu_s(),
        "other_cpu_s": 0.0,
        "loadavg": {"before": load_before, "after": os.getloadavg()},
        "table": lines,
    }
    # What other work took meanwhile: on this shared machine that is the noise in the absolute figures.
    results["other_cpu_s"] = results["machine_busy_cpu_s"] - results["own_cpu_s"]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"code-interpreter-{tag}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(
        f"{tag} · {results['machine']} · {wall:.0f} s; CPU-s: this bench {results['own_cpu_s']:.0f}, "
        f"other processes {results['other_cpu_s']:.0f}\n"
    )
    print("\n".join(lines))
    print(f"\nraw figures: {out.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
