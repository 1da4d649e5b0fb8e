"""Tool dispatch. Function tools are answered by the client (the run goes to requires_action);
server-side tools (``file_search``, added by the retrieval feature) are answered here by a registered
handler, and the run continues without the client.

To plug in a server-side tool: ``registry.register(handler)`` where ``handler`` implements
``ServerTool``. The runner exposes it to the model as a function named ``handler.name`` and records
its calls in the step with ``type == handler.type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from threadline.domain.runs import Run


@dataclass(frozen=True, slots=True)
class ToolResult:
    """``details`` is the step's type-specific object (e.g. ``{"ranking_options": ..., "results":
    [...]}`` under ``file_search``). What the model reads is rendered from the stored details by
    ``ServerTool.replay`` whenever the prompt is built, never kept from the call: the next round's
    prompt is built from the stored steps anyway, possibly by another worker process."""

    details: dict[str, Any]
    # Extra ``thread.run.step.delta`` fragments of the call's type-specific object, published after
    # the call (code_interpreter's ``outputs``, each with its ``index``).
    deltas: tuple[dict[str, Any], ...] = ()


class ServerTool(Protocol):
    type: str  # the assistant tool type it serves, e.g. "file_search"
    name: str  # the function name the model sees

    def chat_tool(self, tool: dict[str, Any]) -> dict[str, Any]:
        """The chat-completions tool definition for the assistant's ``tool`` entry."""
        ...

    async def call(self, run: Run, arguments: str) -> ToolResult:
        """Execute one call; raise ``UpstreamError``/``ThreadlineError`` to fail the run."""
        ...

    def replay(self, details: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> tuple[str, str]:
        """``(arguments, output)`` of a call from its stored details (prompt building). ``earlier``
        holds the stored details of this tool's calls before it in the run (step order, then call
        order within a step), for outputs that depend on them (file_search numbers its citation
        markers across the whole run)."""
        ...


@dataclass(slots=True)
class ToolRegistry:
    server_tools: dict[str, ServerTool] = field(default_factory=dict)

    def register(self, tool: ServerTool) -> None:
        self.server_tools[tool.type] = tool

    def by_name(self, name: str) -> ServerTool | None:
        return next((t for t in self.server_tools.values() if t.name == name), None)

    def chat_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The run's tools in chat-completions form. Function tools pass through; server tools with a
        handler are exposed through it; others (no handler registered) are left out."""
        chat: list[dict[str, Any]] = []
        for tool in tools:
            if tool.get("type") == "function":
                chat.append({"type": "function", "function": tool["function"]})
            elif (handler := self.server_tools.get(tool.get("type", ""))) is not None:
                chat.append(handler.chat_tool(tool))
        return chat

    async def run_chat_tools(self, run: Run) -> list[dict[str, Any]]:
        """``chat_tools`` for one run: a server tool with ``prepare_chat_tool(run, tool)`` (an
        awaitable) describes itself for the run (code_interpreter names the run's files)."""
        chat: list[dict[str, Any]] = []
        for tool in run.tools:
            handler = self.server_tools.get(tool.get("type", ""))
            prepare = getattr(handler, "prepare_chat_tool", None)
            if prepare is not None:
                chat.append(await prepare(run, tool))
            else:
                chat += self.chat_tools([tool])
        return chat

    async def finish_text(self, run: Run, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Annotations and extra content parts that server tools add to a message of ``run`` with
        final ``text`` (code_interpreter: file_path links and image_file parts)."""
        annotations: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for handler in self.server_tools.values():
            finish = getattr(handler, "finish_text", None)
            if finish is not None and any(t.get("type") == handler.type for t in run.tools):
                more_annotations, more_parts = await finish(run, text)
                annotations += more_annotations
                parts += more_parts
        return annotations, parts

    def chat_tool_choice(self, tool_choice: str | dict[str, Any]) -> str | dict[str, Any]:
        """The run's ``tool_choice`` in chat-completions form."""
        if isinstance(tool_choice, str):
            return tool_choice
        if tool_choice.get("type") == "function":
            return {"type": "function", "function": {"name": tool_choice["function"]["name"]}}
        handler = self.server_tools.get(tool_choice.get("type", ""))
        if handler is not None:
            return {"type": "function", "function": {"name": handler.name}}
        return "required"
