"""One wrk measurement with bench/wrk/ops.lua, shared by core.py and scaleout.py.

ops.lua prints a ``WRK_JSON {...}`` line at the end (requests, duration, errors, latency percentiles);
this runs wrk with one thread (the server gets the other core) and returns that record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "wrk" / "ops.lua"


def run_wrk(
    wrk: str,
    url: str,
    op: str,
    ids_file: Path,
    connections: int,
    duration_s: int,
    limit: int = 20,
    list_ids_file: Path | None = None,
) -> dict[str, Any]:
    """``list_ids_file``: the threads the ``mixed`` operation lists (bench/mixed.py)."""
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "5s"]
    cmd += ["-s", str(LUA), url, "--", op, str(ids_file), str(limit)]
    if list_ids_file is not None:
        cmd.append(str(list_ids_file))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30)
    if done.returncode != 0:
        sys.exit(f"error: wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        sys.exit(f"error: unexpected wrk output:\n{done.stdout}")
    record: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return record
