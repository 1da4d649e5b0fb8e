"""Sandboxed, stateful Python sessions for the code_interpreter tool.

A ``Session`` is one long-lived interpreter (``sandbox_kernel.py``) inside a sandbox made by a
``Backend``; a ``SessionPool`` keeps one per thread, ends idle ones and bounds their number (LRU).

The default backend is bubblewrap (``bwrap``): new user, pid, network, IPC, UTS and cgroup
namespaces; the host's ``/usr``, ``/etc`` essentials and the Python installation mounted read-only
(a Python outside ``/usr`` at ``/opt/python``, a venv's site-packages at ``/opt/site-packages/N``, so
that ``/`` shows no host path such as ``/root`` or ``/home``); an empty ``/dev`` and a fresh ``/proc``;
the session's own writable ``/mnt/data`` and ``/tmp`` (host directories under the server's data dir,
which itself is never mounted); no environment variable of
the server; all capabilities dropped; no further user namespaces. Resources are bounded by rlimits
set before ``bwrap`` starts (address space, CPU seconds, file size) and, for processes, by a pids
cgroup when the host lets us create one, else by ``RLIMIT_NPROC`` (which the kernel does not apply
to root: see docs/code-interpreter.md). Each execution also has a wall-clock timeout: the code is
interrupted (KeyboardInterrupt, state kept), and if it does not stop the sandbox is killed (every
process in its pid namespace dies with it) and the next call starts a fresh session.

Other backends (a container runtime) plug in as another ``Backend``: it only has to turn a session's
two directories into a command whose stdin/stdout are the kernel's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import resource
import shutil
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from threadline.observability.logs import RetryLog

log = logging.getLogger(__name__)

KERNEL_PATH = Path(__file__).with_name("sandbox_kernel.py")
# Where the sandbox sees the kernel script and the session's directories.
SANDBOX_KERNEL = "/opt/threadline/kernel.py"
SANDBOX_DATA = "/mnt/data"
SANDBOX_PYTHON = "/opt/python"  # a Python installed outside /usr
SANDBOX_SITE = "/opt/site-packages"  # site-packages outside that installation (a venv's), numbered
START_TIMEOUT_S = 30.0
INTERRUPT_GRACE_S = 1.0  # how long interrupted code may take to stop before the sandbox is killed
SWEEP_INTERVAL_S = 5.0
_READ_LIMIT = 256 * 1024 * 1024  # one reply line: logs plus base64 figures


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int = 1 << 30
    timeout_s: float = 60.0
    max_processes: int = 64
    max_file_bytes: int = 100 * 1024 * 1024
    cpu_s: int = 3600


@dataclass(slots=True)
class Execution:
    logs: str
    error: str | None = None
    images: list[bytes] = field(default_factory=list)
    timed_out: bool = False


class SandboxUnavailable(Exception):
    """No backend can run sessions here; the message says how to enable one."""


class Backend(Protocol):
    name: str
    sandboxed: bool

    def unavailable_reason(self) -> str | None:
        """None when sessions can start; else what is missing and how to fix it."""
        ...

    def command(self, data_dir: Path, tmp_dir: Path, python: str) -> list[str]:
        """The command that runs the kernel with ``data_dir`` as /mnt/data and ``tmp_dir`` as /tmp."""
        ...


_SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/.matplotlib",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    # One BLAS thread: the address-space limit counts every thread's stack and buffers.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Every namespace; the user namespace explicitly (as root --unshare-all only tries it), and none
# further inside (less kernel surface for the code to probe).
_NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns")
# Files of /etc that programs commonly need; nothing else of /etc is visible.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts", "mime.types")


class BubblewrapBackend:
    name = "bubblewrap"
    sandboxed = True

    def __init__(self, hidden: list[Path]) -> None:
        # Server paths that must never be visible, even when they lie under a mounted path.
        self.hidden = [p.resolve() for p in hidden]
        self._reason: str | bool | None = False  # False: not probed yet

    def unavailable_reason(self) -> str | None:
        if self._reason is False:
            self._reason = self._probe()
        return self._reason if isinstance(self._reason, str) else None

    def _probe(self) -> str | None:
        import subprocess

        if shutil.which("bwrap") is None:
            return (
                "code_interpreter needs bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap) "
                "and restart the server. See docs/code-interpreter.md."
            )
        try:
            probe = subprocess.run(
                ["bwrap", "--ro-bind", "/", "/", *_NAMESPACES, "true"],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"code_interpreter: bubblewrap could not start ({exc}). See docs/code-interpreter.md."
        if probe.returncode != 0:
            detail = probe.stderr.decode(errors="replace").strip()
            return (
                f"code_interpreter: bubblewrap cannot create namespaces here ({detail}). Allow unprivileged "
                "user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns=0) or, in a container, run it with "
                "--security-opt seccomp=unconfined. See docs/code-interpreter.md."
            )
        return None

    def command(self, data_dir: Path, tmp_dir: Path, python: str) -> list[str]:
        args = ["bwrap", *_NAMESPACES, "--die-with-parent", "--new-session"]
        args += ["--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
        args += ["--hostname", "sandbox", "--clearenv"]
        for key, value in _SANDBOX_ENV.items():
            args += ["--setenv", key, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), f"/{name}"]
            elif path.is_dir():
                args += ["--ro-bind", str(path), f"/{name}"]
        for name in _ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        # The Python installation, read-only, at neutral paths: mounted where it lies on the host,
        # its directories (say /root/.pyenv/...) would show in the sandbox's / as /root.
        layout = python_layout(python)
        mounts: dict[Path, str] = {Path("/usr"): "/usr"}  # host directory -> where the sandbox sees it
        executable = str(layout.executable)
        if not layout.executable.is_relative_to("/usr"):
            mounts[layout.base_prefix] = SANDBOX_PYTHON
            executable = f"{SANDBOX_PYTHON}/{layout.executable.relative_to(layout.base_prefix)}"
            # Built with --enable-shared, the interpreter's absolute RUNPATH names the host prefix.
            args += ["--setenv", "LD_LIBRARY_PATH", f"{SANDBOX_PYTHON}/lib"]
        site_dirs: list[str] = []
        for path in layout.site_dirs:
            if not any(path.is_relative_to(m) for m in mounts):
                mounts[path] = f"{SANDBOX_SITE}/{len(site_dirs)}"
                site_dirs.append(mounts[path])
        for source, target in mounts.items():
            if target != "/usr":
                args += ["--ro-bind", str(source), target]
        for path in self.hidden:
            for source, target in mounts.items():
                if path.is_relative_to(source):
                    args += ["--tmpfs", str(Path(target) / path.relative_to(source))]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--bind", str(data_dir), SANDBOX_DATA, "--bind", str(tmp_dir), "/tmp"]
        args += ["--ro-bind", str(KERNEL_PATH), SANDBOX_KERNEL, "--chdir", SANDBOX_DATA]
        # The flag is sandbox_kernel.PID_NAMESPACE_FLAG (the kernel is a script, never imported).
        return [*args, executable, "-I", SANDBOX_KERNEL, "--own-pid-namespace", *site_dirs]


@dataclass(frozen=True, slots=True)
class PythonLayout:
    base_prefix: Path  # the installation the interpreter belongs to
    executable: Path  # the real interpreter binary (a venv's python is a symlink to it)
    site_dirs: tuple[Path, ...]  # every site-packages directory, a venv's included
    packages: tuple[str, ...]  # which of DATA_STACK it can import


DATA_STACK = ("numpy", "pandas", "matplotlib")  # what the code-interpreter extra installs
_LAYOUT_PROBE = (
    "import importlib.util,json,os,site,sys;print(json.dumps({'base':sys.base_prefix,"
    "'exe':os.path.realpath(getattr(sys,'_base_executable',sys.executable)),"
    f"'site':site.getsitepackages(),'packages':[m for m in {DATA_STACK!r} if importlib.util.find_spec(m)]}}))"
)


@functools.cache
def python_layout(python: str) -> PythonLayout:
    """Where ``python``'s installation and packages lie (asked once per interpreter)."""
    import subprocess

    try:
        probe = subprocess.run(
            [python, "-I", "-c", _LAYOUT_PROBE], capture_output=True, timeout=30, check=True
        )
        found = json.loads(probe.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxUnavailable(
            f"code_interpreter: the sandbox's Python {python} could not be inspected ({exc})."
        ) from exc
    base = Path(found["base"]).resolve()
    executable = Path(found["exe"])
    if not executable.is_relative_to(base):
        base = executable.parent.parent
    sites = tuple(Path(p).resolve() for p in found["site"] if Path(p).is_dir())
    return PythonLayout(base, executable, sites, tuple(found["packages"]))


class UnsandboxedBackend:
    """Development only (``code_interpreter_backend = "unsandboxed"``): the kernel runs as a plain
    subprocess of the server with the same rlimits but no isolation at all. Never the default."""

    name = "unsandboxed"
    sandboxed = False

    def unavailable_reason(self) -> str | None:
        return None

    def command(self, data_dir: Path, tmp_dir: Path, python: str) -> list[str]:
        # The kernel expects /mnt/data and /tmp; outside a sandbox it gets its session directory.
        script = (
            "import os,runpy,sys;"
            f"os.chdir({str(data_dir)!r});"
            f"src=open({str(KERNEL_PATH)!r}).read().replace('/mnt/data',{str(data_dir)!r})"
            f".replace('/tmp/.kernel-output',{str(tmp_dir / '.kernel-output')!r});"
            "exec(compile(src,'kernel.py','exec'),{'__name__':'__main__'})"
        )
        return [python, "-I", "-c", script]


class NoBackend:
    name = "none"
    sandboxed = True

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def unavailable_reason(self) -> str | None:
        return self.reason

    def command(self, data_dir: Path, tmp_dir: Path, python: str) -> list[str]:
        raise SandboxUnavailable(self.reason)


def _pids_cgroup_parent() -> Path | None:
    """A cgroup directory under which we may create per-session pids cgroups, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/"))
        elif controllers == "":
            candidates += [Path("/sys/fs/cgroup") / path.lstrip("/"), Path("/sys/fs/cgroup/unified")]
    for parent in candidates:
        probe = parent / f"threadline-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        usable = (probe / "pids.max").exists()
        with contextlib.suppress(OSError):
            probe.rmdir()
        if usable:
            return parent
    return None


class Session:
    """One interpreter in one sandbox; started on first use, restarted after it died or was killed."""

    def __init__(
        self, key: str, root: Path, backend: Backend, limits: Limits, python: str, cgroups: Path | None
    ) -> None:
        self.key, self.root, self.backend, self.limits, self.python = key, root, backend, limits, python
        self.data_dir, self.tmp_dir = root / "data", root / "tmp"
        self.cgroups = cgroups
        self.copied: dict[str, str] = {}  # file_id -> name in /mnt/data
        self.last_used = time.monotonic()
        self.lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._cgroup: Path | None = None
        self._settling: asyncio.Task[None] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _preexec(self) -> None:  # runs in the child between fork and exec
        limits = self.limits
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
        if self._cgroup is not None:
            (self._cgroup / "cgroup.procs").write_text("0")

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        command = self.backend.command(self.data_dir, self.tmp_dir, self.python)
        if self.cgroups is not None:
            self._cgroup = self.cgroups / f"threadline-{os.getpid()}-{self.key}-{self.starts}"
            try:
                self._cgroup.mkdir(exist_ok=True)
                (self._cgroup / "pids.max").write_text(str(self.limits.max_processes))
            except OSError:
                log.warning("code_interpreter: could not create pids cgroup %s", self._cgroup)
                self._cgroup = None
        self.starts += 1
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=self._preexec,
            start_new_session=True,
            limit=_READ_LIMIT,
            env=dict(_SANDBOX_ENV) if not self.backend.sandboxed else {"PATH": _SANDBOX_ENV["PATH"]},
        )
        try:
            ready = await asyncio.wait_for(self._read(), START_TIMEOUT_S)
        except (TimeoutError, ValueError):
            ready = None
        if not ready or not ready.get("ready"):
            await self.kill()
            raise SandboxUnavailable(
                "The code interpreter session could not start (the sandbox's Python failed to run the "
                "kernel). See the server's docs/code-interpreter.md."
            )

    async def _read(self) -> dict[str, Any] | None:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            return None
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    async def _send(self, payload: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(payload).encode() + b"\n")
        await self._proc.stdin.drain()

    async def execute(self, code: str) -> Execution:
        """Run ``code``; cancellation interrupts it (and kills the sandbox if it does not stop)."""
        async with self.lock:
            if self._settling is not None:
                await asyncio.shield(self._settling)
                self._settling = None
            self.last_used = time.monotonic()
            if not self.alive:
                await self.start()
            try:
                return await self._execute(code)
            finally:
                self.last_used = time.monotonic()

    async def _execute(self, code: str) -> Execution:
        try:
            await self._send({"code": code})
        except (ConnectionError, RuntimeError):
            return await self._died()
        reading = asyncio.ensure_future(self._read())
        try:
            done, _ = await asyncio.wait({reading}, timeout=self.limits.timeout_s)
        except asyncio.CancelledError:
            # The run was cancelled: stop the code now; the next call waits for this to settle.
            self._settling = asyncio.ensure_future(self._interrupt(reading))
            raise
        if not done:
            await self._interrupt(reading)
            logs = ""
            if reading.done() and not reading.cancelled() and (reply := reading.result()):
                logs = str(reply.get("logs") or "")
                note = "the session's state (variables, imports) was kept"
            else:
                note = "the session restarts: variables and imports are lost, files in /mnt/data are kept"
            limit = f"{self.limits.timeout_s:g} s"
            error = f"TimeoutError: the execution exceeded the {limit} time limit and was stopped; {note}.\n"
            return Execution(logs=logs, error=error, timed_out=True)
        reply = reading.result()
        if reply is None:
            return await self._died()
        images = [base64.b64decode(i) for i in reply.get("images") or []]
        return Execution(logs=str(reply.get("logs") or ""), error=reply.get("error"), images=images)

    async def _interrupt(self, reading: asyncio.Future[dict[str, Any] | None]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, AssertionError):
            await self._send({"interrupt": True})
        done, _ = await asyncio.wait({reading}, timeout=INTERRUPT_GRACE_S)
        if not done or reading.result() is None:
            reading.cancel()
            await self.kill()

    async def _died(self) -> Execution:
        status = self._proc.returncode if self._proc is not None else None
        await self.kill()
        if status is not None and status < 0:
            reason = f"it was killed by signal {-status}"
        else:
            reason = f"exit status {status}"
        return Execution(
            logs="",
            error=(
                f"The code interpreter session ended unexpectedly ({reason}), for example past its memory, "
                "CPU or process limits. It restarts on the next call: variables and imports are lost, "
                "files in /mnt/data are kept.\n"
            ),
        )

    async def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        if self._cgroup is not None:
            cgroup, self._cgroup = self._cgroup, None
            await asyncio.to_thread(_remove_cgroup, cgroup)

    async def close(self, remove_files: bool = True) -> None:
        await self.kill()
        if remove_files:
            await asyncio.to_thread(shutil.rmtree, self.root, True)


def _remove_cgroup(cgroup: Path) -> None:
    # Killed processes leave the cgroup a moment after they die; kill stragglers (they are ours).
    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except OSError:
            with contextlib.suppress(OSError):
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), 9)
            time.sleep(0.02)
    log.warning("code_interpreter: could not remove cgroup %s", cgroup)


ThreadAlive = Callable[[list[str]], Awaitable[set[str]]]


class SessionPool:
    """One session per thread: created on first use, ended ``idle_s`` after its last call or when its
    thread is deleted, at most ``max_sessions`` (the least recently used idle one makes room)."""

    def __init__(
        self,
        root: Path,
        backend: Backend,
        limits: Limits,
        python: str,
        idle_s: float,
        max_sessions: int,
        threads_alive: ThreadAlive | None = None,
    ) -> None:
        self.root, self.backend, self.limits, self.python = root, backend, limits, python
        self.idle_s, self.max_sessions = idle_s, max_sessions
        self.threads_alive = threads_alive
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._cgroups: Path | bool | None = False
        self._warned_root = False
        self._closing: set[asyncio.Future[None]] = set()

    def unavailable_reason(self) -> str | None:
        return self.backend.unavailable_reason()

    def _cgroup_parent(self) -> Path | None:
        if self._cgroups is False:
            self._cgroups = _pids_cgroup_parent() if self.backend.sandboxed else None
            if self._cgroups is None and os.geteuid() == 0 and not self._warned_root:
                self._warned_root = True
                log.warning(
                    "code_interpreter: the server runs as root and no pids cgroup can be created: the "
                    "per-session process limit cannot be enforced (the kernel exempts root from "
                    "RLIMIT_NPROC). Run the server as an unprivileged user."
                )
        return self._cgroups if isinstance(self._cgroups, Path) else None

    def session(self, thread_id: str) -> Session:
        session = self.sessions.get(thread_id)
        if session is None:
            reason = self.backend.unavailable_reason()
            if reason is not None:
                raise SandboxUnavailable(reason)
            if not self.backend.sandboxed:
                log.warning("code_interpreter: running model-written code UNSANDBOXED (development setting)")
            cgroups = self._cgroup_parent()
            root = self.root / thread_id
            session = Session(thread_id, root, self.backend, self.limits, self.python, cgroups)
            self.sessions[thread_id] = session
            self._evict()
        self.sessions.move_to_end(thread_id)
        self._ensure_sweeper()
        return session

    def _evict(self) -> None:
        while len(self.sessions) > self.max_sessions:
            victim = next((s for s in self.sessions.values() if not s.lock.locked()), None)
            if victim is None:
                return  # every session is busy: let the pool exceed its bound for now
            del self.sessions[victim.key]
            closing = asyncio.ensure_future(victim.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        failures = RetryLog(log, "code_interpreter session sweep")
        while self.sessions:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end sweeping for good
                failures.failed()
            else:
                failures.succeeded()

    async def sweep(self) -> None:
        """End idle sessions and those of deleted threads (removing their files)."""
        alive: set[str] | None = None
        if self.threads_alive is not None and self.sessions:
            alive = await self.threads_alive(list(self.sessions))
        now = time.monotonic()
        for key, session in list(self.sessions.items()):
            if session.lock.locked():
                continue
            if (alive is not None and key not in alive) or now - session.last_used > self.idle_s:
                self.sessions.pop(key, None)
                await session.close()

    async def end(self, thread_id: str) -> None:
        session = self.sessions.pop(thread_id, None)
        if session is not None:
            await session.close()

    def clear_stale(self) -> None:
        """Remove what an earlier process left (sessions survive nothing across a restart)."""
        parent = self.root.parent
        if not parent.is_dir():
            return
        for entry in parent.iterdir():
            pid = entry.name
            if entry == self.root or (pid.isdigit() and _pid_alive(int(pid))):
                continue
            shutil.rmtree(entry, ignore_errors=True)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        sessions, self.sessions = list(self.sessions.values()), OrderedDict()
        for session in sessions:
            await session.close()
        await asyncio.to_thread(shutil.rmtree, self.root, True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
