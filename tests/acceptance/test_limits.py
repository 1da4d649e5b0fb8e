"""Body and field limits: refused before the work, with a clear 4xx in OpenAI's envelope, and
nothing changed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.errors import assert_api_error, error_of
from tests.support.server import ServerProcess


def _raw_request(server: ServerProcess, head: bytes, body: bytes, timeout_s: float = 5.0) -> bytes:
    """Send a hand-made request (a Content-Length that lies, a chunked body) and return the start of
    the response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


def test_huge_content_length_is_413_at_once(server: ServerProcess) -> None:
    head = (
        b"POST /v1/threads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    started = time.monotonic()
    response = _raw_request(server, head, b'{"metadata": {')
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert time.monotonic() - started < 1.0


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"metadata": {"k": "'
        for _ in range(40):
            yield b"x" * (1024 * 1024)
        yield b'"}}'

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        response = http.post("/threads", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert "maximum is 33554432 bytes" in error["message"]


def test_model_longer_than_256_is_400(client: OpenAI) -> None:
    assert client.beta.assistants.create(model="m" * 256).model == "m" * 256
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="m" * 257)
    assert_api_error(exc.value, 400, param="model", code="string_above_max_length")


def test_message_text_capped_at_256000(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="a" * 256_000)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread.id, role="user", content="a" * 256_001)
    assert_api_error(exc.value, 400, param="content", code="string_above_max_length")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread.id, role="user", content=[{"type": "text", "text": "b" * 256_001}]
        )
    assert_api_error(exc.value, 400, param="content[0].text", code="string_above_max_length")
    assert len(client.beta.threads.messages.list(thread.id).data) == 1


def test_vector_store_name_capped(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.create(name="n" * 257)
    assert_api_error(exc.value, 400, param="name", code="string_above_max_length")


def test_nul_is_judged_on_decoded_strings(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        thread_id = http.post("/threads").json()["id"]
        # A backslash followed by the letters u0000 is not a NUL.
        ok = http.post(
            f"/threads/{thread_id}/messages",
            content=b'{"role": "user", "content": "C:\\\\u0000x"}',
            headers={"content-type": "application/json"},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["content"][0]["text"]["value"] == "C:\\u0000x"
        for body in (
            b'{"role": "user", "content": "a\\u0000b"}',
            b'{"role": "user", "content": "x", "metadata": {"k\\u0000": "v"}}',
            b'{"role": "user", "content": [{"type": "text", "text": "\\u0000"}]}',
        ):
            bad = http.post(
                f"/threads/{thread_id}/messages", content=body, headers={"content-type": "application/json"}
            )
            assert bad.status_code == 400, bad.text
            assert "NUL" in error_of(bad)["message"]
        assert len(http.get(f"/threads/{thread_id}/messages").json()["data"]) == 1


@pytest.mark.parametrize(
    "filename", [b"bad\x00name.txt", b"bad\xff\xfename.txt"], ids=["nul", "invalid-utf8"]
)
def test_upload_filename_with_nul_or_bad_utf8_is_400(server: ServerProcess, filename: bytes) -> None:
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--'
        + boundary
        + b"--\r\n"
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        before = len(http.get("/files").json()["data"])
        response = http.post(
            "/files", content=body, headers={"content-type": "multipart/form-data; boundary=b0undary"}
        )
        assert response.status_code == 400, response.text
        assert error_of(response)["param"] == "file"
        assert len(http.get("/files").json()["data"]) == before
