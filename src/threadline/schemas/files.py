"""Files on the wire. The upload is multipart; ``FileUpload`` validates its non-file fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.domain.files import StoredFile
from threadline.schemas.common import Strict

FilePurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


class FileExpiresAfter(Strict):
    anchor: Literal["created_at"]
    # One hour to 30 days (spec FileExpirationAfter).
    seconds: Annotated[int, Field(ge=3600, le=2_592_000)]


class FileUpload(Strict):
    purpose: FilePurpose
    expires_after: FileExpiresAfter | None = None


def file_to_wire(file: StoredFile) -> dict[str, Any]:
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": file.created_at,
        "expires_at": file.expires_at,
        "filename": file.filename,
        "purpose": file.purpose,
        # Deprecated but required: bytes are stored before we answer, so a file is always processed.
        "status": "processed",
        "status_details": None,
    }


def file_deleted(file_id: str) -> dict[str, Any]:
    # Spec quirk (spec-summary §7.5): a deleted file's object is "file", not "file.deleted".
    return {"id": file_id, "object": "file", "deleted": True}
