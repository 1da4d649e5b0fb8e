"""List pagination: a property-based walk over random creates and deletes, in both orders."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import OpenAI

from tests.support.server import ServerProcess


def walk(fetch: Callable[..., tuple[list[str], bool, str | None]], order: str, limit: int) -> list[str]:
    """Follow ``after`` cursors as the SDK's auto-pagination does."""
    seen: list[str] = []
    after: str | None = None
    while True:
        ids, has_more, last_id = fetch(order=order, limit=limit, after=after)
        seen += ids
        if not has_more:
            return seen
        after = last_id


def walk_back(
    fetch: Callable[..., tuple[list[str], bool, str | None]], order: str, limit: int, start: str
) -> list[str]:
    """From an item, follow ``before`` cursors back to the start of the list."""
    seen: list[str] = []
    before = start
    while True:
        ids, has_more, _ = fetch(order=order, limit=limit, before=before)
        seen = ids + seen
        if not has_more or not ids:
            return seen
        before = ids[0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.one_of(st.just("create"), st.integers(min_value=0, max_value=50)), min_size=1, max_size=40
    ),
    limit=st.integers(min_value=1, max_value=7),
)
def test_message_pages_match_model(
    client: OpenAI, server: ServerProcess, ops: list[object], limit: int
) -> None:
    thread = client.beta.threads.create()
    expected: list[str] = []
    for op in ops:
        if op == "create" or not expected:
            expected.append(client.beta.threads.messages.create(thread.id, role="user", content="m").id)
        else:
            assert isinstance(op, int)
            victim = expected.pop(op % len(expected))
            client.beta.threads.messages.delete(victim, thread_id=thread.id)

    def fetch(**params: object) -> tuple[list[str], bool, str | None]:
        query = {k: v for k, v in params.items() if v is not None}
        page = client.beta.threads.messages.list(thread.id, **query)  # type: ignore[arg-type]
        ids = [m.id for m in page.data]
        assert page.has_more is not None
        return ids, page.has_more, ids[-1] if ids else None

    assert walk(fetch, "asc", limit) == expected
    assert walk(fetch, "desc", limit) == list(reversed(expected))
    # The SDK's own auto-pagination agrees.
    assert [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=limit)] == expected
    if expected:
        last = expected[-1]
        assert walk_back(fetch, "asc", limit, last) == expected[:-1]
        assert walk_back(fetch, "desc", limit, expected[0]) == list(reversed(expected))[:-1]


def test_cursor_of_deleted_item_still_pages(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=str(i)).id for i in range(5)]
    client.beta.threads.messages.delete(ids[2], thread_id=thread.id)
    page = client.beta.threads.messages.list(thread.id, order="asc", after=ids[2])
    assert [m.id for m in page.data] == ids[3:]
    page = client.beta.threads.messages.list(thread.id, order="asc", limit=2)
    # first_id / last_id are on the wire; this SDK's page model keeps them as extra fields.
    envelope = page.model_dump()
    assert page.has_more and envelope["first_id"] == ids[0] and envelope["last_id"] == ids[1]
    empty = client.beta.threads.messages.list(thread.id, after=ids[0])
    assert empty.data == [] and empty.has_more is False


def test_same_second_objects_keep_creation_order(client: OpenAI) -> None:
    assistants = [client.beta.assistants.create(model="m", name=str(i)).id for i in range(30)]
    listed = [a.id for a in client.beta.assistants.list(order="asc", limit=100) if a.id in set(assistants)]
    assert listed == assistants
