"""Upstream failures: which are worth another attempt, how long to wait, and the ``UpstreamError`` a
user finally reads in a run's ``last_error``.

The SDK's own retries are disabled (``max_retries=0``) because they cannot see our rule that a stream
is only replayable until its first event has been handed to the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai

from threadline.config import Settings
from threadline.domain.errors import UpstreamError
from threadline.observability.metrics import UPSTREAM_ERRORS

log = logging.getLogger(__name__)

# An upstream error body can be a whole HTML page; a run's last_error should stay readable.
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff. ``max_delay_s`` caps each wait (a 429's ``Retry-After`` included)
    and ``max_total_delay_s`` caps the sum of waits of one call, so a run never stalls for long on a
    provider that is down: it fails and says why."""

    max_retries: int = 2
    initial_delay_s: float = 0.2
    max_delay_s: float = 2.0
    max_total_delay_s: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_retries=max(0, settings.upstream_max_retries))


class Backoff:
    """Retry bookkeeping for one logical call (one ``stream()`` or one embeddings batch)."""

    __slots__ = ("_policy", "attempts", "slept_s")

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self.attempts = 1
        self.slept_s = 0.0

    async def wait_or_raise(self, fault: UpstreamError, cause: BaseException | None) -> None:
        """Sleep before the next attempt, or raise ``fault`` when it is not retryable or the budget
        (retry count or total wait) is spent."""
        policy = self._policy
        if not fault.retryable:
            raise fault from cause
        if self.attempts > policy.max_retries:
            raise _gave_up(fault, self.attempts) from cause
        delay = policy.initial_delay_s * 2 ** (self.attempts - 1) * random.uniform(1.0, 1.2)
        retry_after = retry_after_s(cause)
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, policy.max_delay_s)
        if self.slept_s + delay > policy.max_total_delay_s:
            raise _gave_up(fault, self.attempts) from cause
        log.info("upstream attempt %d failed (%s); retrying in %.2f s", self.attempts, fault.message, delay)
        await asyncio.sleep(delay)
        self.slept_s += delay
        self.attempts += 1


def _gave_up(fault: UpstreamError, attempts: int) -> UpstreamError:
    if attempts == 1:
        return fault
    return UpstreamError(
        f"{fault.message} (gave up after {attempts} attempts)",
        code=fault.code or "server_error",
        retryable=fault.retryable,
    )


def retry_after_s(error: BaseException | None) -> float | None:
    """The wait a 429/503 asks for (``retry-after-ms`` or ``retry-after`` in seconds), else None.
    HTTP-date values are ignored: the capped exponential backoff is as good at our scale."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / divisor
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


class FaultTranslator:
    """Builds the ``UpstreamError`` for one provider. Messages name the provider by host (never the
    full URL, which may carry credentials) and the API key is redacted from any upstream text."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or base_url
        if parts.port is not None:
            self.host = f"{self.host}:{parts.port}"
        self._secret = api_key
        self._timeout_s = timeout_s

    def error(self, message: str, *, code: str = "server_error", retryable: bool = False) -> UpstreamError:
        if self._secret:
            message = message.replace(self._secret, "***")
        return UpstreamError(message, code=code, retryable=retryable)

    def translate(self, err: BaseException) -> UpstreamError:
        kind, fault = self._classify(err)
        UPSTREAM_ERRORS.labels(kind).inc()
        return fault

    def _classify(self, err: BaseException) -> tuple[str, UpstreamError]:
        """Classify an exception raised by the SDK (or by decoding its stream). Retryable: connection
        failures, timeouts, 429 and 5xx. Everything else is final."""
        host = self.host
        if isinstance(err, openai.RateLimitError):
            return "rate_limited", self.error(
                f"Model provider {host} rate-limited the request (HTTP 429): {status_detail(err)}",
                code="rate_limit_exceeded",
                retryable=True,
            )
        if isinstance(err, openai.APIStatusError):
            kind = f"http_{err.status_code // 100}xx"
            return kind, self.error(
                f"Model provider {host} returned HTTP {err.status_code}: {status_detail(err)}",
                retryable=err.status_code >= 500,
            )
        if isinstance(err, openai.APITimeoutError):
            return "timeout", self.error(
                f"Model provider {host} did not respond within {self._timeout_s:g} s", retryable=True
            )
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__
            reason = (str(cause) or type(cause).__name__) if cause is not None else err.message
            return "connection", self.error(
                f"Connection to model provider {host} failed: {reason}", retryable=True
            )
        if isinstance(err, openai.APIError):
            # An ``{"error": ...}`` object inside an otherwise healthy stream (vLLM does this).
            return "stream_error", self.error(
                f"Model provider {host} reported an error mid-stream: {err.message}"
            )
        if isinstance(err, ValueError):  # undecodable JSON or a chunk of the wrong shape
            return "malformed", self.error(
                f"Model provider {host} sent a malformed response: {_clip(str(err))}"
            )
        return "other", self.error(f"Model provider {host} failed: {type(err).__name__}: {_clip(str(err))}")

    def truncated(self) -> UpstreamError:
        UPSTREAM_ERRORS.labels("truncated").inc()
        # Retryable like a connection reset: a proxy or crashed worker ending the body early is the
        # same fault one layer up, and nothing has been handed to the caller yet when we retry it.
        return self.error(
            f"Model provider {self.host} ended the stream without a finish_reason (truncated response)",
            retryable=True,
        )


def status_detail(err: openai.APIStatusError) -> str:
    """The most useful text of an error response: OpenAI's ``message``, FastAPI's ``detail``,
    Ollama's string ``error``, else the raw body."""
    body = err.body
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, Mapping):
                value = value.get("message")
            if isinstance(value, str) and value:
                return _clip(value)
        return _clip(json.dumps(body, default=str))
    if isinstance(body, str) and body.strip():
        return _clip(body.strip())
    return err.response.reason_phrase or "no details"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."
