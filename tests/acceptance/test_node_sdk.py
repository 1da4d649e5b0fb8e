"""The official openai npm package against the server: tests/node/sdk.test.mjs, run with Node's own
test runner once per pinned SDK major (package.json: v4, and the newest major with beta.threads).

The scripted model answers by the conversation, so the Node side needs no scripting: "weather"
asks for get_weather (then repeats the tool output), "zebra" calls file_search (then cites the first
result, the marker split across deltas), "fail" gets a provider error, anything else a greeting.
Skipped, with the reason in the header line, where Node or the npm packages are missing
(``npm ci --prefix tests/node`` installs them; scripts/test does when npm is there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_model import Call, Error, FakeModelServer, Reply, Text, ToolCalls, code_call
from tests.support.server import ServerProcess

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
PACKAGES = {4: "openai-v4", 7: "openai-v7"}
NODE_TIMEOUT_S = 120


def node_unavailable_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    missing = [name for name in PACKAGES.values() if not (NODE_DIR / "node_modules" / name).is_dir()]
    if missing:
        return f"npm packages missing ({', '.join(missing)}): run npm ci --prefix tests/node"
    return None


def _conversation_reply(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    last = messages[-1]
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    user = user if isinstance(user, str) else str(user)
    if last["role"] == "tool":
        found = re.search(r"【\d+†[^】]+】", last["content"] or "")
        if found:
            marker = found.group(0)
            return Text("", chunks=["Zebras ", "negotiate ", marker[:2], marker[2:-3], marker[-3:], "."])
        return Text(f"It is {last['content']}")
    if "fail" in user:
        return Error(400, "scripted failure")
    if "weather" in user:
        return ToolCalls([Call("get_weather", '{"city": "Oslo"}')])
    if "zebra" in user:
        return ToolCalls([Call("file_search", '{"query": "obsidian zebra tariffs"}')])
    if "compute" in user:
        return code_call("print(6 * 7)")
    return Text("Hello from Threadline")


@pytest.mark.parametrize("major", sorted(PACKAGES))
def test_node_sdk(server: ServerProcess, fake: FakeModelServer, major: int) -> None:
    reason = node_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    fake.default = _conversation_reply
    env = {
        **os.environ,
        "THREADLINE_BASE_URL": server.base_url,
        "OPENAI_PACKAGE": PACKAGES[major],
        "OPENAI_MAJOR": str(major),
        "NODE_NO_WARNINGS": "1",
    }
    result = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "sdk.test.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
