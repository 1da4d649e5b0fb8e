"""Messages on the wire."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.domain.threads import Message
from threadline.schemas.common import Metadata, Strict, Text


class ImageFileRef(Strict):
    file_id: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlRef(Strict):
    url: Annotated[str, Field(pattern=r"^(https?://|data:)")]
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: Text


class ImageFilePart(Strict):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlPart(Strict):
    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageUrlPart, Field(discriminator="type")]


class AttachmentTool(Strict):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Strict):
    file_id: str
    tools: list[AttachmentTool] | None = None


class MessageCreate(Strict):
    role: Literal["user", "assistant"]
    content: Text | Annotated[list[ContentPart], Field(min_length=1)]
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None


class MessageModify(Strict):
    metadata: Metadata | None = None


def content_parts(content: str | list[TextPart | ImageFilePart | ImageUrlPart]) -> list[dict[str, Any]]:
    """Normalise request content to the stored/wire form: a string becomes one text part."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        elif isinstance(part, ImageFilePart):
            ref = part.image_file
            parts.append(
                {"type": "image_file", "image_file": {"file_id": ref.file_id, "detail": ref.detail or "auto"}}
            )
        else:
            ref_url = part.image_url
            parts.append(
                {"type": "image_url", "image_url": {"url": ref_url.url, "detail": ref_url.detail or "auto"}}
            )
    return parts


def message_to_wire(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "object": "thread.message",
        "created_at": message.created_at,
        "thread_id": message.thread_id,
        "status": message.status,
        "incomplete_details": message.incomplete_details,
        "completed_at": message.completed_at,
        "incomplete_at": message.incomplete_at,
        "role": message.role,
        "content": message.content,
        "assistant_id": message.assistant_id,
        "run_id": message.run_id,
        "attachments": message.attachments,
        "metadata": message.metadata,
    }
