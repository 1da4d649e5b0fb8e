"""Start the real Threadline server as a subprocess on a free port, as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The servers started and not yet checked after they stopped: a failing test's report shows what the
# running ones logged, and every test fails if one of them answered a 500 (conftest.py).
STARTED: set[ServerProcess] = set()
LOG_TAIL_LINES = 60
# What api/middleware.py logs for every request it answers with a 500.
UNHANDLED_MARK = "unhandled error on"


class ServerProcess:
    """``threadline serve`` in a subprocess. ``env`` adds THREADLINE_* settings."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "THREADLINE_DATA_DIR": str(data_dir),
            "THREADLINE_PORT": str(self.port),
            # The suite starts many servers whose data directories pytest keeps: 1 MiB of disk
            # reserve each rather than 16 (test_disk_full sets the default back).
            "THREADLINE_DISK_RESERVE_BYTES": str(1 << 20),
        }
        self.env.update(env or {})
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"
        self._checked = 0  # how far unhandled_errors() has read the log

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli", "serve", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        STARTED.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                httpx.get(f"{self.base_url}/assistants?limit=1", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def unhandled_errors(self) -> list[str]:
        """The lines logged since the last call that mark a 500 this server answered."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(self._checked)
            new = log.read()
        self._checked += len(new)
        return [line for line in new.decode(errors="replace").splitlines() if UNHANDLED_MARK in line]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """kill -9: no shutdown code runs (crash tests)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
