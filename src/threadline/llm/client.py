"""``OpenAICompatibleModel``: the ``ChatModel`` over any chat-completions endpoint (OpenAI, vLLM,
Ollama, llama.cpp server, hosted providers) through the official ``openai.AsyncOpenAI`` client."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam

if TYPE_CHECKING:  # private SDK module: only for annotations, never imported at run time
    from openai._response import AsyncAPIResponse, AsyncResponseContextManager

from threadline.llm.faults import Backoff, FaultTranslator, RetryPolicy, status_detail
from threadline.llm.types import ChatEvent, ChatRequest, Finish, TextDelta, ToolCallDelta, Usage

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A host that does not answer should fail a run in seconds, not after the (long) read timeout that
# slow generations need between tokens.
CONNECT_TIMEOUT_S = 10.0
# Local servers (Ollama, vLLM without --api-key) need no key, but the SDK refuses to build a client
# without one; "EMPTY" is the placeholder vLLM's own docs use. Sent only when no key is configured.
NO_API_KEY = "EMPTY"

# What can go wrong while reading an open stream: transport errors and error chunks arrive as
# OpenAIError; undecodable SSE data as ValueError (json.JSONDecodeError, UnicodeDecodeError).
_STREAM_FAULTS = (openai.OpenAIError, ValueError)
# ChatRequest fields sent under their own name when not None.
_PASSTHROUGH_FIELDS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "response_format",
)


def open_client(base_url: str, api_key: str, timeout_s: float) -> openai.AsyncOpenAI:
    """One SDK client per provider, reused for every call (it owns the connection pool)."""
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or NO_API_KEY,
        timeout=openai.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
        max_retries=0,  # we retry ourselves: see faults.py
        # The SDK's aiohttp transport (the ``openai[aiohttp]`` extra, a dependency of ours): reading a
        # streamed chunk costs a fraction of the default transport's per-read cancel scopes and
        # pure-Python HTTP parsing (runs' CPU: 26 -> 22 ms for 50 tokens). Its defaults (limits,
        # redirects) are the SDK's own; errors arrive as the SDK's usual connection/timeout errors.
        http_client=openai.DefaultAioHttpClient(),
    )


class OpenAICompatibleModel:
    """A ``ChatModel`` for one provider. ``request.model`` is sent as the upstream model name.

    The client is borrowed: whoever built it (``ProviderRouter``) closes it.
    """

    def __init__(
        self, client: openai.AsyncOpenAI, *, api_key: str, timeout_s: float, policy: RetryPolicy
    ) -> None:
        self._client = client
        self._policy = policy
        self._faults = FaultTranslator(str(client.base_url), api_key, timeout_s)
        # Flipped once a provider rejects ``stream_options`` (old llama.cpp / strict servers); the
        # usage report is nice to have, the completion is not optional.
        self._send_stream_options = True

    @property
    def host(self) -> str:
        return self._faults.host

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        """See ``ChatModel.stream``. Faults before the first event are retried per the policy; after
        it nothing is retried (the caller already holds part of the answer) and ``UpstreamError``
        is raised. A stream that is cut after its ``finish_reason`` still counts as complete."""
        backoff = Backoff(self._policy)
        while True:
            reader = _ChunkReader()
            failure: BaseException | None = None
            # The exit stack closes the HTTP response on every exit, including cancellation of the
            # consuming task and ``aclose()`` of this generator: the upstream sees the connection drop
            # at once and stops generating.
            async with contextlib.AsyncExitStack() as stack:
                try:
                    response = await stack.enter_async_context(self._open(request))
                except (openai.BadRequestError, openai.UnprocessableEntityError) as err:
                    if self._send_stream_options and _rejects_stream_options(err):
                        log.info("%s rejects stream_options; retrying without usage reporting", self.host)
                        self._send_stream_options = False
                        continue
                    raise self._faults.translate(err) from err
                except openai.OpenAIError as err:
                    await backoff.wait_or_raise(self._faults.translate(err), err)
                    continue
                try:
                    async for event in _events(response, reader):
                        yield event
                except _STREAM_FAULTS as err:
                    failure = err

            if reader.finish_reason is not None:
                if failure is not None:
                    log.warning(
                        "%s: stream failed after finish_reason, keeping the answer: %r", self.host, failure
                    )
                yield Finish(reader.finish_reason, reader.usage)
                return
            fault = self._faults.translate(failure) if failure is not None else self._faults.truncated()
            if reader.started:
                raise fault from failure
            await backoff.wait_or_raise(fault, failure)

    def _open(self, request: ChatRequest) -> AsyncResponseContextManager[AsyncAPIResponse[Any]]:
        # Only ``model``/``messages`` go through the SDK's typed parameters; every optional field goes
        # in ``extra_body`` verbatim, so ``None`` is simply absent from the JSON and the SDK's
        # TypedDicts do not have to mirror every provider's dialect.
        body: dict[str, Any] = {}
        for name in _PASSTHROUGH_FIELDS:
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.max_completion_tokens is not None:
            # Sent as ``max_tokens`` only: vLLM, Ollama and llama.cpp understand it (not all know
            # ``max_completion_tokens``), and OpenAI accepts it for non-reasoning models.
            body["max_tokens"] = request.max_completion_tokens
        if self._send_stream_options:
            body["stream_options"] = {"include_usage": True}
        # The official client sends the request (auth, base URL, headers, status errors), but we read
        # the body as raw SSE lines: building a typed ChatCompletionChunk per token cost ~150 us of
        # CPU per token in the streaming benchmark, which capped streamed tokens/s at a third of direct.
        # The messages go in ``extra_body`` too, which the SDK merges over its typed body: as a typed
        # parameter it walks every message and content part through its TypedDict transform, a cost
        # that grows with the thread's history (≈ 0.4 ms of a run's ≈ 15 ms with one message).
        body["messages"] = request.messages
        return self._client.chat.completions.with_streaming_response.create(
            model=request.model,
            messages=cast("list[ChatCompletionMessageParam]", []),
            stream=True,
            extra_body=body,
        )


async def _events(response: AsyncAPIResponse[Any], reader: _ChunkReader) -> AsyncIterator[ChatEvent]:
    """Decode ``data:`` lines of an SSE body into events until ``[DONE]``. Transport failures while
    reading surface as the SDK's own connection/timeout errors, so one translator classifies both."""
    # The SDK's HTTP library (httpx, or httpx2 in openai 3.x) is whatever module built the response.
    transport = sys.modules[type(response.http_response).__module__.split(".")[0]]
    data: list[str] = []
    try:
        async for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if line or not data:
                continue  # ``event:``/``id:``/comment lines, or a blank line with nothing pending
            payload = "\n".join(data)
            data.clear()
            if payload.strip() == "[DONE]":
                return
            for event in reader.read(orjson.loads(payload), response.http_request):
                yield event
    except transport.TimeoutException as err:
        raise openai.APITimeoutError(response.http_request) from err
    except transport.HTTPError as err:
        message = str(err) or type(err).__name__
        raise openai.APIConnectionError(message=message, request=response.http_request) from err


def _rejects_stream_options(err: openai.APIStatusError) -> bool:
    return "stream_options" in status_detail(err) or "stream_options" in str(err.body)


class _MalformedChunk(ValueError):
    pass


class _ChunkReader:
    """Turns decoded ``chat.completion.chunk`` dicts into events and remembers ``finish_reason`` and
    usage. Every level is type-checked: a sloppy chunk raises ``_MalformedChunk``."""

    __slots__ = ("finish_reason", "started", "usage")

    def __init__(self) -> None:
        self.started = False  # an event has been handed out: the stream can no longer be replayed
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def read(self, chunk: object, request: Any) -> list[ChatEvent]:
        chunk = _expect(chunk, dict, "chunk")
        error = chunk.get("error")
        if error:
            # An ``{"error": ...}`` object inside an otherwise healthy stream (vLLM does this).
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise openai.APIError(str(message or error), request, body=error)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = Usage(prompt, completion)
        events: list[ChatEvent] = []
        for choice in _expect(chunk.get("choices") or [], list, "choices"):
            choice = _expect(choice, dict, "choice")
            if choice.get("index") not in (0, None):
                continue  # we never ask for n > 1
            delta = choice.get("delta")
            if delta is not None:
                delta = _expect(delta, dict, "delta")
                content = delta.get("content")
                if isinstance(content, str) and content:
                    events.append(TextDelta(content))
                for position, call in enumerate(_expect(delta.get("tool_calls") or [], list, "tool_calls")):
                    events.append(_tool_call_delta(position, _expect(call, dict, "tool call")))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if events:
            self.started = True
        return events


def _tool_call_delta(position: int, call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function")
    if function is not None:
        function = _expect(function, dict, "tool call function")
    index = call.get("index")
    return ToolCallDelta(
        # Some servers omit ``index``; their calls then arrive whole, one per list entry.
        index=index if isinstance(index, int) else position,
        id=_text(call.get("id")) or None,
        name=(_text(function.get("name")) or None) if function is not None else None,
        arguments=_text(function.get("arguments")) if function is not None else "",
    )


def _expect(value: object, kind: type[_T], what: str) -> _T:
    if not isinstance(value, kind):
        raise _MalformedChunk(f"expected {what} to be {kind.__name__}, got {type(value).__name__}")
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
