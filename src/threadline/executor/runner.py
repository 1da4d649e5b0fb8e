"""Executes one run: prompt -> model stream -> steps, messages and events, round after round, until the
run completes, needs the client (requires_action) or ends otherwise.

Each state change is its own short transaction (``services.runs.transitions``); no transaction is
open while the model streams. Events are published only after the transaction that made them true
has committed; the changes that may stop the run go through ``EventBus.transaction`` so that
their events commit with them. Cancellation arrives as ``CancelledError`` (the executor cancels the
task); the runner lets it propagate and the executor finishes the run, using ``RunProgress`` for the
text streamed so far.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from threadline.blobs import BlobNotFound, BlobStore
from threadline.domain.errors import ThreadlineError, UpstreamError
from threadline.domain.events import MessageDelta, RunEvent, StepDelta
from threadline.domain.ids import new_id
from threadline.domain.run_states import RunStatus
from threadline.domain.runs import Run, RunStep
from threadline.domain.threads import Message
from threadline.events.bus import EventBus, Work
from threadline.executor.prompt import build_prompt, image_file_ids, image_media_type
from threadline.executor.run_log import RunLog
from threadline.executor.tools import ToolRegistry
from threadline.llm.providers import ProviderRouter
from threadline.llm.types import ChatModel, ChatRequest, Finish, TextDelta, ToolCallDelta
from threadline.retrieval.tokens import count_tokens
from threadline.services.annotations import AnnotatedStream, MarkerSource, Piece
from threadline.services.runs import transitions
from threadline.services.runs.transitions import RunStart, usage_dict
from threadline.services.vector_stores.citations import CitationMarkers, search_results
from threadline.storage.database import Database

log = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "The server had an error while processing the run."


@dataclass(slots=True)
class RunProgress:
    """What a run has streamed so far, shared with the executor so an interrupted run keeps its text."""

    partial_text: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Call:
    id: str
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Round:
    """One model call's output."""

    message_step_id: str | None = None
    message_id: str = ""
    text: str = ""
    tool_step_id: str | None = None
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The message being opened ahead of the first token (text-only rounds), not yet taken.
    opening: asyncio.Future[tuple[Message, RunStep, list[RunEvent]]] | None = None
    # Checkpoints of the streamed text (see Runner._checkpoint): when, and how much of it.
    saved_at: float = field(default_factory=time.monotonic)
    saved_chars: int = 0
    # The text as streamed: markers held back until they close, annotations sent with them.
    stream: AnnotatedStream = field(default_factory=lambda: AnnotatedStream(()))


def annotation_sources(steps: list[RunStep]) -> list[MarkerSource]:
    """What the round's text may annotate, from the run's steps so far: file_search's citations
    (marker i is the run's i-th result). Another annotation kind is one more source here."""
    return [CitationMarkers(search_results(steps))]


class Runner:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        router: ProviderRouter,
        registry: ToolRegistry,
        blobs: BlobStore,
        checkpoint_s: float = 1.0,
    ) -> None:
        self.db, self.bus, self.router, self.registry, self.blobs = db, bus, router, registry, blobs
        self.checkpoint_s = checkpoint_s
        self.run_log = RunLog()

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        if events:
            self.run_log.observe(run_id, events)
            self.bus.publish(run_id, events)

    async def transaction(self, run_id: str, work: Work) -> list[RunEvent]:
        """Commit ``work``'s state change with its events (see ``EventBus.transaction``); the run log
        sees them as it sees published ones, so the lines of runs that end here are not missed."""
        events = await self.bus.transaction(self.db, run_id, work)
        if events:
            self.run_log.observe(run_id, events)
        return events

    def opens_at_claim(self, run: Run) -> bool:
        """True when the run's first round can only answer with text and will call the model: no
        tools, no prompt budget that could end it first, a provider for its model. Then the claim
        opens its message (``transitions.claim``), as ``_stream_round`` would have."""
        if run.tools or run.max_prompt_tokens is not None:
            return False
        return self.router.provider_for(run.model) != "none"

    async def execute(self, start: RunStart, progress: RunProgress) -> None:
        """Run a run the executor has just claimed (``start.events`` are already published). Model and
        tool failures end the run ``failed`` (streams end ``thread.run.failed``, with ``last_error``,
        then ``done``: no ``error`` event); ``CancelledError`` propagates to the executor."""
        run_id = start.run.id
        try:
            await self._rounds(start, progress)
        except UpstreamError as err:
            await self.fail(run_id, err.code or "server_error", err.message, progress)
        except ThreadlineError as err:
            await self.fail(run_id, "server_error", err.message, progress)
        except Exception:
            log.exception("run %s failed", run_id)
            await self.fail(run_id, "server_error", INTERNAL_ERROR_MESSAGE, progress)

    async def end(
        self, run_id: str, status: RunStatus, progress: RunProgress, **kwargs: Any
    ) -> list[RunEvent]:
        return await self.transaction(
            run_id,
            lambda uow: transitions.end(uow, run_id, status, partial_text=progress.partial_text, **kwargs),
        )

    async def fail(self, run_id: str, code: str, message: str, progress: RunProgress) -> None:
        # No `event: error` after thread.run.failed: openai-node (v4 and later) throws on any error
        # event, so its finalRun() would reject and the caller never see last_error. OpenAI ends a
        # failed run's stream with thread.run.failed, then done.
        await self.end(run_id, RunStatus.FAILED, progress, last_error={"code": code, "message": message})

    async def _rounds(self, start: RunStart, progress: RunProgress) -> None:
        run, messages, steps = start.run, start.messages, start.steps
        used = [s.usage for s in steps if s.usage]
        used_prompt = sum(u["prompt_tokens"] for u in used)
        used_completion = sum(u["completion_tokens"] for u in used)
        images: dict[str, str] = {}
        opened = start.opened
        while True:
            prompt_left = None if run.max_prompt_tokens is None else run.max_prompt_tokens - used_prompt
            completion_left = (
                None if run.max_completion_tokens is None else run.max_completion_tokens - used_completion
            )
            if completion_left is not None and completion_left <= 0:
                reason = "max_completion_tokens"
                await self.end(run.id, RunStatus.INCOMPLETE, progress, incomplete_reason=reason)
                return
            images = await self._images(image_file_ids(messages), images)
            prompt = build_prompt(run, messages, steps, self.registry, prompt_left, images)
            if prompt is None:
                await self.end(run.id, RunStatus.INCOMPLETE, progress, incomplete_reason="max_prompt_tokens")
                return
            model, upstream_model = self.router.resolve(run.model)
            tools = await self.registry.run_chat_tools(run)
            request = self._request(run, upstream_model, prompt.messages, completion_left, tools)
            result = _Round(stream=AnnotatedStream(annotation_sources(steps)))
            if opened is not None:  # the claim opened the first round's message (opens_at_claim)
                result.message_id, result.message_step_id = opened[0].id, opened[1].id
                opened = None
            await self._stream_round(run, model, request, progress, prompt.tokens, result)
            used_prompt += result.prompt_tokens
            used_completion += result.completion_tokens
            if result.finish_reason == "length":
                reason = "max_completion_tokens"
                await self._close_message(run, result, progress, RunStatus.INCOMPLETE, reason)
                return
            if not result.calls:
                await self._close_message(run, result, progress, RunStatus.COMPLETED)
                return
            await self._close_message(run, result, progress)
            if await self._dispatch_calls(run, result):
                return  # requires_action: the client answers, submit_tool_outputs queues the run again
            messages, steps = await self.db.transaction(lambda uow: transitions.history(uow, run))

    async def _images(self, file_ids: set[str], known: dict[str, str]) -> dict[str, str]:
        """``data:`` URLs for uploaded images (read once per run; a deleted file is left out)."""
        for file_id in file_ids - known.keys():
            try:
                data = await asyncio.to_thread(self.blobs.read, file_id)
            except BlobNotFound:
                continue
            known[file_id] = f"data:{image_media_type(data)};base64,{base64.b64encode(data).decode()}"
        return known

    def _request(
        self,
        run: Run,
        upstream_model: str,
        messages: list[dict[str, Any]],
        max_completion_tokens: int | None,
        tools: list[dict[str, Any]],
    ) -> ChatRequest:
        tool_choice = self.registry.chat_tool_choice(run.tool_choice)
        return ChatRequest(
            model=upstream_model,
            messages=messages,
            # Many providers reject tool_choice / parallel_tool_calls without tools.
            tools=tools or None,
            tool_choice=tool_choice if tools else None,
            parallel_tool_calls=run.parallel_tool_calls if tools else None,
            temperature=run.temperature,
            top_p=run.top_p,
            response_format=run.response_format if isinstance(run.response_format, dict) else None,
            max_completion_tokens=max_completion_tokens,
        )

    async def _stream_round(
        self,
        run: Run,
        model: ChatModel,
        request: ChatRequest,
        progress: RunProgress,
        prompt_estimate: int,
        result: _Round,
    ) -> None:
        usage_seen = False
        if request.tools is None and result.message_step_id is None:
            # A round without tools can only answer with text: open the message and its step while
            # the upstream request is in flight instead of after the first token (time to first token).
            result.opening = asyncio.ensure_future(
                self.db.transaction(lambda uow: transitions.open_message(uow, run))
            )
        stream = model.stream(request)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    await self._on_text(run, result, event.text, progress)
                elif isinstance(event, ToolCallDelta):
                    await self._on_tool_delta(run, result, event)
                elif isinstance(event, Finish):
                    result.finish_reason = event.reason
                    if event.usage is not None:
                        usage_seen = True
                        result.prompt_tokens = event.usage.prompt_tokens
                        result.completion_tokens = event.usage.completion_tokens
            # The model is done: an unfinished marker held back is plain text after all.
            self._send_text(run, result, result.stream.flush())
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            # Publish the message's creation even when the round failed or was cancelled: the run's end
            # closes the message and its step, and a stream must have seen them created first.
            await asyncio.shield(self._message_opened(run, result))
        if not usage_seen:
            # The provider reported no usage: count ourselves so budgets and usage still mean something.
            result.prompt_tokens = prompt_estimate
            produced = result.text + "".join(c.name + c.arguments for c in result.calls.values())
            result.completion_tokens = count_tokens(produced)

    async def _message_opened(self, run: Run, result: _Round) -> None:
        """Take the pre-opened message (if any) into the round and publish its creation, once."""
        opening, result.opening = result.opening, None
        if opening is not None:
            message, step, events = await opening
            result.message_step_id, result.message_id = step.id, message.id
            self.publish(run.id, events)

    async def _on_text(self, run: Run, result: _Round, text: str, progress: RunProgress) -> None:
        if result.message_step_id is None:
            await self._message_opened(run, result)
        if result.message_step_id is None:
            message, step, events = await self.db.transaction(lambda uow: transitions.open_message(uow, run))
            result.message_step_id, result.message_id = step.id, message.id
            self.publish(run.id, events)
        result.text += text
        progress.partial_text[result.message_id] = result.text
        self._send_text(run, result, result.stream.feed(text))
        if time.monotonic() - result.saved_at >= self.checkpoint_s:
            await self._checkpoint(run, result)

    async def _checkpoint(self, run: Run, result: _Round) -> None:
        """Save the streamed text at most every ``checkpoint_s`` (never per token), so a kill -9 loses
        at most that much of what clients already saw. Awaited, not fired off: a late checkpoint
        must not land after the message's final text."""
        result.saved_at = time.monotonic()
        if result.message_id and len(result.text) != result.saved_chars:
            result.saved_chars = len(result.text)
            thread_id, message_id, text = run.thread_id, result.message_id, result.text
            await self.db.transaction(
                lambda uow: transitions.checkpoint_message(uow, thread_id, message_id, text)
            )

    def _send_text(self, run: Run, result: _Round, piece: Piece | None) -> None:
        if piece is not None:
            delta = MessageDelta(result.message_id, 0, piece.text, piece.first, piece.annotations)
            self.publish(run.id, [delta])

    async def _on_tool_delta(self, run: Run, result: _Round, delta: ToolCallDelta) -> None:
        if result.tool_step_id is None:
            await self._checkpoint(run, result)  # a tool-call boundary
            step, events = await self.db.transaction(lambda uow: transitions.open_tool_step(uow, run))
            result.tool_step_id = step.id
            self.publish(run.id, events)
        call = result.calls.get(delta.index)
        entry: dict[str, Any]
        if call is None:
            call = result.calls[delta.index] = _Call(id=delta.id or new_id("call"), name=delta.name or "")
            handler = self.registry.by_name(call.name)
            if handler is not None:
                start = getattr(handler, "stream_start", None)
                details = start() if start is not None else {}
                entry = {"index": delta.index, "id": call.id, "type": handler.type, handler.type: details}
            else:
                function = {"name": call.name, "arguments": "", "output": None}
                entry = {"index": delta.index, "id": call.id, "type": "function", "function": function}
            self.publish(run.id, [StepDelta(result.tool_step_id, entry)])
        elif delta.name and not call.name:
            call.name = delta.name
            fragment = {"index": delta.index, "type": "function", "function": {"name": delta.name}}
            self.publish(run.id, [StepDelta(result.tool_step_id, fragment)])
        if delta.arguments:
            before = call.arguments
            call.arguments += delta.arguments
            server_tool = self.registry.by_name(call.name)
            # A server tool may stream its own view of the arguments (code_interpreter: the code).
            stream = getattr(server_tool, "stream_arguments", None)
            if server_tool is not None and stream is not None:
                details = stream(before, call.arguments)
                if details:
                    fragment = {"index": delta.index, "type": server_tool.type, server_tool.type: details}
                    self.publish(run.id, [StepDelta(result.tool_step_id, fragment)])
            elif server_tool is None:
                fragment = {
                    "index": delta.index,
                    "type": "function",
                    "function": {"arguments": delta.arguments},
                }
                self.publish(run.id, [StepDelta(result.tool_step_id, fragment)])

    async def _close_message(
        self,
        run: Run,
        result: _Round,
        progress: RunProgress,
        end_status: RunStatus | None = None,
        incomplete_reason: str | None = None,
    ) -> None:
        """Complete the round's message and step; with ``end_status``, also end the run in the same
        transaction (one database round trip fewer on every run's last round)."""
        step_id = result.message_step_id
        # Usage belongs to the round's last step: the tool step when the model also called tools.
        usage = None if result.calls else usage_dict(result.prompt_tokens, result.completion_tokens)
        incomplete = result.finish_reason == "length"
        extra: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        if step_id is not None and self.registry.server_tools:
            extra = await self.registry.finish_text(run, result.text)

        def close(uow: Any) -> list[RunEvent]:
            events: list[RunEvent] = []
            if step_id is not None:
                events += transitions.finish_message(
                    uow,
                    step_id,
                    run.id,
                    result.text,
                    usage,
                    incomplete=incomplete,
                    extra_annotations=extra[0],
                    extra_parts=extra[1],
                )
            if end_status is not None:
                events += transitions.end(
                    uow,
                    run.id,
                    end_status,
                    incomplete_reason=incomplete_reason,
                    partial_text=progress.partial_text,
                )
            return events

        if step_id is not None or end_status is not None:
            # Through the bus: this may end the run, and its events must commit with that.
            await self.transaction(run.id, close)

    async def _dispatch_calls(self, run: Run, result: _Round) -> bool:
        """Record the round's tool calls, answering server-side ones here. True when function calls
        wait for the client (the run is now requires_action)."""
        assert result.tool_step_id is not None
        entries: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for index in sorted(result.calls):
            call = result.calls[index]
            handler = self.registry.by_name(call.name)
            if handler is not None:
                outcome = await handler.call(run, call.arguments)
                kind = handler.type
                deltas = [{"index": index, "type": kind, kind: d} for d in outcome.deltas]
                self.publish(run.id, [StepDelta(result.tool_step_id, d) for d in deltas])
                entries.append({"id": call.id, "type": handler.type, handler.type: outcome.details})
                continue
            function = {"name": call.name, "arguments": call.arguments}
            entries.append({"id": call.id, "type": "function", "function": {**function, "output": None}})
            pending.append({"id": call.id, "type": "function", "function": function})
        usage = usage_dict(result.prompt_tokens, result.completion_tokens)
        step_id = result.tool_step_id

        def record(uow: Any) -> list[RunEvent]:
            events = transitions.record_tool_calls(uow, run.id, step_id, entries, usage, complete=not pending)
            if pending:
                events += transitions.require_action(uow, run.id, pending)
            return events

        await self.transaction(run.id, record)  # may stop the run (requires_action)
        return bool(pending)
