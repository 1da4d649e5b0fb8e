"""Thread -> chat-completions messages: the effective instructions as the system message, the thread's
messages oldest first, then this run's own earlier output (assistant text, tool calls and their
results) in chat-completions form. Truncation (``last_messages`` or a prompt-token budget) applies to
the thread's history only; the run's own tool exchange is always kept, or the model could not use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from threadline.domain.run_states import StepStatus
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Message
from threadline.executor.tools import ToolRegistry
from threadline.retrieval.tokens import count_tokens

# Chat formats add a few tokens of framing per message (role markers); OpenAI's cookbook uses 3-4.
MESSAGE_OVERHEAD_TOKENS = 4
ChatMessage = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[ChatMessage]
    tokens: int  # our estimate, used for budgets when the provider reports no usage


def _text_of(message: Message) -> str:
    return "".join(part["text"]["value"] for part in message.content if part.get("type") == "text")


def _user_content(message: Message, images: Mapping[str, str]) -> str | list[dict[str, Any]]:
    """Text-only content stays a plain string (every provider accepts that); images make it a list.
    ``images`` maps uploaded image file ids to ``data:`` URLs (chat-completions has no file ids)."""
    if all(part.get("type") == "text" for part in message.content):
        return _text_of(message)
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_url":
            parts.append({"type": "image_url", "image_url": dict(part["image_url"])})
        elif kind == "image_file":
            ref = part["image_file"]
            url = images.get(ref["file_id"])
            if url is not None:
                image = {"url": url, "detail": ref.get("detail", "auto")}
                parts.append({"type": "image_url", "image_url": image})
            else:
                # The file's bytes are gone (deleted since): tell the model rather than drop it silently.
                missing = f"[image file {ref['file_id']} is no longer available]"
                parts.append({"type": "text", "text": missing})
    return parts


def _chat_message(message: Message, images: Mapping[str, str]) -> ChatMessage:
    if message.role == "assistant":
        return {"role": "assistant", "content": _text_of(message)}
    return {"role": "user", "content": _user_content(message, images)}


# Magic numbers of the image formats vision models accept; chat-completions wants a media type.
_IMAGE_SIGNATURES = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def image_media_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media_type
    return "application/octet-stream"


def image_file_ids(messages: list[Message]) -> set[str]:
    """The uploaded images the prompt needs as ``data:`` URLs."""
    return {
        part["image_file"]["file_id"]
        for message in messages
        if message.role == "user"
        for part in message.content
        if part.get("type") == "image_file"
    }


def _tool_exchange(
    step: RunStep, registry: ToolRegistry, earlier: dict[str, list[dict[str, Any]]]
) -> list[ChatMessage]:
    """The step's calls and results in chat form. ``earlier`` maps a server tool type to the details
    of its calls in the run's steps before this call; each server call seen here is appended."""
    calls: list[dict[str, Any]] = []
    results: list[ChatMessage] = []
    for call in step.step_details.get("tool_calls", []):
        kind = call.get("type", "")
        if kind == "function":
            name, arguments, output = (
                call["function"]["name"],
                call["function"]["arguments"],
                call["function"]["output"],
            )
        elif (handler := registry.server_tools.get(kind)) is not None:
            name = handler.name
            details = call.get(kind) or {}
            before = earlier.setdefault(kind, [])
            arguments, output = handler.replay(details, before)
            before.append(details)
        else:
            continue
        calls.append(
            {"id": call["id"], "type": "function", "function": {"name": name, "arguments": arguments}}
        )
        results.append({"role": "tool", "tool_call_id": call["id"], "content": output or ""})
    if not calls:
        return []
    return [{"role": "assistant", "content": None, "tool_calls": calls}, *results]


def _tokens(message: ChatMessage) -> int:
    content = message.get("content")
    total = MESSAGE_OVERHEAD_TOKENS
    if isinstance(content, str):
        total += count_tokens(content)
    elif isinstance(content, list):
        total += sum(count_tokens(p["text"]) for p in content if p.get("type") == "text")
    for call in message.get("tool_calls") or []:
        total += count_tokens(call["function"]["name"]) + count_tokens(call["function"]["arguments"])
    return total


def build_prompt(
    run: Run,
    messages: list[Message],
    steps: list[RunStep],
    registry: ToolRegistry,
    max_tokens: int | None,
    images: Mapping[str, str] | None = None,
) -> Prompt | None:
    """The prompt for the run's next model call, or None when even the newest message alone does not
    fit ``max_tokens`` (the run then ends incomplete: max_prompt_tokens)."""
    images = images or {}
    by_id = {m.id: m for m in messages}
    history = [_chat_message(m, images) for m in messages if m.run_id != run.id]
    strategy = run.truncation_strategy
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-int(strategy["last_messages"]) :]
    own: list[ChatMessage] = []
    # Every tool step counts for what comes after it (a server tool's output may depend on its
    # earlier calls: citation numbering), even one not completed and so not sent itself.
    earlier: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        if step.type == "message_creation":
            message = by_id.get(step.step_details["message_creation"]["message_id"])
            if message is not None and message.content:
                own.append(_chat_message(message, images))
        else:
            exchange = _tool_exchange(step, registry, earlier)
            if step.status == StepStatus.COMPLETED:
                own.extend(exchange)
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    fixed = sum(_tokens(m) for m in system + own)
    sizes = [_tokens(m) for m in history]
    total = fixed + sum(sizes)
    # "auto" truncation with a budget: drop the oldest history first, keep at least the newest message.
    dropped = 0
    while max_tokens is not None and total > max_tokens and dropped < len(history) - 1:
        total -= sizes[dropped]
        dropped += 1
    if max_tokens is not None and total > max_tokens:
        return None
    return Prompt(system + history[dropped:] + own, total)
