"""py-spy under load: record a running server while wrk drives it, and summarise where the time goes.

Used by ``core.py --profile``; also runnable on its own against any pid:
``.venv/bin/python bench/pyspy.py summary bench/results/profile-list_messages.txt``.
Samples are taken with ``--gil``: only the thread holding the GIL is sampled, so the shares are shares
of interpreter time, which is what bounds a one-process Python server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> Path:
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        sys.exit(f"error: --profile needs py-spy: {Path(sys.executable).parent}/pip install py-spy")
    return path


def start(pid: int, seconds: float, out_raw: Path) -> subprocess.Popen[bytes]:
    """Start recording ``pid`` for ``seconds`` into ``out_raw`` (collapsed stacks, one a line)."""
    cmd = [
        str(py_spy()),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--gil",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out_raw),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(raw: str) -> tuple[str, str]:
    """(function, file shortened to the package path) of one py-spy frame."""
    match = FRAME.match(raw)
    if not match:
        return raw, ""
    return match["func"], match["file"].split("site-packages/")[-1].split("/src/")[-1]


def _package(file: str) -> str:
    if file.startswith(("asyncio/", "concurrent/", "threading.py", "selectors.py", "uvloop/")):
        return "event loop + thread hand-off (stdlib)"
    return file.split("/")[0] if "/" in file else file or "?"


def summary(raw_path: Path, top: int = 25) -> list[str]:
    """Where the samples are: self time by package, inclusive time of Threadline's own functions,
    and the hottest leaf functions."""
    by_package: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        func, file = frames[-1]
        by_package[_package(file)] += count
        leaves[f"{func} ({file})"] += count
        for name in {f"{fn} ({fl})" for fn, fl in frames if fl.startswith("threadline/")}:
            ours[name] += count
    if total == 0:
        return [f"{raw_path.name}: no samples"]

    def share(counter: Counter[str], n: int) -> list[str]:
        return [f"  {100 * c / total:5.1f}%  {name}" for name, c in counter.most_common(n)]

    return [
        f"{raw_path.name}: {total} samples while holding the GIL",
        "self time by package:",
        *share(by_package, 8),
        "inclusive time of threadline functions:",
        *share(ours, top),
        "hottest functions (self):",
        *share(leaves, top // 2),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "summary":
        print("\n".join(summary(Path(sys.argv[2]), top=40)))
    else:
        sys.exit("usage: pyspy.py summary RAW_FILE")
