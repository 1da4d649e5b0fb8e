"""Start ``threadline worker`` as a subprocess, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class WorkerProcess:
    """``threadline worker`` in a subprocess; ``env`` adds THREADLINE_* settings."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str = "worker") -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "THREADLINE_DATA_DIR": str(data_dir), **env}
        self.log_path = data_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "threadline.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while " ready " not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start in {timeout_s}s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not exit; returns the exit code."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
