"""Errors raised by the client and the errors a worker handler raises to steer retries."""

from __future__ import annotations

import json


class Orch8Error(Exception):
    """The server answered with an error status (4xx/5xx), or did not answer at all.

    `status` is the HTTP status; 0 means no HTTP answer (connection refused, reset,
    timed out), so callers can tell "the server said no" from "the server was not there"
    with one integer comparison instead of catching aiohttp's exception zoo.
    `message` is the server's `{"error": ...}` text when it sent one.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def is_conflict(self) -> bool:
        """409: the task's claim moved on (another worker or a newer epoch owns it)."""
        return self.status == 409

    @property
    def is_transient(self) -> bool:
        """Worth retrying the same request later: no answer, 429, or a server error."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def error_text(text: str, reason: str | None) -> str:
    """The `error` of a `{"error": ...}` body, else the body (or the reason phrase)."""
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        return str(decoded["error"])
    return text.strip()[:500] or (reason or "")


class TaskError(Exception):
    """Base of the errors a handler raises to say how its attempt failed.

    `retryable` is what the worker reports in `/fail`; any other exception type can
    carry the same decision by having a `retryable` attribute.
    """

    retryable: bool = True


class RetryableError(TaskError):
    """A transient failure (network blip, rate limit, 5xx downstream).

    The engine makes another attempt after the step's `retry` backoff, while attempts
    remain; without a `retry` policy the step fails.
    """

    retryable = True


class PermanentError(TaskError):
    """A failure that another attempt cannot fix (bad input, the user was deleted).

    The step fails at once: a surrounding `try_catch` catches it, otherwise the
    instance fails.
    """

    retryable = False
