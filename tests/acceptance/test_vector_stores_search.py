"""POST /vector_stores/{id}/search: BM25 ranking, filters, limits, thresholds, result shape."""

from __future__ import annotations

import io

import openai
import pytest
from openai import OpenAI

from tests.support.documents import docx_document, pdf_document, text_document, wait_for_store
from tests.support.errors import assert_api_error


@pytest.fixture()
def library(client: OpenAI) -> str:
    documents: list[tuple[str, bytes, dict[str, str | float | bool]]] = [
        (
            "zebra.pdf",
            pdf_document("The obsidian zebra negotiates tariffs with lighthouse keepers."),
            {"year": 2023},
        ),
        (
            "handbook.docx",
            docx_document("Refunds are granted within thirty days of purchase."),
            {"year": 2024},
        ),
        (
            "notes.txt",
            text_document("Basil pesto needs pine nuts and parmesan."),
            {"year": 2025, "kind": "food"},
        ),
    ]
    file_ids = []
    store = client.vector_stores.create(name="library")
    for name, data, attributes in documents:
        file = client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file.id, attributes=attributes)
        file_ids.append(file.id)
    assert wait_for_store(client, store.id).file_counts.completed == 3
    return store.id


def test_unique_phrase_ranks_first(client: OpenAI, library: str) -> None:
    for query, filename, phrase in [
        ("obsidian zebra tariffs", "zebra.pdf", "obsidian zebra"),
        ("how long do refunds take?", "handbook.docx", "Refunds are granted"),
        ("pine nuts", "notes.txt", "pine nuts"),
    ]:
        page = client.vector_stores.search(library, query=query)
        assert page.data, query
        best = page.data[0]
        assert best.filename == filename
        assert phrase in best.content[0].text
        assert all(0.0 <= r.score <= 1.0 for r in page.data)
        assert [r.score for r in page.data] == sorted((r.score for r in page.data), reverse=True)


def test_result_page_shape(client: OpenAI, library: str) -> None:
    response = client.vector_stores.with_raw_response.search(
        library, query=["zebra", "refunds"], rewrite_query=True
    )
    body = response.http_response.json()
    assert body["object"] == "vector_store.search_results.page"
    assert body["search_query"] == ["zebra", "refunds"]
    assert body["has_more"] is False and body["next_page"] is None
    names = {item["filename"] for item in body["data"]}
    assert {"zebra.pdf", "handbook.docx"} <= names
    item = body["data"][0]
    assert set(item) == {"file_id", "filename", "score", "attributes", "content"}
    assert item["content"][0]["type"] == "text"


def test_rewrite_query_searches_and_reports_a_keyword_query(client: OpenAI, library: str) -> None:
    question = "What is our policy on refunds for purchases?"
    plain = client.vector_stores.with_raw_response.search(library, query=question).http_response.json()
    assert plain["search_query"] == [question], "without rewrite_query the query is used as given"
    body = client.vector_stores.with_raw_response.search(
        library, query=question, rewrite_query=True
    ).http_response.json()
    assert body["search_query"] == ["policy refunds purchases"]
    assert body["data"][0]["filename"] == "handbook.docx"
    assert "Refunds are granted" in body["data"][0]["content"][0]["text"]
    # A list of queries is rewritten query by query; a query with no content word is kept.
    body = client.vector_stores.with_raw_response.search(
        library, query=["Who negotiates the tariffs?", "What is it?"], rewrite_query=True
    ).http_response.json()
    assert body["search_query"] == ["negotiates tariffs", "What is it?"]
    assert body["data"][0]["filename"] == "zebra.pdf"


def test_filters(client: OpenAI, library: str) -> None:
    query = "zebra refunds pesto"
    only_2024 = client.vector_stores.search(
        library, query=query, filters={"type": "eq", "key": "year", "value": 2024}
    )
    assert {r.filename for r in only_2024.data} == {"handbook.docx"}
    assert only_2024.data[0].attributes == {"year": 2024}
    recent = client.vector_stores.search(
        library,
        query=query,
        filters={
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2024},
                {"type": "nin", "key": "kind", "value": ["food"]},
            ],
        },
    )
    assert {r.filename for r in recent.data} == {"handbook.docx"}
    either = client.vector_stores.search(
        library,
        query=query,
        filters={
            "type": "or",
            "filters": [
                {"type": "eq", "key": "kind", "value": "food"},
                {"type": "lt", "key": "year", "value": 2024},
            ],
        },
    )
    assert {r.filename for r in either.data} == {"notes.txt", "zebra.pdf"}
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.search(
            library,
            query=query,
            filters={"type": "between", "key": "year", "value": 1},  # type: ignore[arg-type,typeddict-item]
        )
    assert_api_error(exc.value, 400)


def test_limits_and_threshold(client: OpenAI, library: str) -> None:
    query = "zebra refunds pesto"
    assert len(client.vector_stores.search(library, query=query).data) == 3
    assert len(client.vector_stores.search(library, query=query, max_num_results=1).data) == 1
    strict = client.vector_stores.search(library, query=query, ranking_options={"score_threshold": 1.0})
    assert all(r.score >= 1.0 for r in strict.data)
    assert client.vector_stores.search(library, query="unrelated xylophone").data == []
    for bad in (0, 51):
        with pytest.raises(openai.BadRequestError) as exc:
            client.vector_stores.search(library, query=query, max_num_results=bad)
        assert_api_error(exc.value, 400, param="max_num_results")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search("vs_missing", query=query)


def test_search_updates_last_active_at(client: OpenAI, library: str) -> None:
    before = client.vector_stores.retrieve(library).last_active_at
    client.vector_stores.search(library, query="zebra")
    after = client.vector_stores.retrieve(library).last_active_at
    assert before is not None and after is not None and after >= before


def _one_file_store(client: OpenAI) -> str:
    file = client.files.create(
        file=("zebra.txt", io.BytesIO(text_document("The obsidian zebra negotiates tariffs."))),
        purpose="assistants",
    )
    store = client.vector_stores.create(file_ids=[file.id])
    assert wait_for_store(client, store.id).file_counts.completed == 1
    return store.id


def test_scores_do_not_depend_on_the_corpus(client: OpenAI) -> None:
    # A fresh one-file store: BM25's idf is ~0 here, yet a chunk with every query word is a strong
    # match. The score says so, and a threshold keeps it.
    store_id = _one_file_store(client)
    page = client.vector_stores.search(store_id, query="obsidian zebra")
    assert len(page.data) == 1 and page.data[0].score >= 0.5
    kept = client.vector_stores.search(
        store_id, query="obsidian zebra", ranking_options={"score_threshold": 0.3}
    )
    assert [r.score for r in kept.data] == [page.data[0].score]
    # Half the words: a weaker match, scored lower, cut by a threshold between the two.
    half = client.vector_stores.search(store_id, query="obsidian xylophone").data
    assert half and 0.0 < half[0].score < page.data[0].score
    cut = client.vector_stores.search(
        store_id, query="obsidian xylophone", ranking_options={"score_threshold": half[0].score + 0.01}
    )
    assert cut.data == []


def test_same_chunk_same_score_in_a_large_store(client: OpenAI, library: str) -> None:
    # The library holds other files: the zebra chunk scores as it does alone.
    alone = client.vector_stores.search(_one_file_store(client), query="obsidian zebra").data[0].score
    among = client.vector_stores.search(library, query="obsidian zebra").data[0]
    assert among.filename == "zebra.pdf" and among.score == pytest.approx(alone)
