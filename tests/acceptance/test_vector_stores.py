"""Vector stores through the official SDK: stores, files, batches, ingestion outcomes, content, errors."""

from __future__ import annotations

import io

import openai
import pytest
from openai import OpenAI

from tests.support.database_access import execute_sql
from tests.support.documents import docx_document, markdown_document, text_document, wait_for_store
from tests.support.errors import assert_api_error
from tests.support.server import ServerProcess


def _upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def test_store_lifecycle(client: OpenAI) -> None:
    store = client.vector_stores.create(metadata={"team": "docs"})
    assert (store.object, store.name, store.status, store.usage_bytes) == ("vector_store", "", "completed", 0)
    assert store.file_counts.total == 0 and store.expires_at is None
    assert store.last_active_at == store.created_at
    named = client.vector_stores.update(
        store.id, name="Handbook", expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert named.name == "Handbook" and named.metadata == {"team": "docs"}
    assert named.expires_after is not None and named.expires_after.days == 2
    assert named.last_active_at is not None and named.expires_at == named.last_active_at + 2 * 86400
    assert client.vector_stores.retrieve(store.id).name == "Handbook"
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    gone = client.vector_stores.delete(store.id)
    assert (gone.id, gone.object, gone.deleted) == (store.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError) as exc:
        client.vector_stores.retrieve(store.id)
    assert_api_error(exc.value, 404, message=f"No vector store found with id '{store.id}'.")


def test_create_with_files_indexes_them(client: OpenAI) -> None:
    ids = [
        _upload(client, "notes.txt", text_document("Saffron kites drift over the harbour.")),
        _upload(client, "guide.md", markdown_document("Guide", "Copper lanterns line the alley.")),
        _upload(client, "handbook.docx", docx_document("Velvet anchors hold the barge.")),
    ]
    store = client.vector_stores.create(name="kb", file_ids=ids, chunking_strategy={"type": "auto"})
    assert store.status == "in_progress" and store.file_counts.in_progress == 3
    ready = wait_for_store(client, store.id)
    assert ready.status == "completed"
    assert ready.file_counts.completed == 3 and ready.file_counts.total == 3
    assert ready.usage_bytes > 0
    files = client.vector_stores.files.list(store.id, filter="completed")
    assert sorted(f.id for f in files.data) == sorted(ids)
    first = files.data[0]
    assert first.chunking_strategy is not None and first.chunking_strategy.type == "static"
    assert first.chunking_strategy.static.max_chunk_size_tokens == 800  # type: ignore[union-attr]
    assert client.vector_stores.files.list(store.id, filter="failed").data == []
    content = list(client.vector_stores.files.content(file_id=ids[2], vector_store_id=store.id))
    assert "Velvet anchors hold the barge." in "".join(c.text or "" for c in content)


def test_upload_and_poll_with_static_chunking_and_attributes(client: OpenAI) -> None:
    store = client.vector_stores.create()
    text = " ".join(f"sentence{i} about nothing in particular." for i in range(400))
    file = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("long.txt", io.BytesIO(text.encode())),
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
        },
    )
    assert file.status == "completed" and file.last_error is None
    assert file.chunking_strategy is not None
    assert file.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
    updated = client.vector_stores.files.update(file.id, vector_store_id=store.id, attributes={"year": 2024})
    assert updated.attributes == {"year": 2024}
    # Overlapping chunks are stitched back into the document.
    content = "".join(
        c.text or "" for c in client.vector_stores.files.content(file_id=file.id, vector_store_id=store.id)
    )
    assert content == text
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=file.id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60},
            },
        )
    assert_api_error(exc.value, 400, code="invalid_value")


def test_broken_and_unsupported_files_fail_with_last_error(client: OpenAI) -> None:
    store = client.vector_stores.create()
    broken = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("broken.pdf", io.BytesIO(b"%PDF-1.7 this is not a pdf"))
    )
    assert broken.status == "failed" and broken.last_error is not None
    assert broken.last_error.code == "invalid_file"
    binary = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("photo.png", io.BytesIO(bytes(range(256)) * 8))
    )
    assert binary.status == "failed" and binary.last_error is not None
    assert binary.last_error.code == "unsupported_file"
    after = client.vector_stores.retrieve(store.id)
    assert after.status == "completed" and after.file_counts.failed == 2


def test_file_batches(client: OpenAI) -> None:
    store = client.vector_stores.create()
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[
            ("one.txt", io.BytesIO(text_document("Marble owls guard the library."))),
            ("two.md", io.BytesIO(markdown_document("Two", "Glass turtles cross the bridge."))),
        ],
    )
    assert batch.object == "vector_store.files_batch"
    assert batch.status == "completed" and batch.file_counts.completed == 2
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(listed.data) == 2
    ids = [_upload(client, "three.txt", text_document("Amber foxes nap."))]
    second = client.vector_stores.file_batches.create_and_poll(
        store.id, files=[{"file_id": ids[0], "attributes": {"kind": "fox"}}]
    )
    assert second.file_counts.completed == 1
    assert client.vector_stores.files.retrieve(ids[0], vector_store_id=store.id).attributes == {"kind": "fox"}
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 3


def test_cancel_batch(client: OpenAI, server: ServerProcess) -> None:
    store = client.vector_stores.create()
    ids = [_upload(client, f"c{i}.txt", text_document(f"Cancel me {i}.")) for i in range(3)]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    counts = cancelled.file_counts
    assert counts.in_progress == 0 and counts.cancelled + counts.completed == 3
    again = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert again.status == "cancelled"


def test_remove_file_keeps_the_file(client: OpenAI) -> None:
    file_id = _upload(client, "keep.txt", text_document("Pewter bells ring twice."))
    store = client.vector_stores.create(file_ids=[file_id])
    wait_for_store(client, store.id)
    removed = client.vector_stores.files.delete(file_id, vector_store_id=store.id)
    assert (removed.object, removed.deleted) == ("vector_store.file.deleted", True)
    assert client.files.retrieve(file_id).id == file_id
    assert client.vector_stores.search(store.id, query="pewter bells").data == []
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0


def test_expired_store_reports_expired(client: OpenAI, server: ServerProcess) -> None:
    store = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1})
    execute_sql(
        server, "UPDATE vector_stores SET last_active_at = last_active_at - 90000 WHERE id = :id", id=store.id
    )
    assert client.vector_stores.retrieve(store.id).status == "expired"


def test_errors(client: OpenAI) -> None:
    store = client.vector_stores.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing")
    assert_api_error(exc.value, 404, message="No such File object: file-missing")
    with pytest.raises(openai.NotFoundError) as exc:
        client.vector_stores.files.retrieve("file-missing", vector_store_id=store.id)
    assert_api_error(exc.value, 404, message="No vector store file found with id 'file-missing'.")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_missing", vector_store_id=store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_missing")
    with pytest.raises(openai.BadRequestError) as bad:
        client.vector_stores.retrieve("thread_abc")
    assert_api_error(bad.value, 400, param="vector_store_id", code="invalid_value")
    with pytest.raises(openai.BadRequestError) as bad:
        client.vector_stores.file_batches.create(store.id, file_ids=[])
    assert_api_error(bad.value, 400, param="file_ids")
    with pytest.raises(openai.BadRequestError) as bad:
        client.vector_stores.files.list(store.id, filter="done")  # type: ignore[arg-type]
    assert_api_error(bad.value, 400, param="filter")
    with pytest.raises(openai.BadRequestError) as bad:
        client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 0})
    assert_api_error(bad.value, 400, param="expires_after.days")
