"""code_interpreter: model-written Python in the thread's sandboxed session (bubblewrap), with files
in, logs/images/files out, streaming, cancel, timeout, and the sandbox's walls.

The scripted model (``user_code``) runs the ```python blocks of the user's message and then answers
``Output: <tool output>``, so each test states its code in the user's text.
"""

from __future__ import annotations

import ast
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import CodeInterpreterToolParam

from tests.conftest import make_client, server_env
from tests.support import databases
from tests.support.fake_model import CODE_TOOL, FakeModelServer, Text, code_call, user_code
from tests.support.server import ServerProcess
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

TIMEOUT_S = 3
MODEL = "fake-model"
CI: list[CodeInterpreterToolParam] = [{"type": "code_interpreter"}]


@pytest.fixture(scope="module")
def ci_server(
    tmp_path_factory: pytest.TempPathFactory, fake_model_server: FakeModelServer
) -> Iterator[ServerProcess]:
    env, _ = server_env("sqlite", fake_model_server.base_url)
    env["THREADLINE_CODE_INTERPRETER_TIMEOUT_S"] = str(TIMEOUT_S)
    env["THREADLINE_CODE_INTERPRETER_MEMORY_MB"] = "768"
    env["THREADLINE_SECRET_FOR_SANDBOX_TEST"] = "hunter2"
    proc = ServerProcess(tmp_path_factory.mktemp("code-interpreter"), env).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def ci(ci_server: ServerProcess, fake: FakeModelServer) -> Iterator[OpenAI]:
    fake.default = user_code
    with make_client(ci_server.base_url) as sdk:
        yield sdk


def _code(text: str) -> str:
    return f"```python\n{text}\n```"


def _run(client: OpenAI, code: str, thread_id: str | None = None, **run: Any) -> tuple[Any, Any]:
    """A code_interpreter run of ``code`` (completed or not); (run, its code_interpreter call)."""
    assistant = client.beta.assistants.create(model=MODEL, tools=CI)
    if thread_id is None:
        thread_id = client.beta.threads.create().id
    client.beta.threads.messages.create(thread_id, role="user", content=_code(code))
    result = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id, **run)
    steps = client.beta.threads.runs.steps.list(result.id, thread_id=thread_id, order="asc")
    calls = [c for s in steps.data if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    return result, calls[0] if calls else None


def _logs(call: Any) -> str:
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def _answer(client: OpenAI, thread_id: str) -> Any:
    return client.beta.threads.messages.list(thread_id, order="desc").data[0]


def test_arithmetic_prints_logs_and_the_model_answers(ci: OpenAI, fake: FakeModelServer) -> None:
    run, call = _run(ci, "print(6 * 7)\n2 ** 10")
    assert run.status == "completed", run.last_error
    assert call.type == "code_interpreter"
    assert call.code_interpreter.input == "print(6 * 7)\n2 ** 10"
    assert [o.type for o in call.code_interpreter.outputs] == ["logs"]
    assert _logs(call) == "42\n1024\n"  # a last bare expression shows its value, as in a notebook
    assert _answer(ci, run.thread_id).content[0].text.value == "Output: 42\n1024\n"
    offered = fake.requests[0]["tools"]
    assert [t["function"]["name"] for t in offered] == [CODE_TOOL]
    assert "/mnt/data" in offered[0]["function"]["description"]
    tool_message = next(m for m in fake.requests[1]["messages"] if m["role"] == "tool")
    assert tool_message["content"] == "42\n1024\n"


def test_state_persists_across_runs_of_a_thread_not_across_threads(ci: OpenAI) -> None:
    first, _ = _run(ci, "secret = 1234\nimport math")
    assert first.status == "completed", first.last_error
    again, call = _run(ci, "print(secret + 1, math.pi > 3)", thread_id=first.thread_id)
    assert again.status == "completed" and _logs(call) == "1235 True\n"
    other, call = _run(ci, "print(secret)")
    assert other.status == "completed"  # an exception is output for the model, not a failed run
    assert "NameError: name 'secret' is not defined" in _logs(call)


def test_a_csv_attached_for_code_interpreter_is_read_from_mnt_data(ci: OpenAI, fake: FakeModelServer) -> None:
    csv = b"city,temp\nOslo,-3\nCairo,31\n"
    file = ci.files.create(file=("weather.csv", io.BytesIO(csv)), purpose="assistants")
    assistant = ci.beta.assistants.create(model=MODEL, tools=CI)
    code = "import pandas as pd\ndf = pd.read_csv('/mnt/data/weather.csv')\nprint(df['temp'].max())"
    thread = ci.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": _code(code),
                "attachments": [{"file_id": file.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    run = ci.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert _answer(ci, thread.id).content[0].text.value == "Output: 31\n"
    description = fake.requests[0]["tools"][0]["function"]["description"]
    assert f"/mnt/data/weather.csv ({file.id})" in description


def test_assistant_and_thread_tool_resources_files_are_copied(ci: OpenAI) -> None:
    a = ci.files.create(file=("a.txt", io.BytesIO(b"from the assistant")), purpose="assistants")
    t = ci.files.create(file=("t.txt", io.BytesIO(b"from the thread")), purpose="assistants")
    assistant = ci.beta.assistants.create(
        model=MODEL,
        tools=CI,
        tool_resources={"code_interpreter": {"file_ids": [a.id]}},  # type: ignore[list-item]
    )
    code = "print(open('a.txt').read(), '|', open('/mnt/data/t.txt').read())"
    thread = ci.beta.threads.create(
        messages=[{"role": "user", "content": _code(code)}],
        tool_resources={"code_interpreter": {"file_ids": [t.id]}},
    )
    run = ci.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert _answer(ci, thread.id).content[0].text.value == "Output: from the assistant | from the thread\n"


def test_a_plot_becomes_an_image_output_and_an_image_file_part(ci: OpenAI) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nprint('plotted')"
    run, call = _run(ci, code)
    assert run.status == "completed", run.last_error
    kinds = [o.type for o in call.code_interpreter.outputs]
    assert kinds == ["logs", "image"]
    file_id = call.code_interpreter.outputs[1].image.file_id
    message = _answer(ci, run.thread_id)
    assert [p.type for p in message.content] == ["text", "image_file"]
    assert message.content[1].image_file.file_id == file_id  # type: ignore[union-attr]
    assert ci.files.content(file_id).read().startswith(b"\x89PNG\r\n\x1a\n")
    assert ci.files.retrieve(file_id).purpose == "assistants_output"


def test_a_written_file_linked_by_the_model_gets_a_file_path_annotation(ci: OpenAI) -> None:
    assistant = ci.beta.assistants.create(model=MODEL, tools=CI)
    code = "with open('/mnt/data/report.csv', 'w') as f:\n    f.write('a,b\\n1,2\\n')\nprint('saved')"
    thread = ci.beta.threads.create(messages=[{"role": "user", "content": _code(code) + " link report.csv"}])
    run = ci.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    text = _answer(ci, thread.id).content[0].text
    assert text.value == "Output: saved\n Download [it](sandbox:/mnt/data/report.csv)."
    [annotation] = text.annotations
    assert annotation.type == "file_path"
    assert annotation.text == "sandbox:/mnt/data/report.csv"
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    assert ci.files.content(annotation.file_path.file_id).read() == b"a,b\n1,2\n"  # type: ignore[union-attr]
    assert ci.files.retrieve(annotation.file_path.file_id).purpose == "assistants_output"  # type: ignore[union-attr]


def test_an_exception_is_logged_and_the_run_continues(ci: OpenAI, fake: FakeModelServer) -> None:
    run, call = _run(ci, "def f():\n    return 1 / 0\nf()")
    assert run.status == "completed", run.last_error
    logs = _logs(call)
    assert "Traceback" in logs and "ZeroDivisionError: division by zero" in logs and "in f" in logs
    assert "kernel" not in logs  # the traceback starts at the model's code
    assert (
        "ZeroDivisionError" in next(m for m in fake.requests[1]["messages"] if m["role"] == "tool")["content"]
    )


class _Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []
        self.inputs: list[str] = []
        self.outputs: list[Any] = []
        self.done: list[Any] = []

    def on_tool_call_created(self, tool_call: Any) -> None:
        self.created.append(tool_call.type)

    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter is not None:
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            self.outputs += delta.code_interpreter.outputs or []

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.done.append(tool_call)


def test_streamed_input_and_output_deltas_reach_the_sdk_handlers(ci: OpenAI, fake: FakeModelServer) -> None:
    code = 'total = sum(range(10))\nprint(f"total={total}")'
    fake.script(code_call(code))
    assistant = ci.beta.assistants.create(model=MODEL, tools=CI)
    thread = ci.beta.threads.create(messages=[{"role": "user", "content": "add up"}])
    handler = _Recorder()
    with ci.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as s:
        s.until_done()
    assert handler.get_final_run().status == "completed"
    assert handler.created == ["code_interpreter"]
    assert len(handler.inputs) >= 2 and "".join(handler.inputs) == code  # fragments, as the model wrote
    assert [(o.index, o.type, o.logs) for o in handler.outputs] == [(0, "logs", "total=45\n")]
    # One call: the SDK never clears its current tool call, so it repeats on_tool_call_done for it at
    # each later step and run completion (the message step's, the run's) — the same call each time.
    assert len({done.id for done in handler.done}) == 1 and len(handler.done) >= 1
    done = handler.done[0]
    assert done.code_interpreter.input == code and done.code_interpreter.outputs[0].logs == "total=45\n"


def test_cancel_interrupts_running_code_within_a_second(ci: OpenAI, ci_server: ServerProcess) -> None:
    assistant = ci.beta.assistants.create(model=MODEL, tools=CI)
    thread = ci.beta.threads.create(
        messages=[{"role": "user", "content": _code("import time\ntime.sleep(2.5)")}]
    )
    run = ci.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the code is running
        steps = ci.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
        if any(s.type == "tool_calls" for s in steps.data):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    ci.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    while ci.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status != "cancelled":
        assert time.monotonic() - cancelled_at < 1.5
        time.sleep(0.05)
    assert time.monotonic() - cancelled_at < 1.0
    after, call = _run(ci, "print('still here')", thread_id=thread.id)
    assert after.status == "completed" and _logs(call) == "still here\n"


def test_timeout_stops_the_code_and_the_session_goes_on(ci: OpenAI) -> None:
    first, _ = _run(ci, "kept = 'yes'")
    started = time.monotonic()
    run, call = _run(ci, "while True:\n    pass", thread_id=first.thread_id)
    assert time.monotonic() - started < TIMEOUT_S + 5
    assert run.status == "completed"
    assert f"exceeded the {TIMEOUT_S} s time limit" in _logs(call)
    _again, call = _run(ci, "print(kept)", thread_id=first.thread_id)
    assert _logs(call) == "yes\n"  # interrupted, not killed: the state survived


SANDBOX_PROBE = """
import os, socket
print("env", sorted(k for k in os.environ if "THREADLINE" in k or "SECRET" in k))
print("data dir visible", os.path.exists({data_dir!r}), os.path.exists({db!r}))
print("root", sorted(os.listdir("/")))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("network open")
except OSError as exc:
    print("network blocked", type(exc).__name__)
try:
    open("/usr/evil", "w")
except OSError as exc:
    print("usr read-only", type(exc).__name__)
"""


def test_the_sandbox_has_no_network_no_server_data_no_environment(
    ci: OpenAI, ci_server: ServerProcess
) -> None:
    db = str(ci_server.data_dir / "threadline.db")
    code = SANDBOX_PROBE.format(data_dir=str(ci_server.data_dir), db=db, port=ci_server.port)
    run, call = _run(ci, code)
    assert run.status == "completed"
    logs = _logs(call)
    assert "env []" in logs
    assert "data dir visible False False" in logs
    assert "network blocked" in logs
    assert "usr read-only OSError" in logs
    # Only the sandbox's own top-level directories: no host path (/root, /home, /work, ...).
    [listing] = [line for line in logs.splitlines() if line.startswith("root ")]
    allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "mnt", "opt", "proc", "sbin", "tmp"}
    allowed.add("usr")
    assert set(ast.literal_eval(listing.removeprefix("root "))) <= allowed, listing


def test_fork_bomb_and_memory_hog_fail_inside_while_the_server_stays_healthy(
    ci: OpenAI, ci_server: ServerProcess
) -> None:
    forks = (
        "import os\nn = 0\ntry:\n    for _ in range(1000):\n        if os.fork() == 0:\n"
        "            import time; time.sleep(3); os._exit(0)\n        n += 1\n"
        "except OSError as exc:\n    print('fork refused after', n, type(exc).__name__)"
    )
    run, call = _run(ci, forks)
    assert "fork refused after" in _logs(call)
    assert int(_logs(call).split()[3]) < 64
    run, call = _run(ci, "import os\nwhile True:\n    os.fork()")
    assert run.status == "completed"
    # The process limit refuses the bomb's forks (EAGAIN), or the bomb outlives the time limit.
    bomb = _logs(call)
    assert "BlockingIOError" in bomb or "time limit" in bomb or "ended unexpectedly" in bomb, bomb
    # The bomb's processes are gone: the session's pid namespace holds only bwrap and the kernel.
    count = "import os, time\ntime.sleep(1)\nprint(sum(p.isdigit() for p in os.listdir('/proc')))"
    run, call = _run(ci, count, thread_id=run.thread_id)
    assert int(_logs(call)) <= 3, _logs(call)
    run, call = _run(ci, "hog = bytearray(2 * 1024 ** 3)")
    assert "MemoryError" in _logs(call)
    run, call = _run(ci, "print('fine')", thread_id=run.thread_id)
    assert _logs(call) == "fine\n"
    assert (
        httpx.get(
            f"{ci_server.base_url}/assistants?limit=1", headers={"authorization": "Bearer k"}
        ).status_code
        == 200
    )


def test_tool_choice_code_interpreter_forces_the_tool(ci: OpenAI, fake: FakeModelServer) -> None:
    run, _ = _run(ci, "print(1)", tool_choice={"type": "code_interpreter"})
    assert run.status == "completed"
    assert fake.requests[0]["tool_choice"] == {"type": "function", "function": {"name": CODE_TOOL}}


def test_deleting_the_thread_ends_its_session_and_removes_its_files(
    ci: OpenAI, ci_server: ServerProcess
) -> None:
    run, _ = _run(ci, "open('/mnt/data/x.txt', 'w').write('x')")
    [session_dir] = list((ci_server.data_dir / "code-interpreter").glob(f"*/{run.thread_id}"))
    assert (session_dir / "data" / "x.txt").read_text() == "x"
    ci.beta.threads.delete(run.thread_id)
    deadline = time.monotonic() + 10
    while session_dir.exists():
        assert time.monotonic() < deadline, "the session directory outlived its thread"
        time.sleep(0.1)


def test_without_a_sandbox_the_run_fails_saying_how_to_enable_it(
    tmp_path: Path, fake: FakeModelServer
) -> None:
    env, _ = server_env("sqlite", fake.base_url)
    env["THREADLINE_CODE_INTERPRETER_BACKEND"] = "none"
    proc = ServerProcess(tmp_path, env).start()
    try:
        with make_client(proc.base_url) as client:
            fake.default = Text("never")
            run, call = _run(client, "print(1)")
    finally:
        proc.stop()
    assert run.status == "failed" and call is None
    assert run.last_error is not None and "docs/code-interpreter.md" in run.last_error.message
    assert fake.requests == []  # the model was never offered a tool that cannot run
    assert "code_interp: off (THREADLINE_CODE_INTERPRETER_BACKEND=none)" in proc.log()


def test_the_start_up_summary_says_what_the_sandbox_runs(ci_server: ServerProcess, tmp_path: Path) -> None:
    assert "code_interp: bubblewrap sandbox" in ci_server.log()
    assert "(numpy, pandas, matplotlib)" in ci_server.log()
    # A Python without the data stack: the summary says so and a warning says how to fix it.
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {"THREADLINE_CODE_INTERPRETER_PYTHON": str(bare / "bin" / "python")}
    proc = ServerProcess(tmp_path / "server", env).start()
    proc.stop()
    assert "(without numpy, pandas, matplotlib)" in proc.log()
    assert "install the code-interpreter extra" in proc.log()


def test_sessions_run_in_the_worker_that_executes_the_run(tmp_path: Path, fake: FakeModelServer) -> None:
    """PostgreSQL, ``serve --no-executor`` and one ``threadline worker`` sharing a data directory:
    the code runs in a session of the worker process, state persists across the thread's runs,
    and a figure the worker stored downloads through the API."""
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(f"separate workers need PostgreSQL: {reason}")
    url = databases.create_database()
    env = {
        "THREADLINE_DATABASE_URL": url,
        "THREADLINE_UPSTREAM_BASE_URL": fake.base_url,
        "THREADLINE_UPSTREAM_MAX_RETRIES": "0",
        "THREADLINE_RUN_POLL_S": "0.5",
    }
    data_dir = tmp_path / "data"
    api = ServerProcess(data_dir, env, ["--no-executor"])
    worker = WorkerProcess(data_dir, env)
    try:
        api.start(timeout_s=60)
        worker.start(timeout_s=60)
        fake.default = user_code
        with make_client(api.base_url) as client:
            first, _ = _run(client, "kept = 6 * 7")
            plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nprint(kept)"
            run, call = _run(client, plot, thread_id=first.thread_id)
            assert run.status == "completed", run.last_error
            assert _logs(call) == "42\n"
            [image] = [o for o in call.code_interpreter.outputs if o.type == "image"]
            assert client.files.content(image.image.file_id).read().startswith(b"\x89PNG")
        assert worker.proc is not None
        session_dir = data_dir / "code-interpreter" / str(worker.proc.pid) / run.thread_id
        assert session_dir.is_dir(), list((data_dir / "code-interpreter").glob("*/*"))
    finally:
        worker.stop()
        api.stop()
        databases.drop_database(url)
