"""The interpreter that runs *inside* the code_interpreter sandbox: a stateful Python REPL speaking
JSON lines. It is executed as a script by the sandbox's Python (never imported by the server) and
uses the standard library only, so any Python >= 3.8 with the data stack installed can run it.

Protocol (one JSON object per line):
- stdin: ``{"code": "..."}`` runs code in the session's one namespace (state persists across calls);
  ``{"interrupt": true}`` raises KeyboardInterrupt in the running code (cancel, timeout).
- stdout: ``{"ready": true}`` once started; then per code request ``{"logs", "error", "images"}``:
  everything written to file descriptors 1 and 2 during the call (the code's prints, warnings and
  its subprocesses' output, in order), the traceback of an exception (or null), and each open
  matplotlib figure as base64 PNG (then closed), as Jupyter's inline backend shows them.

Why not a Jupyter kernel: ipykernel talks ZeroMQ over TCP or IPC sockets, which a sandbox without
network needs extra plumbing for, and adds ~1 s and ~40 MB per session; the outputs we need (one log
stream, figures, tracebacks) are few enough to produce here in ~150 lines over two pipes.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any

MAX_LOG_BYTES = 1 << 20  # read back at most this much output per call (the server truncates further)
KERNEL_PID = os.getpid()
# The server passes this when the kernel runs in its own pid namespace (the bubblewrap backend):
# only then may it kill every other process it sees.
PID_NAMESPACE_FLAG = "--own-pid-namespace"


def _reply(channel: io.TextIOWrapper, payload: dict[str, Any]) -> None:
    if os.getpid() != KERNEL_PID:  # a process the code forked must never speak the protocol
        os._exit(1)
    channel.write(json.dumps(payload) + "\n")
    channel.flush()


def _run(code: str, namespace: dict[str, Any]) -> str | None:
    """Execute ``code`` like a notebook cell: the value of a last bare expression is printed."""
    try:
        tree = ast.parse(code, "<code>", "exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            body = ast.Module(body=tree.body[:-1], type_ignores=[])
            exec(compile(body, "<code>", "exec"), namespace)
            value = eval(compile(ast.Expression(last.value), "<code>", "eval"), namespace)
            if value is not None:
                print(repr(value))
        else:
            exec(compile(tree, "<code>", "exec"), namespace)
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: the session goes on
        if os.getpid() != KERNEL_PID:
            os._exit(1)
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return None
        # Skip our own frame: the traceback starts at the model's code.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        return "".join(traceback.format_exception(type(exc), exc, tb))
    return None


def _end_stray_processes() -> None:
    """Kill every process the code left behind (a background job, a fork bomb still forking): none
    outlives the execution that started it. Only ever called in the sandbox's own pid namespace,
    where kill(-1) reaches every process but the caller and bwrap (the namespace's init)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, KERNEL_PID)]
        if not others:
            return
        # ESRCH: nothing left to signal (the rest are zombies being reaped).
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        while True:  # reap our own children; bwrap reaps the orphans
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        time.sleep(0.005)


def _figures() -> list[str]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    images: list[str] = []
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        plt.figure(number).savefig(buffer, format="png", bbox_inches="tight")
        images.append(base64.b64encode(buffer.getvalue()).decode())
    plt.close("all")
    return images


def main(own_pid_namespace: bool) -> None:
    # Private copies of the protocol pipes; fds 0-2 become /dev/null and the capture file, so code
    # that prints, reads stdin or spawns programs can never corrupt the protocol.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    capture_fd = os.open("/tmp/.kernel-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(capture_fd, 1)
    os.dup2(capture_fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), encoding="utf-8", write_through=True)
    sys.stdin = io.TextIOWrapper(os.fdopen(0, "rb"), encoding="utf-8")
    # Past the file-size limit, writes fail with EFBIG instead of the signal killing the session.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.chdir("/mnt/data")
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    work: queue.Queue[str | None] = queue.Queue()
    main_thread = threading.main_thread().ident
    busy = threading.Event()

    def read_requests() -> None:
        for line in requests:
            message = json.loads(line)
            if message.get("interrupt"):
                if busy.is_set() and main_thread is not None:
                    signal.pthread_kill(main_thread, signal.SIGINT)
            else:
                work.put(str(message.get("code", "")))
        work.put(None)  # the server closed the pipe: end the session

    threading.Thread(target=read_requests, daemon=True).start()
    _reply(channel, {"ready": True})
    while True:
        try:
            code = work.get()
        except KeyboardInterrupt:  # a late interrupt arrived between calls
            continue
        if code is None:
            return
        os.lseek(capture_fd, 0, os.SEEK_SET)
        os.ftruncate(capture_fd, 0)
        busy.set()
        try:
            error = _run(code, namespace)
            images = _figures()
        except KeyboardInterrupt:
            error, images = "KeyboardInterrupt\n", []
        finally:
            busy.clear()
        if own_pid_namespace:
            _end_stray_processes()
        sys.stdout.flush()
        sys.stderr.flush()
        os.lseek(capture_fd, 0, os.SEEK_SET)
        logs = os.read(capture_fd, MAX_LOG_BYTES).decode("utf-8", "replace")
        _reply(channel, {"logs": logs, "error": error, "images": images})


if __name__ == "__main__":
    # Arguments: the flag above and the site-packages directories the server mounted apart from
    # the interpreter (a venv's).
    import site

    arguments = sys.argv[1:]
    own_pid_namespace = PID_NAMESPACE_FLAG in arguments
    for directory in arguments:
        if directory != PID_NAMESPACE_FLAG:
            site.addsitedir(directory)
    main(own_pid_namespace)
