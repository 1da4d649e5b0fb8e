"""Which project a transaction acts for: the one place where projects are kept apart.

Every assistant, thread, file, vector store and run row carries its ``project_id``. A transaction
runs in a ``Scope``: the API's middleware sets the scope of the calling key's project for the whole
request (a context variable, captured by ``Database.transaction`` on the event loop, because work sent
to the database threads does not inherit context variables); the executor sets the run's project for
the work of each run. The repositories read the scope from their ``UnitOfWork``:

- the top-level repositories (assistants, threads, files, vector stores, runs) add
  ``project_id = :project`` to every statement and stamp it on every insert, so another project's
  object is simply not there, with the same 404 as a missing one;
- the repositories of objects that live under those (messages, run steps, vector-store files, batches,
  chunks) take the parent's id and ask ``Ownership`` whether the scope owns that parent, raising the
  parent's own 404 when it does not. A parent the transaction already read through its scoped
  repository is remembered, so the hot paths pay no extra query.

``ALL_PROJECTS`` (no project) is for work across projects: the engine's bookkeeping (claiming and
sweeping runs, ingestion leases, pruning events), key lookup, the Admin API and the CLI. No request
made with a project key runs in it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.errors import (
    FileNotFound,
    NotFound,
    RunNotFound,
    ThreadNotFound,
    VectorStoreNotFound,
)
from threadline.storage import tables
from threadline.storage.compiled import Compiled


@dataclass(frozen=True, slots=True)
class Scope:
    project_id: str | None  # None: every project (the engine's bookkeeping)


ALL_PROJECTS = Scope(None)

_current: contextvars.ContextVar[Scope] = contextvars.ContextVar("threadline_scope", default=ALL_PROJECTS)


def current_scope() -> Scope:
    return _current.get()


@contextmanager
def acting_for(project_id: str | None) -> Iterator[None]:
    """Run the enclosed code (and the tasks it creates) in ``project_id``'s scope (None: every
    project, for the Admin API, the health checks and the engine)."""
    token = _current.set(Scope(project_id))
    try:
        yield
    finally:
        _current.reset(token)


def enter_project(project_id: str) -> None:
    """Set the scope for the rest of the current task (a task's context is its own copy)."""
    _current.set(Scope(project_id))


class WrongProject(RuntimeError):
    """A programming error: a write or read that needs a project ran without one."""


def _owned_query(table: sa.Table) -> Compiled:
    """Whether row ``b_id`` of ``table`` belongs to project ``b_project`` (built once per table)."""
    return Compiled(
        sa.select(table.c.id).where(
            table.c.id == sa.bindparam("b_id"), table.c.project_id == sa.bindparam("b_project")
        )
    )


_THREAD_OWNED = _owned_query(tables.threads)
_STORE_OWNED = _owned_query(tables.vector_stores)
_FILE_OWNED = _owned_query(tables.files)
_RUN_OWNED = _owned_query(tables.runs)


class Ownership:
    """The scope of one transaction and what it has already found that the scope owns."""

    def __init__(self, conn: Connection, scope: Scope) -> None:
        self.conn = conn
        self.project_id = scope.project_id
        self._owned: set[str] = set()

    @property
    def everywhere(self) -> bool:
        return self.project_id is None

    def project_for_insert(self) -> str:
        if self.project_id is None:
            raise WrongProject("a new object needs a project: this transaction acts for none")
        return self.project_id

    def require_bookkeeping(self) -> None:
        """For statements that span projects (leases, sweeps): never inside a request."""
        if self.project_id is not None:
            raise WrongProject("cross-project bookkeeping ran in a project's scope")

    def where(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        """The filter a top-level repository adds to a statement over ``table``."""
        return [] if self.project_id is None else [table.c.project_id == self.project_id]

    def equal(self) -> dict[str, str]:
        """The same filter as ``where``, as pagination's equality columns (statements cached per shape)."""
        return {} if self.project_id is None else {"project_id": self.project_id}

    def found(self, object_id: str) -> None:
        """A scoped repository read ``object_id``: it is this scope's."""
        if self.project_id is not None:
            self._owned.add(object_id)

    def thread(self, thread_id: str) -> None:
        self._require(thread_id, _THREAD_OWNED, ThreadNotFound)

    def vector_store(self, vector_store_id: str) -> None:
        self._require(vector_store_id, _STORE_OWNED, VectorStoreNotFound)

    def file(self, file_id: str) -> None:
        self._require(file_id, _FILE_OWNED, FileNotFound)

    def run(self, run_id: str) -> None:
        self._require(run_id, _RUN_OWNED, RunNotFound)

    def _require(self, object_id: str, query: Compiled, missing: Callable[[str], NotFound]) -> None:
        if self.project_id is None or object_id in self._owned:
            return
        if query.first(self.conn, {"b_id": object_id, "b_project": self.project_id}) is None:
            raise missing(object_id)
        self._owned.add(object_id)
