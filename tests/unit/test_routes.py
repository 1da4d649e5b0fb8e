"""The shape-indexed router answers exactly as Starlette's own scan would: same route, same 405,
404 and trailing-slash redirect, and the order of routes of one shape still decides."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route, Router
from starlette.testclient import TestClient

from threadline.api.routes import ShapeIndexedRouter, v1_routes


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.scope['route'].path} {dict(request.path_params)}")


ROUTES: list[BaseRoute] = [
    Route("/healthz", _echo, methods=["GET"]),
    Route("/v1/threads/runs", _echo, methods=["POST"]),
    Route("/v1/threads/{thread_id}", _echo, methods=["GET", "POST"]),
    Route("/v1/threads/{thread_id}/messages", _echo, methods=["GET", "POST"]),
    Route("/v1/files/{file_id}/content", _echo, methods=["GET"]),
]
REQUESTS = [
    ("POST", "/v1/threads/runs"),
    ("GET", "/v1/threads/runs"),
    ("GET", "/v1/threads/t1"),
    ("POST", "/v1/threads/t1/messages"),
    ("DELETE", "/v1/threads/t1"),
    ("GET", "/v1/files/f1/content"),
    ("GET", "/v1/nope"),
    ("GET", "/v1/threads/t1/"),
    ("GET", "/v1/threads/t1/messages/extra"),
    ("GET", "/healthz"),
    ("GET", "/v1"),
]


def _answers(router: Router) -> list[tuple[int, str, str | None]]:
    app = Starlette()
    app.router = router  # as the server's app does (app.py)
    client = TestClient(app)
    answers = []
    for method, path in REQUESTS:
        response = client.request(method, path, follow_redirects=False)
        answers.append((response.status_code, response.text, response.headers.get("location")))
    return answers


def test_same_answers_as_starlettes_router() -> None:
    ours = _answers(ShapeIndexedRouter(ROUTES))
    assert ours == _answers(Router(routes=ROUTES))
    assert ours[0][1] == "/v1/threads/runs {}", "the earlier route of one shape wins"
    assert ours[2][1] == "/v1/threads/{thread_id} {'thread_id': 't1'}"
    assert [status for status, _, _ in ours][4:] == [405, 200, 404, 307, 404, 200, 404]


def test_every_api_route_is_indexed() -> None:
    routes = v1_routes()
    assert routes and all(isinstance(route, Route) and route.path.startswith("/v1/") for route in routes)
    ShapeIndexedRouter(routes)  # every one starts with literal segments
    with pytest.raises(ValueError, match="literal segments"):
        ShapeIndexedRouter([Route("/{anything}", _echo)])
    with pytest.raises(ValueError, match="literal segments"):
        ShapeIndexedRouter([Route("/v1/{anything}", _echo)])
