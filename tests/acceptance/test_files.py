"""Files API through the official SDK: upload, download, list, delete, expiry, size limit, errors."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.database_access import execute_sql
from tests.support.documents import pdf_document, text_document, wait_for_store
from tests.support.errors import assert_api_error
from tests.support.server import ServerProcess


def test_upload_retrieve_download_delete(client: OpenAI) -> None:
    data = pdf_document("The zebra ledger balances on Fridays.")
    created = client.files.create(
        file=("report.pdf", io.BytesIO(data), "application/pdf"), purpose="assistants"
    )
    assert created.id.startswith("file-")
    assert (created.object, created.filename, created.bytes, created.purpose) == (
        "file",
        "report.pdf",
        len(data),
        "assistants",
    )
    assert created.status == "processed"
    assert client.files.retrieve(created.id).model_dump() == created.model_dump()
    assert client.files.content(created.id).read() == data
    gone = client.files.delete(created.id)
    assert (gone.id, gone.object, gone.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError) as exc:
        client.files.retrieve(created.id)
    assert_api_error(exc.value, 404, message=f"No such File object: {created.id}", param="id")


def test_bytes_upload_gets_default_filename(client: OpenAI) -> None:
    created = client.files.create(file=b"raw bytes", purpose="user_data")
    assert created.filename == "upload"
    assert client.files.content(created.id).read() == b"raw bytes"


def test_list_filters_by_purpose_and_pages(client: OpenAI) -> None:
    ids = [client.files.create(file=(f"f{i}.txt", b"x"), purpose="batch").id for i in range(3)]
    vision = client.files.create(file=("img.txt", b"y"), purpose="vision").id
    listed = client.files.list(purpose="batch", order="asc")
    batch_ids = [f.id for f in listed.data]
    assert [i for i in batch_ids if i in ids] == ids
    assert vision not in batch_ids
    first = client.files.list(purpose="batch", limit=1, order="desc")
    assert len(first.data) == 1 and first.has_more
    every = [f.id for f in client.files.list(purpose="batch", limit=2)]  # auto-pagination with after
    assert set(ids) <= set(every)
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.list(limit=10_001)
    assert_api_error(exc.value, 400, param="limit", code="integer_above_max_value")


def test_expired_file_disappears(client: OpenAI, server: ServerProcess) -> None:
    created = client.files.create(
        file=("soon.txt", b"short-lived"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600
    # An hour is too long to wait: move the expiry into the past behind the server's back.
    execute_sql(
        server, "UPDATE files SET expires_at = :t WHERE id = :id", t=int(time.time()) - 1, id=created.id
    )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert created.id not in [f.id for f in client.files.list()]
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(
            file=("x.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 5}
        )
    assert_api_error(exc.value, 400, param="expires_after.seconds", code="integer_below_min_value")


def test_upload_validation_errors(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert_api_error(exc.value, 400, param="purpose")
    response = httpx.post(f"{client.base_url}files", data={"purpose": "assistants"}, files={"other": b"x"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_unknown_and_malformed_ids(client: OpenAI) -> None:
    for call in (client.files.retrieve, client.files.delete, client.files.content):
        with pytest.raises(openai.NotFoundError) as exc:
            call("file-doesnotexist")
        assert_api_error(exc.value, 404, message="No such File object: file-doesnotexist", param="id")
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.retrieve("vs_abc")
    assert_api_error(bad.value, 400, code="invalid_value", param="file_id")


def test_delete_removes_file_from_every_vector_store(client: OpenAI) -> None:
    file = client.files.create(
        file=("a.txt", text_document("Orchids bloom in the greenhouse.")), purpose="assistants"
    )
    stores = [client.vector_stores.create(file_ids=[file.id]) for _ in range(2)]
    for store in stores:
        assert wait_for_store(client, store.id).file_counts.completed == 1
    client.files.delete(file.id)
    for store in stores:
        after = client.vector_stores.retrieve(store.id)
        assert after.file_counts.total == 0 and after.usage_bytes == 0
        assert client.vector_stores.search(store.id, query="orchids greenhouse").data == []
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.files.retrieve(file.id, vector_store_id=store.id)


@pytest.fixture(scope="module")
def small_limit_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env, pg_url = server_env(backend)
    env["THREADLINE_MAX_UPLOAD_BYTES"] = "1000"
    proc = ServerProcess(tmp_path_factory.mktemp(f"small-limit-{backend}"), env).start()
    try:
        yield proc
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)


def test_upload_size_limit_is_413(small_limit_server: ServerProcess) -> None:
    with make_client(small_limit_server.base_url) as client:
        ok = client.files.create(file=("ok.txt", b"a" * 1000), purpose="assistants")
        assert ok.bytes == 1000
        with pytest.raises(openai.APIStatusError) as exc:
            client.files.create(file=("big.txt", b"a" * 1001), purpose="assistants")
        assert_api_error(exc.value, 413, param="file", contains="maximum upload size is 1000 bytes")
        # Far past the limit: refused from content-length before the body is read.
        with pytest.raises(openai.APIStatusError) as exc:
            client.files.create(file=("huge.txt", b"a" * 500_000), purpose="assistants")
        assert exc.value.status_code == 413
        # A chunked upload (no content-length) is cut off while it streams.
        head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="c.txt"\r\n\r\n'
        body = iter([head, *(b"a" * 10_000 for _ in range(20))])
        response = httpx.post(
            f"{small_limit_server.base_url}/files",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert response.status_code == 413
        listed = [f.filename for f in client.files.list()]
        assert "big.txt" not in listed and "huge.txt" not in listed
