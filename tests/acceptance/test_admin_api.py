"""The Admin API (/v1/organization) as an operator drives it over HTTP: projects, service accounts,
project keys and admin keys with OpenAI's exact shapes; keys made through it work at once on the
Assistants API and only for their project; deleting a key, deleting its service account or archiving
its project stops it within a second; only admin keys reach these routes.

httpx, not the SDK: the ``openai`` package has no admin client. The first admin key comes from the
CLI, as it would on a fresh deployment."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.acceptance.test_projects import Deployment
from tests.conftest import make_client
from tests.support.cli import cli
from tests.support.fake_model import FakeModelServer
from tests.support.server import ServerProcess

ANY_INT = object()


@pytest.fixture()
def deployment(backend: str, tmp_path: Path, fake: FakeModelServer) -> Iterator[Deployment]:
    made = Deployment(backend, tmp_path, fake, {})
    try:
        yield made
    finally:
        made.close()


class Admin:
    """HTTP calls to one server under one bearer key (one connection each: nothing to close);
    answers as (status, JSON body)."""

    def __init__(self, server: ServerProcess, key: str | None) -> None:
        self.base_url = server.base_url
        self.key = key
        self.headers = {} if key is None else {"Authorization": f"Bearer {key}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        answer = httpx.request(method, self.base_url + path, headers=self.headers, timeout=30, **kwargs)
        return answer.status_code, answer.json()

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self._call("POST", path, json={} if body is None else body)

    def delete(self, path: str) -> tuple[int, Any]:
        return self._call("DELETE", path)

    def ok(self, method: str, path: str, *args: Any, **params: Any) -> Any:
        status, body = getattr(self, method)(path, *args, **params)
        assert status == 200, body
        return body


def _eventually(check: Callable[[], bool], within_s: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def _status(server: ServerProcess, key: str, path: str = "/threads") -> int:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    return httpx.post(f"{server.base_url}{path}", json={}, headers=headers).status_code


def _matches(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Exactly these keys; ANY_INT stands for any integer timestamp."""
    assert set(actual) == set(expected), (sorted(actual), sorted(expected))
    for name, want in expected.items():
        if want is ANY_INT:
            assert isinstance(actual[name], int) and actual[name] > 1_700_000_000, (name, actual[name])
        else:
            assert actual[name] == want, (name, actual[name], want)


def _admin(deployment: Deployment, server: ServerProcess) -> Admin:
    key = cli(deployment.env, "admin", "create-key")[-1]
    assert key.startswith("sk-admin-")
    admin = Admin(server, key)
    _eventually(lambda: admin.get("/organization/projects")[0] == 200, within_s=1.5)
    return admin


def _project_wire(project_id: str, name: str, archived: bool = False) -> dict[str, Any]:
    return {
        "id": project_id,
        "object": "organization.project",
        "name": name,
        "created_at": ANY_INT,
        "archived_at": ANY_INT if archived else None,
        "status": "archived" if archived else "active",
        "external_key_id": None,
    }


def test_projects_are_created_listed_renamed_and_archived(deployment: Deployment) -> None:
    admin = _admin(deployment, deployment.start())
    made = [admin.ok("post", "/organization/projects", {"name": f"team-{n}"}) for n in range(3)]
    for n, project in enumerate(made):
        _matches(project, _project_wire(project["id"], f"team-{n}"))
        assert project["id"].startswith("proj_")
    first = made[0]["id"]
    assert admin.ok("get", f"/organization/projects/{first}") == made[0]

    # Oldest first, two at a time, following ``after``. The default project (made by the
    # migrations) is listed too; its fixed id sorts wherever it sorts, so it is left out here.
    pages = [admin.ok("get", "/organization/projects", limit=2)]
    while pages[-1]["has_more"]:
        pages.append(admin.ok("get", "/organization/projects", limit=2, after=pages[-1]["last_id"]))
    assert len(pages) == 2
    for page in pages:
        assert page["object"] == "list" and 1 <= len(page["data"]) <= 2
        assert (page["first_id"], page["last_id"]) == (page["data"][0]["id"], page["data"][-1]["id"])
    listed = [p["id"] for page in pages for p in page["data"]]
    assert [i for i in listed if i != "proj_default"] == [p["id"] for p in made]
    assert "proj_default" in listed

    renamed = admin.ok("post", f"/organization/projects/{first}", {"name": "renamed"})
    _matches(renamed, _project_wire(first, "renamed"))
    archived = admin.ok("post", f"/organization/projects/{first}/archive")
    _matches(archived, _project_wire(first, "renamed", archived=True))
    assert archived["archived_at"] >= archived["created_at"]

    active = admin.ok("get", "/organization/projects")
    assert first not in [p["id"] for p in active["data"]]
    every = admin.ok("get", "/organization/projects", include_archived="true")
    assert first in [p["id"] for p in every["data"]]

    # An archived project is still there, but frozen: 400, not 404.
    for path, body in [
        (f"/organization/projects/{first}", {"name": "again"}),
        (f"/organization/projects/{first}/service_accounts", {"name": "bot"}),
    ]:
        status, error = admin.post(path, body)
        assert status == 400, error
        assert error["error"]["type"] == "invalid_request_error"
        assert "archived" in error["error"]["message"]

    status, error = admin.get("/organization/projects/proj_missing")
    assert status == 404 and error["error"]["message"] == "No project found with id 'proj_missing'."
    assert admin.post("/organization/projects/proj_missing/archive")[0] == 404
    assert admin.get("/organization/projects", include_archived="maybe")[0] == 400
    status, error = admin.post("/organization/projects", {})
    assert status == 400 and error["error"]["param"] == "name"
    assert admin.post("/organization/projects", {"name": "x", "residency": "EU"})[0] == 400


def test_service_account_keys_work_for_their_project_only_until_deleted(deployment: Deployment) -> None:
    server = deployment.start()
    admin = _admin(deployment, server)
    project = admin.ok("post", "/organization/projects", {"name": "team-a"})["id"]
    other = admin.ok("post", "/organization/projects", {"name": "team-b"})["id"]
    base = f"/organization/projects/{project}"

    made = admin.ok("post", f"{base}/service_accounts", {"name": "ci"})
    key = made["api_key"]
    _matches(
        made,
        {
            "object": "organization.project.service_account",
            "id": made["id"],
            "name": "ci",
            "role": "member",
            "created_at": ANY_INT,
            "api_key": key,
        },
    )
    _matches(
        key,
        {
            "object": "organization.project.service_account.api_key",
            "value": key["value"],
            "name": "Secret Key",
            "created_at": ANY_INT,
            "id": key["id"],
        },
    )
    assert made["id"].startswith("svc_acct_") and key["id"].startswith("key_")
    assert key["value"].startswith("sk-proj-")
    other_key = admin.ok("post", f"/organization/projects/{other}/service_accounts", {"name": "b"})["api_key"]

    # The key works at once (new keys are not cached as unknown) and sees only its project.
    with (
        make_client(server.base_url, key["value"]) as a,
        make_client(server.base_url, other_key["value"]) as b,
    ):
        thread = a.beta.threads.create(metadata={"team": "a"})
        assert a.beta.threads.retrieve(thread.id).id == thread.id
        with pytest.raises(openai.NotFoundError):
            b.beta.threads.retrieve(thread.id)

    account_wire = {k: v for k, v in made.items() if k != "api_key"}
    assert admin.ok("get", f"{base}/service_accounts/{made['id']}") == account_wire
    accounts = admin.ok("get", f"{base}/service_accounts")
    assert accounts == {
        "object": "list",
        "data": [account_wire],
        "first_id": made["id"],
        "last_id": made["id"],
        "has_more": False,
    }
    keys = admin.ok("get", f"{base}/api_keys")
    assert (keys["object"], keys["first_id"], keys["last_id"], keys["has_more"]) == (
        "list",
        key["id"],
        key["id"],
        False,
    )
    listed = keys["data"][0]
    assert listed["last_used_at"] is None or isinstance(listed["last_used_at"], int)
    _matches(
        listed,
        {
            "object": "organization.project.api_key",
            "redacted_value": listed["redacted_value"],
            "name": "Secret Key",
            "created_at": key["created_at"],
            "last_used_at": listed["last_used_at"],
            "id": key["id"],
            "owner_project_access": "active",
            "owner": {
                "type": "service_account",
                "service_account": {
                    "id": made["id"],
                    "name": "ci",
                    "created_at": made["created_at"],
                    "role": "member",
                },
            },
        },
    )
    redacted = listed["redacted_value"]
    assert redacted.startswith("sk-proj-") and "****" in redacted and key["value"] not in redacted
    assert redacted.endswith(key["value"][-4:])
    assert admin.ok("get", f"{base}/api_keys/{key['id']}") == listed
    # Another project's key is not this project's.
    assert admin.get(f"{base}/api_keys/{other_key['id']}")[0] == 404

    deleted = admin.ok("delete", f"{base}/api_keys/{key['id']}")
    assert deleted == {"object": "organization.project.api_key.deleted", "id": key["id"], "deleted": True}
    took = _eventually(lambda: _status(server, key["value"]) == 401, within_s=1.5)
    assert took <= 1.2
    status, error = admin.get(f"{base}/api_keys/{key['id']}")
    assert status == 404 and error["error"]["message"] == f"No API key found with id '{key['id']}'."
    assert admin.delete(f"{base}/api_keys/{key['id']}")[0] == 404

    # Deleting a service account revokes its keys.
    second = admin.ok("post", f"{base}/service_accounts", {"name": "deploy"})
    assert _status(server, second["api_key"]["value"]) == 200
    gone = admin.ok("delete", f"{base}/service_accounts/{second['id']}")
    assert gone == {
        "object": "organization.project.service_account.deleted",
        "id": second["id"],
        "deleted": True,
    }
    _eventually(lambda: _status(server, second["api_key"]["value"]) == 401, within_s=1.5)
    status, error = admin.get(f"{base}/service_accounts/{second['id']}")
    assert (
        status == 404 and error["error"]["message"] == f"No service account found with id '{second['id']}'."
    )
    assert admin.ok("get", f"{base}/api_keys")["data"] == []

    only = admin.ok("post", f"{base}/service_accounts", {"name": "bare", "create_service_account_only": True})
    assert only["api_key"] is None
    assert admin.get("/organization/projects/proj_missing/service_accounts")[0] == 404


def test_archiving_a_project_stops_its_keys(deployment: Deployment) -> None:
    server = deployment.start()
    admin = _admin(deployment, server)
    project = admin.ok("post", "/organization/projects", {"name": "short-lived"})["id"]
    base = f"/organization/projects/{project}"
    value = admin.ok("post", f"{base}/service_accounts", {"name": "ci"})["api_key"]["value"]
    assert _status(server, value) == 200
    admin.ok("post", f"{base}/archive")
    _eventually(lambda: _status(server, value) == 401, within_s=1.5)
    # Its records stay readable to the admin.
    assert len(admin.ok("get", f"{base}/api_keys")["data"]) == 1


def test_admin_keys_are_created_listed_and_deleted(deployment: Deployment) -> None:
    server = deployment.start()
    admin = _admin(deployment, server)
    existing = admin.ok("get", "/organization/admin_api_keys")["data"]
    assert len(existing) == 1

    made = admin.ok("post", "/organization/admin_api_keys", {"name": "rotation"})
    owner = {
        "type": "service_account",
        "object": "organization.service_account",
        "id": "svc_acct_threadline",
        "name": "threadline",
        "created_at": made["created_at"],
        "role": "owner",
    }
    wire = {
        "object": "organization.admin_api_key",
        "id": made["id"],
        "name": "rotation",
        "redacted_value": made["redacted_value"],
        "created_at": ANY_INT,
        "expires_at": None,
        "last_used_at": None,
        "owner": owner,
    }
    _matches(made, {**wire, "value": made["value"]})
    assert made["value"].startswith("sk-admin-") and made["redacted_value"].startswith("sk-admin-")
    assert made["value"] not in made["redacted_value"]

    second = Admin(server, made["value"])
    assert second.get("/organization/projects")[0] == 200
    fetched = admin.ok("get", f"/organization/admin_api_keys/{made['id']}")
    _matches(fetched, {**wire, "last_used_at": fetched["last_used_at"]})
    assert "value" not in fetched
    listed = admin.ok("get", "/organization/admin_api_keys")
    assert [k["id"] for k in listed["data"]] == [existing[0]["id"], made["id"]]
    assert listed["has_more"] is False

    deleted = admin.ok("delete", f"/organization/admin_api_keys/{made['id']}")
    assert deleted == {"object": "organization.admin_api_key.deleted", "id": made["id"], "deleted": True}
    _eventually(lambda: second.get("/organization/projects")[0] == 401, within_s=1.5)
    assert admin.get(f"/organization/admin_api_keys/{made['id']}")[0] == 404
    assert admin.delete("/organization/admin_api_keys/key_missing")[0] == 404

    status, error = admin.post("/organization/admin_api_keys", {"name": "x", "expires_in_seconds": 60})
    assert status == 400 and error["error"]["param"] == "expires_in_seconds"
    # A project key's id is not an admin key's.
    project = admin.ok("post", "/organization/projects", {"name": "p"})["id"]
    project_key = admin.ok("post", f"/organization/projects/{project}/service_accounts", {"name": "s"})
    assert admin.get(f"/organization/admin_api_keys/{project_key['api_key']['id']}")[0] == 404


def test_only_admin_keys_reach_the_admin_api(deployment: Deployment) -> None:
    server = deployment.start()
    # Development mode (no key anywhere) accepts anything elsewhere, but not on the Admin API.
    status, error = Admin(server, None).get("/organization/projects")
    assert status == 401 and "threadline admin create-key" in error["error"]["message"]
    assert Admin(server, "anything").get("/organization/projects")[0] == 401

    admin = _admin(deployment, server)
    project = admin.ok("post", "/organization/projects", {"name": "team"})["id"]
    value = admin.ok("post", f"/organization/projects/{project}/service_accounts", {"name": "ci"})["api_key"][
        "value"
    ]
    status, error = Admin(server, value).get("/organization/projects")
    assert status == 403 and error["error"]["type"] == "invalid_request_error"
    assert Admin(server, value).post("/organization/projects", {"name": "sneaky"})[0] == 403
    assert Admin(server, None).get("/organization/projects")[0] == 401
    # And an admin key is for the Admin API only.
    assert _status(server, str(admin.key)) == 403
