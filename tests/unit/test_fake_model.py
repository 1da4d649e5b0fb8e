"""The fake model server must look like a real provider to the official `openai` client.

Clients here use strict response validation (like tests/conftest.py), so a field that the SDK's
models require but the fake omits fails these tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam

from tests.support.fake_model import Call, Error, FakeModelServer, Hang, Malformed, Text, ToolCalls, Truncated

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris today?"}
]


@pytest.fixture()
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture()
def client(fake: FakeModelServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, _strict_response_validation=True) as sdk:
        yield sdk


def async_client(fake: FakeModelServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0, _strict_response_validation=True)


def test_streamed_text_arrives_as_several_deltas_then_usage(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Text("The weather in Paris is sunny."))
    stream = client.chat.completions.create(
        model="m-1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3
    assert "".join(pieces) == "The weather in Paris is sunny."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].id.startswith("chatcmpl-") and {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {"m-1"} and {c.object for c in chunks} == {"chat.completion.chunk"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(pieces)
    assert last.usage.prompt_tokens == 7
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Text("hello", chunks=["he", "l", "lo"], usage=(11, 3), finish_reason="length"))
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["", "he", "l", "lo", None]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None and c.choices for c in chunks)


def test_non_streamed_text_includes_usage(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Text("Sunny and warm.", usage=(42, 5)))
    completion = client.chat.completions.create(model="m-2", messages=MESSAGES)
    assert completion.object == "chat.completion" and completion.model == "m-2"
    assert completion.choices[0].message.content == "Sunny and warm."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (42, 5)
    assert completion.usage.total_tokens == 47


def test_default_reply_when_queue_is_empty(fake: FakeModelServer, client: OpenAI) -> None:
    first = client.chat.completions.create(model="m", messages=MESSAGES)
    fake.default = Text("Changed default")
    second = client.chat.completions.create(model="m", messages=MESSAGES)
    assert (first.choices[0].message.content, second.choices[0].message.content) == ("OK", "Changed default")


def _reassemble(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            assert tc.function is not None
            if tc.id:
                assert not call["id"], "the id comes once, in the call's first delta"
                assert tc.type == "function" and tc.function.name and tc.function.arguments == ""
                call["id"], call["name"] = tc.id, tc.function.name
            call["arguments"] += tc.function.arguments or ""
    return calls


def test_parallel_tool_calls_stream_like_openai(fake: FakeModelServer, client: OpenAI) -> None:
    paris, tokyo = json.dumps({"city": "Paris"}), json.dumps({"city": "Tokyo", "unit": "c"})
    fake.script(ToolCalls([Call("get_weather", paris, id="call_A"), Call("get_weather", tokyo)]))
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    calls = _reassemble(chunks)
    assert sorted(calls) == [0, 1]
    assert calls[0] == {"id": "call_A", "name": "get_weather", "arguments": paris}
    assert calls[1]["id"].startswith("call_") and calls[1]["arguments"] == tokyo
    fragments = [
        c for c in chunks if c.choices[0].delta.tool_calls and not c.choices[0].delta.tool_calls[0].id
    ]
    assert len(fragments) >= 4, "each call's arguments arrive in 2+ fragments"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_calls_non_streamed_and_with_text(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(ToolCalls([Call("lookup", '{"q": "x"}')], text="Let me check."))
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    message = completion.choices[0].message
    assert message.content == "Let me check." and completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, call.function.arguments) == ("lookup", '{"q": "x"}')


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError)],
)
def test_errors_raise_the_matching_sdk_exception(
    fake: FakeModelServer, client: OpenAI, status: int, exc_type: type[openai.APIStatusError]
) -> None:
    fake.script(Error(status, "scripted failure", type="rate_limit_error", headers={"retry-after": "7"}))
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert info.value.status_code == status
    assert info.value.message.endswith("scripted failure")
    assert info.value.body == {
        "message": "scripted failure",
        "type": "rate_limit_error",
        "param": None,
        "code": None,
    }
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.headers["x-request-id"].startswith("req_")


def test_truncated_stream_raises_connection_error_after_the_deltas(
    fake: FakeModelServer, client: OpenAI
) -> None:
    fake.script(Truncated("partial answer that never"))
    received: list[str] = []
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    # The SDK yields what arrived, then surfaces the incomplete chunked body as a connection error
    # (httpx: "peer closed connection without sending complete message body").
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            assert chunk.choices[0].finish_reason is None
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "partial answer that never"
    # The server is still healthy for the next call.
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "OK"


def test_truncated_with_clean_http_end_just_stops(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Truncated("cut short", clean_http_end=True))
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    # No error at all: the SDK ends iteration at EOF even without finish_reason or [DONE], so
    # callers must check for a finish_reason themselves.
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "cut short"
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_truncated_non_stream_raises_connection_error(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Truncated("x"))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_malformed_stream_raises_json_decode_error(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Malformed())
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    # Not an openai.APIError: the SDK lets json.JSONDecodeError escape from the iterator.
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_request_log_captures_the_prompt(fake: FakeModelServer, client: OpenAI) -> None:
    parameters: dict[str, object] = {"type": "object", "properties": {}}
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "f", "parameters": parameters}}
    ]
    system: ChatCompletionMessageParam = {"role": "system", "content": "Be brief."}
    client.chat.completions.create(
        model="m",
        messages=[system, *MESSAGES],
        tools=tools,
        tool_choice="auto",
        temperature=0.25,
        max_completion_tokens=64,
    )
    client.chat.completions.create(model="m2", messages=MESSAGES, max_tokens=5)
    assert len(fake.requests) == len(fake.request_headers) == 2
    first = fake.requests[0]
    assert first["messages"] == [system, *MESSAGES]
    assert first["tools"] == tools and first["tool_choice"] == "auto"
    assert (first["temperature"], first["max_completion_tokens"]) == (0.25, 64)
    assert fake.requests[1]["max_tokens"] == 5 and fake.requests[1]["model"] == "m2"
    assert fake.request_headers[0]["authorization"] == "Bearer x"
    fake.script(Text("queued"))
    fake.default = Text("custom")
    fake.reset()
    assert fake.requests == [] and fake.request_headers == []
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "OK"


def test_callable_reply_answers_from_the_prompt(fake: FakeModelServer, client: OpenAI) -> None:
    fake.default = lambda body: Text("echo: " + body["messages"][-1]["content"])
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert completion.choices[0].message.content == "echo: ping"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_shape_and_similarity(fake: FakeModelServer, client: OpenAI) -> None:
    texts = ["the cat sat on the mat", "a cat on a mat", "quarterly revenue grew strongly"]
    # The SDK asks for base64 by default and decodes it after validation, so strict validation
    # rejects the (correct) base64 string: use a lenient client for that call.
    with OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as lenient:
        response = lenient.embeddings.create(model="emb", input=texts)
    assert fake.embedding_requests[0]["encoding_format"] == "base64"
    floats = client.embeddings.create(model="emb", input=texts, encoding_format="float")
    assert response.object == "list" and response.model == "emb" and response.usage.prompt_tokens > 0
    assert [d.index for d in response.data] == [0, 1, 2]
    vectors = [d.embedding for d in response.data]
    assert all(len(v) == fake.embedding_dim == 64 for v in vectors)
    assert all(math.isclose(_cosine(v, v), 1.0, rel_tol=1e-5) for v in vectors)
    for a, b in zip(vectors, [d.embedding for d in floats.data], strict=True):
        assert all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.2
    single = client.embeddings.create(model="emb", input="The CAT sat on the mat", encoding_format="float")
    assert single.data[0].embedding == pytest.approx(floats.data[0].embedding)


def test_models_list(fake: FakeModelServer, client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["fake-model", "fake-embedding"]


def test_hang_times_out_the_client_and_counts_an_early_close(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Hang(30))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started < 1.0
    fake.wait_for_closed_early(1)
    assert fake.connections_closed_early == 1


def test_hang_does_not_block_other_requests(fake: FakeModelServer, client: OpenAI) -> None:
    fake.script(Hang(0.5, then=Text("late")), Text("early"))

    async def both() -> tuple[str | None, str | None]:
        async with async_client(fake) as sdk:
            slow = asyncio.create_task(sdk.chat.completions.create(model="m", messages=MESSAGES))
            await asyncio.to_thread(fake.wait_for_requests, 1)
            fast = await sdk.chat.completions.create(model="m", messages=MESSAGES)
            return fast.choices[0].message.content, (await slow).choices[0].message.content

    started = time.monotonic()
    assert asyncio.run(both()) == ("early", "late")
    assert time.monotonic() - started < 1.0


def test_async_client_cancel_mid_stream_closes_the_upstream_connection(fake: FakeModelServer) -> None:
    fake.script(Text("one two three four five six seven eight", token_delay_s=0.05))

    async def read_two() -> list[str]:
        async with async_client(fake) as sdk:
            stream = await sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            seen: list[str] = []
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
                if len(seen) == 3:
                    break
            await stream.close()
            return seen

    assert asyncio.run(read_two()) == ["", "one ", "two "]
    fake.wait_for_closed_early(1)
    assert fake.connections_closed_early == 1


def test_stop_ends_a_hanging_request_promptly() -> None:
    errors: list[BaseException] = []
    threads_before = set(threading.enumerate())
    with FakeModelServer() as fake, OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
        fake.script(Hang(60))

        def call() -> None:
            try:
                sdk.chat.completions.create(model="m", messages=MESSAGES)
            except openai.APIConnectionError as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        fake.wait_for_requests(1)
        started = time.monotonic()
        fake.stop()
        caller.join(5)
        assert time.monotonic() - started < 1.0
    assert len(errors) == 1
    assert set(threading.enumerate()) <= threads_before, "no leaked server thread"


def test_reachable_from_another_process(fake: FakeModelServer) -> None:
    fake.script(Text("from afar"))
    code = (
        "import httpx, sys; r = httpx.post(sys.argv[1] + '/chat/completions', "
        "json={'model': 'm', 'messages': []}); print(r.json()['choices'][0]['message']['content'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, fake.base_url], capture_output=True, text=True, timeout=10
    )
    assert out.stdout.strip() == "from afar", out.stderr


def test_raw_http_shapes(fake: FakeModelServer) -> None:
    with httpx.Client(base_url=fake.base_url) as http:
        assert http.get("/nope").status_code == 404
        bad = http.post("/chat/completions", content=b"{oops")
        assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
        body = http.post(
            "/chat/completions",
            json={"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}},
        ).text
        assert body.endswith("data: [DONE]\n\n") and body.startswith("data: {")
