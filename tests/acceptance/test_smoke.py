from openai import OpenAI


def test_thread_round_trip(client: OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}], metadata={"k": "v"})
    assert thread.id.startswith("thread_")
    fetched = client.beta.threads.retrieve(thread.id)
    assert fetched.metadata == {"k": "v"}
    msgs = client.beta.threads.messages.list(thread.id)
    assert [m.content[0].text.value for m in msgs.data] == ["hello"]  # type: ignore[union-attr]
