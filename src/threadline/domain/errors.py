"""The one error hierarchy. Every error a client can see is a ThreadlineError.

The API layer renders any ThreadlineError as OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` with ``status``.
Deterministic conflicts are 400, never 409/5xx: the official SDK retries 409 and 5xx.
"""

from __future__ import annotations


class ThreadlineError(Exception):
    status: int = 400
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param
        if code is not None:
            self.code = code


# --- 400: the request is wrong -------------------------------------------------------------
class InvalidRequest(ThreadlineError):
    """A request that cannot be honoured as sent (400)."""


class InvalidParameter(InvalidRequest):
    """One named parameter is wrong; ``param`` names it, ``code`` says how (OpenAI's codes)."""

    def __init__(self, message: str, *, param: str, code: str = "invalid_value") -> None:
        super().__init__(message, param=param, code=code)


class InvalidId(InvalidParameter):
    """An id with the wrong prefix: OpenAI answers 400, not 404."""

    def __init__(self, param: str, value: str, prefix: str) -> None:
        super().__init__(
            f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix}'.",
            param=param,
            code="invalid_value",
        )


class ThreadLocked(InvalidRequest):
    """A thread with an active run refuses new messages and runs."""


class RunStateConflict(InvalidRequest):
    """An operation that the run's current status does not allow (cancel, submit_tool_outputs)."""


# --- 401 / 404 / 405 / 413 -------------------------------------------------------------------
class AuthenticationFailed(ThreadlineError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(ThreadlineError):
    """A valid key that may not call this endpoint (a project key on the Admin API, and back)."""

    status = 403


class NotFound(ThreadlineError):
    status = 404


class ObjectNotFound(NotFound):
    """``No <noun> found with id '<id>'.``: the text OpenAI uses for threads, assistants, ..."""

    noun = "object"

    def __init__(self, object_id: str) -> None:
        super().__init__(f"No {self.noun} found with id '{object_id}'.")
        self.object_id = object_id


class ThreadNotFound(ObjectNotFound):
    noun = "thread"


class MessageNotFound(ObjectNotFound):
    noun = "message"


class AssistantNotFound(ObjectNotFound):
    noun = "assistant"


class RunNotFound(ObjectNotFound):
    noun = "run"


class RunStepNotFound(ObjectNotFound):
    noun = "run step"


class VectorStoreNotFound(ObjectNotFound):
    noun = "vector store"


class VectorStoreFileNotFound(ObjectNotFound):
    noun = "vector store file"


class ProjectNotFound(ObjectNotFound):
    noun = "project"


class ServiceAccountNotFound(ObjectNotFound):
    noun = "service account"


class ApiKeyNotFound(ObjectNotFound):
    noun = "API key"


class FileBatchNotFound(ObjectNotFound):
    noun = "file batch"


class FileNotFound(NotFound):
    """Files use a different text on the real API: ``No such File object: file-abc``, param "id"."""

    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}", param="id")
        self.object_id = file_id


class RouteNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist or you do not have access to it.")


class RateLimited(ThreadlineError):
    """Too much work in flight: 429 ``rate_limit_exceeded``. ``retry_after_s`` becomes the
    ``retry-after`` header, which the official SDKs wait before they retry. A per-project ``limit``
    also becomes OpenAI's ``x-ratelimit-*-requests`` headers."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, limit: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit = limit


class MethodNotAllowed(ThreadlineError):
    status = 405


class PayloadTooLarge(ThreadlineError):
    status = 413


# --- 5xx and upstream --------------------------------------------------------------------------
class InternalError(ThreadlineError):
    status = 500
    type = "server_error"


class ServiceUnavailable(ThreadlineError):
    """The server cannot take the request now but may soon (503: the SDK retries it)."""

    status = 503
    type = "server_error"


class DiskFull(ServiceUnavailable):
    code = "disk_full"

    def __init__(self) -> None:
        super().__init__(
            "The server is out of disk space, so nothing was written. Deletes still work; retry once "
            "space has been freed."
        )


class UpstreamError(ThreadlineError):
    """The model provider failed. ``code`` is what a run's ``last_error.code`` becomes:
    ``rate_limit_exceeded`` for 429, ``server_error`` otherwise. ``retryable`` says whether
    another attempt may succeed (connection errors, timeouts, 429, 5xx)."""

    status = 502
    type = "server_error"
    code = "server_error"

    def __init__(self, message: str, *, code: str = "server_error", retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class NoProviderForModel(UpstreamError):
    """No model provider is configured for a model: the run fails at once, it never hangs."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"No model provider is configured for model '{model}'. Set THREADLINE_UPSTREAM_BASE_URL "
            "or add the model to THREADLINE_MODELS_FILE.",
            code="server_error",
            retryable=False,
        )


# --- ingestion -----------------------------------------------------------------------------------
# A file that cannot be indexed. ``code`` is what a vector-store file's ``last_error.code`` becomes
# (server_error | unsupported_file | invalid_file).
class UnsupportedFile(InvalidRequest):
    """A file type that retrieval cannot index (unknown extension that is not text, legacy .doc)."""

    code = "unsupported_file"


class InvalidFile(InvalidRequest):
    """A supported type whose content is broken: a corrupt PDF/docx, text that is not UTF-8/UTF-16."""

    code = "invalid_file"


# --- start-up: configurations the server refuses to start with ------------------------------
class StartupError(ThreadlineError):
    """A setting the server cannot start with; the CLI prints the message as one line and exits 1."""

    status = 500
