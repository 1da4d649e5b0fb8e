"""What an operator sees: the SQLite default starts with no optional dependency importable, prints
its start-up summary, logs each request, and answers health, metrics, /v1/models and --version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support import databases
from tests.support.server import ServerProcess

# Modules only the PostgreSQL extra installs: the embedded default must start without them.
OPTIONAL_MODULES = ("psycopg", "psycopg_binary", "psycopg_pool")


def _blocking_path(tmp: Path) -> str:
    """A directory that, first on PYTHONPATH, makes every optional module fail to import."""
    for name in OPTIONAL_MODULES:
        (tmp / name).mkdir(parents=True, exist_ok=True)
        (tmp / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked by the test')\n")
    return str(tmp)


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    block = _blocking_path(tmp_path_factory.mktemp("block"))
    env = {"PYTHONPATH": block, "THREADLINE_DATABASE_URL": "", "THREADLINE_API_KEYS": ""}
    server = ServerProcess(tmp_path_factory.mktemp("bare"), env=env).start()
    yield server
    server.stop()


def test_sqlite_default_starts_without_optional_modules_and_summarises(bare_server: ServerProcess) -> None:
    log = bare_server.log()
    assert "Traceback" not in log
    assert "starting" in log and "database:" in log and "sqlite" in log
    assert "migrations:" in log and "auth:" in log and "listen:" in log and "code_interp:" in log
    assert "no upstream model provider is configured" in log  # the warning for a surprise


def test_health_metrics_and_models(bare_server: ServerProcess) -> None:
    root = bare_server.base_url.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{root}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client = OpenAI(base_url=bare_server.base_url, api_key="k", _strict_response_validation=True)
    models = client.models.list()
    assert models.object == "list"
    client.beta.threads.create()
    metrics = httpx.get(f"{root}/metrics").text
    assert 'threadline_http_requests_total{method="POST",route="/v1/threads",status="200"}' in metrics
    assert "threadline.access: POST /v1/threads 200" in bare_server.log()


def test_postgres_url_without_psycopg_is_one_clear_line(tmp_path: Path) -> None:
    block = _blocking_path(tmp_path / "block")
    env = {
        "PYTHONPATH": block,
        "THREADLINE_DATA_DIR": str(tmp_path / "data"),
        "THREADLINE_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "threadline[postgres]" in lines[0]


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "--version"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.startswith("threadline ")


def _serve_fails(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "serve", "--port", "0", *args],
        env={**base, "THREADLINE_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    return done


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_startup_errors_are_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[providers.local\nbase_url = ")
    assert "broken.toml" in _one_line(_serve_fails(tmp_path, {"THREADLINE_MODELS_FILE": str(broken)}))

    missing_key = tmp_path / "models.toml"
    missing_key.write_text(
        '[providers.hosted]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "THREADLINE_TEST_UNSET_KEY"\n'
    )
    line = _one_line(_serve_fails(tmp_path, {"THREADLINE_MODELS_FILE": str(missing_key)}))
    assert "THREADLINE_TEST_UNSET_KEY" in line and "not set" in line

    # --log-level debug is where the traceback goes.
    debug = _serve_fails(tmp_path, {"THREADLINE_MODELS_FILE": str(broken)}, "--log-level", "debug")
    assert "Traceback" in debug.stderr


@pytest.mark.skipif(databases.postgres_unavailable_reason() is not None, reason="needs PostgreSQL")
def test_embeddings_without_a_vector_index_is_one_line(tmp_path: Path) -> None:
    if databases.pgvector_unavailable_reason() is None:
        pytest.skip("this PostgreSQL has pgvector: embeddings have their index")
    url = databases.create_database()
    try:
        env = {
            "THREADLINE_DATABASE_URL": url,
            "THREADLINE_EMBEDDINGS_BASE_URL": "http://127.0.0.1:9/v1",
            "THREADLINE_EMBEDDINGS_MODEL": "e",
        }
        assert "pgvector" in _one_line(_serve_fails(tmp_path, env))
    finally:
        databases.drop_database(url)


def test_sqlite_with_several_workers_warns(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"THREADLINE_DATABASE_URL": ""}, args=["--workers", "2"]).start()
    try:
        assert "serve --workers 2 on SQLite" in server.log()
    finally:
        server.stop()


@pytest.mark.skipif(databases.postgres_unavailable_reason() is not None, reason="needs PostgreSQL")
def test_no_executor_warns_about_runs_nobody_claims(tmp_path: Path) -> None:
    url = databases.create_database()
    env = {"THREADLINE_DATABASE_URL": url, "THREADLINE_UNCLAIMED_RUN_WARNING_S": "1"}
    server = ServerProcess(tmp_path, env, args=["--no-executor"]).start()
    try:
        client = OpenAI(
            base_url=server.base_url, api_key="k", max_retries=0, _strict_response_validation=True
        )
        run = client.beta.threads.create_and_run(assistant_id=client.beta.assistants.create(model="m").id)
        deadline = time.monotonic() + 10
        while "no worker has claimed them" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        assert run.id in server.log()
    finally:
        server.stop()
        databases.drop_database(url)
