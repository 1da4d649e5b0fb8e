"""kill -9 mid-stream: the incomplete assistant message keeps what clients already saw, within the
checkpoint interval (1 s)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.conftest import make_client
from tests.support.fake_model import FakeModelServer, Text
from tests.support.server import ServerProcess

WORDS = [f"w{i} " for i in range(400)]


def test_kill_9_mid_stream_keeps_the_streamed_text(tmp_path: Path, fake: FakeModelServer) -> None:
    # 400 words, one every 10 ms: ~4 s of streaming; the kill comes after ~2.5 s.
    fake.script(Text("".join(WORDS), chunks=WORDS, token_delay_s=0.01))
    env = {"THREADLINE_UPSTREAM_BASE_URL": fake.base_url}
    server = ServerProcess(tmp_path, env).start()
    seen: list[str] = []
    with make_client(server.base_url) as sdk:
        assistant = sdk.beta.assistants.create(model="m")
        thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "talk"}])

        def consume() -> None:
            try:
                with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                    for text in stream.text_deltas:
                        seen.append(text)
            except Exception:  # the server dies under the stream
                pass

        reader = threading.Thread(target=consume)
        reader.start()
        deadline = time.monotonic() + 20
        # Deltas are coalesced (several words an event): count words, not events.
        while len("".join(seen).split()) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len("".join(seen).split()) >= 200, seen
        server.kill()
        reader.join(10)
        seen_before = "".join(seen)
    server.start()
    try:
        with make_client(server.base_url) as sdk:
            deadline = time.monotonic() + 10
            while True:
                run = sdk.beta.threads.runs.list(thread.id).data[0]
                if run.status == "failed" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert run.status == "failed"
            message = sdk.beta.threads.messages.list(thread.id, order="desc").data[0]
            assert message.role == "assistant" and message.status == "incomplete"
            kept = message.content[0].text.value  # type: ignore[union-attr]
            # Both are prefixes of the answer; the checkpoint may be a few words ahead of this client
            # (words in flight to it, or held by the 20 ms coalescing, when the process died).
            answer = "".join(WORDS)
            assert answer.startswith(kept) and answer.startswith(seen_before)
            # At 100 words a second, one second of checkpoint lag is ~100 words; allow 150.
            assert len(kept.split()) >= len(seen_before.split()) - 150, (len(kept), len(seen_before))
    finally:
        server.stop()
