"""Text extraction, chunking and tokenizing of uploaded files, in child processes with hard limits.

Parsers and the BPE tokenizer meet hostile files: a slide with one 450 MiB text run once grew the
server to 16 GB inside the tokenizer's Rust code, where an allocation failure aborts the process and
Python cannot catch it. So that work runs in a small pool of child processes, each limited to an
address space (``RLIMIT_AS``) and to CPU seconds per file (``RLIMIT_CPU``, re-armed per file since
children are reused), and killed by the parent after a wall-clock timeout. A bomb kills its child,
never the server; the file then fails with a message that says which limit it hit, and a fresh
child takes the dead one's place.

Children are fresh interpreters (``python -c``, never ``fork``: the server has threads whose locks a
fork would copy, and multiprocessing's ``spawn`` would re-import the server's main module), started
on first use and reused for later files, so the start-up cost (~1 s: imports and the tokenizer's
tables) is paid once per child, not per file. The file's bytes go to the child in 1 MiB messages,
so the server never holds more than one of them; chunks come back as (index, text, start) tuples.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from threadline.domain.errors import InvalidFile, ThreadlineError, UnsupportedFile

_PIECE_BYTES = 1 << 20
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class PoolLimits:
    processes: int = 1
    memory_bytes: int = 1024 * 1024 * 1024
    cpu_s: int = 120
    timeout_s: float = 150.0
    max_tokens: int = 5_000_000


# What a child returns: the UTF-8 size of the text and its chunks as (index, text, start_char).
Extracted = tuple[int, list[tuple[int, str, int]]]


class IngestionPool:
    """At most ``limits.processes`` children, each doing one file at a time."""

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(max(1, limits.processes))
        self._idle: list[_Child] = []

    async def extract(
        self, pieces: Iterable[bytes], filename: str, max_chunk_tokens: int, overlap_tokens: int
    ) -> Extracted:
        """Text and chunks of the file whose bytes ``pieces`` yields; raises ``InvalidFile`` /
        ``UnsupportedFile`` for a bad file and ``InvalidFile`` naming the limit a child hit."""
        async with self._slots:
            child = self._idle.pop() if self._idle else None
            try:
                if child is None:
                    # Started from the event loop's thread, not a pool thread: the child's
                    # parent-death signal fires when the thread that started it exits.
                    child = _Child.start(self.limits)
                job = (filename, max_chunk_tokens, overlap_tokens)
                result = await asyncio.to_thread(child.run, job, pieces, self.limits.timeout_s)
            except ThreadlineError:
                # A bad file reported by a healthy child keeps the child; one that killed it does not.
                if child is not None and child.alive:
                    self._idle.append(child)
                raise
            except BaseException:
                # Cancelled or broken mid-file: the child's state is unknown, never reuse it.
                if child is not None:
                    await asyncio.shield(asyncio.to_thread(child.kill))
                raise
            if child.alive:
                self._idle.append(child)
            return result

    def close(self) -> None:
        for child in self._idle:
            child.kill()
        self._idle.clear()


class _Child:
    def __init__(self, process: subprocess.Popen[bytes], conn: Connection, limits: PoolLimits) -> None:
        self.process = process
        self.conn = conn
        self.limits = limits
        self.alive = True
        self.ready = False

    @classmethod
    def start(cls, limits: PoolLimits) -> _Child:
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        code = (
            "from threadline.ingestion.pool import child_main; "
            f"child_main({fd}, {limits.memory_bytes}, {limits.cpu_s}, {limits.max_tokens})"
        )
        try:
            process = subprocess.Popen([sys.executable, "-c", code], pass_fds=[fd], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        return cls(process, Connection(ours.detach()), limits)

    def run(self, job: tuple[str, int, int], pieces: Iterable[bytes], timeout_s: float) -> Extracted:
        try:
            if not self.ready:
                # Start-up (imports, the tokenizer's tables) does not count against a file's time.
                if not self.conn.poll(_START_TIMEOUT_S):
                    self.kill()
                    raise ThreadlineError("The ingestion worker process did not start.")
                self.conn.recv()
                self.ready = True
            self.conn.send(job)
            for piece in pieces:
                for start in range(0, len(piece), _PIECE_BYTES):
                    self.conn.send_bytes(piece[start : start + _PIECE_BYTES])
            self.conn.send_bytes(b"")
            if not self.conn.poll(timeout_s):
                self.kill()
                raise InvalidFile(
                    f"Processing the file took longer than the ingestion time limit ({timeout_s:g} s)."
                )
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        kind = reply[0]
        if kind == "ok":
            return reply[1], reply[2]
        _, code, message = reply
        if code == "unsupported_file":
            raise UnsupportedFile(message)
        if code == "invalid_file":
            raise InvalidFile(message)
        raise ThreadlineError(message)

    def _died(self) -> InvalidFile:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        exitcode = self.process.returncode
        self.kill()
        if exitcode == -signal.SIGXCPU:
            return InvalidFile(
                f"Processing the file exceeded the ingestion CPU time limit ({self.limits.cpu_s} s)."
            )
        how = (
            f"signal {signal.Signals(-exitcode).name}"
            if exitcode and exitcode < 0
            else f"exit code {exitcode}"
        )
        # The tokenizer's Rust code aborts (SIGABRT) when an allocation fails at the address-space limit.
        # "Ingestion worker" here is the child process: the wording reaches clients in last_error.
        return InvalidFile(
            f"Processing the file crashed the ingestion worker ({how}), most likely at the ingestion "
            f"memory limit ({self.limits.memory_bytes // (1024 * 1024)} MiB)."
        )

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def child_main(fd: int, memory_bytes: int, cpu_s: int, max_tokens: int) -> None:
    """The child's loop: one file per message, until the parent closes the socket."""
    import resource

    conn = Connection(fd)
    _die_with_parent()

    from threadline.retrieval import chunk_text, extract_text
    from threadline.retrieval.tokens import TokenLimitExceeded, count_tokens

    # The parent's Ctrl-C is for the parent: it closes the pipe and the child exits on EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit_mib = memory_bytes // (1024 * 1024)
    count_tokens("warm up")  # load the tokenizer's tables before the first file's clock starts
    conn.send(("ready",))
    while True:
        try:
            filename, max_chunk_tokens, overlap_tokens = conn.recv()
            data = bytearray()
            while piece := conn.recv_bytes():
                data += piece
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime) + cpu_s
        if cpu_hard != resource.RLIM_INFINITY:
            soft = min(soft, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))
        reply: tuple[Any, ...]
        try:
            blob = bytes(data)
            del data  # one copy of the file at a time, not two
            text = extract_text(blob, filename)
            del blob
            chunks = chunk_text(text, max_chunk_tokens, overlap_tokens, max_tokens=max_tokens)
            reply = ("ok", len(text.encode()), [(c.index, c.text, c.start_char) for c in chunks])
        except TokenLimitExceeded as exc:
            reply = (
                "error",
                "invalid_file",
                f"File '{filename}' has more than {exc.limit:,} tokens, the limit for one file.",
            )
        except (InvalidFile, UnsupportedFile) as exc:
            if _out_of_memory(exc.__cause__):
                reply = (
                    "error",
                    "invalid_file",
                    f"{exc.message} (the ingestion memory limit is {limit_mib} MiB)",
                )
            else:
                reply = ("error", exc.code, exc.message)
        except MemoryError:
            reply = (
                "error",
                "invalid_file",
                f"Processing the file exceeded the ingestion memory limit ({limit_mib} MiB).",
            )
        except Exception as exc:
            reply = ("error", "server_error", f"Processing the file failed: {type(exc).__name__}.")
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except MemoryError:
            conn.send(("error", "invalid_file", "The file's chunks exceeded the ingestion memory limit."))


def _out_of_memory(cause: BaseException | None) -> bool:
    # Parsers report a failed allocation as MemoryError or, in zlib's case, as zlib.error.
    return isinstance(cause, MemoryError) or "allocate" in str(cause)


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when the server dies (kill -9 included), so no orphan keeps
    burning CPU on a bomb. Elsewhere the child exits at its next read of the closed socket."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
