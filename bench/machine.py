"""What the benchmarks read of the machine they run on: its description for the results, and CPU
seconds from /proc (a process's, and the whole machine's busy time) to split where the CPU went."""

from __future__ import annotations

import os
import platform
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def describe() -> str:
    """CPU model, CPU count, memory, Python and kernel: the line every result file starts with."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemT")
    )
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {int(mem) / 2**20:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime


def busy_s() -> float:
    """CPU seconds all cores spent outside idle and iowait since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) * TICK_S
