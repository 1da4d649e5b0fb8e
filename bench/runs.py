"""Runs benchmark: one scripted model (bench/runs_model.py) called directly vs through Threadline.

    .venv/bin/python bench/runs.py [--profile]

Three processes on 127.0.0.1: the model server, ``threadline serve`` (SQLite, embedded executor) and
this client (official ``openai`` SDK, AsyncOpenAI on uvloop). Direct and through-Threadline requests
are interleaved one by one so that drift lands on both sides. Measured:
  1. added time-to-first-token: first ``thread.message.delta`` after sending create-run, minus the
     first content delta after sending the chat request (p50, p99);
  2. tokens/s of a 500-token answer, end to end, with no and with 1 ms per-token delay;
  3. create-run -> completed with a 1-token instant model: ``create_and_poll`` (the server's
     ``openai-poll-after-ms``) and a ``stream=True`` run until ``thread.run.completed``;
  4. 200 concurrent streaming runs (50 tokens, 20 ms apart) on 200 threads, and the same 200 streams
     direct as the floor.
``--profile`` then repeats phases 1 and 4 under py-spy (server process, GIL samples) and writes the
summaries next to the raw figures in bench/results/runs-<time>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from openai import AsyncOpenAI

import machine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
INSTRUCTIONS = "You are a terse benchmark assistant."
QUESTION = "Say something."
PROMPT: list[Any] = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}]
TTFT_PAIRS, WARMUP = 200, 20
THROUGHPUT = (("bench-500-0", 10), ("bench-500-1", 5))  # (script, repetitions)
LATENCY_PAIRS = 100
CONCURRENT, CONCURRENT_SCRIPT, CONCURRENT_TIMEOUT_S = 200, "bench-50-20", 60.0
PROFILE_S = 6
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}


@dataclass
class Timing:
    """perf_counter instants of one streamed answer."""

    sent: float
    first: float = math.nan
    last: float = math.nan
    end: float = math.nan  # direct: the stream ended; through: thread.run.<terminal> arrived
    tokens: int = 0
    status: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # first arrival of each event, ms after sent

    def token(self, count: int = 1) -> None:
        self.last = time.perf_counter()
        if not self.tokens:
            self.first = self.last
        self.tokens += count

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.sent) * 1e3

    @property
    def total_ms(self) -> float:
        return (self.end - self.sent) * 1e3

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / (self.last - self.sent)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99), "max": max(values)}


@dataclass
class Bench:
    direct: AsyncOpenAI
    threadline: AsyncOpenAI
    assistant_id: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    async def thread(self) -> str:
        created = await self.threadline.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
        return created.id

    async def call_direct(self, model: str) -> Timing:
        timing = Timing(time.perf_counter())
        stream = await self.direct.chat.completions.create(
            model=model, messages=PROMPT, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                timing.token()
        timing.end, timing.status = time.perf_counter(), "completed"
        return timing

    async def call_through(self, thread_id: str, model: str) -> Timing:
        timing = Timing(time.perf_counter())
        stream = await self.threadline.beta.threads.runs.create(
            thread_id, assistant_id=self.assistant_id, model=model, stream=True
        )
        async for event in stream:
            timing.marks.setdefault(event.event, (time.perf_counter() - timing.sent) * 1e3)
            if event.event == "thread.message.delta":
                # Threadline coalesces token deltas (up to 20 ms or 16 tokens an event), so count the
                # model's tokens in the text: each is one word and a space (bench/runs_model.py).
                timing.token(
                    sum(
                        part.text.value.count(" ")
                        for part in event.data.delta.content or ()
                        if part.type == "text" and part.text and part.text.value
                    )
                )
            elif (status := event.event.removeprefix("thread.run.")) in TERMINAL:
                timing.end, timing.status = time.perf_counter(), status
            elif event.event == "error":
                timing.status = "error"
        return timing

    async def pairs(self, model: str, count: int) -> tuple[list[Timing], list[Timing]]:
        """``count`` direct and through answers, alternating which goes first; a fresh thread each."""
        direct: list[Timing] = []
        through: list[Timing] = []
        for i in range(count):
            thread_id = await self.thread()
            if i % 2:
                through.append(await self.call_through(thread_id, model))
                direct.append(await self.call_direct(model))
            else:
                direct.append(await self.call_direct(model))
                through.append(await self.call_through(thread_id, model))
        return direct, through

    async def ttft(self) -> None:
        await self.pairs("bench-5-0", WARMUP)
        direct, through = await self.pairs("bench-5-0", TTFT_PAIRS)
        d, t = dist([x.ttft_ms for x in direct]), dist([x.ttft_ms for x in through])
        added = {"p50": t["p50"] - d["p50"], "p99": t["p99"] - d["p99"]}
        # Where the time goes: p50 arrival of each event before the first delta (SSE prelude: after the
        # create transaction; in_progress: after the claim; message.created: after the first model token
        # and the open-message transaction).
        names = ("thread.run.created", "thread.run.in_progress", "thread.message.created")
        path = {n: pct([x.marks[n] for x in through if n in x.marks], 50) for n in names}
        self.results["ttft_ms"] = {"direct": d, "through": t, "added": added, "through_path_p50": path}

    async def throughput(self) -> None:
        for model, reps in THROUGHPUT:
            with cpu_meter() as cpu:
                direct, through = await self.pairs(model, reps)
            d = sorted(x.tokens_per_s for x in direct)[reps // 2]
            t = sorted(x.tokens_per_s for x in through)[reps // 2]
            tokens = {x.tokens for x in direct + through}
            self.results[f"tokens_per_s {model}"] = {
                "direct": d,
                "through": t,
                "ratio": t / d,
                "tokens_seen": sorted(tokens),
                "cpu_s": cpu,
            }

    async def create_to_completed(self) -> None:
        model = "bench-1-0"
        polled: list[float] = []
        streamed: list[Timing] = []
        for i in range(WARMUP + LATENCY_PAIRS):
            poll_thread, stream_thread = await self.thread(), await self.thread()
            sent = time.perf_counter()
            run = await self.threadline.beta.threads.runs.create_and_poll(
                thread_id=poll_thread, assistant_id=self.assistant_id, model=model
            )
            elapsed_ms = (time.perf_counter() - sent) * 1e3
            timing = await self.call_through(stream_thread, model)
            if i >= WARMUP:
                assert run.status == "completed" and timing.status == "completed", (run.status, timing)
                polled.append(elapsed_ms)
                streamed.append(timing)
        self.results["create_to_completed_ms"] = {
            "create_and_poll": dist(polled) | {"share_over_50ms": sum(p > 50 for p in polled) / len(polled)},
            "stream_until_completed": dist([x.total_ms for x in streamed]),
        }

    async def concurrent(self) -> None:
        threads = await bounded([self.thread for _ in range(CONCURRENT)], 20)
        await self.call_direct(CONCURRENT_SCRIPT)  # warm the direct pool's first connection
        calls: dict[str, Callable[[str], Awaitable[Timing]]] = {
            "direct": lambda _thread_id: self.call_direct(CONCURRENT_SCRIPT),
            "through": lambda thread_id: self.call_through(thread_id, CONCURRENT_SCRIPT),
        }
        for name, call in calls.items():
            with cpu_meter() as cpu:
                start = time.perf_counter()
                try:
                    outcomes: list[Timing | BaseException] = await asyncio.wait_for(
                        asyncio.gather(*(call(t) for t in threads), return_exceptions=True),
                        CONCURRENT_TIMEOUT_S,
                    )
                except TimeoutError as timeout:
                    outcomes = [timeout] * len(threads)
                wall_s = time.perf_counter() - start
            ok = [o for o in outcomes if isinstance(o, Timing) and o.status == "completed" and o.tokens == 50]
            errors = [repr(o)[:200] for o in outcomes if not (isinstance(o, Timing) and o in ok)]
            self.results[f"concurrent_{name}"] = {
                "runs": len(outcomes),
                "errors": len(errors),
                "error_samples": errors[:3],
                "wall_s": wall_s,
                "duration_ms": dist([o.total_ms for o in ok]) if ok else {},
                "ttft_ms": dist([o.ttft_ms for o in ok]) if ok else {},
                "cpu_s": cpu,
            }


async def bounded(factories: list[Callable[[], Awaitable[str]]], limit: int) -> list[str]:
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[str]]) -> str:
        async with gate:
            return await factory()

    return list(await asyncio.gather(*(one(f) for f in factories)))


PIDS: dict[str, int] = {}


def _cpu_now() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ours = {"client": usage.ru_utime + usage.ru_stime}
    ours |= {name: machine.process_cpu_s(pid) for name, pid in PIDS.items()}
    return ours | {"other": machine.busy_s() - sum(ours.values())}


@contextmanager
def cpu_meter() -> Iterator[dict[str, float]]:
    """CPU seconds each process (client, model, threadline) and everything else on the machine
    ("other": a noisy neighbour shows up here) spent inside the block."""
    spent: dict[str, float] = {}
    before = _cpu_now()
    yield spent
    spent.update({k: round(v - before[k], 2) for k, v in _cpu_now().items()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_model() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, str(BENCH / "runs_model.py")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 10)[0]:
        raise RuntimeError("model server did not start")
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://{HOST}:{port}/v1"


def start_threadline(data_dir: Path, upstream: str, log_level: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "threadline"), "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--upstream-base-url", upstream, "--log-level", log_level]
    # Phase 4 holds 200 runs at once, above the default admission bounds (64 queued or executing, in
    # the deployment and in a project).
    command += ["--run-queue-max", "1000", "--project-max-active-runs", "1000"]
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/assistants?limit=1", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"threadline did not start: {(data_dir / 'server.log').read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def profile(bench: Bench, tag: str) -> dict[str, list[str]]:
    """Phases 1, 2 and 4 again, each for a few seconds, with py-spy recording the Threadline server."""
    import pyspy  # bench/pyspy.py, shared with the core benchmark

    threads = await bounded([bench.thread for _ in range(CONCURRENT)], 20)
    wave = CONCURRENT_SCRIPT

    async def loop(model: str) -> None:
        for i in range(10_000):  # bounded by the caller's deadline
            await bench.call_through(threads[i % len(threads)], model)

    async def waves() -> None:
        for _ in range(10):
            await asyncio.gather(*(bench.call_through(t, wave) for t in threads))

    summaries: dict[str, list[str]] = {}
    for name, work in (("ttft", loop("bench-5-0")), ("stream", loop("bench-500-0")), ("concurrent", waves())):
        raw = RESULTS / f"profile-runs-{name}-{tag}.txt"
        spy = pyspy.start(PIDS["threadline"], PROFILE_S, raw)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work, PROFILE_S + 1)
        spy.wait(30)
        await asyncio.sleep(2)  # let cut-off runs finish before the next phase reuses their threads
        summaries[name] = pyspy.summary(raw)
        (RESULTS / f"profile-runs-{name}-{tag}.summary.txt").write_text("\n".join(summaries[name]) + "\n")
    return summaries


def table(r: dict[str, Any]) -> list[str]:
    ttft, lat = r["ttft_ms"], r["create_to_completed_ms"]
    rows = [
        (
            "Added TTFT p50",
            f"{ttft['added']['p50']:+.1f} ms "
            f"(direct {ttft['direct']['p50']:.1f}, through {ttft['through']['p50']:.1f})",
            "≤ 10 ms",
            ttft["added"]["p50"] <= 10,
        ),
        (
            "Added TTFT p99",
            f"{ttft['added']['p99']:+.1f} ms "
            f"(direct {ttft['direct']['p99']:.1f}, through {ttft['through']['p99']:.1f})",
            "(report)",
            None,
        ),
    ]
    for model, _ in THROUGHPUT:
        t = r[f"tokens_per_s {model}"]
        rows.append(
            (
                f"tokens/s, 500 tokens, {model.rsplit('-', 1)[1]} ms/token",
                f"{t['ratio']:.0%} (direct {t['direct']:.0f}/s, through {t['through']:.0f}/s)",
                "≥ 90 %",
                t["ratio"] >= 0.9,
            )
        )
    poll, streamed = lat["create_and_poll"], lat["stream_until_completed"]
    rows += [
        (
            "create→completed p50, stream=True",
            f"{streamed['p50']:.1f} ms (p99 {streamed['p99']:.1f})",
            "≤ 10 ms",
            streamed["p50"] <= 10,
        ),
        (
            "create→completed p50, create_and_poll",
            f"{poll['p50']:.1f} ms (p99 {poll['p99']:.1f})",
            "≤ 10 ms",
            poll["p50"] <= 10,
        ),
    ]
    d, t = r["concurrent_direct"], r["concurrent_through"]
    td, dd = t.get("duration_ms") or {"p50": math.nan, "p99": math.nan}, d.get("duration_ms") or {}
    rows.append(
        (
            "200 concurrent streaming runs (50 tokens, 20 ms apart)",
            f"{t['errors']} errors, wall {t['wall_s']:.2f} s, run p50 {td['p50']:.0f} / p99 "
            f"{td['p99']:.0f} ms (direct: wall {d['wall_s']:.2f} s, p50 "
            f"{dd.get('p50', math.nan):.0f} / p99 {dd.get('p99', math.nan):.0f} ms; ideal 1000)",
            "0 errors",
            t["errors"] == 0,
        )
    )
    lines = ["| Measure | Result | Target | |", "|---|---|---|---|"]
    for name, result, target, ok in rows:
        verdict = "" if ok is None else ("pass" if ok else "**miss**")
        lines.append(f"| {name} | {result} | {target} | {verdict} |")
    return lines


async def run_all(args: argparse.Namespace, model_url: str, threadline_url: str, tag: str) -> dict[str, Any]:
    bench = Bench(
        direct=AsyncOpenAI(base_url=model_url, api_key="bench", max_retries=0, timeout=60),
        threadline=AsyncOpenAI(base_url=threadline_url, api_key="bench", max_retries=0, timeout=60),
    )
    assistant = await bench.threadline.beta.assistants.create(model="bench-5-0", instructions=INSTRUCTIONS)
    bench.assistant_id = assistant.id
    for phase in (bench.ttft, bench.throughput, bench.create_to_completed, bench.concurrent):
        started = time.monotonic()
        with cpu_meter() as cpu:
            await phase()
        bench.results.setdefault("phase_cpu_s", {})[phase.__name__] = cpu
        print(
            f"{phase.__name__}: {time.monotonic() - started:.1f} s, CPU s {cpu}", file=sys.stderr, flush=True
        )
    if args.profile:
        bench.results["profiles"] = await profile(bench, tag)
    await bench.direct.close()
    await bench.threadline.close()
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="also record phases 1 and 4 with py-spy")
    parser.add_argument(
        "--log-level",
        default="warning",
        help="the server's; info measures it with its access and run lines on (default warning)",
    )
    args = parser.parse_args()
    tag = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="threadline-bench-runs-") as tmp:
        model, model_url = start_model()
        try:
            server, threadline_url = start_threadline(Path(tmp), model_url, args.log_level)
            try:
                PIDS.update(model=model.pid, threadline=server.pid)
                results = uvloop.run(run_all(args, model_url, threadline_url, tag))
            finally:
                stop(server)
        finally:
            stop(model)
    lines = table(results)
    results |= {"date": tag, "machine": machine.describe(), "loadavg_at_end": os.getloadavg(), "table": lines}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"runs-{tag}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"{tag} · {results['machine']}\n")
    print("\n".join(lines))
    for name, summary in results.get("profiles", {}).items():
        print(f"\nprofile {name} (threadline process):\n" + "\n".join(summary[:40]))
    print(f"\nraw figures: {out.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
