"""OpenAICompatibleModel and OpenAIEmbeddingModel against a scripted upstream speaking raw HTTP/1.1.

The stub is written against sockets rather than a web framework so it can misbehave the way real
upstreams do: cut a chunked body short, send malformed JSON, hang, or stream until the client leaves.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from threadline.config import Settings
from threadline.domain.errors import UpstreamError
from threadline.llm import (
    ChatEvent,
    ChatRequest,
    EmbeddingModel,
    Finish,
    OpenAICompatibleModel,
    OpenAIEmbeddingModel,
    RetryPolicy,
    TextDelta,
    ToolCallDelta,
    Usage,
    embedding_model_from_settings,
)
from threadline.llm.client import open_client

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_retries=2, initial_delay_s=0.01, max_delay_s=0.1, max_total_delay_s=1.0)
SECRET = "sk-test-secret-123456"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the stub upstream ----------------------------------------------------------------------------
@dataclass
class Reply:
    """One scripted response: JSON (``status``/``body``) or, when ``sse`` is set, an event stream."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[str] | None = None  # data payloads, sent as ``data: <payload>``
    done: bool = True  # end with ``data: [DONE]``
    cut: bool = False  # drop the connection without the terminating zero-length chunk
    endless: bool = False  # after ``sse``, keep the response open until the client hangs up
    hang: bool = False  # never answer at all


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


ReplyScript = Reply | Callable[[Recorded], Reply]


class StubUpstream:
    """Serves the scripted replies in order (the last one repeats) on a free 127.0.0.1 port."""

    def __init__(self, *replies: ReplyScript) -> None:
        self._replies = list(replies)
        self.requests: list[Recorded] = []
        self.disconnected = asyncio.Event()
        self.disconnected_at = 0.0
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> StubUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        if self._handlers:  # let handlers see the client's hang-up before cancelling stragglers
            await asyncio.wait(set(self._handlers), timeout=1.0)
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await _read_request(reader)
            self.requests.append(request)
            script = self._replies[0] if len(self._replies) == 1 else self._replies.pop(0)
            reply = script(request) if callable(script) else script
            await self._send(reply, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Swallowing our own cancellation (from __aexit__) keeps Python 3.11's stream protocol
            # from logging the cancelled handler task as an error.
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _send(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply.hang:
            await reader.read()  # until the client gives up
            return
        extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
        if reply.sse is None:
            payload = json.dumps(reply.body).encode()
            head = (
                f"HTTP/1.1 {reply.status} Stub\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n{extra}\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n" + extra.encode() + b"\r\n"
        )
        for data in reply.sse:
            writer.write(_chunked(f"data: {data}\n\n"))
        await writer.drain()
        if reply.endless:
            await self._stream_until_client_leaves(reader, writer)
            return
        if reply.done:
            writer.write(_chunked("data: [DONE]\n\n"))
        if not reply.cut:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _stream_until_client_leaves(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        eof = asyncio.ensure_future(reader.read())  # b"" once the client closes its side
        try:
            while not eof.done():
                writer.write(_chunked(": still generating\n\n"))  # an SSE comment: no event
                await writer.drain()
                await asyncio.wait([eof], timeout=0.02)
        except ConnectionError:
            pass
        finally:
            eof.cancel()
            self.disconnected_at = time.monotonic()
            self.disconnected.set()


async def _read_request(reader: asyncio.StreamReader) -> Recorded:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    return Recorded(path=path, headers=headers, body=json.loads(raw) if raw else None)


def _chunked(text: str) -> bytes:
    data = text.encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def chunk(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    choices: bool = True,
) -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body)


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "code": None}}


HELLO = Reply(
    sse=[
        chunk("Hel"),
        chunk("lo"),
        chunk(finish="stop"),
        chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}),
    ]
)


@asynccontextmanager
async def chat_model(
    base_url: str, policy: RetryPolicy = FAST, timeout_s: float = 5.0
) -> AsyncIterator[OpenAICompatibleModel]:
    client = open_client(base_url, SECRET, timeout_s)
    try:
        yield OpenAICompatibleModel(client, api_key=SECRET, timeout_s=timeout_s, policy=policy)
    finally:
        await client.close()


def request(**kwargs: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], **kwargs)


async def collect(model: OpenAICompatibleModel, req: ChatRequest | None = None) -> list[ChatEvent]:
    return [event async for event in model.stream(req or request())]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- streaming ------------------------------------------------------------------------------------
async def test_text_stream_yields_deltas_then_finish_with_usage() -> None:
    async with StubUpstream(HELLO) as stub, chat_model(stub.base_url) as model:
        events = await collect(model)
    assert events == [TextDelta("Hel"), TextDelta("lo"), Finish("stop", Usage(7, 2))]
    sent = stub.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_optional_fields_are_sent_only_when_set_and_max_tokens_carries_the_limit() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    req = request(tools=tools, tool_choice="auto", temperature=0.0, max_completion_tokens=5)
    async with StubUpstream(HELLO) as stub, chat_model(stub.base_url) as model:
        await collect(model, req)
    body = stub.requests[0].body
    assert body["tools"] == tools and body["tool_choice"] == "auto" and body["temperature"] == 0.0
    assert body["max_tokens"] == 5
    assert not {"max_completion_tokens", "top_p", "parallel_tool_calls", "response_format"} & set(body)


async def test_tool_call_deltas_carry_index_id_name_and_argument_fragments() -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}
    second = {"index": 1, "id": "call_2", "type": "function", "function": {"name": "put", "arguments": "{}"}}
    reply = Reply(
        sse=[
            chunk(tool_calls=[first]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": " 1}"}}, second]),
            chunk(finish="tool_calls"),
        ]
    )
    async with StubUpstream(reply) as stub, chat_model(stub.base_url) as model:
        events = await collect(model)
    assert events == [
        ToolCallDelta(0, "call_1", "get", ""),
        ToolCallDelta(0, None, None, '{"a":'),
        ToolCallDelta(0, None, None, " 1}"),
        ToolCallDelta(1, "call_2", "put", "{}"),
        Finish("tool_calls", None),
    ]


async def test_rejected_stream_options_is_retried_once_without_and_remembered() -> None:
    rejected = Reply(status=400, body=error_body("Unrecognized request argument: stream_options"))
    async with StubUpstream(rejected, HELLO) as stub, chat_model(stub.base_url) as model:
        assert (await collect(model))[-1] == Finish("stop", Usage(7, 2))
        await collect(model)
    assert "stream_options" in stub.requests[0].body
    assert [("stream_options" in r.body) for r in stub.requests[1:]] == [False, False]


# --- faults ---------------------------------------------------------------------------------------
async def test_server_error_is_retried_then_succeeds() -> None:
    policy = RetryPolicy.from_settings(Settings())  # the real defaults: 2 retries from 0.2 s
    failing = Reply(status=500, body=error_body("boom"))
    async with StubUpstream(failing, HELLO) as stub, chat_model(stub.base_url, policy) as model:
        events = await collect(model)
    assert events[-1] == Finish("stop", Usage(7, 2))
    assert len(stub.requests) == 2


async def test_rate_limit_gives_up_after_bounded_retries_with_capped_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, initial_delay_s=0.01, max_delay_s=0.2, max_total_delay_s=5.0)
    limited = Reply(status=429, body=error_body("slow down"), headers={"Retry-After": "30"})
    async with StubUpstream(limited) as stub, chat_model(stub.base_url, policy) as model:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await collect(model)
        elapsed = time.monotonic() - started
    assert caught.value.code == "rate_limit_exceeded" and caught.value.retryable
    assert len(stub.requests) == 3  # 1 + max_retries
    assert 0.4 <= elapsed < 1.5  # two waits, each capped at 0.2 s although Retry-After said 30
    assert f"127.0.0.1:{stub.port}" in caught.value.message
    assert "HTTP 429" in caught.value.message and "slow down" in caught.value.message


async def test_small_retry_after_is_honoured() -> None:
    limited = Reply(status=429, body=error_body("slow down"), headers={"retry-after-ms": "150"})
    async with StubUpstream(limited, HELLO) as stub, chat_model(stub.base_url) as model:
        started = time.monotonic()
        await collect(model)
        assert time.monotonic() - started >= 0.1  # the backoff alone would be 0.01 s
    assert len(stub.requests) == 2


async def test_client_error_is_not_retried_and_key_is_never_leaked() -> None:
    denied = Reply(status=401, body=error_body(f"Incorrect API key provided: {SECRET}"))
    async with StubUpstream(denied) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError) as caught:
            await collect(model)
    assert len(stub.requests) == 1
    assert caught.value.code == "server_error" and not caught.value.retryable
    assert "HTTP 401" in caught.value.message and SECRET not in caught.value.message


async def test_bad_request_is_not_retried() -> None:
    bad = Reply(status=400, body={"object": "error", "message": "model 'm' does not exist", "code": 400})
    async with StubUpstream(bad) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError, match="HTTP 400: model 'm' does not exist"):
            await collect(model)
    assert len(stub.requests) == 1


async def test_connection_refused_is_a_server_error_after_retries() -> None:
    port = free_port()  # bound then released: nothing listens there
    async with chat_model(f"http://127.0.0.1:{port}/v1") as model:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await collect(model)
    assert time.monotonic() - started < 2.0
    assert caught.value.code == "server_error" and caught.value.retryable
    assert f"127.0.0.1:{port}" in caught.value.message and "gave up after 3 attempts" in caught.value.message


async def test_timeout_is_retried_then_reported() -> None:
    policy = RetryPolicy(max_retries=1, initial_delay_s=0.01)
    async with (
        StubUpstream(Reply(hang=True)) as stub,
        chat_model(stub.base_url, policy, timeout_s=0.3) as model,
    ):
        with pytest.raises(UpstreamError, match=r"did not respond within 0\.3 s"):
            await collect(model)
    assert len(stub.requests) == 2


async def test_stream_ending_without_finish_reason_after_tokens_is_an_error_and_not_retried() -> None:
    truncated = Reply(sse=[chunk("Hel")], done=False)
    async with StubUpstream(truncated) as stub, chat_model(stub.base_url) as model:
        events: list[ChatEvent] = []
        with pytest.raises(UpstreamError, match="without a finish_reason") as caught:
            async for event in model.stream(request()):
                events.append(event)
    assert events == [TextDelta("Hel")]
    assert caught.value.code == "server_error"
    assert len(stub.requests) == 1


async def test_connection_cut_mid_body_after_tokens_is_an_error() -> None:
    cut = Reply(sse=[chunk("Hel")], done=False, cut=True)
    async with StubUpstream(cut) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError, match="Connection to model provider") as caught:
            await collect(model)
    assert caught.value.code == "server_error"
    assert len(stub.requests) == 1


async def test_empty_truncated_stream_is_retried_like_a_reset() -> None:
    async with StubUpstream(Reply(sse=[], done=False), HELLO) as stub, chat_model(stub.base_url) as model:
        assert (await collect(model))[-1] == Finish("stop", Usage(7, 2))
    assert len(stub.requests) == 2


async def test_malformed_json_in_stream_is_an_error() -> None:
    malformed = Reply(sse=[chunk("Hel"), "{not json"])
    async with StubUpstream(malformed) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError, match="malformed response") as caught:
            await collect(model)
    assert caught.value.code == "server_error"


async def test_chunk_of_the_wrong_shape_is_an_error() -> None:
    wrong = Reply(sse=[json.dumps({"object": "chat.completion.chunk", "choices": "nope"})])
    async with StubUpstream(wrong) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError, match="expected choices to be list"):
            await collect(model)
    assert len(stub.requests) == 1


async def test_error_object_inside_the_stream_is_reported() -> None:
    failing = Reply(sse=[json.dumps(error_body("prompt too long"))])
    async with StubUpstream(failing) as stub, chat_model(stub.base_url) as model:
        with pytest.raises(UpstreamError, match="prompt too long"):
            await collect(model)
    assert len(stub.requests) == 1


async def test_stream_cut_after_finish_reason_still_completes() -> None:
    nearly = Reply(sse=[chunk("Hi"), chunk(finish="length")], done=False, cut=True)
    async with StubUpstream(nearly) as stub, chat_model(stub.base_url) as model:
        assert await collect(model) == [TextDelta("Hi"), Finish("length", None)]


# --- cancellation ---------------------------------------------------------------------------------
async def test_cancelling_the_consumer_closes_the_upstream_connection_quickly() -> None:
    endless = Reply(sse=[chunk("Hel")], endless=True)
    async with StubUpstream(endless) as stub, chat_model(stub.base_url) as model:
        first = asyncio.Event()

        async def consume() -> None:
            async for _event in model.stream(request()):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(stub.disconnected.wait(), 2)
    assert stub.disconnected_at - cancelled_at < 0.5


async def test_aclose_on_the_stream_closes_the_upstream_connection_quickly() -> None:
    endless = Reply(sse=[chunk("Hel")], endless=True)
    async with StubUpstream(endless) as stub, chat_model(stub.base_url) as model:
        events = model.stream(request())
        assert isinstance(events, AsyncGenerator)
        assert await anext(events) == TextDelta("Hel")
        closed_at = time.monotonic()
        await events.aclose()
        await asyncio.wait_for(stub.disconnected.wait(), 2)
    assert stub.disconnected_at - closed_at < 0.5


# --- embeddings -----------------------------------------------------------------------------------
def embeddings_reply(request: Recorded) -> Reply:
    inputs = request.body["input"]
    # Reversed on purpose: the client must order by ``index``.
    data = [
        {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i)]}
        for i, text in reversed(list(enumerate(inputs)))
    ]
    usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
    return Reply(body={"object": "list", "data": data, "model": "e", "usage": usage})


async def test_embeddings_are_batched_and_ordered() -> None:
    texts = [f"text {i}" + "x" * i for i in range(130)]
    async with StubUpstream(embeddings_reply) as stub:
        settings = Settings(embeddings_base_url=stub.base_url, embeddings_model="e", upstream_api_key=SECRET)
        model = embedding_model_from_settings(settings)
        assert model is not None
        try:
            as_protocol: EmbeddingModel = model
            vectors = await as_protocol.embed(texts)
        finally:
            await model.aclose()
    assert [len(r.body["input"]) for r in stub.requests] == [64, 64, 2]
    assert {r.body["encoding_format"] for r in stub.requests} == {"float"}
    assert stub.requests[0].path == "/v1/embeddings" and stub.requests[0].body["model"] == "e"
    assert stub.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # fell back to the upstream key
    assert vectors == [[float(len(text)), float(i % 64)] for i, text in enumerate(texts)]


async def test_embeddings_retry_server_errors_then_fail_with_upstream_error() -> None:
    failing = Reply(status=503, body=error_body("warming up"))
    async with StubUpstream(failing, embeddings_reply) as stub:
        model = OpenAIEmbeddingModel(
            open_client(stub.base_url, "", 5.0), "e", api_key="", timeout_s=5.0, policy=FAST
        )
        try:
            assert await model.embed(["a"]) == [[1.0, 0.0]]
        finally:
            await model.aclose()
    assert len(stub.requests) == 2
    async with StubUpstream(failing) as stub:
        model = OpenAIEmbeddingModel(
            open_client(stub.base_url, "", 5.0), "e", api_key="", timeout_s=5.0, policy=FAST
        )
        try:
            with pytest.raises(UpstreamError, match="HTTP 503: warming up"):
                await model.embed(["a"])
        finally:
            await model.aclose()
    assert len(stub.requests) == 3


async def test_embeddings_missing_a_vector_is_an_error() -> None:
    def short(request: Recorded) -> Reply:
        full = embeddings_reply(request)
        return Reply(body={**full.body, "data": full.body["data"][1:]})

    async with StubUpstream(short) as stub:
        model = OpenAIEmbeddingModel(
            open_client(stub.base_url, "", 5.0), "e", api_key="", timeout_s=5.0, policy=FAST
        )
        try:
            with pytest.raises(UpstreamError, match="one embedding per input"):
                await model.embed(["a", "b"])
        finally:
            await model.aclose()


def test_embedding_model_is_none_unless_configured() -> None:
    assert embedding_model_from_settings(Settings()) is None
    assert embedding_model_from_settings(Settings(upstream_base_url="http://x/v1")) is None
    with pytest.raises(ValueError, match="EMBEDDINGS_MODEL is empty"):
        embedding_model_from_settings(Settings(embeddings_base_url="http://x/v1"))
    with pytest.raises(ValueError, match="EMBEDDINGS_BASE_URL"):
        embedding_model_from_settings(Settings(embeddings_model="e"))
