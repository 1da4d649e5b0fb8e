"""create_app honours Settings.executor: `serve --no-executor` and `threadline worker` split roles."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from threadline.app import create_app
from threadline.config import Settings


@pytest.mark.parametrize("executor", [True, False])
def test_executor_runs_only_when_enabled(tmp_path: Path, executor: bool) -> None:
    app = create_app(Settings(data_dir=tmp_path, executor=executor))
    with TestClient(app) as http:
        assert (app.state.runtime.executor is not None) is executor
        assert (app.state.runtime.ingestion is not None) is executor
        assert http.get("/v1/threads/thread_x", headers={"Authorization": "Bearer k"}).status_code == 404
