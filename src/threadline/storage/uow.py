"""The unit of work a service receives: one connection inside one transaction, the project it acts
for (storage/scope.py), and its repositories, every one of them scoped to that project.

Repositories are created on first use so a request pays only for what it touches.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.engine import Connection

from threadline.storage.assistants import AssistantRepository
from threadline.storage.chunks import ChunkRepository
from threadline.storage.files import FileRepository
from threadline.storage.ingestion_queue import IngestionQueueRepository
from threadline.storage.keys import KeyRepository
from threadline.storage.messages import MessageRepository
from threadline.storage.request_counts import RequestCountRepository
from threadline.storage.run_events import RunEventRepository
from threadline.storage.run_steps import RunStepRepository
from threadline.storage.runs import RunRepository
from threadline.storage.scope import ALL_PROJECTS, Ownership, Scope
from threadline.storage.threads import ThreadRepository
from threadline.storage.usage import UsageRepository
from threadline.storage.vector_stores import VectorStoreRepository


class UnitOfWork:
    def __init__(self, conn: Connection, scope: Scope = ALL_PROJECTS) -> None:
        self.conn = conn
        self.owner = Ownership(conn, scope)

    @property
    def project_id(self) -> str | None:
        return self.owner.project_id

    @cached_property
    def threads(self) -> ThreadRepository:
        return ThreadRepository(self.conn, self.owner)

    @cached_property
    def messages(self) -> MessageRepository:
        return MessageRepository(self.conn, self.owner)

    @cached_property
    def assistants(self) -> AssistantRepository:
        return AssistantRepository(self.conn, self.owner)

    @cached_property
    def runs(self) -> RunRepository:
        return RunRepository(self.conn, self.owner)

    @cached_property
    def run_steps(self) -> RunStepRepository:
        return RunStepRepository(self.conn, self.owner)

    @cached_property
    def run_events(self) -> RunEventRepository:
        return RunEventRepository(self.conn)

    @cached_property
    def files(self) -> FileRepository:
        return FileRepository(self.conn, self.owner)

    @cached_property
    def vector_stores(self) -> VectorStoreRepository:
        return VectorStoreRepository(self.conn, self.owner)

    @cached_property
    def chunks(self) -> ChunkRepository:
        return ChunkRepository(self.conn, self.owner)

    @cached_property
    def ingestion_queue(self) -> IngestionQueueRepository:
        """The files waiting to be indexed, across projects (the ingestion loop's bookkeeping)."""
        return IngestionQueueRepository(self.conn, self.owner, self.chunks)

    @cached_property
    def keys(self) -> KeyRepository:
        """Projects and keys: the organisation's records, which no project scope covers."""
        return KeyRepository(self.conn)

    @cached_property
    def usage(self) -> UsageRepository:
        """Usage per project: written by the engine when a run ends, read by the Admin API."""
        return UsageRepository(self.conn)

    @cached_property
    def request_counts(self) -> RequestCountRepository:
        """Requests per project and minute across processes (the API's rate limiter)."""
        return RequestCountRepository(self.conn)
