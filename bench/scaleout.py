"""Scale-out benchmark: thread/message throughput with 1 and 2 API processes on PostgreSQL, next to
SQLite with 1 process. Feeds the table in docs/deployment.md.

    .venv/bin/python bench/scaleout.py [--duration 5] [--warmup 1] [--connections 32]

For each configuration it starts `threadline serve --no-executor [--workers 2]` on a fresh, seeded
database, runs wrk (bench/wrk/ops.lua, the same script as bench/core.py) for create thread, create
message and list 20 messages of a 10,000-message thread, and stops the server. Everything binds to
127.0.0.1; every wrk run is bounded by --duration (the whole bench takes about 1.5 minutes with the
defaults). PostgreSQL: THREADLINE_BENCH_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres
(a database is created for each configuration and dropped afterwards). Raw figures go to
bench/results/scaleout-<time>.json.

wrk, the API processes and PostgreSQL all share this machine's cores, so the 2-process figures
show how far one box lets it go, not how far the design scales on separate machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

import machine
import wrk_run

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
OPERATIONS = ("create_thread", "create_message", "list_messages")
IDS = {"create_thread": "threads", "create_message": "threads", "list_messages": "list10k"}
CONFIGS = (("sqlite", 1), ("postgres", 1), ("postgres", 2))
SEED_THREADS = 2_000
SEED_LIST_MESSAGES = 10_000
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class WrkResult:
    requests: int
    duration_us: int
    errors: int
    p50_us: int
    p99_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def write_ids(directory: Path, name: str, ids: list[str]) -> None:
    (directory / f"{name}.txt").write_text("\n".join(ids) + "\n")


def run_wrk(wrk: str, url: str, op: str, ids_file: Path, connections: int, duration_s: int) -> WrkResult:
    raw = wrk_run.run_wrk(wrk, url, op, ids_file, connections, duration_s)
    result = WrkResult(
        raw["requests"],
        raw["duration_us"],
        raw["errors_status"] + raw["errors_socket"],
        raw["p50_us"],
        raw["p99_us"],
    )
    if result.errors:
        print(f"  warning: {op}: {result.errors} errors (non-2xx or socket)", flush=True)
    return result


@contextmanager
def serve(cmd: list[str], env: dict[str, str], port: int, log_path: Path, processes: int) -> Iterator[str]:
    """Start the server, wait until all its API processes are up, yield its URL, stop it."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text(errors="replace").count("Application startup complete") < processes:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"error: the server did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        with suppress(urllib.error.HTTPError):  # a 404 means it is serving
            urllib.request.urlopen(f"{url}/v1/threads/thread_ready", timeout=5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_wrk() -> str:
    if found := shutil.which("wrk"):
        return found
    sys.exit("error: wrk is required: apt-get install -y wrk")


def admin_url() -> str:
    return os.environ.get("THREADLINE_BENCH_POSTGRES_URL") or DEFAULT_ADMIN_URL


def create_pg_database() -> str:
    name = f"threadline_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{admin_url().rpartition('/')[0]}/{name}"


def drop_pg_database(url: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        name = sql.Identifier(url.rpartition("/")[2])
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def seed(database_url: str, data_dir: Path, ids_dir: Path) -> None:
    """Seed through Threadline's storage layer: 2,000 empty threads and one of 10,000 messages."""
    from threadline.config import Settings
    from threadline.domain.ids import new_id
    from threadline.domain.projects import DEFAULT_PROJECT_ID
    from threadline.domain.threads import Message, Thread
    from threadline.storage.database import Database
    from threadline.storage.migrate import upgrade
    from threadline.storage.scope import Scope
    from threadline.storage.uow import UnitOfWork

    db = Database(Settings(data_dir=data_dir, database_url=database_url))
    upgrade(db.engine)
    now = int(time.time())
    content = [{"type": "text", "text": {"value": "A seeded message of modest length.", "annotations": []}}]
    empty = [new_id("thread") for _ in range(SEED_THREADS)]
    full = new_id("thread")

    def work(uow: UnitOfWork) -> None:
        for thread_id in [*empty, full]:
            uow.threads.insert(Thread(id=thread_id, created_at=now, tool_resources=None, metadata={}))
        uow.messages.insert_many(
            [
                Message(
                    id=new_id("message"),
                    thread_id=full,
                    created_at=now,
                    role="user",
                    content=content,
                    attachments=[],
                    metadata={},
                )
                for _ in range(SEED_LIST_MESSAGES)
            ]
        )

    try:
        db.transaction_sync(work, scope=Scope(DEFAULT_PROJECT_ID))
    finally:
        db.close()
    write_ids(ids_dir, "threads", empty)
    write_ids(ids_dir, "list10k", [full])


def measure_config(
    wrk: str, backend: str, workers: int, work: Path, args: argparse.Namespace
) -> dict[str, WrkResult]:
    name = f"{backend}-{workers}"
    ids_dir = work / name
    ids_dir.mkdir()
    pg_url = create_pg_database() if backend == "postgres" else ""
    try:
        seed(pg_url, ids_dir / "data", ids_dir)
        port = free_port()
        cmd = [
            str(ROOT / ".venv" / "bin" / "threadline"),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(ids_dir / "data"),
            "--workers",
            str(workers),
            "--no-executor",
            "--log-level",
            "info",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
        env.update({"THREADLINE_API_KEYS": "sk-bench", "THREADLINE_DATABASE_URL": pg_url})
        results: dict[str, WrkResult] = {}
        with serve(cmd, env, port, ids_dir / "server.log", workers) as url:
            for op in OPERATIONS:
                ids_file = ids_dir / f"{IDS[op]}.txt"
                if args.warmup:
                    run_wrk(wrk, url, op, ids_file, args.connections, args.warmup)
                results[op] = res = run_wrk(wrk, url, op, ids_file, args.connections, args.duration)
                print(
                    f"  {name:11} {op:15} {res.rps:7.0f} req/s  p50 {res.p50_us / 1000:6.2f} ms  "
                    f"p99 {res.p99_us / 1000:6.2f} ms",
                    flush=True,
                )
        return results
    finally:
        if pg_url:
            drop_pg_database(pg_url)


def report(results: dict[str, dict[str, WrkResult]], connections: int) -> list[str]:
    header = " | ".join(f"{name} req/s (p99 ms)" for name in results)
    lines = [
        f"| operation ({connections} connections) | {header} | PostgreSQL 2 vs 1 |",
        "|---|" + "---:|" * (len(results) + 1),
    ]
    for op in OPERATIONS:
        cells = " | ".join(f"{r[op].rps:.0f} ({r[op].p99_us / 1000:.1f})" for r in results.values())
        scale = ""
        if "postgres-1" in results and "postgres-2" in results:
            scale = f"{results['postgres-2'][op].rps / results['postgres-1'][op].rps:.2f}x"
        lines.append(f"| {op} | {cells} | {scale} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="wrk: 1 and 2 API processes on PostgreSQL vs SQLite")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    wrk = ensure_wrk()
    results: dict[str, dict[str, WrkResult]] = {}
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="threadline-scaleout-") as tmp:
        for backend, workers in CONFIGS:
            results[f"{backend}-{workers}"] = measure_config(wrk, backend, workers, Path(tmp), args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = BENCH / "results" / f"scaleout-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": stamp,
                "machine": machine.describe(),
                "python": platform.python_version(),
                "args": vars(args),
                "loadavg_1m_before": load_before,
                "results": {
                    cfg: {op: {**asdict(r), "rps": r.rps} for op, r in ops.items()}
                    for cfg, ops in results.items()
                },
            },
            indent=2,
        )
    )
    print("\n" + "\n".join(report(results, args.connections)))
    print(f"\n1-minute load average before the bench: {load_before:.2f} on {os.cpu_count()} CPUs")
    print(f"{time.monotonic() - started:.0f} s; raw figures: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
