"""``threadline`` commands as an operator runs them beside a server (projects, keys, usage)."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(env: dict[str, str], *args: str) -> list[str]:
    """``threadline ARGS`` with ``env`` added (the server's database settings); its stdout lines.
    Fails the test when the command fails."""
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()
