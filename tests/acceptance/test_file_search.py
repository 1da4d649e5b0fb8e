"""file_search in runs (scripted model, citations) and hybrid search with a scripted embeddings endpoint."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any, Final

import pytest
from openai import OpenAI
from openai.types.beta.threads.runs import FileSearchToolCall

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.database_access import query_sql
from tests.support.documents import docx_document, pdf_document, text_document, wait_for_store
from tests.support.fake_model import EMBEDDING_DIM, Call, FakeModelServer, Text, ToolCalls
from tests.support.server import ServerProcess

MODEL = "fake-model"
INCLUDE_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"


def _store_with(client: OpenAI, documents: list[tuple[str, bytes]]) -> tuple[str, list[str]]:
    file_ids = [client.files.create(file=(n, io.BytesIO(d)), purpose="assistants").id for n, d in documents]
    store = client.vector_stores.create(file_ids=file_ids)
    assert wait_for_store(client, store.id).file_counts.completed == len(file_ids)
    return store.id, file_ids


def _two_topic_store(client: OpenAI) -> tuple[str, list[str]]:
    """A store of two unrelated files: a PDF about a zebra (first) and a docx about refunds."""
    return _store_with(
        client,
        [
            ("zebra.pdf", pdf_document("The obsidian zebra negotiates tariffs with lighthouse keepers.")),
            ("refunds.docx", docx_document("Refunds are granted within thirty days of purchase.")),
        ],
    )


def _cite_first_source(body: dict[str, Any]) -> Text:
    """The scripted model's second turn: quote the first marker of the file_search output."""
    tool_output = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "tool")
    found = re.search(r"【\d+†[^】]+】", tool_output)
    assert found, tool_output
    return Text(f"The zebra negotiates tariffs with lighthouse keepers {found.group(0)}.")


def test_run_calls_file_search_and_cites(client: OpenAI, fake: FakeModelServer) -> None:
    store_id, file_ids = _two_topic_store(client)
    assistant = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 0.0}}}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    fake.script(ToolCalls([Call("file_search", '{"query": "obsidian zebra tariffs"}')]), _cite_first_source)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Who negotiates tariffs?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    # The model saw a file_search function and got the chunk back as the tool output.
    first_request = fake.requests[0]
    assert [t["function"]["name"] for t in first_request["tools"]] == ["file_search"]
    assert "obsidian zebra" in next(m["content"] for m in fake.requests[1]["messages"] if m["role"] == "tool")

    steps = client.beta.threads.runs.steps.list(
        run.id, thread_id=thread.id, order="asc", include=[INCLUDE_CONTENT]
    )
    tool_step = next(s for s in steps.data if s.type == "tool_calls")
    call = tool_step.step_details.tool_calls[0]  # type: ignore[union-attr]
    assert isinstance(call, FileSearchToolCall)
    assert call.file_search.ranking_options is not None
    assert call.file_search.ranking_options.score_threshold == 0.0
    results = call.file_search.results or []
    assert results and results[0].file_id == file_ids[0] and results[0].file_name == "zebra.pdf"
    assert 0.0 <= results[0].score <= 1.0
    assert results[0].content and "obsidian zebra" in (results[0].content[0].text or "")
    plain = client.beta.threads.runs.steps.retrieve(tool_step.id, thread_id=thread.id, run_id=run.id)
    plain_results = plain.step_details.tool_calls[0].file_search.results or []  # type: ignore[union-attr]
    assert plain_results and plain_results[0].content is None

    answer = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    text = answer.content[0].text  # type: ignore[union-attr]
    assert len(text.annotations) == 1
    citation = text.annotations[0]
    assert citation.type == "file_citation"
    assert citation.file_citation.file_id == file_ids[0]  # type: ignore[union-attr]
    assert text.value[citation.start_index : citation.end_index] == citation.text
    assert citation.text in text.value and citation.text.startswith("【0†")


def test_one_file_store_scores_high_inside_a_run(client: OpenAI, fake: FakeModelServer) -> None:
    store_id, file_ids = _store_with(client, [("zebra.txt", text_document("The obsidian zebra negotiates."))])
    assistant = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 0.3}}}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    fake.script(ToolCalls([Call("file_search", '{"query": "obsidian zebra"}')]), Text("Done."))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "zebra?"}]}
    )
    assert run.status == "completed", run.last_error
    tool_output = next(m["content"] for m in fake.requests[1]["messages"] if m["role"] == "tool")
    assert "obsidian zebra" in tool_output and "No results found" not in tool_output
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data
    call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert isinstance(call, FileSearchToolCall)
    results = call.file_search.results or []
    assert [r.file_id for r in results] == file_ids and results[0].score >= 0.5


_PASSAGE = re.compile(r"(【\d+†[^】]+】)\n(.*?)(?=\n\n【|\Z)", re.S)


def _cite_each_search(seen: dict[str, str]) -> Any:
    """The scripted model's last turn: quote the first marker of every file_search output in the
    prompt, noting in ``seen`` the passage each marker introduced."""

    def reply(body: dict[str, Any]) -> Text:
        outputs = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        for output in outputs:
            found = _PASSAGE.search(output)
            assert found, output
            seen[found.group(1)] = found.group(2)
        assert len(seen) == len(outputs), f"two searches showed the same marker: {outputs}"
        return Text(" ".join(f"Fact {i} {m}." for i, m in enumerate(seen)))

    return reply


def _assert_citations_follow_markers(
    client: OpenAI, thread_id: str, run_id: str, seen: dict[str, str], files: dict[str, str]
) -> None:
    """Each annotation cites the file whose passage the model saw behind that marker."""
    answer = client.beta.threads.messages.list(thread_id, run_id=run_id).data[0]
    text = answer.content[0].text  # type: ignore[union-attr]
    assert sorted(a.text for a in text.annotations) == sorted(seen)
    for annotation in text.annotations:
        assert annotation.type == "file_citation"
        assert text.value[annotation.start_index : annotation.end_index] == annotation.text
        expected = next(file_id for phrase, file_id in files.items() if phrase in seen[annotation.text])
        assert annotation.file_citation.file_id == expected, (annotation.text, seen)  # type: ignore[union-attr]


def _two_topic_assistant(client: OpenAI) -> tuple[str, dict[str, str]]:
    """An assistant searching a store with two unrelated files; phrase -> file id of each."""
    store_id, file_ids = _two_topic_store(client)
    assistant = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    return assistant.id, {"obsidian zebra": file_ids[0], "Refunds are granted": file_ids[1]}


def test_citations_from_two_rounds_of_file_search(client: OpenAI, fake: FakeModelServer) -> None:
    # Markers are numbered across the run: the second search's 【0†…】 would otherwise be resolved
    # against the first search's results.
    assistant_id, files = _two_topic_assistant(client)
    seen: dict[str, str] = {}
    fake.script(
        ToolCalls([Call("file_search", '{"query": "obsidian zebra tariffs"}')]),
        ToolCalls([Call("file_search", '{"query": "refunds thirty days purchase"}')]),
        _cite_each_search(seen),
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Zebras and refunds?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert run.status == "completed", run.last_error
    assert len(fake.requests) == 3
    # The first search's output reads the same in the last prompt as in the one after it.
    tool_outputs = [[m["content"] for m in r["messages"] if m["role"] == "tool"] for r in fake.requests]
    assert tool_outputs[2][:1] == tool_outputs[1]
    assert "obsidian zebra" in tool_outputs[2][0] and "Refunds are granted" in tool_outputs[2][1]
    _assert_citations_follow_markers(client, thread.id, run.id, seen, files)


def test_citations_from_parallel_file_search_calls(client: OpenAI, fake: FakeModelServer) -> None:
    assistant_id, files = _two_topic_assistant(client)
    seen: dict[str, str] = {}
    fake.script(
        ToolCalls(
            [
                Call("file_search", '{"query": "refunds thirty days purchase"}'),
                Call("file_search", '{"query": "obsidian zebra tariffs"}'),
            ]
        ),
        _cite_each_search(seen),
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Refunds and zebras?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    assert run.status == "completed", run.last_error
    _assert_citations_follow_markers(client, thread.id, run.id, seen, files)


def test_thread_vector_store_helper_and_attachments(client: OpenAI, fake: FakeModelServer) -> None:
    first = client.files.create(
        file=("a.txt", text_document("Cobalt herons fish at dawn.")), purpose="assistants"
    )
    thread = client.beta.threads.create(
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [first.id]}]}}
    )
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    store_ids = thread.tool_resources.file_search.vector_store_ids or []
    assert len(store_ids) == 1
    store = wait_for_store(client, store_ids[0])
    assert store.expires_after is not None and store.expires_after.days == 7
    assert store.file_counts.completed == 1

    second = client.files.create(
        file=("b.txt", text_document("Amber moths circle lamps.")), purpose="assistants"
    )
    code = client.files.create(file=("c.csv", b"a,b\n1,2\n"), purpose="assistants")
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="see files",
        attachments=[
            {"file_id": second.id, "tools": [{"type": "file_search"}]},
            {"file_id": code.id, "tools": [{"type": "code_interpreter"}]},
        ],
    )
    updated = client.beta.threads.retrieve(thread.id)
    assert updated.tool_resources is not None
    assert updated.tool_resources.file_search is not None
    assert updated.tool_resources.file_search.vector_store_ids == store_ids
    assert updated.tool_resources.code_interpreter is not None
    assert updated.tool_resources.code_interpreter.file_ids == [code.id]
    assert wait_for_store(client, store_ids[0]).file_counts.completed == 2
    assert client.vector_stores.search(store_ids[0], query="amber moths").data[0].file_id == second.id


def test_unknown_ids_in_tool_resources_and_messages(client: OpenAI) -> None:
    import openai

    with pytest.raises(openai.NotFoundError):
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": ["vs_missing"]}})
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(
            model=MODEL, tool_resources={"code_interpreter": {"file_ids": ["file-missing"]}}
        )
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": "file-missing", "tools": [{"type": "file_search"}]}],
        )
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[{"type": "image_file", "image_file": {"file_id": "file-missing"}}],
        )


@pytest.fixture(scope="module")
def hybrid_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[ServerProcess]:
    if backend == "postgres" and (reason := databases.pgvector_unavailable_reason()) is not None:
        pytest.skip(f"hybrid search on PostgreSQL needs pgvector: {reason}")
    env, pg_url = server_env(backend, fake_model_server.base_url)
    env["THREADLINE_EMBEDDINGS_BASE_URL"] = fake_model_server.base_url
    env["THREADLINE_EMBEDDINGS_MODEL"] = "fake-embedding"
    proc = ServerProcess(tmp_path_factory.mktemp(f"hybrid-{backend}"), env).start()
    try:
        yield proc
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)


def test_hybrid_search_uses_embeddings(hybrid_server: ServerProcess, fake: FakeModelServer) -> None:
    with make_client(hybrid_server.base_url) as client:
        store_id, file_ids = _store_with(
            client,
            [
                ("gardening.txt", text_document("Tomato seedlings need warmth and steady watering.")),
                ("sailing.txt", text_document("Reef the mainsail before the squall arrives.")),
            ],
        )
        assert fake.embedding_requests, "chunks are embedded at ingestion"
        embedded = sum(len(r["input"]) for r in fake.embedding_requests)
        assert embedded >= 2
        before = len(fake.embedding_requests)
        page = client.vector_stores.search(store_id, query="tomato seedlings watering")
        assert len(fake.embedding_requests) == before + 1, "the query is embedded too"
        assert page.data[0].file_id == file_ids[0]
        assert all(0.0 <= r.score <= 1.0 for r in page.data)
        # Every query word in the chunk: at least the keyword score of a full match.
        assert page.data[0].score >= 0.75
        assert [r.score for r in page.data] == sorted((r.score for r in page.data), reverse=True)


def test_hybrid_scores_of_a_one_file_store(hybrid_server: ServerProcess, fake: FakeModelServer) -> None:
    with make_client(hybrid_server.base_url) as client:
        store_id, _ = _store_with(client, [("zebra.txt", text_document("The obsidian zebra negotiates."))])
        page = client.vector_stores.search(store_id, query="obsidian zebra")
        assert len(page.data) == 1 and page.data[0].score >= 0.5
        kept = client.vector_stores.search(
            store_id, query="obsidian zebra", ranking_options={"score_threshold": 0.3}
        )
        assert [r.score for r in kept.data] == [page.data[0].score]


def _indexed_vectors(server: ServerProcess, store_id: str) -> int:
    """How many chunk vectors of the store the database holds: sqlite-vec's table on SQLite,
    pgvector's on PostgreSQL."""
    if "THREADLINE_DATABASE_URL" in server.env:
        sql = "SELECT count(*) FROM chunk_vectors WHERE vector_store_id = :s"
    else:
        sql = f"SELECT count(*) FROM chunk_vectors_{EMBEDDING_DIM} WHERE vector_store_id = :s"
    return int(query_sql(server, sql, s=store_id)[0][0])


def test_vectors_are_indexed_and_leave_with_their_file(hybrid_server: ServerProcess) -> None:
    with make_client(hybrid_server.base_url) as client:
        store_id, file_ids = _store_with(
            client,
            [
                ("comets.txt", text_document("Comet tails point away from the sun. " * 300)),
                ("ferns.txt", text_document("Ferns reproduce with spores, not seeds.")),
            ],
        )
        chunks = query_sql(hybrid_server, "SELECT file_id FROM chunks WHERE vector_store_id = :s", s=store_id)
        comet_chunks = sum(1 for (file_id,) in chunks if file_id == file_ids[0])
        assert comet_chunks > 1
        assert _indexed_vectors(hybrid_server, store_id) == len(chunks), "one vector per chunk"
        hits = client.vector_stores.search(store_id, query="comet tails sun", max_num_results=50).data
        assert hits and hits[0].file_id == file_ids[0]

        client.files.delete(file_ids[0])
        assert _indexed_vectors(hybrid_server, store_id) == len(chunks) - comet_chunks
        hits = client.vector_stores.search(store_id, query="comet tails sun", max_num_results=50).data
        assert {hit.file_id for hit in hits} <= {file_ids[1]}
