"""Shared fixtures: the real server (on SQLite and on PostgreSQL) and the official SDK as client.

Every acceptance test talks HTTP to a `threadline serve` subprocess through `openai.OpenAI` with
strict response validation, so a field the SDK's models require but we omit fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.support import databases
from tests.support import server as servers
from tests.support.fake_model import FakeModelServer
from tests.support.server import ServerProcess

BACKENDS = ["sqlite", "postgres"]


def _backend_lines() -> list[str]:
    reason = databases.postgres_unavailable_reason()
    lines = ["postgres: " + ("available" if reason is None else f"SKIPPED ({reason})")]
    if reason is None:
        vectors = databases.pgvector_unavailable_reason()
        lines.append("pgvector: " + ("available" if vectors is None else f"vector tests SKIPPED ({vectors})"))
    return lines


def pytest_report_header() -> list[str]:
    return _backend_lines()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # The header is hidden under -q (as scripts/test runs): say it again at the end, where it shows.
    for line in _backend_lines():
        terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report ends with the tail of each running server's log: on a CI machine
    that is gone afterwards, a 500's traceback is only in there."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for running in sorted(servers.STARTED, key=lambda s: s.port):
            if running.proc is not None:
                report.sections.append((f"server log (port {running.port}, last lines)", running.log_tail()))


@pytest.fixture(autouse=True)
def no_server_answered_500() -> Iterator[None]:
    """Bad input gets a 4xx, never a 500: a test during which any server answered a 500 fails,
    whatever the test itself asserted (the SDK's retries or a ``pytest.raises(APIError)`` would
    otherwise hide it). Autouse fixtures are set up first, so this runs after the test's own
    servers have stopped."""
    yield
    found: list[str] = []
    for started in list(servers.STARTED):
        found += [f"port {started.port}: {line}" for line in started.unhandled_errors()]
        if started.proc is None:
            servers.STARTED.discard(started)
    if found:
        pytest.fail("a server answered 500:\n" + "\n".join(found), pytrace=False)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        reason = databases.postgres_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
    backend_name: str = request.param
    return backend_name


@pytest.fixture(scope="session")
def fake_model_server() -> Iterator[FakeModelServer]:
    """The one scripted model server of the session; every server under test points at it."""
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture()
def fake(fake_model_server: FakeModelServer) -> Iterator[FakeModelServer]:
    """The shared fake, emptied before each test (tests run one at a time)."""
    fake_model_server.reset()
    yield fake_model_server
    fake_model_server.reset()


def server_env(backend: str, upstream_base_url: str | None = None) -> tuple[dict[str, str], str | None]:
    """Env for a server on ``backend``; also the PostgreSQL URL to drop afterwards."""
    env: dict[str, str] = {}
    if upstream_base_url is not None:
        env["THREADLINE_UPSTREAM_BASE_URL"] = upstream_base_url
        # Failures should fail tests fast: one retry with the default backoff.
        env["THREADLINE_UPSTREAM_MAX_RETRIES"] = "1"
    if backend == "postgres":
        url = databases.create_database()
        env["THREADLINE_DATABASE_URL"] = url
        return env, url
    return env, None


@pytest.fixture(scope="session")
def server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[ServerProcess]:
    env, pg_url = server_env(backend, fake_model_server.base_url)
    proc = ServerProcess(tmp_path_factory.mktemp(f"server-{backend}"), env).start()
    try:
        yield proc
    finally:
        proc.stop()
        if pg_url:
            databases.drop_database(pg_url)


def make_client(base_url: str, api_key: str = "test-key") -> OpenAI:
    return OpenAI(base_url=base_url, api_key=api_key, max_retries=0, _strict_response_validation=True)


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[OpenAI]:
    with make_client(server.base_url) as sdk:
        yield sdk


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
