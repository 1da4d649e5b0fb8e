"""The scripted model of bench/runs.py: a minimal OpenAI-compatible streaming chat-completions server.

    .venv/bin/python bench/runs_model.py  # prints "port <n>" once listening on 127.0.0.1

The model name is the script: ``bench-<tokens>-<ms per token>`` (e.g. ``bench-50-20``) streams a role
chunk, then ``<tokens>`` content chunks of one word each, ``<ms per token>`` apart, then the finish
chunk, the usage chunk (when asked) and ``[DONE]``. Frames are encoded once per script and reused, and
the server runs in its own process on uvloop, so that it costs the direct and the through-Threadline
measurement the same, and little.
"""

from __future__ import annotations

import asyncio
import re
import sys
from functools import cache

import orjson

SCRIPT = re.compile(r"bench-(\d+)-(\d+(?:\.\d+)?)")
MAX_TOKENS = 10_000


def _frame(payload: bytes) -> bytes:
    data = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


@cache
def frames(model: str, include_usage: bool) -> tuple[bytes, list[bytes], bytes]:
    """(head + role chunk, one frame per token, finish + usage + [DONE] + end of body)."""
    match = SCRIPT.fullmatch(model)
    tokens = min(int(match[1]), MAX_TOKENS) if match else 5
    envelope = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _frame(orjson.dumps(envelope | {"choices": [choice]} | extra))

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    first = head + chunk({"role": "assistant", "content": ""})
    body = [chunk({"content": f"w{i} "}) for i in range(tokens)]
    usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
    tail = chunk({}, "stop")
    if include_usage:
        tail += _frame(orjson.dumps(envelope | {"choices": [], "usage": usage}))
    return first, body, tail + _frame(b"[DONE]") + b"0\r\n\r\n"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = orjson.loads(await reader.readexactly(int(length[1]) if length else 0) or b"{}")
            model = str(body.get("model", ""))
            first, tokens, tail = frames(model, bool((body.get("stream_options") or {}).get("include_usage")))
            match = SCRIPT.fullmatch(model)
            delay_s = float(match[2]) / 1000 if match else 0.0
            writer.write(first)
            for frame in tokens:
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(frame)
                await writer.drain()
            writer.write(tail)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, RuntimeError):
        pass  # the client closed the connection (uvloop raises RuntimeError on a closed transport)
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
