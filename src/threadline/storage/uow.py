"""The unit of work a service receives: one connection inside one transaction, and its repositories.

Repositories are created on first use so a request pays only for what it touches.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.engine import Connection

from threadline.storage.assistants import AssistantRepository
from threadline.storage.chunks import ChunkRepository
from threadline.storage.files import FileRepository
from threadline.storage.messages import MessageRepository
from threadline.storage.run_events import RunEventRepository
from threadline.storage.run_steps import RunStepRepository
from threadline.storage.runs import RunRepository
from threadline.storage.threads import ThreadRepository
from threadline.storage.vector_stores import VectorStoreRepository


class UnitOfWork:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @cached_property
    def threads(self) -> ThreadRepository:
        return ThreadRepository(self.conn)

    @cached_property
    def messages(self) -> MessageRepository:
        return MessageRepository(self.conn)

    @cached_property
    def assistants(self) -> AssistantRepository:
        return AssistantRepository(self.conn)

    @cached_property
    def runs(self) -> RunRepository:
        return RunRepository(self.conn)

    @cached_property
    def run_steps(self) -> RunStepRepository:
        return RunStepRepository(self.conn)

    @cached_property
    def run_events(self) -> RunEventRepository:
        return RunEventRepository(self.conn)

    @cached_property
    def files(self) -> FileRepository:
        return FileRepository(self.conn)

    @cached_property
    def vector_stores(self) -> VectorStoreRepository:
        return VectorStoreRepository(self.conn)

    @cached_property
    def chunks(self) -> ChunkRepository:
        return ChunkRepository(self.conn)
