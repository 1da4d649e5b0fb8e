"""Projects, service accounts and API keys: what the Admin API and the CLI manage.

A project key always belongs to a service account of its project (OpenAI's model: a key is owned by
a user or a service account; a self-hosted server has no users), so ``keys create`` makes one. A key's
value exists only in the return value of the call that created it; the database keeps its hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline.domain.errors import (
    ApiKeyNotFound,
    InvalidParameter,
    InvalidRequest,
    ProjectNotFound,
    ServiceAccountNotFound,
)
from threadline.domain.ids import new_id
from threadline.domain.projects import (
    ApiKey,
    KeyKind,
    Project,
    ServiceAccount,
    key_hash,
    new_secret,
    redact,
)
from threadline.domain.threads import ListParams, Page
from threadline.services.clock import now
from threadline.storage.uow import UnitOfWork

MAX_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once


def _name(value: str, param: str = "name") -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidParameter(f"'{param}' must be 1 to {MAX_NAME_CHARS} characters.", param=param)
    return name


def create_project(uow: UnitOfWork, name: str) -> Project:
    project = Project(new_id("project"), _name(name), now(), None)
    uow.keys.insert_project(project)
    return project


def require_project(uow: UnitOfWork, project_id: str) -> Project:
    project = uow.keys.project(project_id)
    if project is None:
        raise ProjectNotFound(project_id)
    return project


def find_project(uow: UnitOfWork, name_or_id: str) -> Project:
    """An active project by id or by name (the CLI takes either)."""
    project = uow.keys.project(name_or_id)
    if project is None or project.archived_at is not None:
        project = uow.keys.project_named(name_or_id)
    if project is None:
        raise ProjectNotFound(name_or_id)
    return project


def require_active_project(uow: UnitOfWork, project_id: str) -> Project:
    """A project that may still change: an archived one is there (404 would mislead) but frozen, 400."""
    project = require_project(uow, project_id)
    if project.archived_at is not None:
        raise InvalidRequest(f"Project '{project_id}' is archived: archived projects cannot be modified.")
    return project


def list_projects(uow: UnitOfWork, params: ListParams, include_archived: bool) -> Page[Project]:
    return uow.keys.list_projects(params, include_archived)


def rename_project(uow: UnitOfWork, project_id: str, name: str) -> Project:
    project = require_active_project(uow, project_id)
    project.name = _name(name)
    uow.keys.update_project(project)
    return project


def archive_project(uow: UnitOfWork, project_id: str) -> Project:
    """Archived projects keep their objects, but their keys stop working at once."""
    project = require_project(uow, project_id)
    if project.archived_at is None:
        project.archived_at = now()
        uow.keys.update_project(project)
    return project


def _new_key(
    uow: UnitOfWork, kind: KeyKind, name: str, project_id: str | None, account_id: str | None
) -> NewKey:
    secret = new_secret(kind)
    key = ApiKey(new_id("api_key"), kind, project_id, account_id, name, redact(secret), now(), None)
    uow.keys.insert_key(key, key_hash(secret))
    return NewKey(key, secret)


def create_service_account(
    uow: UnitOfWork, project_id: str, name: str, *, key_name: str = "Secret Key"
) -> tuple[ServiceAccount, NewKey]:
    """A service account of an active project, and its key (named as OpenAI names it)."""
    account = create_service_account_only(uow, project_id, name)
    return account, _new_key(uow, KeyKind.PROJECT, key_name, project_id, account.id)


def create_service_account_only(uow: UnitOfWork, project_id: str, name: str) -> ServiceAccount:
    """A service account without a key (the Admin API's ``create_service_account_only``)."""
    require_active_project(uow, project_id)
    account = ServiceAccount(new_id("service_account"), project_id, _name(name), "member", now())
    uow.keys.insert_account(account)
    return account


def require_service_account(uow: UnitOfWork, project_id: str, account_id: str) -> ServiceAccount:
    require_project(uow, project_id)
    account = uow.keys.account(project_id, account_id)
    if account is None:
        raise ServiceAccountNotFound(account_id)
    return account


def list_service_accounts(uow: UnitOfWork, project_id: str, params: ListParams) -> Page[ServiceAccount]:
    require_project(uow, project_id)
    return uow.keys.list_accounts(project_id, params)


def delete_service_account(uow: UnitOfWork, project_id: str, account_id: str) -> None:
    """Delete the account; its keys stop working as a revoked key does (< 1 s)."""
    require_service_account(uow, project_id, account_id)
    uow.keys.delete_account(project_id, account_id, now())


def create_project_key(uow: UnitOfWork, project: str, name: str) -> NewKey:
    """A key for ``project`` (id or name), owned by a new service account called ``name``."""
    found = find_project(uow, project)
    _, new = create_service_account(uow, found.id, name, key_name=_name(name))
    return new


def create_admin_key(uow: UnitOfWork, name: str) -> NewKey:
    return _new_key(uow, KeyKind.ADMIN, _name(name), None, None)


def require_admin_key(uow: UnitOfWork, key_id: str) -> ApiKey:
    key = uow.keys.key(key_id)
    if key is None or key.kind is not KeyKind.ADMIN:
        raise ApiKeyNotFound(key_id)
    return key


def list_admin_keys(uow: UnitOfWork, params: ListParams) -> Page[ApiKey]:
    return uow.keys.list_keys(params, project_id=None, kind=KeyKind.ADMIN)


def revoke_admin_key(uow: UnitOfWork, key_id: str) -> None:
    require_admin_key(uow, key_id)
    uow.keys.revoke_key(key_id, now())


@dataclass(frozen=True, slots=True)
class OwnedKey:
    """A project key and the service account that owns it (None only if the account row is missing)."""

    key: ApiKey
    owner: ServiceAccount | None


def require_project_key(uow: UnitOfWork, project_id: str, key_id: str) -> OwnedKey:
    require_project(uow, project_id)
    key = uow.keys.key(key_id)
    if key is None or key.kind is not KeyKind.PROJECT or key.project_id != project_id:
        raise ApiKeyNotFound(key_id)
    owner = None if key.service_account_id is None else uow.keys.account(project_id, key.service_account_id)
    return OwnedKey(key, owner)


def list_project_keys(uow: UnitOfWork, project_id: str, params: ListParams) -> Page[OwnedKey]:
    require_project(uow, project_id)
    page = uow.keys.list_keys(params, project_id=project_id, kind=KeyKind.PROJECT)
    accounts = uow.keys.accounts_by_id(project_id, {k.service_account_id for k in page.items})
    owned = [OwnedKey(key, accounts.get(key.service_account_id or "")) for key in page.items]
    return Page(owned, page.has_more)


def revoke_project_key(uow: UnitOfWork, project_id: str, key_id: str) -> None:
    require_project_key(uow, project_id, key_id)
    uow.keys.revoke_key(key_id, now())


def revoke_key(uow: UnitOfWork, key_id: str) -> bool:
    """Revoke the key: it stops working in every process within the key cache's lifetime (< 1 s)."""
    return uow.keys.revoke_key(key_id, now())
