"""Runs repository (the thread lock lives on top of ``active_run_id``).

Reads that precede a state transition use ``get_for_update``: on PostgreSQL it takes the row lock
(``SELECT ... FOR UPDATE``), so a cancel and the executor's own transition cannot both win; SQLite
has a single writer, where the clause is a no-op.

Claiming (executor workers, possibly several processes): ``claimable_ids`` picks queued runs with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a run another worker is claiming right now is skipped, not
waited for), and ``claim`` is a conditional UPDATE (``WHERE status = 'queued'``) whose row count says
who won, which is atomic on SQLite too (one writer; a stale snapshot fails instead of writing).
"""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.run_states import (
    ACTIVE_RUN_STATUSES,
    EXECUTING_RUN_STATUSES,
    LEASED_RUN_STATUSES,
    RunStatus,
)
from threadline.domain.runs import Run
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.compiled import Compiled
from threadline.storage.pagination import keyset_page
from threadline.storage.rows import Mapper
from threadline.storage.scope import Ownership

r = tables.runs


_runs = Mapper(Run, r)
# The statuses are part of the SQL text (not parameters): the statement is built once, and the
# planner sees the constants.
_ACTIVE = Compiled(
    sa.select(r.c.id)
    .where(
        r.c.thread_id == sa.bindparam("thread_id"),
        r.c.status.in_([sa.literal_column(f"'{status}'") for status in ACTIVE_RUN_STATUSES]),
    )
    .limit(1)
)
# Admission control counts the runs the executors owe work to (queued, in progress, cancelling:
# not requires_action, which waits on the client). The count stops at ``b_limit`` rows, so its cost
# is bounded by the limit, not by the backlog; ix_runs_status serves it.
_EXECUTING_COUNT = Compiled(
    sa.select(sa.func.count()).select_from(
        sa.select(sa.literal_column("1"))
        .select_from(r)
        .where(r.c.status.in_([sa.literal_column(f"'{status}'") for status in EXECUTING_RUN_STATUSES]))
        .limit(sa.bindparam("b_limit"))
        .subquery()
    )
)
_EXECUTING_COUNT_IN_PROJECT = Compiled(
    sa.select(sa.func.count()).select_from(
        sa.select(sa.literal_column("1"))
        .select_from(r)
        .where(
            r.c.project_id == sa.bindparam("b_project"),
            r.c.status.in_([sa.literal_column(f"'{status}'") for status in EXECUTING_RUN_STATUSES]),
        )
        .limit(sa.bindparam("b_limit"))
        .subquery()
    )
)
# The run path's statements, compiled once and run on the driver's cursor (storage/compiled.py):
# building and executing a statement through Core cost more CPU than SQLite took to run it. An INSERT
# or UPDATE sets the columns named in ``column_keys``; bind names must not be column names.
_INSERT = Compiled(r.insert(), column_keys=[*_runs.names, "project_id"])
# Each read in two variants: any project (the engine's bookkeeping) and the scope's (storage/scope.py).
_GET_ANY_STATEMENT = sa.select(*_runs.columns).where(
    r.c.id == sa.bindparam("b_run_id"), r.c.thread_id == sa.bindparam("b_thread_id")
)
_GET_ANY = Compiled(_GET_ANY_STATEMENT)
_GET = Compiled(_GET_ANY_STATEMENT.where(r.c.project_id == sa.bindparam("b_project")))
_BY_ID_ANY_STATEMENT = sa.select(*_runs.columns).where(r.c.id == sa.bindparam("b_run_id"))
_BY_ID_STATEMENT = _BY_ID_ANY_STATEMENT.where(r.c.project_id == sa.bindparam("b_project"))
_BY_ID_ANY = Compiled(_BY_ID_ANY_STATEMENT)
_BY_ID = Compiled(_BY_ID_STATEMENT)
_BY_ID_FOR_UPDATE_ANY = Compiled(_BY_ID_ANY_STATEMENT.with_for_update())
_BY_ID_FOR_UPDATE = Compiled(_BY_ID_STATEMENT.with_for_update())
_PROJECT_OF = Compiled(sa.select(r.c.project_id).where(r.c.id == sa.bindparam("b_run_id")))
_WITH_PROJECT = Compiled(sa.select(*_runs.columns, r.c.project_id).where(r.c.id == sa.bindparam("b_run_id")))
_UPDATE = Compiled(
    r.update().where(r.c.id == sa.bindparam("b_run_id")),
    column_keys=[name for name in _runs.names if name != "id"],
)
_CLAIM = Compiled(
    r.update()
    .where(r.c.id == sa.bindparam("b_run_id"), r.c.status == RunStatus.QUEUED)
    .values(
        status=RunStatus.IN_PROGRESS,
        lease_owner=sa.bindparam("b_owner"),
        lease_expires_at=sa.bindparam("b_lease_expires_at"),
        started_at=sa.func.coalesce(r.c.started_at, sa.bindparam("b_started_at")),
    )
)

_CLAIMABLE = Compiled(
    sa.select(r.c.id)
    .where(r.c.status == RunStatus.QUEUED)
    .order_by(r.c.id)
    .limit(sa.bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)


class RunRepository:
    """Runs carry their project (storage/scope.py): reads and writes are scoped by it. The claim,
    lease and sweep queries are the executors' bookkeeping across projects."""

    def __init__(self, conn: Connection, owner: Ownership) -> None:
        self.conn = conn
        self.owner = owner

    def active_run_id(self, thread_id: str) -> str | None:
        """The id of the thread's run in queued/in_progress/requires_action/cancelling, if any."""
        self.owner.thread(thread_id)
        return _ACTIVE.scalar(self.conn, {"thread_id": thread_id})  # type: ignore[no-any-return]

    def executing_count(self, limit: int, *, in_project: bool = False) -> int:
        """How many runs are queued, in progress or cancelling, counted up to ``limit``: across every
        project (admission bounds what the deployment's executors owe), or in the scope's project."""
        if in_project and self.owner.project_id is not None:
            values = {"b_limit": limit, "b_project": self.owner.project_id}
            return int(_EXECUTING_COUNT_IN_PROJECT.scalar(self.conn, values))
        return int(_EXECUTING_COUNT.scalar(self.conn, {"b_limit": limit}))

    def insert(self, run: Run) -> None:
        self.owner.thread(run.thread_id)
        _INSERT.execute(self.conn, {**_runs.dump(run), "project_id": self.owner.project_for_insert()})
        self.owner.found(run.id)

    def get(self, thread_id: str, run_id: str) -> Run | None:
        values = {"b_run_id": run_id, "b_thread_id": thread_id}
        return self._one(_GET_ANY, _GET, values)

    def get_for_update(self, run_id: str) -> Run | None:
        """The run, row-locked until the transaction ends (PostgreSQL)."""
        return self._one(_BY_ID_FOR_UPDATE_ANY, _BY_ID_FOR_UPDATE, {"b_run_id": run_id})

    def by_id(self, run_id: str) -> Run | None:
        return self._one(_BY_ID_ANY, _BY_ID, {"b_run_id": run_id})

    def _one(self, anywhere: Compiled, scoped: Compiled, values: dict[str, Any]) -> Run | None:
        if self.owner.everywhere:
            row = anywhere.first(self.conn, values)
        else:
            row = scoped.first(self.conn, {**values, "b_project": self.owner.project_id})
        if row is None:
            return None
        run = _runs.load_values(row)
        self.owner.found(run.id)
        return run

    def with_project(self, run_id: str) -> tuple[Run, str] | None:
        """A run and its project in one read (the claim: the executor then acts for that project)."""
        self.owner.require_bookkeeping()
        row = _WITH_PROJECT.first(self.conn, {"b_run_id": run_id})
        if row is None:
            return None
        return _runs.load_values(row[:-1]), row[-1]

    def project_of(self, run_id: str) -> str | None:
        """The project a run belongs to. In a project's scope that is the scope's project (or the run
        is not found); a run this transaction has read already costs no statement."""
        if self.owner.project_id is not None:
            self.owner.run(run_id)
            return self.owner.project_id
        return _PROJECT_OF.scalar(self.conn, {"b_run_id": run_id})  # type: ignore[no-any-return]

    def update(self, run: Run) -> None:
        self.owner.run(run.id)
        values = _runs.dump(run, without=("id",))
        _UPDATE.execute(self.conn, {"b_run_id": run.id, **values})

    def list(self, thread_id: str, params: ListParams) -> Page[Run]:
        self.owner.thread(thread_id)
        return keyset_page(self.conn, params, _runs, equal={"thread_id": thread_id, **self.owner.equal()})

    def ids_due_to_expire(self, now: int, owner: str, now_s: float) -> builtins.list[str]:
        """Live runs whose ``expires_at`` has passed (the expiry sweep), except those another worker
        holds with a live lease: that worker's own sweep expires them (it can stop the model call)."""
        self.owner.require_bookkeeping()
        query = (
            sa.select(r.c.id)
            .where(
                r.c.status.in_(ACTIVE_RUN_STATUSES),
                r.c.expires_at <= now,
                sa.or_(
                    r.c.lease_owner.is_(None),
                    r.c.lease_owner == owner,
                    r.c.lease_expires_at.is_(None),
                    r.c.lease_expires_at < now_s,
                ),
            )
            .order_by(r.c.id)
        )
        return list(self.conn.execute(query).scalars())

    def queued_since(self, created_before: int, limit: int) -> builtins.list[str]:
        """Runs still queued that were created before ``created_before`` (oldest first)."""
        self.owner.require_bookkeeping()
        query = (
            sa.select(r.c.id)
            .where(r.c.status == RunStatus.QUEUED, r.c.created_at < created_before)
            .order_by(r.c.id)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def claimable_ids(self, limit: int) -> builtins.list[str]:
        """Up to ``limit`` queued runs, oldest first, row-locked; rows locked elsewhere are skipped."""
        self.owner.require_bookkeeping()
        return [row[0] for row in _CLAIMABLE.all(self.conn, {"b_limit": limit})]

    def claim(self, run_id: str, owner: str, lease_expires_at: float, started_at: int) -> bool:
        """queued -> in_progress for ``owner`` if the run is still queued; False if someone else won."""
        self.owner.require_bookkeeping()
        params = {"b_run_id": run_id, "b_owner": owner, "b_lease_expires_at": lease_expires_at}
        return _CLAIM.execute(self.conn, {**params, "b_started_at": started_at}) > 0

    def renew_leases(
        self, owner: str, run_ids: builtins.list[str], lease_expires_at: float
    ) -> dict[str, tuple[str, str | None]]:
        """Extend ``owner``'s leases on ``run_ids``; returns each run's ``(status, lease_owner)`` so the
        heartbeat can notice a cancel requested elsewhere or a lease lost to another worker."""
        self.owner.require_bookkeeping()
        if not run_ids:
            return {}
        self.conn.execute(
            r.update()
            .where(
                r.c.id.in_(run_ids),
                r.c.lease_owner == owner,
                r.c.status.in_(LEASED_RUN_STATUSES),
            )
            .values(lease_expires_at=lease_expires_at)
        )
        rows = self.conn.execute(sa.select(r.c.id, r.c.status, r.c.lease_owner).where(r.c.id.in_(run_ids)))
        return {row.id: (row.status, row.lease_owner) for row in rows}

    def orphan_ids(self, now_s: float) -> builtins.list[str]:
        """in_progress/cancelling runs with no live lease: their executor is gone (or never existed, as
        for a queued run cancelled while no worker held it)."""
        self.owner.require_bookkeeping()
        query = (
            sa.select(r.c.id)
            .where(
                r.c.status.in_(LEASED_RUN_STATUSES),
                sa.or_(r.c.lease_expires_at.is_(None), r.c.lease_expires_at < now_s),
            )
            .order_by(r.c.id)
        )
        return list(self.conn.execute(query).scalars())

    def lease_owners(self) -> builtins.list[tuple[str, str]]:
        """``(run id, lease_owner)`` of every leased live run (start-up: find dead local owners)."""
        self.owner.require_bookkeeping()
        query = sa.select(r.c.id, r.c.lease_owner).where(
            r.c.status.in_(LEASED_RUN_STATUSES), r.c.lease_owner.is_not(None)
        )
        return [(row.id, row.lease_owner) for row in self.conn.execute(query)]
