"""/v1/files: multipart upload streamed to the blob store, list, retrieve, download, delete."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive

from threadline.api.context import context
from threadline.api.http import json_response, list_params
from threadline.domain.errors import InvalidParameter, InvalidRequest
from threadline.domain.threads import ListParams
from threadline.schemas.common import list_envelope
from threadline.schemas.files import FileUpload, file_deleted, file_to_wire
from threadline.schemas.validation import parse_model
from threadline.services import files

# Room for the multipart framing and the small form fields around the file itself: the exact limit
# applies to the file's bytes, counted while they are copied to the blob store.
_MULTIPART_SLACK_BYTES = 64 * 1024
MAX_FILES_LIST_LIMIT = 10_000


def _limited(receive: Receive, max_body: int, max_file: int) -> Receive:
    """``receive`` that stops a body growing past ``max_body`` while it streams in (chunked uploads
    have no content-length to check up front)."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_body:
                raise files.too_large(max_file)
        return message

    return limited


def _form_fields(form: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("purpose", "expires_after[anchor]", "expires_after[seconds]"):
        value = form.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidParameter(f"Invalid '{key}': expected a string field.", param=key)
        if value is not None:
            fields[key] = value
    body: dict[str, Any] = {}
    if "purpose" in fields:
        body["purpose"] = fields["purpose"]
    if "expires_after[anchor]" in fields or "expires_after[seconds]" in fields:
        seconds: Any = fields.get("expires_after[seconds]")
        if isinstance(seconds, str) and seconds.strip().lstrip("-").isdigit():
            seconds = int(seconds)
        body["expires_after"] = {"anchor": fields.get("expires_after[anchor]"), "seconds": seconds}
    return body


def _filename(upload: UploadFile) -> str:
    """The part's file name, refused alike on every backend when it holds NUL or is not UTF-8.

    Starlette falls back to latin-1 for a name that is not UTF-8, which would store mojibake; the
    raw header bytes tell the two apart. PostgreSQL cannot store NUL at all."""
    raw = b"".join(value for name, value in upload.headers.raw if name == b"content-disposition")
    name = upload.filename or "upload"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter(
            "Invalid 'file': the file name is not valid UTF-8.", param="file", code="invalid_value"
        ) from None
    if b"\x00" in raw or "\x00" in name:
        raise InvalidParameter(
            "Invalid 'file': the file name may not contain the NUL character.",
            param="file",
            code="invalid_value",
        )
    return name


async def create_file(request: Request) -> Response:
    max_file = context(request).settings.max_upload_bytes
    max_body = max_file + _MULTIPART_SLACK_BYTES
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("Invalid Content-Type header, expected multipart/form-data.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise files.too_large(max_file)
    limited = Request(request.scope, _limited(request.receive, max_body, max_file))
    # Starlette spools each file part to a temporary file (in memory only up to 1 MB).
    async with limited.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidParameter(
                "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        form_body = parse_model(FileUpload, _form_fields(form))
        stored = await files.upload(
            context(request).db,
            context(request).blobs,
            upload.file,
            _filename(upload),
            form_body,
            max_file,
            quota_bytes=context(request).settings.project_storage_bytes,
        )
    return json_response(file_to_wire(stored))


def _files_list_params(request: Request) -> ListParams:
    params = list_params(request, max_limit=MAX_FILES_LIST_LIMIT, default_limit=MAX_FILES_LIST_LIMIT)
    # GET /files has no `before` (spec listFiles).
    return ListParams(limit=params.limit, order=params.order, after=params.after)


async def list_files(request: Request) -> Response:
    params = _files_list_params(request)
    purpose = request.query_params.get("purpose") or None
    page = await context(request).db.transaction(lambda uow: files.list_files(uow, params, purpose))
    return json_response(list_envelope([file_to_wire(f) for f in page.items], page.has_more))


async def retrieve_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    file = await context(request).db.transaction(lambda uow: files.get(uow, file_id))
    return json_response(file_to_wire(file))


async def download_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    file, chunks = await files.content(context(request).db, context(request).blobs, file_id)
    return StreamingResponse(
        chunks, media_type="application/octet-stream", headers={"content-length": str(file.bytes)}
    )


async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    await files.delete(context(request).db, context(request).blobs, file_id)
    return json_response(file_deleted(file_id))


routes = [
    Route("/files", create_file, methods=["POST"]),
    Route("/files", list_files, methods=["GET"]),
    Route("/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/files/{file_id}/content", download_file, methods=["GET"]),
]
