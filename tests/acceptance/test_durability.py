"""Acknowledged writes survive kill -9 of the server; the server restarts on the same data."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_client
from tests.support.server import ServerProcess


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    with make_client(server.base_url) as sdk:
        thread = sdk.beta.threads.create(metadata={"durable": "yes"})
        ids = [
            sdk.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(50)
        ]
        assistant = sdk.beta.assistants.create(model="m", name="kept")
    server.kill()

    restarted = ServerProcess(tmp_path).start()
    try:
        with make_client(restarted.base_url) as sdk:
            assert sdk.beta.threads.retrieve(thread.id).metadata == {"durable": "yes"}
            listed = [m.id for m in sdk.beta.threads.messages.list(thread.id, order="asc", limit=100)]
            assert listed == ids
            assert sdk.beta.assistants.retrieve(assistant.id).name == "kept"
    finally:
        restarted.stop()
