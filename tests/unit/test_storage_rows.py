"""Hot-path row mapping: the core tables load positionally, and both ways give the same objects."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Assistant, Message, Thread
from threadline.storage import tables
from threadline.storage.rows import Mapper


@pytest.mark.parametrize(
    ("cls", "table"),
    [
        (Thread, tables.threads),
        (Message, tables.messages),
        (Assistant, tables.assistants),
        (RunStep, tables.run_steps),
    ],
)
def test_hot_tables_load_positionally(cls: type, table: sa.Table) -> None:
    assert Mapper(cls, table).positional, f"{table.name} columns no longer match {cls.__name__}'s fields"


def test_other_tables_load_by_name() -> None:
    assert not Mapper(Run, tables.runs).positional  # runs keep their field order; by name still works


def test_load_and_dump_round_trip() -> None:
    engine = sa.create_engine("sqlite://")
    tables.metadata.create_all(engine, tables=[tables.messages])
    mapper = Mapper(Message, tables.messages)
    message = Message(
        id=new_id("message"),
        thread_id="thread_x",
        created_at=1,
        role="user",
        content=[{"type": "text", "text": {"value": "hi", "annotations": []}}],
        attachments=[],
        metadata={"k": "v"},
    )
    with engine.begin() as conn:
        conn.execute(tables.messages.insert(), [mapper.dump(message)])
        row = conn.execute(sa.select(tables.messages)).one()
    assert mapper.load(row) == message
    assert Message(**row._mapping) == message


def test_ids_sort_by_creation_and_look_real() -> None:
    ids = [new_id("thread") for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == len("thread_") + 24 and i[7:].isalnum() for i in ids)
