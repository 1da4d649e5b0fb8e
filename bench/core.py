"""Core API benchmark: wrk against the floor (bench/floor_app.py) and Threadline, one process each.

    .venv/bin/python bench/core.py [--duration 8] [--warmup 2] [--connections 32]

For create thread, retrieve thread, create message and list 20 messages (of a thread holding 10,000)
it prints req/s and p99 for the floor and for Threadline and the ratio Threadline/floor; then list
latency on a 100,000-message thread against a 10-message thread (one connection). The two servers run
side by side and are measured alternately, operation by operation, so background load drifts into both
sides of a ratio alike. Everything binds to 127.0.0.1, every wrk run is bounded, both servers are
stopped at the end. Raw figures go to bench/results/core-<time>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import machine
import wrk_run

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
# operation -> the ids file its requests cycle through
OPERATIONS = {
    "create_thread": "threads",
    "retrieve_thread": "threads",
    "create_message": "threads",
    "list_messages": "list10k",
}
# list scaling, one connection: (name, ids file, limit). The first two return the same 10 rows from a
# thread of 10 and of 100,000 messages; the third is the default page of 20, for reference.
SCALING = (
    ("list_10_msgs_limit10", "list10", 10),
    ("list_100k_msgs_limit10", "list100k", 10),
    ("list_100k_msgs_limit20", "list100k", 20),
)
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
TARGET_SCALING = 1.2
SEED_THREADS = 2_000  # empty threads: retrieve and create-message targets
SEED_MESSAGES = {"list10k": 10_000, "list100k": 100_000, "list10": 10}


@dataclass
class WrkResult:
    requests: int
    duration_us: int
    errors_status: int
    errors_socket: int
    p50_us: int
    p90_us: int
    p99_us: int
    mean_us: float
    max_us: int
    server_cpu_pct: float = 0.0  # of one core
    other_cpu_pct: float = 0.0  # everything on the machine but the server and wrk, of one core

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_pct / 100 * 1e6 / self.rps


@dataclass
class Target:
    name: str
    url: str
    pid: int
    ids_dir: Path


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package if it is missing (apt-get update only if needed)."""
    if found := shutil.which("wrk"):
        return found
    print("wrk not found; installing it: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["install", "-y", "wrk"], ["update"], ["install", "-y", "wrk"]):
        if shutil.which("wrk") or shutil.which("apt-get") is None:
            break
        subprocess.run(["apt-get", *step], check=False, stdout=subprocess.DEVNULL, env=env)
    if found := shutil.which("wrk"):
        return found
    sys.exit("error: wrk is required and could not be installed; run `apt-get install -y wrk` as root.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def serve(name: str, cmd: list[str], env: dict[str, str], ids_dir: Path, port: int) -> Iterator[Target]:
    log_path = ids_dir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"error: {name} did not start; its log:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/v1/threads/thread_ready", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer (404, 401) means it is serving
            except OSError:
                time.sleep(0.2)
        yield Target(name, url, proc.pid, ids_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_wrk(
    wrk: str, target: Target, op: str, ids: str, connections: int, duration_s: int, limit: int = 20
) -> WrkResult:
    """wrk against ``target``, with the CPU the server and the rest of the machine used meanwhile."""
    server0, busy0, wrk0 = machine.process_cpu_s(target.pid), machine.busy_s(), children_cpu_s()
    record = wrk_run.run_wrk(
        wrk, target.url, op, target.ids_dir / f"{ids}.txt", connections, duration_s, limit
    )
    server, busy, wrk_cpu = (
        machine.process_cpu_s(target.pid) - server0,
        machine.busy_s() - busy0,
        children_cpu_s() - wrk0,
    )
    result = WrkResult(**record)
    seconds = result.duration_us / 1e6
    result.server_cpu_pct = 100 * server / seconds
    result.other_cpu_pct = max(0.0, 100 * (busy - server - wrk_cpu) / seconds)
    if result.errors_status or result.errors_socket:
        print(
            f"  warning: {target.name} {op}: {result.errors_status} non-2xx responses, "
            f"{result.errors_socket} socket errors",
            flush=True,
        )
    return result


def write_ids(ids_dir: Path, empty: list[str], full: dict[str, str]) -> None:
    (ids_dir / "threads.txt").write_text("\n".join(empty) + "\n")
    for name, thread_id in full.items():
        (ids_dir / f"{name}.txt").write_text(thread_id + "\n")


def seed_floor(db_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    import floor_app

    empty, full = floor_app.seed(db_path, SEED_THREADS, list(SEED_MESSAGES.values()))
    write_ids(db_path.parent, empty, dict(zip(SEED_MESSAGES, full, strict=True)))


def seed_threadline(data_dir: Path) -> None:
    """Seed through Threadline's own storage layer (migrations, repositories, Database.transaction_sync):
    the same tables, indexes and id scheme the server uses, minus 112,000 HTTP round trips."""
    from threadline.config import Settings
    from threadline.domain.ids import new_id
    from threadline.domain.projects import DEFAULT_PROJECT_ID
    from threadline.domain.threads import Message, Thread
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade
    from threadline.storage.scope import Scope
    from threadline.storage.uow import UnitOfWork

    now = int(time.time())
    text = "A seeded message of modest length, as a user might write."
    content = [{"type": "text", "text": {"value": text, "annotations": []}}]

    def thread_with(count: int) -> Thread:
        thread = Thread(id=new_id("thread"), created_at=now, tool_resources=None, metadata={})

        def work(uow: UnitOfWork) -> None:
            uow.threads.insert(thread)
            for start in range(0, count, 10_000):
                uow.messages.insert_many(
                    [
                        Message(
                            id=new_id("message"),
                            thread_id=thread.id,
                            created_at=now,
                            role="user",
                            content=content,
                            attachments=[],
                            metadata={},
                        )
                        for _ in range(min(10_000, count - start))
                    ]
                )

        db.transaction_sync(work, scope=Scope(DEFAULT_PROJECT_ID))
        return thread

    db = Database(Settings(data_dir=data_dir))
    try:
        upgrade(db.engine)
        empty = [
            Thread(id=new_id("thread"), created_at=now, tool_resources=None, metadata={})
            for _ in range(SEED_THREADS)
        ]

        def insert_empty(uow: UnitOfWork) -> None:
            for thread in empty:
                uow.threads.insert(thread)

        db.transaction_sync(insert_empty, scope=Scope(DEFAULT_PROJECT_ID))
        full = {name: thread_with(count).id for name, count in SEED_MESSAGES.items()}
    finally:
        db.close()
    write_ids(data_dir.parent, [thread.id for thread in empty], full)


def start_servers(stack: ExitStack, work: Path, observability_cost: bool) -> tuple[Target, ...]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    (work / "floor").mkdir()
    seed_floor(work / "floor" / "floor.db")
    port = free_port()
    floor = stack.enter_context(
        serve(
            "floor",
            [
                sys.executable,
                str(BENCH / "floor_app.py"),
                "--port",
                str(port),
                "--db",
                str(work / "floor" / "floor.db"),
            ],
            base_env,
            work / "floor",
            port,
        )
    )
    (work / "threadline").mkdir()
    seed_threadline(work / "threadline" / "data")
    env = {**base_env, "THREADLINE_API_KEYS": "sk-bench"}

    def threadline(name: str, *flags: str) -> Target:
        port = free_port()
        data = work / name / "data"
        cmd = [str(ROOT / ".venv" / "bin" / "threadline"), "serve", "--host", HOST, "--port", str(port)]
        return stack.enter_context(
            serve(name, [*cmd, "--data-dir", str(data), *flags], env, work / name, port)
        )

    if not observability_cost:
        return floor, threadline("threadline", "--log-level", "warning")
    # The same seeded data twice: one server as an operator runs it (an access line per request to
    # its log file, metrics on), one with both off; alternated like the floor, so their difference is
    # what the access log and the metrics cost.
    shutil.copytree(work / "threadline", work / "quiet")
    return (
        floor,
        threadline("threadline", "--log-level", "info"),
        threadline("quiet", "--log-level", "warning", "--no-metrics"),
    )


Results = dict[str, dict[str, WrkResult]]  # server name -> case name -> result


def measure(wrk: str, targets: tuple[Target, ...], args: argparse.Namespace) -> Results:
    results: Results = {t.name: {} for t in targets}
    cases = [(op, ids, args.connections, args.duration, 20) for op, ids in OPERATIONS.items()]
    cases += [(name, ids, 1, args.scaling_duration, limit) for name, ids, limit in SCALING]
    for name, ids, connections, duration, limit in cases:
        op = name if name in OPERATIONS else "list_messages"
        for target in targets:  # alternate, so drifting background load hits both sides of a ratio
            if args.warmup:
                run_wrk(wrk, target, op, ids, connections, args.warmup, limit)
            res = results[target.name][name] = run_wrk(wrk, target, op, ids, connections, duration, limit)
            print(
                f"  {target.name:10} {name:22} c{connections:<3} {res.rps:7.0f} req/s  "
                f"p50 {res.p50_us / 1000:6.2f} ms  p99 {res.p99_us / 1000:6.2f} ms  "
                f"server CPU {res.server_cpu_pct:3.0f}% ({res.cpu_us_per_request:4.0f} us/req)  "
                f"other CPU {res.other_cpu_pct:3.0f}%",
                flush=True,
            )
    return results


def profile(wrk: str, target: Target, args: argparse.Namespace, out_dir: Path) -> None:
    """A py-spy recording of ``target`` under each operation's load (a separate pass: sampling costs)."""
    import pyspy

    for op, ids in OPERATIONS.items():
        raw = out_dir / f"profile-{op}.txt"
        recorder = pyspy.start(target.pid, args.duration, raw)
        time.sleep(0.5)  # let py-spy attach before the load starts
        run_wrk(wrk, target, op, ids, args.connections, args.duration)
        recorder.wait(timeout=args.duration + 30)
        lines = pyspy.summary(raw, top=40)
        (out_dir / f"profile-{op}.summary.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines[:16]), flush=True)


def report(floor: dict[str, WrkResult], threadline: dict[str, WrkResult], connections: int) -> list[str]:
    lines = [
        f"| operation, {connections} connections | floor req/s | floor p99 ms | Threadline req/s "
        "| Threadline p99 ms | ratio req/s | CPU us/req floor / Threadline | ratio ≥ 0.5 | p99 ≤ 20 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for op in OPERATIONS:
        f, t = floor[op], threadline[op]
        ratio = t.rps / f.rps
        lines.append(
            f"| {op} | {f.rps:.0f} | {f.p99_us / 1000:.1f} | {t.rps:.0f} | {t.p99_us / 1000:.1f} "
            f"| {ratio:.2f} "
            f"| {f.cpu_us_per_request:.0f} / {t.cpu_us_per_request:.0f} "
            f"| {'pass' if ratio >= TARGET_RATIO else 'MISS'} "
            f"| {'pass' if t.p99_us / 1000 <= TARGET_P99_MS else 'MISS'} |"
        )
    lines += [
        "",
        "| list, 1 connection | floor p50 ms | Threadline p50 ms | Threadline p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, _, _ in SCALING:
        f, t = floor[name], threadline[name]
        lines.append(f"| {name} | {f.p50_us / 1000:.2f} | {t.p50_us / 1000:.2f} | {t.p99_us / 1000:.2f} |")
    scale = threadline["list_100k_msgs_limit10"].p50_us / threadline["list_10_msgs_limit10"].p50_us
    lines.append(
        f"\nThreadline list p50, 100,000 vs 10 messages: {scale:.2f}x "
        f"(target ≤ {TARGET_SCALING}): {'pass' if scale <= TARGET_SCALING else 'MISS'}"
    )
    others = max(r.other_cpu_pct for side in (floor, threadline) for r in side.values())
    if others > 20:
        lines.append(
            f"warning: other processes used up to {others:.0f}% of a core during a run; "
            "absolute figures are unreliable (ratios less so, the runs alternate)"
        )
    return lines


def observability_report(observed: dict[str, WrkResult], quiet: dict[str, WrkResult]) -> list[str]:
    lines = [
        "| operation | req/s quiet / observed | CPU us/req quiet / observed | access log + metrics cost |",
        "|---|---:|---:|---:|",
    ]
    for op in OPERATIONS:
        q, o = quiet[op], observed[op]
        cost = o.cpu_us_per_request - q.cpu_us_per_request
        lines.append(
            f"| {op} | {q.rps:.0f} / {o.rps:.0f} | {q.cpu_us_per_request:.0f} / {o.cpu_us_per_request:.0f} "
            f"| {cost:+.0f} us/req ({cost / q.cpu_us_per_request:+.0%}) |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="wrk benchmark: floor vs Threadline (see bench/README.md)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each run")
    parser.add_argument("--scaling-duration", type=int, default=4, help="seconds per list-scaling run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then record Threadline with py-spy under each load (bench/results/profile-*)",
    )
    parser.add_argument(
        "--observability-cost",
        action="store_true",
        help="run Threadline with its access log (INFO) and metrics on, beside one with both off",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    started = datetime.now(UTC)
    out = BENCH / "results" / f"core-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp, ExitStack() as stack:
        print("seeding and starting the floor and Threadline ...", flush=True)
        targets = start_servers(stack, Path(tmp), args.observability_cost)
        results = measure(wrk, targets, args)
        if args.profile:
            profile(wrk, targets[1], args, out.parent)
    print("\n" + "\n".join(report(results["floor"], results["threadline"], args.connections)))
    if args.observability_cost:
        print("\n" + "\n".join(observability_report(results["threadline"], results["quiet"])))
    out.write_text(
        json.dumps(
            {
                "date": started.isoformat(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "machine": machine.describe(),
                "args": vars(args),
                "results": {
                    srv: {
                        name: {**asdict(r), "rps": r.rps, "cpu_us_per_request": r.cpu_us_per_request}
                        for name, r in ops.items()
                    }
                    for srv, ops in results.items()
                },
            },
            indent=2,
        )
    )
    print(f"raw figures: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
