"""Projects, service accounts and API keys: the organisation's own records, outside any project's
scope (only the Admin API, the CLI and key lookup reach them)."""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.domain.projects import ApiKey, KeyKind, Project, ServiceAccount
from threadline.domain.threads import ListParams, Page
from threadline.storage import tables
from threadline.storage.pagination import fetch_page

p = tables.projects
sa_ = tables.service_accounts
k = tables.api_keys

_KEY_COLUMNS = [column for column in k.columns if column.name not in {"key_hash", "revoked_at"}]
_LIVE = k.c.revoked_at.is_(None)
# The lookup on a cache miss: a key works until revoked, while its project (if any) is not archived.
_LOOKUP = (
    sa.select(k.c.id, k.c.kind, k.c.project_id, k.c.last_used_at)
    .select_from(k.outerjoin(p, p.c.id == k.c.project_id))
    .where(
        k.c.key_hash == sa.bindparam("b_hash"),
        _LIVE,
        sa.or_(k.c.project_id.is_(None), p.c.archived_at.is_(None)),
    )
)
# Revoked keys count: once any key has existed, keys are required.
_ANY_KEY = sa.select(k.c.id).limit(1)


def _project(row: Any) -> Project:
    return Project(row.id, row.name, row.created_at, row.archived_at)


def _account(row: Any) -> ServiceAccount:
    return ServiceAccount(row.id, row.project_id, row.name, row.role, row.created_at)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row.id,
        KeyKind(row.kind),
        row.project_id,
        row.service_account_id,
        row.name,
        row.redacted_value,
        row.created_at,
        row.last_used_at,
    )


class KeyRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- projects ----------------------------------------------------------------------------------
    def insert_project(self, project: Project) -> None:
        self.conn.execute(
            p.insert().values(
                id=project.id,
                name=project.name,
                created_at=project.created_at,
                archived_at=project.archived_at,
            )
        )

    def project(self, project_id: str) -> Project | None:
        row = self.conn.execute(sa.select(p).where(p.c.id == project_id)).first()
        return None if row is None else _project(row)

    def project_named(self, name: str) -> Project | None:
        """The active project called ``name`` (the oldest, if several share it)."""
        query = sa.select(p).where(p.c.name == name, p.c.archived_at.is_(None)).order_by(p.c.id).limit(1)
        row = self.conn.execute(query).first()
        return None if row is None else _project(row)

    def all_projects(self) -> builtins.list[Project]:
        return [_project(row) for row in self.conn.execute(sa.select(p).order_by(p.c.id))]

    def update_project(self, project: Project) -> None:
        self.conn.execute(
            p.update().where(p.c.id == project.id).values(name=project.name, archived_at=project.archived_at)
        )

    def list_projects(self, params: ListParams, include_archived: bool) -> Page[Project]:
        where = [] if include_archived else [p.c.archived_at.is_(None)]
        return fetch_page(self.conn, p, where, params, _project)

    # --- service accounts --------------------------------------------------------------------------
    def insert_account(self, account: ServiceAccount) -> None:
        self.conn.execute(
            sa_.insert().values(
                id=account.id,
                project_id=account.project_id,
                name=account.name,
                role=account.role,
                created_at=account.created_at,
            )
        )

    def account(self, project_id: str, account_id: str) -> ServiceAccount | None:
        query = sa.select(sa_).where(sa_.c.id == account_id, sa_.c.project_id == project_id)
        row = self.conn.execute(query).first()
        return None if row is None else _account(row)

    def accounts_by_id(self, project_id: str, account_ids: set[str | None]) -> dict[str, ServiceAccount]:
        """The project's accounts among ``account_ids`` (one query for a page of keys' owners)."""
        wanted = [account_id for account_id in account_ids if account_id is not None]
        if not wanted:
            return {}
        query = sa.select(sa_).where(sa_.c.project_id == project_id, sa_.c.id.in_(wanted))
        return {row.id: _account(row) for row in self.conn.execute(query)}

    def list_accounts(self, project_id: str, params: ListParams) -> Page[ServiceAccount]:
        equal = {"project_id": project_id}
        return fetch_page(self.conn, sa_, [], params, _account, equal=equal, columns=list(sa_.columns))

    def delete_account(self, project_id: str, account_id: str, now: int) -> bool:
        """Delete the service account and revoke its keys."""
        self._revoke_where(now, k.c.service_account_id == account_id, k.c.project_id == project_id)
        query = sa_.delete().where(sa_.c.id == account_id, sa_.c.project_id == project_id)
        return self.conn.execute(query).rowcount > 0

    # --- keys --------------------------------------------------------------------------------------
    def insert_key(self, key: ApiKey, key_hash: str) -> None:
        self.conn.execute(
            k.insert().values(
                id=key.id,
                kind=str(key.kind),
                project_id=key.project_id,
                service_account_id=key.service_account_id,
                name=key.name,
                redacted_value=key.redacted_value,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
                key_hash=key_hash,
            )
        )

    def key(self, key_id: str) -> ApiKey | None:
        row = self.conn.execute(sa.select(*_KEY_COLUMNS).where(k.c.id == key_id, _LIVE)).first()
        return None if row is None else _key(row)

    def list_keys(self, params: ListParams, *, project_id: str | None, kind: KeyKind) -> Page[ApiKey]:
        equal: dict[str, Any] = {"kind": str(kind)}
        if project_id is not None:
            equal["project_id"] = project_id
        return fetch_page(self.conn, k, [_LIVE], params, _key, equal=equal, columns=_KEY_COLUMNS)

    def all_keys(self) -> builtins.list[ApiKey]:
        rows = self.conn.execute(sa.select(*_KEY_COLUMNS).where(_LIVE).order_by(k.c.id))
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str, now: int) -> bool:
        return self._revoke_where(now, k.c.id == key_id) > 0

    def _revoke_where(self, now: int, *conditions: sa.ColumnElement[bool]) -> int:
        """Revoke the live keys that match (the row stays: see tables.api_keys)."""
        query = k.update().where(*conditions, _LIVE).values(revoked_at=now)
        return int(self.conn.execute(query).rowcount)

    def lookup(self, key_hash: str) -> Any:
        """``(id, kind, project_id, last_used_at)`` of the working key with this hash, or None."""
        return self.conn.execute(_LOOKUP, {"b_hash": key_hash}).first()

    def touch(self, key_id: str, now: int) -> None:
        self.conn.execute(k.update().where(k.c.id == key_id).values(last_used_at=now))

    def any_key(self) -> bool:
        return self.conn.execute(_ANY_KEY).first() is not None
