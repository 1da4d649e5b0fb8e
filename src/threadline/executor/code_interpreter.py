"""The code_interpreter server tool: the model calls ``python(code)``; the code runs in the thread's
sandboxed session (``executor/sandbox.py``) with the run's files in ``/mnt/data``; what it printed
goes back to the model, figures become image files, and files it wrote that the answer links as
``sandbox:/mnt/data/NAME`` become files with ``file_path`` annotations.

The step records ``{"input": code, "outputs": [{"type": "logs", "logs"} | {"type": "image",
"image": {"file_id"}}]}``; the model's view of a call is rendered from that record alone (``replay``),
so a later round, possibly on another worker process, sees the same thing.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from threadline.blobs import BlobNotFound, BlobStore
from threadline.config import Settings
from threadline.domain.errors import ThreadlineError
from threadline.domain.files import StoredFile
from threadline.domain.ids import new_id
from threadline.domain.runs import Run
from threadline.executor.sandbox import (
    DATA_STACK,
    SANDBOX_DATA,
    Backend,
    BubblewrapBackend,
    Limits,
    NoBackend,
    SandboxUnavailable,
    Session,
    SessionPool,
    UnsandboxedBackend,
    python_layout,
)
from threadline.executor.tools import ToolResult
from threadline.services.clock import now
from threadline.services.runs import resources
from threadline.storage.database import Database

log = logging.getLogger(__name__)

OUTPUT_PURPOSE = "assistants_output"
TRUNCATION_NOTE = "\n[... output truncated: {dropped} characters left out ...]\n"
# sandbox:/mnt/data/NAME as models write it, bare or inside a markdown link.
LINK = re.compile(r"sandbox:/mnt/data/([^\s()\[\]<>\"'`]+)")
_PARAMETERS = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
}
_DESCRIPTION = (
    "Run Python code in a stateful sandboxed session (like a Jupyter notebook: variables, imports and "
    "files persist across calls in this conversation). numpy, pandas and matplotlib are installed when "
    "the operator installed them; there is no internet access. Whatever the code prints is returned; "
    "matplotlib figures are shown to the user as images. Input files are in /mnt/data; save files for "
    "the user in /mnt/data and link them as sandbox:/mnt/data/NAME. Each call may run for at most "
    "{timeout:g} seconds."
)


class CodeInterpreterError(ThreadlineError):
    """code_interpreter cannot run on this server (no sandbox): fails the run with how to enable it."""


class CodeInterpreterTool:
    type = "code_interpreter"
    name = "python"

    def __init__(self, db: Database, blobs: BlobStore, pool: SessionPool, output_chars: int) -> None:
        self.db, self.blobs, self.pool, self.output_chars = db, blobs, pool, output_chars

    # --- what the model sees ----------------------------------------------------------------------

    def chat_tool(self, tool: dict[str, Any], files: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        description = _DESCRIPTION.format(timeout=self.pool.limits.timeout_s)
        if files:
            listed = ", ".join(f"{SANDBOX_DATA}/{name} ({file_id})" for name, file_id in files)
            description += f" Files available: {listed}."
        return {
            "type": "function",
            "function": {"name": self.name, "description": description, "parameters": _PARAMETERS},
        }

    async def prepare_chat_tool(self, run: Run, tool: dict[str, Any]) -> dict[str, Any]:
        """The tool definition for this run, naming the files copied into the thread's /mnt/data.
        Fails the run (with how to enable it) when no sandbox can run here."""
        reason = self.pool.unavailable_reason()
        if reason is not None:
            raise CodeInterpreterError(reason)
        session = self._session(run)
        files = await self._sync_files(run, session)
        return self.chat_tool(tool, files)

    def replay(self, details: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> tuple[str, str]:
        arguments = orjson.dumps({"code": details.get("input") or ""}).decode()
        parts: list[str] = []
        for output in details.get("outputs") or []:
            if output.get("type") == "logs":
                parts.append(str(output.get("logs") or ""))
            elif output.get("type") == "image":
                parts.append(f"[image {output.get('image', {}).get('file_id')} shown to the user]")
        return arguments, self._truncate("\n".join(parts) or "(no output)")

    def stream_start(self) -> dict[str, Any]:
        return {"input": "", "outputs": []}

    def stream_arguments(self, before: str, after: str) -> dict[str, Any] | None:
        """The ``code_interpreter`` delta for the code the model wrote since ``before``."""
        new = partial_code(after)[len(partial_code(before)) :]
        return {"input": new} if new else None

    # --- running code -----------------------------------------------------------------------------

    def _session(self, run: Run) -> Session:
        try:
            return self.pool.session(run.thread_id)
        except SandboxUnavailable as exc:
            raise CodeInterpreterError(str(exc)) from None

    async def call(self, run: Run, arguments: str) -> ToolResult:
        code = code_argument(arguments)
        session = self._session(run)
        await self._sync_files(run, session)
        try:
            result = await session.execute(code)
        except SandboxUnavailable as exc:
            raise CodeInterpreterError(str(exc)) from None
        logs = result.logs + (result.error or "")
        outputs: list[dict[str, Any]] = []
        if logs:
            outputs.append({"type": "logs", "logs": self._truncate(logs)})
        for image in result.images:
            stored = await self._store(image, "image.png")
            outputs.append({"type": "image", "image": {"file_id": stored.id}})
        indexed = [{"index": i, **output} for i, output in enumerate(outputs)]
        deltas = ({"outputs": indexed},) if outputs else ()
        return ToolResult(details={"input": code, "outputs": outputs}, deltas=deltas)

    def _truncate(self, text: str) -> str:
        if len(text) <= self.output_chars:
            return text
        # Keep the start and the end: a traceback's last lines say what failed.
        half = self.output_chars // 2
        dropped = len(text) - 2 * half
        return text[:half] + TRUNCATION_NOTE.format(dropped=dropped) + text[-half:]

    async def _sync_files(self, run: Run, session: Session) -> list[tuple[str, str]]:
        """Copy the run's files (assistant's and thread's code_interpreter.file_ids; message
        attachments land in the thread's) into /mnt/data once per session; (name, file_id) of each."""
        files = await self.db.transaction(lambda uow: resources.code_files(uow, run))
        session.data_dir.mkdir(parents=True, exist_ok=True)
        listed: list[tuple[str, str]] = []
        taken = set(session.copied.values())
        for file in files:
            name = session.copied.get(file.id)
            if name is None:
                name = _file_name(file, taken)
                try:
                    data = await asyncio.to_thread(self.blobs.read, file.id)
                except BlobNotFound:
                    continue
                await asyncio.to_thread((session.data_dir / name).write_bytes, data)
                session.copied[file.id] = name
                taken.add(name)
            listed.append((name, file.id))
        return listed

    async def _store(self, data: bytes, filename: str) -> StoredFile:
        file_id = new_id("file")
        size = await asyncio.to_thread(self.blobs.put, file_id, io.BytesIO(data))
        stored = StoredFile(
            id=file_id, created_at=now(), bytes=size, filename=filename, purpose=OUTPUT_PURPOSE
        )
        try:
            await self.db.transaction(lambda uow: resources.store_output(uow, stored))
        except BaseException:
            await asyncio.to_thread(self.blobs.delete, file_id)
            raise
        return stored

    # --- the answer's links and images ------------------------------------------------------------

    async def finish_text(self, run: Run, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(file_path annotations for ``sandbox:/mnt/data/…`` links to files the code wrote, the
        image_file content parts of figures not yet shown in one of the run's messages)."""
        images = await self.db.transaction(lambda uow: resources.unshown_images(uow, run.id))
        parts = [{"type": "image_file", "image_file": {"file_id": i}} for i in images]
        session = self.pool.sessions.get(run.thread_id)
        annotations: list[dict[str, Any]] = []
        if session is None or "sandbox:" not in text:
            return annotations, parts
        created: dict[str, str] = {}
        for match in LINK.finditer(text):
            name = match.group(1).rstrip(".,;:!?")
            file_id = created.get(name)
            if file_id is None:
                limit = self.pool.limits.max_file_bytes
                data = await asyncio.to_thread(_read_inside, session.data_dir, name, limit)
                if data is None:
                    continue  # a link to nothing the code wrote: leave it as text
                file_id = created[name] = (await self._store(data, f"{SANDBOX_DATA}/{name}")).id
            link = f"sandbox:/mnt/data/{name}"
            annotations.append(
                {
                    "type": "file_path",
                    "text": link,
                    "file_path": {"file_id": file_id},
                    "start_index": match.start(),
                    "end_index": match.start() + len(link),
                }
            )
        return annotations, parts

    async def end_thread(self, thread_id: str) -> None:
        await self.pool.end(thread_id)

    async def aclose(self) -> None:
        await self.pool.aclose()


def code_argument(arguments: str) -> str:
    """The code from the call's arguments; a model that sent bare code still meant it as code."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    if isinstance(parsed, dict):
        return str(parsed.get("code") or parsed.get("input") or "")
    return str(parsed)


_CODE_START = re.compile(r'^\s*\{\s*"code"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def partial_code(arguments: str) -> str:
    """The decoded part of the ``code`` string in a prefix of ``{"code": "..."}`` (streamed
    arguments), stopping before an escape sequence that is not complete yet."""
    start = _CODE_START.match(arguments)
    if start is None:
        return ""
    out: list[str] = []
    i, n = start.end(), len(arguments)
    while i < n:
        ch = arguments[i]
        if ch == '"':
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            break
        kind = arguments[i + 1]
        if kind == "u":
            if i + 6 > n:
                break
            code = int(arguments[i + 2 : i + 6], 16)
            if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                if i + 12 > n:
                    break
                low = int(arguments[i + 8 : i + 12], 16)
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                i += 12
                continue
            out.append(chr(code))
            i += 6
            continue
        out.append(_ESCAPES.get(kind, kind))
        i += 2
    return "".join(out)


def _file_name(file: StoredFile, taken: set[str]) -> str:
    """The file's own name (what the user called it), made safe; the id decides between equals."""
    name = os.path.basename(file.filename.replace("\\", "/")).strip()
    if not name or name.startswith(".") or len(name) > 200:
        name = file.id
    if name in taken:
        name = f"{file.id}-{name}"
    return name


def _read_inside(root: Path, relative: str, max_bytes: int) -> bytes | None:
    """The bytes of regular file ``relative`` under ``root``, never following a symlink: the sandbox
    writes this directory and may still be running, so every component is opened without following
    links, relative to its parent's descriptor (no check-then-open race)."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        try:
            info = os.fstat(file_fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
                return None
            with os.fdopen(file_fd, "rb", closefd=False) as handle:
                return handle.read(max_bytes + 1)[:max_bytes]
        finally:
            os.close(file_fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def backend_from_settings(settings: Settings) -> Backend:
    choice = settings.code_interpreter_backend
    if choice == "unsandboxed":
        log.warning(
            "THREADLINE_CODE_INTERPRETER_BACKEND=unsandboxed: model-written code will run WITHOUT A SANDBOX, "
            "with the server's own permissions. For development only."
        )
        return UnsandboxedBackend()
    if choice == "none":
        return NoBackend(
            "code_interpreter is disabled on this server (THREADLINE_CODE_INTERPRETER_BACKEND=none). "
            "See docs/code-interpreter.md to enable it."
        )
    if choice not in ("auto", "bubblewrap"):
        return NoBackend(
            f"Unknown THREADLINE_CODE_INTERPRETER_BACKEND {choice!r}: use auto, bubblewrap or none."
        )
    return BubblewrapBackend(hidden=[settings.data_dir])


def availability(settings: Settings) -> tuple[str, str | None]:
    """What the start-up summary says of code_interpreter, and a warning when it cannot run here."""
    if settings.code_interpreter_backend == "none":
        return "off (THREADLINE_CODE_INTERPRETER_BACKEND=none)", None
    if settings.code_interpreter_backend == "unsandboxed":
        # Building the backend is what warns loudly; the executor does so when it starts.
        return "UNSANDBOXED (development only: model-written code runs with the server's rights)", None
    backend = backend_from_settings(settings)
    python = settings.code_interpreter_python or sys.executable
    try:
        reason = backend.unavailable_reason()
        layout = python_layout(python) if reason is None else None
    except SandboxUnavailable as exc:
        reason, layout = str(exc), None
    if reason is not None or layout is None:
        return "unavailable (runs that use it fail saying why)", reason
    missing = [name for name in DATA_STACK if name not in layout.packages]
    stack = f"without {', '.join(missing)}" if missing else ", ".join(DATA_STACK)
    line = f"{backend.name} sandbox, {python} ({stack})"
    if missing:
        return line, (
            f"code_interpreter: the sandbox's Python {python} lacks {', '.join(missing)}: install the "
            "code-interpreter extra (pip install 'threadline[code-interpreter]') or set "
            "THREADLINE_CODE_INTERPRETER_PYTHON"
        )
    return line, None


def code_interpreter_from_settings(settings: Settings, db: Database, blobs: BlobStore) -> CodeInterpreterTool:
    """The tool and its session pool, sessions kept under ``<data_dir>/code-interpreter/<pid>``."""
    limits = Limits(
        memory_bytes=settings.code_interpreter_memory_mb * 1024 * 1024,
        timeout_s=settings.code_interpreter_timeout_s,
        max_processes=settings.code_interpreter_max_processes,
        max_file_bytes=settings.code_interpreter_max_file_mb * 1024 * 1024,
        cpu_s=settings.code_interpreter_cpu_s,
    )

    async def threads_alive(thread_ids: list[str]) -> set[str]:
        return await db.transaction(lambda uow: resources.live_threads(uow, thread_ids))

    root = (settings.data_dir / "code-interpreter" / str(os.getpid())).resolve()
    pool = SessionPool(
        root,
        backend_from_settings(settings),
        limits,
        settings.code_interpreter_python or sys.executable,
        settings.code_interpreter_idle_s,
        settings.code_interpreter_max_sessions,
        threads_alive,
    )
    pool.clear_stale()
    return CodeInterpreterTool(db, blobs, pool, settings.code_interpreter_output_chars)
