"""Scripted OpenAI-compatible model server: the test suite's only fake.

Tests queue replies (text, tool calls, HTTP errors, broken streams, hangs) that are played over
real HTTP on 127.0.0.1, so the code under test and its subprocesses talk to it as to vLLM/OpenAI.
It is a tiny HTTP/1.1 server on asyncio streams, not uvicorn, because the failures under test (a
body cut off mid-chunk, a client vanishing mid-stream) need control of the socket that ASGI hides.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, TypeAlias

import orjson


@dataclass
class Text:  # an assistant answer, streamed as several content deltas
    text: str
    chunks: list[str] | None = None  # the exact deltas; default: words, each keeping its trailing space
    token_delay_s: float = 0.0
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens)
    finish_reason: str = "stop"
    first_token_delay_s: float = 0.0


@dataclass
class Call:
    name: str
    arguments: str  # JSON text sent verbatim, so tests can script invalid JSON on purpose
    id: str | None = None


@dataclass
class ToolCalls:  # one or more (parallel) function calls, optionally preceded by text
    calls: list[Call]
    text: str | None = None
    token_delay_s: float = 0.0
    usage: tuple[int, int] | None = None


@dataclass
class Error:  # an HTTP error with OpenAI's envelope, e.g. 429 + {"retry-after": "1"}, 500, 400
    status: int
    message: str = "The fake model server was scripted to fail."
    type: str = "server_error"
    headers: dict[str, str] | None = None


@dataclass
class Truncated:  # content deltas, then the body stops short: no finish_reason, no [DONE]
    text: str
    token_delay_s: float = 0.0
    # False: the connection closes mid-body (the SDK raises APIConnectionError). True: the HTTP
    # body ends cleanly, only the SSE stream is short (the SDK just stops iterating, no error).
    clean_http_end: bool = False


@dataclass
class Malformed:  # a body that is not JSON (as the only SSE event when streaming)
    payload: str = "{not json"


@dataclass
class Hang:  # say nothing for `seconds`, then answer with `then` (or the default reply)
    seconds: float
    then: Reply | None = None


Reply: TypeAlias = (
    "Text | ToolCalls | Error | Truncated | Malformed | Hang | Callable[[dict[str, Any]], Reply]"
)
_REPLY_TYPES = (Text, ToolCalls, Error, Truncated, Malformed, Hang)
EMBEDDING_DIM = 64


class _ClientGone(Exception):
    """The client closed its connection before we finished answering."""


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _fragments(arguments: str) -> list[str]:
    # Real providers send arguments in several pieces; 2+ fragments exercise the caller's joining.
    size = math.ceil(len(arguments) / 3) if len(arguments) > 2 else 1
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _prompt_words(body: dict[str, Any]) -> int:
    count = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
        elif isinstance(content, list):
            count += sum(len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict))
    return max(count, 1)


CODE_TOOL = "python"  # the function name Threadline offers the model for code_interpreter
_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def code_call(code: str, token_delay_s: float = 0.0) -> ToolCalls:
    """A call of the code_interpreter tool with ``code``."""
    return ToolCalls([Call(CODE_TOOL, orjson.dumps({"code": code}).decode())], token_delay_s=token_delay_s)


def user_code(body: dict[str, Any]) -> Reply:
    """A model driven by the user's text: the last user message's ```python blocks become one
    code_interpreter call; after the tool answered, the reply is ``Output: <what the tool returned>``
    (a text that says ``link NAME`` also gets a ``sandbox:/mnt/data/NAME`` link)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = f"Output: {last.get('content')}"
        link = re.search(r"link (\S+)", str(user.get("content") or ""))
        if link:
            text += f" Download [it](sandbox:/mnt/data/{link.group(1)})."
        return Text(text)
    content = last.get("content") if last.get("role") == "user" else None
    blocks = _CODE_BLOCK.findall(content) if isinstance(content, str) else []
    if not blocks:
        return Text("No code to run.")
    return code_call("\n".join(b.rstrip("\n") for b in blocks))


def _error(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


def embed(text: str) -> list[float]:
    """Signed feature hashing of lowercase words, L2-normalised: shared words => higher cosine."""
    vector = [0.0] * EMBEDDING_DIM
    for word in re.findall(r"\w+", text.lower()) or [text]:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[digest % EMBEDDING_DIM] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Exchange:
    """One request/response on a connection; every wait and write notices a departed client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self.reader, self.writer, self.keep_alive = reader, writer, keep_alive

    def gone(self) -> bool:
        # The transport keeps reading while we sleep, so a client's close shows up as EOF here
        # without consuming input (HTTP/1.1 clients send nothing more until our response ends).
        return self.reader.at_eof() or self.writer.is_closing()

    async def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.gone():
                raise _ClientGone
            await asyncio.sleep(min(left, 0.01))

    async def write(self, data: bytes) -> None:
        if self.gone():
            raise _ClientGone
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            raise _ClientGone from exc

    async def head(self, status: int, headers: dict[str, str]) -> None:
        request_id = f"x-request-id: req_{secrets.token_hex(8)}"  # the SDK surfaces it on errors
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", request_id]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [] if self.keep_alive else ["connection: close"]
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        length = {"content-type": "application/json", "content-length": str(len(body))}
        await self.head(status, length | (headers or {}))
        await self.write(body)

    async def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        await self.send(status, orjson.dumps(payload), headers)

    async def hang_up(self) -> None:
        # Close gracefully, not abort, so the bytes written so far reach the client before the EOF
        # that leaves the chunked body (or the promised content-length) incomplete.
        self.keep_alive = False
        self.writer.close()
        await self.writer.wait_closed()

    async def start_sse(self) -> None:
        # Chunked transfer encoding, as vLLM and OpenAI use, so a cut-off body is detectable.
        sse = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        await self.head(200, sse | {"transfer-encoding": "chunked"})

    async def event(self, data: bytes) -> None:
        payload = b"data: " + data + b"\n\n"
        await self.write(b"%x\r\n%s\r\n" % (len(payload), payload))


class FakeModelServer:
    """`with FakeModelServer() as fake:` serves scripted replies at `fake.base_url` until exit."""

    embedding_dim = EMBEDDING_DIM

    def __init__(self) -> None:
        self.default: Reply = Text("OK")
        self.models: list[str] = ["fake-model", "fake-embedding"]
        self.requests: list[dict[str, Any]] = []  # chat-completions bodies, in arrival order
        self.request_headers: list[dict[str, str]] = []  # lowercase names, parallel to `requests`
        self.embedding_requests: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []  # raised by callable replies or by bugs in the fake
        self.port = 0
        self._queue: deque[Reply] = deque()
        self._closed_early = 0
        # One condition guards all shared state (the test thread scripts and reads while the server
        # thread serves) and wakes waiters on every change.
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def connections_closed_early(self) -> int:
        with self._cond:
            return self._closed_early

    def script(self, *replies: Reply) -> None:
        with self._cond:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget the queue, the logs and any custom default: the session shares one server."""
        with self._cond:
            self._queue.clear()
            self.default = Text("OK")
            for log in (self.requests, self.request_headers, self.embedding_requests, self.errors):
                log.clear()
            self._closed_early = 0

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """Block until `count` chat requests arrived (e.g. to cancel a run mid-call); return the last."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} chat requests, got {len(self.requests)}")
            return self.requests[-1]

    def wait_for_closed_early(self, count: int = 1, timeout: float = 5.0) -> None:
        # The server notices a disconnect at its next write or 10 ms poll, just after the client.
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed_early >= count, timeout):
                raise TimeoutError(f"expected {count} early disconnects, got {self._closed_early}")

    def start(self) -> FakeModelServer:
        # A daemon thread, so a test that forgets to stop the server cannot hang interpreter exit.
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="fake-model-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("fake model server failed to start")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended (startup failed)
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=2**26)
            self.port = server.sockets[0].getsockname()[1]
        finally:
            self._ready.set()
        await self._stop.wait()
        server.close()
        # Cancel in-flight handlers so that a Hang(60) cannot outlive the test.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # The peer left, or the server is stopping (maybe mid-Hang): don't flush to a dead peer.
            writer.transport.abort()
        except Exception as exc:  # a bug in the fake: record it for the fake's own tests
            with self._cond:
                self.errors.append(exc)
            writer.transport.abort()
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return whether the connection stays open for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        # HTTP clients send JSON with a content-length; chunked request bodies are not supported.
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        ex = _Exchange(reader, writer, version == "HTTP/1.1" and headers.get("connection") != "close")
        path = target.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in self.models]
            await ex.json(200, {"object": "list", "data": data})
        elif method == "POST" and path in ("/v1/chat/completions", "/v1/embeddings"):
            try:
                parsed = orjson.loads(body)
                assert isinstance(parsed, dict), "the body must be a JSON object"
            except (ValueError, AssertionError) as exc:
                await ex.json(400, _error(f"Invalid JSON body: {exc}"))
            else:
                handler = self._chat if path.endswith("completions") else self._embeddings
                await handler(ex, parsed, headers)
        else:
            await ex.json(404, _error(f"Unknown route {method} {path}"))
        return ex.keep_alive

    async def _embeddings(self, ex: _Exchange, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._cond:
            self.embedding_requests.append(body)
            self._cond.notify_all()
        raw = body.get("input")
        # Token-id input (lists of ints) is valid in the API: each id counts as a word.
        inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        if not inputs or not isinstance(inputs, list):
            await ex.json(400, _error("'input' must be a non-empty string or list", "invalid_request_error"))
            return
        texts = [i if isinstance(i, str) else " ".join(map(str, i)) for i in inputs]
        data = []
        for index, text in enumerate(texts):
            vector: Any = embed(text)
            if body.get("encoding_format") == "base64":  # what the openai client asks for by default
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        words = max(1, sum(len(t.split()) for t in texts))
        usage = {"prompt_tokens": words, "total_tokens": words}
        await ex.json(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _chat(self, ex: _Exchange, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._cond:
            self.requests.append(body)
            self.request_headers.append(headers)
            reply = self._queue.popleft() if self._queue else self.default
            self._cond.notify_all()
        try:
            await self._play(ex, body, reply)
        except _ClientGone:
            with self._cond:
                self._closed_early += 1
                self._cond.notify_all()
            raise

    async def _play(self, ex: _Exchange, body: dict[str, Any], reply: Reply) -> None:
        while not isinstance(reply, _REPLY_TYPES):
            try:
                reply = reply(body)
            except Exception as exc:
                with self._cond:
                    self.errors.append(exc)
                await ex.json(500, _error(f"fake reply callable raised {exc!r}", "server_error"))
                return
        stream = bool(body.get("stream"))
        if isinstance(reply, Hang):
            await ex.sleep(reply.seconds)
            await self._play(ex, body, reply.then if reply.then is not None else self.default)
        elif isinstance(reply, Error):
            await ex.json(reply.status, _error(reply.message, reply.type), reply.headers)
        elif isinstance(reply, Malformed) and stream:
            await ex.start_sse()
            await ex.event(reply.payload.encode())
            await ex.write(b"0\r\n\r\n")
        elif isinstance(reply, Malformed):
            await ex.send(200, reply.payload.encode())
        elif isinstance(reply, Truncated) and not stream:  # promise a longer body than we send
            await ex.head(200, {"content-type": "application/json", "content-length": "100000"})
            await ex.write(b'{"id": "chatcmpl-truncated", "choices": [')
            await ex.hang_up()
        elif isinstance(reply, Truncated):
            text = Text(reply.text, token_delay_s=reply.token_delay_s)
            await self._answer(ex, body, text, stream, truncated=reply)
        else:
            await self._answer(ex, body, reply, stream)

    @staticmethod
    def _deltas(reply: Text | ToolCalls) -> list[dict[str, Any]]:
        """Content deltas, then per tool call (as OpenAI streams them) a header delta with index, id,
        type, name and empty arguments, then the arguments in 2+ fragments."""
        chunks = _words(reply.text or "")
        if isinstance(reply, Text) and reply.chunks is not None:
            chunks = reply.chunks
        deltas: list[dict[str, Any]] = [{"content": c} for c in chunks]
        for index, call in enumerate(reply.calls if isinstance(reply, ToolCalls) else []):
            head = {"index": index, "id": call.id, "type": "function"}
            deltas.append({"tool_calls": [head | {"function": {"name": call.name, "arguments": ""}}]})
            for fragment in _fragments(call.arguments):
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        return deltas

    async def _answer(
        self,
        ex: _Exchange,
        body: dict[str, Any],
        reply: Text | ToolCalls,
        stream: bool,
        truncated: Truncated | None = None,
    ) -> None:
        if isinstance(reply, ToolCalls):  # fix the ids now: stream and message must agree
            calls = [replace(c, id=c.id or f"call_{secrets.token_hex(12)}") for c in reply.calls]
            reply = replace(reply, calls=calls)
        deltas = self._deltas(reply)
        first_delay = getattr(reply, "first_token_delay_s", 0.0)
        finish = reply.finish_reason if isinstance(reply, Text) else "tool_calls"
        prompt, completion = reply.usage or (_prompt_words(body), len(deltas))
        usage = dict(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        envelope: dict[str, Any] = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion.chunk",
        }
        envelope |= {"created": int(time.time()), "model": body.get("model") or "fake-model"}
        if not stream:
            await ex.sleep(first_delay + reply.token_delay_s * len(deltas))  # as long as streaming takes
            text = "".join(d.get("content", "") for d in deltas)
            content = text if isinstance(reply, Text) else text or None  # OpenAI: null beside tool calls
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if isinstance(reply, ToolCalls):
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in reply.calls
                ]
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            await ex.json(200, envelope | {"object": "chat.completion", "choices": [choice], "usage": usage})
            return
        # Like OpenAI: with include_usage every chunk carries "usage": null, and a last chunk the usage.
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return orjson.dumps(envelope | {"choices": [choice]} | extra)

        await ex.start_sse()
        await ex.event(chunk({"role": "assistant", "content": None if isinstance(reply, ToolCalls) else ""}))
        await ex.sleep(first_delay)
        for delta in deltas:
            await ex.sleep(reply.token_delay_s)
            await ex.event(chunk(delta))
        if truncated is not None:  # stop short of finish_reason and [DONE]
            await (ex.write(b"0\r\n\r\n") if truncated.clean_http_end else ex.hang_up())
            return
        await ex.event(chunk({}, finish))
        if include_usage:
            await ex.event(orjson.dumps(envelope | {"choices": [], "usage": usage}))
        await ex.event(b"[DONE]")
        await ex.write(b"0\r\n\r\n")  # the last chunk of the chunked body
