"""Mixed load: API throughput and latency while runs execute, on SQLite and PostgreSQL ("Under load").

    .venv/bin/python bench/mixed.py [--duration 15] [--only sqlite|postgres] [--rate 20] [--overload-rate 50]

The other benches measure the API (core.py, scaleout.py) and runs (runs.py) each on an idle server;
an operator's server does both at once, and the executor shares the API process's event loop, its
database connections and (PostgreSQL) the database's CPU. This measures what runs cost the API and
what API load costs runs. Per configuration it starts ``threadline serve`` (embedded executor) on a
fresh, seeded database, then at once:

- **API load**: wrk ``-t1 -c32`` with bench/wrk/ops.lua's ``mixed`` operation: 40 % get a thread,
  25 % create a message, 25 % list 20 messages (of a 10,000-message thread), 10 % create a thread,
  on threads seeded beforehand (scaleout.seed);
- **runs**: this process offers create-thread-and-run at a fixed rate (open loop: one every
  1/rate s whatever the server answers), half of them streamed (time to first token = the first
  ``thread.message.delta``; create → completed = ``thread.run.completed``), half not (create, then
  the SDK poll helper's held GET until the run settles); the model is bench/runs_model.py's script,
  50 tokens 20 ms apart by default. Refusals (429, ``THREADLINE_RUN_QUEUE_MAX``) are counted.

Configurations: SQLite with no runs, at --rate and at --overload-rate; PostgreSQL with 1 process with
no runs and at --rate; PostgreSQL ``--workers 2`` at --rate. Printed: per configuration API req/s,
p50/p99/max, Threadline's CPU per API request (every process of the server, /proc/<pid>/stat; it
includes the runs' work), runs' TTFT and create → completed p50/p99, refused and failed runs, and the
CPU of PostgreSQL, the model, wrk, this driver and everything else; then the table and the issue's
ratios. Everything binds to 127.0.0.1; every phase is bounded in time. Raw figures:
bench/results/mixed-<time>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvloop

import core
import machine
import runs
import scaleout
import wrk_run

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
API_KEY = "sk-bench"  # what bench/wrk/ops.lua sends
QUESTION = "Say something."
# The text of a thread.message.delta's parts, as orjson writes it (no spaces between tokens).
TEXT_VALUE = re.compile(rb'"value":"((?:[^"\\]|\\.)*)"')
STOPPED = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}
RUN_TIMEOUT_S = 60.0  # one run, create to settled; far above any run of these scripts
DRAIN_S = 60.0  # after the measured window, for the runs still on their way
# The targets.
TARGET_PG_UNDER_RUNS = 0.70
TARGET_WORKERS = 1.0
TARGET_SQLITE_UNDER_RUNS = 0.80
TARGET_OVERLOAD_TTFT_P99_MS = 1000.0


@dataclass(frozen=True)
class Config:
    backend: str  # sqlite | postgres
    workers: int
    rate: float  # runs offered per second; 0: none

    @property
    def name(self) -> str:
        runs_part = f"{self.rate:g} runs/s" if self.rate else "no runs"
        procs = f"--workers {self.workers}" if self.workers > 1 else "1 process"
        return f"{'SQLite' if self.backend == 'sqlite' else 'PostgreSQL'}, {procs}, {runs_part}"


@dataclass
class RunSample:
    streamed: bool
    sent: float  # perf_counter
    late_ms: float = 0.0  # sent after its slot in the schedule: this process was too busy to keep up
    outcome: str = ""  # completed | refused | <status> | error: ...
    first_ms: float = math.nan  # streamed: the first text delta
    done_ms: float = math.nan  # thread.run.completed, or the poll that saw the run settle
    tokens: int = 0  # streamed: the model's words seen in the deltas


@dataclass
class Measured:
    config: Config
    wrk: dict[str, Any]
    cpu_s: dict[str, float]
    window_s: float
    samples: list[RunSample] = field(default_factory=list)
    fresh_ms: list[float] = field(default_factory=list)  # FreshConnections' latencies
    fresh_errors: list[str] = field(default_factory=list)
    server_problems: list[str] = field(default_factory=list)  # WARNING/ERROR lines of its log

    @property
    def rps(self) -> float:
        return int(self.wrk["requests"]) / (int(self.wrk["duration_us"]) / 1e6)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s["threadline"] * 1e6 / max(1, int(self.wrk["requests"]))

    @property
    def cpu_ms_per_run(self) -> float:
        """Threadline's CPU over the window per run offered in it (runs alone: what a run costs)."""
        return self.cpu_s["threadline"] * 1e3 / max(1, len(self.samples))

    def outcomes(self, outcome: str) -> list[RunSample]:
        return [s for s in self.samples if s.outcome == outcome]

    def summary(self) -> dict[str, Any]:
        done = self.outcomes("completed")
        streamed = [s for s in done if s.streamed]
        return {
            "offered": len(self.samples),
            "offered_per_s": len(self.samples) / self.window_s,
            "completed": len(done),
            "refused": len(self.outcomes("refused")),
            "failed": len(self.samples) - len(done) - len(self.outcomes("refused")),
            "failures": sorted({s.outcome for s in self.samples} - {"completed", "refused"})[:5],
            "offer_late_ms": runs.dist([s.late_ms for s in self.samples]) if self.samples else {},
            "ttft_ms": runs.dist([s.first_ms for s in streamed]) if streamed else {},
            "create_to_completed_ms": runs.dist([s.done_ms for s in done]) if done else {},
            "create_to_completed_streamed_ms": runs.dist([s.done_ms for s in streamed]) if streamed else {},
            "fresh_connection_ms": runs.dist(self.fresh_ms) if self.fresh_ms else {},
            "fresh_connection_errors": len(self.fresh_errors),
        }


# --- runs -----------------------------------------------------------------------------------------


class Driver:
    """Offers create-thread-and-run at a fixed rate. Raw httpx rather than the openai SDK: the SDK's
    pydantic models cost ≈ 10x the CPU per streamed event, and this process shares two cores with the
    server it measures. The requests are the SDK's: the same body, and for the polled half its poll
    helper's header, which the server answers when the run settles (api/runs.py)."""

    def __init__(self, client: httpx.AsyncClient, assistant_id: str, tokens: int) -> None:
        self.client, self.assistant_id, self.tokens = client, assistant_id, tokens
        self.samples: list[RunSample] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def body(self, streamed: bool) -> dict[str, Any]:
        thread = {"messages": [{"role": "user", "content": QUESTION}]}
        return {"assistant_id": self.assistant_id, "thread": thread, "stream": streamed}

    async def streamed(self, sample: RunSample) -> None:
        async with self.client.stream("POST", "/v1/threads/runs", json=self.body(True)) as response:
            if response.status_code != 200:
                await response.aread()
                sample.outcome = "refused" if response.status_code == 429 else f"http {response.status_code}"
                return
            # Parsed as bytes, event by event ("event: NAME\ndata: JSON\n\n", api/sse.py): at 50
            # runs/s this process reads ≈ 1,000 events a second, and must not be what lags.
            pending = b""
            async for chunk in response.aiter_bytes():
                *events, pending = (pending + chunk).split(b"\n\n")
                for raw in events:
                    head, _, data = raw.partition(b"\ndata: ")
                    event = head.removeprefix(b"event: ")
                    if event == b"thread.message.delta":
                        if math.isnan(sample.first_ms):
                            sample.first_ms = (time.perf_counter() - sample.sent) * 1e3
                        # Deltas are coalesced (up to 20 ms or 16 tokens an event): count the
                        # model's words, one word and a space each (bench/runs_model.py), as
                        # runs.py does.
                        sample.tokens += sum(v.count(b" ") for v in TEXT_VALUE.findall(data))
                    elif (status := event.removeprefix(b"thread.run.").decode()) in STOPPED:
                        sample.done_ms = (time.perf_counter() - sample.sent) * 1e3
                        sample.outcome = status
                    elif event == b"error":
                        sample.outcome = f"error event: {data[:200].decode(errors='replace')}"
        if sample.outcome == "completed" and sample.tokens != self.tokens:
            sample.outcome = f"completed with {sample.tokens} tokens"
        sample.outcome = sample.outcome or "stream ended early"

    async def polled(self, sample: RunSample) -> None:
        response = await self.client.post("/v1/threads/runs", json=self.body(False))
        if response.status_code != 200:
            sample.outcome = "refused" if response.status_code == 429 else f"http {response.status_code}"
            return
        run = response.json()
        url = f"/v1/threads/{run['thread_id']}/runs/{run['id']}"
        # The SDK's create_and_run_poll: GET with the poll-helper header until the run settles,
        # sleeping openai-poll-after-ms between GETs (the server holds each GET up to 5 s, so this
        # is one or two GETs a run).
        while run["status"] not in STOPPED:
            response = await self.client.get(url, headers={"X-Stainless-Poll-Helper": "true"})
            response.raise_for_status()
            run = response.json()
            if run["status"] not in STOPPED:
                await asyncio.sleep(int(response.headers.get("openai-poll-after-ms", "1000")) / 1e3)
        sample.done_ms = (time.perf_counter() - sample.sent) * 1e3
        sample.outcome = run["status"]

    async def one(self, streamed: bool, at: float) -> None:
        sample = RunSample(streamed, time.perf_counter())
        sample.late_ms = (sample.sent - at) * 1e3
        self.samples.append(sample)
        try:
            async with asyncio.timeout(RUN_TIMEOUT_S):
                await (self.streamed(sample) if streamed else self.polled(sample))
        except (TimeoutError, httpx.HTTPError) as exc:
            sample.outcome = f"error: {type(exc).__name__} {str(exc)[:120]}"

    async def offer(self, rate: float, until: float) -> None:
        """One run every 1/rate s until ``until`` (perf_counter), alternating streamed and polled. The
        schedule is fixed: a late start (a busy event loop) is caught up, not skipped."""
        start = time.perf_counter()
        for i in itertools.count():
            at = start + i / rate
            if at >= until:
                return
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            task = asyncio.create_task(self.one(i % 2 == 0, at))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class FreshConnections:
    """A client that opens a new TCP connection for every request (no keep-alive), at a fixed rate,
    open loop: GET one seeded thread, ``Connection: close``, timed from connect to the end of the
    answer. What such a client waits for is mostly the server accepting and first reading its
    connection while the loop is busy with the mix."""

    def __init__(self, url: str, thread_id: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.request = (
            f"GET /v1/threads/{thread_id} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nOpenAI-Beta: assistants=v2\r\nConnection: close\r\n\r\n"
        ).encode()
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def one(self) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(RUN_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self.request)
                answer = await reader.read()  # to EOF: the server closes after its answer
                writer.close()
        except (OSError, TimeoutError) as exc:
            self.errors.append(type(exc).__name__)
            return
        if not answer.startswith(b"HTTP/1.1 200"):
            self.errors.append(answer[:40].decode(errors="replace"))
            return
        self.latencies_ms.append((time.perf_counter() - started) * 1e3)

    async def offer(self, rate: float) -> None:
        start = time.perf_counter()
        for i in itertools.count():
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            task = asyncio.create_task(self.one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=DRAIN_S)


# --- CPU ------------------------------------------------------------------------------------------


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every process."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                rest = (entry / "stat").read_text().rpartition(")")[2]
            except OSError:
                continue  # exited meanwhile
            table[int(entry.name)] = int(rest.split()[1])
    return table


def tree(root: int, table: dict[int, int]) -> set[int]:
    """``root`` and its descendants (``--workers 2``: uvicorn's supervisor and its API processes)."""
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in table.items() if ppid == parent]
        found.update(children)
        frontier += children
    return found


def _cpu_of(pids: set[int]) -> dict[int, float]:
    spent: dict[int, float] = {}
    for pid in pids:
        try:
            spent[pid] = machine.process_cpu_s(pid)
        except OSError:
            continue
    return spent


class PostgresBackends:
    """The PostgreSQL backends connected to this configuration's database (the server is shared
    with other work on this machine, so not every postgres process is ours). The connection is
    opened before the load starts: connecting on a saturated machine can take long, and the query
    runs on the driver's event loop."""

    def __init__(self, database_url: str) -> None:
        self.name = database_url.rpartition("/")[2]
        self.conn = psycopg.connect(scaleout.admin_url(), autocommit=True) if database_url else None

    def pids(self) -> set[int]:
        if self.conn is None:
            return set()
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
        return {int(pid) for (pid,) in self.conn.execute(query, (self.name,)).fetchall()}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


@contextmanager
def cpu_meter(server_pid: int, model_pid: int, backends: PostgresBackends) -> Iterator[dict[str, float]]:
    """CPU seconds spent inside the block by the server's processes, the PostgreSQL backends of its
    database (not PostgreSQL's shared writer and checkpointer processes), the model, wrk (this
    process's reaped children), this process, and everything else on the machine."""
    groups = {"threadline": tree(server_pid, _process_table()), "model": {model_pid}}
    groups["postgres"] = backends.pids()
    before = {name: _cpu_of(pids) for name, pids in groups.items()}
    wrk0, self0, busy0 = core.children_cpu_s(), _self_cpu_s(), machine.busy_s()
    spent: dict[str, float] = {}
    yield spent
    # Processes started meanwhile (a backend for a new pooled connection) count from zero; those
    # that ended meanwhile are lost, and land in "other".
    groups["threadline"] |= tree(server_pid, _process_table())
    groups["postgres"] |= backends.pids()
    for name, pids in groups.items():
        after = _cpu_of(pids)
        spent[name] = sum(v - before[name].get(pid, 0.0) for pid, v in after.items())
    spent["wrk"] = core.children_cpu_s() - wrk0
    spent["driver"] = _self_cpu_s() - self0
    spent["other"] = max(0.0, machine.busy_s() - busy0 - sum(spent.values()))


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- one configuration ----------------------------------------------------------------------------


def wait_for_processes(log_path: Path, processes: int) -> None:
    """core.serve returns at the first HTTP answer; with ``--workers 2`` wait for both processes."""
    deadline = time.monotonic() + 60
    while log_path.read_text(errors="replace").count("Application startup complete") < processes:
        if time.monotonic() > deadline:
            sys.exit(f"error: {processes} API processes did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


async def create_assistant(client: httpx.AsyncClient, model: str) -> str:
    response = await client.post("/v1/assistants", json={"model": model, "instructions": "Be terse."})
    response.raise_for_status()
    assistant_id: str = response.json()["id"]
    return assistant_id


async def load(
    args: argparse.Namespace, wrk: str, config: Config, target: core.Target, model_pid: int, pg_url: str
) -> Measured:
    """wrk's warm-up then its measured run, with runs offered throughout; the runs counted are those
    created inside the measured run."""
    ids = target.ids_dir
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(
        base_url=target.url, headers=headers, limits=limits, timeout=RUN_TIMEOUT_S
    ) as client:
        driver = Driver(client, await create_assistant(client, args.model), args.tokens)

        def run_wrk(seconds: int) -> dict[str, Any]:
            if not args.connections:  # runs alone: the same window, no API load
                time.sleep(seconds)
                idle = {"requests": 0, "duration_us": seconds * 1e6, "p50_us": 0, "p99_us": 0, "max_us": 0}
                return idle | {"errors_status": 0, "errors_socket": 0}
            return wrk_run.run_wrk(
                wrk,
                target.url,
                "mixed",
                ids / "threads.txt",
                args.connections,
                seconds,
                20,
                ids / "list10k.txt",
            )

        # The runs start with wrk's warm-up, so that the measured run sees as many in flight as steady
        # state has; they are offered until the measured run ends (then the task is cancelled).
        backends = PostgresBackends(pg_url)
        offering = asyncio.create_task(driver.offer(config.rate, math.inf)) if config.rate else None
        try:
            if args.warmup:
                await asyncio.to_thread(run_wrk, args.warmup)
            first = len(driver.samples)
            thread_id = (ids / "threads.txt").read_text().split()[0]
            fresh = FreshConnections(target.url, thread_id)
            probing = asyncio.create_task(fresh.offer(args.fresh_rate)) if args.fresh_rate else None
            with cpu_meter(target.pid, model_pid, backends) as cpu:
                started = time.perf_counter()
                record = await asyncio.to_thread(run_wrk, args.duration)
                window_s = time.perf_counter() - started
            last = len(driver.samples)
            if probing is not None:
                probing.cancel()
            await fresh.drain()
        except BaseException:
            for task in driver.tasks:  # before the client closes under them
                task.cancel()
            raise
        finally:
            backends.close()
            if offering is not None:
                offering.cancel()
        await driver.drain()
    if record["errors_status"] or record["errors_socket"]:
        print(f"  warning: wrk: {record['errors_status']} non-2xx, {record['errors_socket']} socket errors")
    return Measured(
        config, record, cpu, window_s, driver.samples[first:last], fresh.latencies_ms, fresh.errors
    )


def measure(
    args: argparse.Namespace, wrk: str, config: Config, work: Path, model_url: str, model_pid: int
) -> Measured:
    directory = work / f"{config.backend}-{config.workers}-{config.rate:g}"
    directory.mkdir()
    pg_url = scaleout.create_pg_database() if config.backend == "postgres" else ""
    try:
        scaleout.seed(pg_url, directory / "data", directory)
        port = core.free_port()
        cmd = [str(ROOT / ".venv" / "bin" / "threadline"), "serve", "--host", HOST, "--port", str(port)]
        cmd += ["--data-dir", str(directory / "data"), "--workers", str(config.workers)]
        cmd += ["--upstream-base-url", model_url, "--log-level", "info"]  # info: the start-up lines
        cmd += [] if args.access_log else ["--no-access-log"]
        cmd += ["--event-loop", args.event_loop]
        if args.run_queue_max is not None:
            cmd += ["--run-queue-max", str(args.run_queue_max)]
            cmd += ["--project-max-active-runs", str(args.run_queue_max)]  # one project: the same bound
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
        env |= {"THREADLINE_API_KEYS": API_KEY, "THREADLINE_DATABASE_URL": pg_url}
        try:
            with core.serve(config.name, cmd, env, directory, port) as target:
                wait_for_processes(directory / "server.log", config.workers)
                result = uvloop.run(load(args, wrk, config, target, model_pid, pg_url))
        except BaseException:
            log = (directory / "server.log").read_text(errors="replace")
            print(f"{config.name} failed; the end of the server's log:\n{log[-4000:]}", file=sys.stderr)
            raise
        result.server_problems = problems(directory / "server.log")
        print_line(result)
        return result
    finally:
        if pg_url:
            scaleout.drop_pg_database(pg_url)


def problems(log_path: Path) -> list[str]:
    """The server log's WARNING and ERROR lines, one per distinct message (the first 200
    characters, numbers and ids blanked), with how often each occurred."""
    counts: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if "WARNING" in line or "ERROR" in line or "Traceback" in line:
            key = re.sub(r"[0-9a-f]{8,}|\d+", "#", line.split(" ", 2)[-1])[:200]
            counts[key] = counts.get(key, 0) + 1
    return [f"{n}x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


# --- report ---------------------------------------------------------------------------------------


def _ms(dist: dict[str, float], key: str) -> str:
    return f"{dist[key]:.0f}" if dist else "-"


def pct(m: Measured, name: str) -> float:
    """CPU of ``name`` over the measured run, % of one core."""
    return 100 * m.cpu_s[name] / m.window_s


def print_line(m: Measured) -> None:
    s, cpu = m.summary(), m.cpu_s
    line = (
        f"  {m.config.name:36} {m.rps:6.0f} req/s  p50 {m.wrk['p50_us'] / 1e3:6.1f}  "
        f"p99 {m.wrk['p99_us'] / 1e3:6.1f}  max {m.wrk['max_us'] / 1e3:6.0f} ms  "
        f"{m.cpu_us_per_request:5.0f} µs/req"
    )
    if not m.wrk["requests"]:
        line = f"  {m.config.name:36} runs alone, {m.cpu_ms_per_run:5.1f} ms of Threadline CPU per run"
    if m.config.rate:
        line += (
            f" | runs {s['offered']} ({s['offered_per_s']:.1f}/s) ok {s['completed']} "
            f"refused {s['refused']} failed {s['failed']}  TTFT p50/p99 {_ms(s['ttft_ms'], 'p50')}/"
            f"{_ms(s['ttft_ms'], 'p99')}  done p50/p99 {_ms(s['create_to_completed_ms'], 'p50')}/"
            f"{_ms(s['create_to_completed_ms'], 'p99')} ms"
        )
    print(line, flush=True)
    if fresh := s["fresh_connection_ms"]:
        print(
            f"    fresh connection per request: p50 {fresh['p50']:.1f} / p99 {fresh['p99']:.1f} / "
            f"max {fresh['max']:.0f} ms, {s['fresh_connection_errors']} errors",
            flush=True,
        )
    print(
        "    CPU % of a core: " + ", ".join(f"{k} {100 * v / m.window_s:.0f}" for k, v in cpu.items()),
        flush=True,
    )
    late = s["offer_late_ms"]
    if late and late["p99"] > 50:
        print(
            f"    warning: runs offered late by p50 {late['p50']:.0f} / p99 {late['p99']:.0f} ms "
            "(this process was busy)"
        )
    for problem in m.server_problems[:5]:
        print(f"    server log: {problem}", flush=True)
    if s["failures"]:
        print(f"    failures: {s['failures']}", flush=True)


def table(results: list[Measured]) -> list[str]:
    lines = [
        "| configuration | API req/s | API p50 / p99 / max ms | Threadline CPU µs/API req (% of a core) "
        "| runs offered (/s) / refused / failed | TTFT p50 / p99 ms | create → completed p50 / p99 ms "
        "| PostgreSQL CPU % | other CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        s, w = m.summary(), m.wrk
        ttft, done = s["ttft_ms"], s["create_to_completed_ms"]
        run_cells = (
            f"{s['offered']} ({s['offered_per_s']:.1f}) / {s['refused']} / {s['failed']} "
            f"| {_ms(ttft, 'p50')} / {_ms(ttft, 'p99')} | {_ms(done, 'p50')} / {_ms(done, 'p99')}"
            if m.config.rate
            else "- | - | -"
        )
        lines.append(
            f"| {m.config.name} | {m.rps:.0f} | {w['p50_us'] / 1e3:.1f} / {w['p99_us'] / 1e3:.1f} / "
            f"{w['max_us'] / 1e3:.0f} | {m.cpu_us_per_request:.0f} ({pct(m, 'threadline'):.0f}) "
            f"| {run_cells} | {pct(m, 'postgres'):.0f} | {pct(m, 'other'):.0f} |"
        )
    return lines


def ratios(results: list[Measured], args: argparse.Namespace) -> list[str]:
    by = {(m.config.backend, m.config.workers, m.config.rate): m for m in results}
    lines = []

    def ratio(label: str, num: tuple[str, int, float], den: tuple[str, int, float], target: float) -> None:
        if num in by and den in by:
            value = by[num].rps / by[den].rps
            verdict = "pass" if value >= target else "MISS"
            lines.append(f"- {label}: {value:.0%} (target ≥ {target:.0%}): {verdict}")

    rate, over = args.rate, args.overload_rate
    ratio(
        f"PostgreSQL 1 process at {rate:g} runs/s vs no runs",
        ("postgres", 1, rate),
        ("postgres", 1, 0),
        TARGET_PG_UNDER_RUNS,
    )
    ratio(
        f"PostgreSQL --workers 2 vs 1 process, {rate:g} runs/s",
        ("postgres", 2, rate),
        ("postgres", 1, rate),
        TARGET_WORKERS,
    )
    ratio(
        f"SQLite at {rate:g} runs/s vs no runs",
        ("sqlite", 1, rate),
        ("sqlite", 1, 0),
        TARGET_SQLITE_UNDER_RUNS,
    )
    if (m := by.get(("sqlite", 1, over))) is not None:
        s = m.summary()
        p99 = s["ttft_ms"].get("p99", math.nan)
        verdict = "pass" if p99 <= TARGET_OVERLOAD_TTFT_P99_MS else "MISS"
        lines.append(
            f"- SQLite at {over:g} runs/s offered: accepted runs' TTFT p99 {p99:.0f} ms "
            f"(target ≤ {TARGET_OVERLOAD_TTFT_P99_MS:.0f}): {verdict}; "
            f"{s['refused']} of {s['offered']} refused, {s['failed']} failed"
        )
    # What a run costs the server, estimated: its CPU beyond what the same number of API requests
    # cost in the no-run configuration of the same database and process count, per accepted run.
    for m in results:
        base = by.get((m.config.backend, 1, 0))
        accepted = len(m.samples) - m.summary()["refused"]
        if m.config.rate and m.config.workers == 1 and base is not None and accepted:
            extra_s = m.cpu_s["threadline"] - base.cpu_us_per_request / 1e6 * int(m.wrk["requests"])
            if not m.wrk["requests"]:
                continue  # runs alone: the line above says what a run costs
            lines.append(
                f"- {m.config.name}: ≈ {extra_s / accepted * 1e3:.0f} ms of Threadline CPU per accepted "
                f"run ({accepted / m.window_s:.1f} accepted/s), beyond the no-run CPU per API request"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one backend's configurations")
    parser.add_argument("--rate", type=float, default=20, help="runs offered per second (default 20)")
    parser.add_argument(
        "--overload-rate", type=float, default=50, help="SQLite's overload rate (default 50; 0: skip)"
    )
    parser.add_argument("--tokens", type=int, default=50, help="tokens per answer (default 50)")
    parser.add_argument("--ms-per-token", type=float, default=20, help="model delay per token (default 20)")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (default 32; 0: runs alone, no wrk)"
    )
    parser.add_argument(
        "--run-queue-max", type=int, help="the server's admission bound (default: its own, 64)"
    )
    parser.add_argument("--access-log", action="store_true", help="keep the server's access log on")
    parser.add_argument(
        "--fresh-rate",
        type=float,
        default=20,
        help="requests a second, each on a new connection, during the measured run (default 20; 0: none)",
    )
    parser.add_argument(
        "--event-loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="the server's loop"
    )
    args = parser.parse_args()
    args.model = f"bench-{args.tokens}-{args.ms_per_token:g}"
    wrk = core.ensure_wrk()
    configs = [Config("sqlite", 1, 0), Config("sqlite", 1, args.rate)]
    configs += [Config("sqlite", 1, args.overload_rate)] if args.overload_rate else []
    configs += [Config("postgres", 1, 0), Config("postgres", 1, args.rate), Config("postgres", 2, args.rate)]
    if not args.connections:  # runs alone: what a run costs each backend, no API load
        configs = [Config("sqlite", 1, args.rate), Config("postgres", 1, args.rate)]
        args.fresh_rate = 0
    configs = [c for c in configs if args.only in (None, c.backend)]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started, load_before = time.monotonic(), os.getloadavg()
    print(f"{stamp} · {machine.describe()} · model {args.model}", flush=True)
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="threadline-mixed-") as tmp, ExitStack() as stack:
        model, model_url = runs.start_model()
        stack.callback(runs.stop, model)
        for config in configs:
            results.append(measure(args, wrk, config, Path(tmp), model_url, model.pid))
    lines = table(results)
    summary = ratios(results, args)
    out = BENCH / "results" / f"mixed-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    raw = {
        "date": stamp,
        "machine": machine.describe(),
        "args": vars(args),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "results": [
            {
                "config": asdict(m.config) | {"name": m.config.name},
                "wrk": m.wrk | {"rps": m.rps},
                "cpu_s": m.cpu_s,
                "window_s": m.window_s,
                "cpu_us_per_request": m.cpu_us_per_request,
                "runs": m.summary(),
                "server_problems": m.server_problems,
            }
            for m in results
        ],
        "table": lines,
        "ratios": summary,
    }
    out.write_text(json.dumps(raw, indent=2) + "\n")
    print("\n" + "\n".join(lines) + "\n\n" + "\n".join(summary))
    print(f"\n1-minute load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"{time.monotonic() - started:.0f} s; raw figures: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
