"""The Admin API's projects, service accounts and keys on the wire (``/v1/organization``).

The shapes are OpenAI's; where they hold something a self-hosted server has no data for, it is
filled as the spec allows:

- a project's ``external_key_id`` is always null (no customer-managed encryption keys), and
  ``residency`` is left out (optional; the data stays where the deployment puts it). Creating a
  project with either is refused as an unknown parameter rather than silently ignored;
- an admin key's ``owner`` is required, but there are no users: it is a fixed service account
  standing for the deployment (``svc_acct_threadline``, role ``owner``; its ``created_at`` is the
  key's own). ``expires_at`` is always null: keys do not expire, so ``expires_in_seconds`` is
  refused (a key that outlived the expiry its creator asked for would be worse than a 400);
- a project key's ``owner`` is always its service account (``type: "service_account"``; no users),
  and ``owner_project_access`` is ``active``: an account's keys are revoked when it is deleted, so
  no listed key has an owner without access.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from threadline.domain.projects import ApiKey, Project, ServiceAccount
from threadline.schemas.common import ShortName, Strict

DEPLOYMENT_OWNER_ID = "svc_acct_threadline"
DEPLOYMENT_OWNER_NAME = "threadline"


class ProjectCreate(Strict):
    name: ShortName


class ProjectModify(Strict):
    name: ShortName | None = None


class ServiceAccountCreate(Strict):
    name: ShortName
    create_service_account_only: bool | None = None


class AdminKeyCreate(Strict):
    name: ShortName
    # Declared so that the refusal names it and says why (see the module docstring).
    expires_in_seconds: Annotated[int, Field(ge=1, le=31_536_000)] | None = None


def project_to_wire(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "object": "organization.project",
        "name": project.name,
        "created_at": project.created_at,
        "archived_at": project.archived_at,
        "status": project.status,
        "external_key_id": None,
    }


def service_account_to_wire(account: ServiceAccount) -> dict[str, Any]:
    return {
        "object": "organization.project.service_account",
        "id": account.id,
        "name": account.name,
        "role": account.role,
        "created_at": account.created_at,
    }


def new_service_account_to_wire(
    account: ServiceAccount, key: ApiKey | None, secret: str | None
) -> dict[str, Any]:
    """The create response: the account and, once only, its key's value."""
    api_key = None
    if key is not None:
        api_key = {
            "object": "organization.project.service_account.api_key",
            "value": secret,
            "name": key.name,
            "created_at": key.created_at,
            "id": key.id,
        }
    return {**service_account_to_wire(account), "api_key": api_key}


def _owner_account(account: ServiceAccount) -> dict[str, Any]:
    return {"id": account.id, "name": account.name, "created_at": account.created_at, "role": account.role}


def project_key_to_wire(key: ApiKey, owner: ServiceAccount | None) -> dict[str, Any]:
    return {
        "object": "organization.project.api_key",
        "redacted_value": key.redacted_value,
        "name": key.name,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "id": key.id,
        "owner_project_access": "active",
        "owner": {
            "type": "service_account",
            "service_account": None if owner is None else _owner_account(owner),
        },
    }


def admin_key_to_wire(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "object": "organization.admin_api_key",
        "id": key.id,
        "name": key.name,
        "redacted_value": key.redacted_value,
        "created_at": key.created_at,
        "expires_at": None,
        "last_used_at": key.last_used_at,
        "owner": {
            "type": "service_account",
            "object": "organization.service_account",
            "id": DEPLOYMENT_OWNER_ID,
            "name": DEPLOYMENT_OWNER_NAME,
            "created_at": key.created_at,
            "role": "owner",
        },
    }
    if secret is not None:
        wire["value"] = secret
    return wire
