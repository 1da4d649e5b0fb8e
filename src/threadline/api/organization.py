"""/v1/organization: the Admin API's projects, service accounts, project keys and admin keys.

The middleware lets only admin keys in here and runs these requests with no project scope; the
records themselves live outside any project (storage/keys.py). Lists follow OpenAI's Admin API:
oldest first unless ``order`` says otherwise. What the wire fills in for data we do not have is
described in schemas/organization.py.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline.api.context import context
from threadline.api.http import json_response, list_params, parse_body
from threadline.domain.errors import InvalidParameter
from threadline.domain.projects import Project
from threadline.domain.threads import ListParams
from threadline.schemas.common import list_envelope
from threadline.schemas.organization import (
    AdminKeyCreate,
    ProjectCreate,
    ProjectModify,
    ServiceAccountCreate,
    admin_key_to_wire,
    new_service_account_to_wire,
    project_key_to_wire,
    project_to_wire,
    service_account_to_wire,
)
from threadline.services import projects
from threadline.storage.uow import UnitOfWork


def _params(request: Request) -> ListParams:
    params = list_params(request)
    # The Admin API's lists default to ascending (creation order), unlike the Assistants API's.
    return params if "order" in request.query_params else replace(params, order="asc")


def _include_archived(request: Request) -> bool:
    raw = request.query_params.get("include_archived", "false")
    if raw not in {"true", "false"}:
        raise InvalidParameter(
            f"Invalid 'include_archived': expected a boolean, but got '{raw}' instead.",
            param="include_archived",
            code="invalid_type",
        )
    return raw == "true"


def _deleted(object_id: str, kind: str) -> Response:
    return json_response({"object": f"{kind}.deleted", "id": object_id, "deleted": True})


# --- projects --------------------------------------------------------------------------------------
async def list_projects(request: Request) -> Response:
    params, include_archived = _params(request), _include_archived(request)
    page = await context(request).db.transaction(
        lambda uow: projects.list_projects(uow, params, include_archived)
    )
    return json_response(list_envelope([project_to_wire(p) for p in page.items], page.has_more))


async def create_project(request: Request) -> Response:
    body = await parse_body(request, ProjectCreate)
    project = await context(request).db.transaction(lambda uow: projects.create_project(uow, body.name))
    return json_response(project_to_wire(project))


async def retrieve_project(request: Request) -> Response:
    project_id = request.path_params["project_id"]
    project = await context(request).db.transaction(lambda uow: projects.require_project(uow, project_id))
    return json_response(project_to_wire(project))


async def modify_project(request: Request) -> Response:
    project_id = request.path_params["project_id"]
    body = await parse_body(request, ProjectModify)
    name = body.name

    def modify(uow: UnitOfWork) -> Project:
        if name is None:  # nothing to change, but an archived project still refuses
            return projects.require_active_project(uow, project_id)
        return projects.rename_project(uow, project_id, name)

    project = await context(request).db.transaction(modify)
    return json_response(project_to_wire(project))


async def archive_project(request: Request) -> Response:
    project_id = request.path_params["project_id"]
    project = await context(request).db.transaction(lambda uow: projects.archive_project(uow, project_id))
    return json_response(project_to_wire(project))


# --- service accounts ------------------------------------------------------------------------------
async def list_service_accounts(request: Request) -> Response:
    project_id, params = request.path_params["project_id"], _params(request)
    page = await context(request).db.transaction(
        lambda uow: projects.list_service_accounts(uow, project_id, params)
    )
    return json_response(list_envelope([service_account_to_wire(a) for a in page.items], page.has_more))


async def create_service_account(request: Request) -> Response:
    project_id = request.path_params["project_id"]
    body = await parse_body(request, ServiceAccountCreate)
    db = context(request).db
    if body.create_service_account_only:
        account = await db.transaction(
            lambda uow: projects.create_service_account_only(uow, project_id, body.name)
        )
        return json_response(new_service_account_to_wire(account, None, None))
    account, new = await db.transaction(
        lambda uow: projects.create_service_account(uow, project_id, body.name)
    )
    return json_response(new_service_account_to_wire(account, new.key, new.secret))


async def retrieve_service_account(request: Request) -> Response:
    project_id, account_id = request.path_params["project_id"], request.path_params["service_account_id"]
    account = await context(request).db.transaction(
        lambda uow: projects.require_service_account(uow, project_id, account_id)
    )
    return json_response(service_account_to_wire(account))


async def delete_service_account(request: Request) -> Response:
    project_id, account_id = request.path_params["project_id"], request.path_params["service_account_id"]
    await context(request).db.transaction(
        lambda uow: projects.delete_service_account(uow, project_id, account_id)
    )
    return _deleted(account_id, "organization.project.service_account")


# --- project keys ----------------------------------------------------------------------------------
async def list_project_keys(request: Request) -> Response:
    project_id, params = request.path_params["project_id"], _params(request)
    page = await context(request).db.transaction(
        lambda uow: projects.list_project_keys(uow, project_id, params)
    )
    data = [project_key_to_wire(owned.key, owned.owner) for owned in page.items]
    return json_response(list_envelope(data, page.has_more))


async def retrieve_project_key(request: Request) -> Response:
    project_id, key_id = request.path_params["project_id"], request.path_params["api_key_id"]
    owned = await context(request).db.transaction(
        lambda uow: projects.require_project_key(uow, project_id, key_id)
    )
    return json_response(project_key_to_wire(owned.key, owned.owner))


async def delete_project_key(request: Request) -> Response:
    project_id, key_id = request.path_params["project_id"], request.path_params["api_key_id"]
    await context(request).db.transaction(lambda uow: projects.revoke_project_key(uow, project_id, key_id))
    return _deleted(key_id, "organization.project.api_key")


# --- admin keys ------------------------------------------------------------------------------------
async def list_admin_keys(request: Request) -> Response:
    params = _params(request)
    page = await context(request).db.transaction(lambda uow: projects.list_admin_keys(uow, params))
    return json_response(list_envelope([admin_key_to_wire(k) for k in page.items], page.has_more))


async def create_admin_key(request: Request) -> Response:
    body = await parse_body(request, AdminKeyCreate)
    if body.expires_in_seconds is not None:
        raise InvalidParameter(
            "'expires_in_seconds' is not supported: keys on this server do not expire; "
            "delete the key when it is no longer needed.",
            param="expires_in_seconds",
        )
    new = await context(request).db.transaction(lambda uow: projects.create_admin_key(uow, body.name))
    return json_response(admin_key_to_wire(new.key, new.secret))


async def retrieve_admin_key(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    key = await context(request).db.transaction(lambda uow: projects.require_admin_key(uow, key_id))
    return json_response(admin_key_to_wire(key))


async def delete_admin_key(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    await context(request).db.transaction(lambda uow: projects.revoke_admin_key(uow, key_id))
    return _deleted(key_id, "organization.admin_api_key")


_PROJECT = "/organization/projects/{project_id}"
routes = [
    Route("/organization/projects", list_projects, methods=["GET"]),
    Route("/organization/projects", create_project, methods=["POST"]),
    Route(_PROJECT, retrieve_project, methods=["GET"]),
    Route(_PROJECT, modify_project, methods=["POST"]),
    Route(f"{_PROJECT}/archive", archive_project, methods=["POST"]),
    Route(f"{_PROJECT}/service_accounts", list_service_accounts, methods=["GET"]),
    Route(f"{_PROJECT}/service_accounts", create_service_account, methods=["POST"]),
    Route(f"{_PROJECT}/service_accounts/{{service_account_id}}", retrieve_service_account, methods=["GET"]),
    Route(f"{_PROJECT}/service_accounts/{{service_account_id}}", delete_service_account, methods=["DELETE"]),
    Route(f"{_PROJECT}/api_keys", list_project_keys, methods=["GET"]),
    Route(f"{_PROJECT}/api_keys/{{api_key_id}}", retrieve_project_key, methods=["GET"]),
    Route(f"{_PROJECT}/api_keys/{{api_key_id}}", delete_project_key, methods=["DELETE"]),
    Route("/organization/admin_api_keys", list_admin_keys, methods=["GET"]),
    Route("/organization/admin_api_keys", create_admin_key, methods=["POST"]),
    Route("/organization/admin_api_keys/{key_id}", retrieve_admin_key, methods=["GET"]),
    Route("/organization/admin_api_keys/{key_id}", delete_admin_key, methods=["DELETE"]),
]
