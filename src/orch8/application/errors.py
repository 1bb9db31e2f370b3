"""Errors use cases raise; entrypoints map each to one status code."""

from __future__ import annotations


class ApplicationError(Exception):
    pass


class NotFound(ApplicationError):
    """The object does not exist, or belongs to another tenant (indistinguishable on purpose)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class Conflict(ApplicationError):
    """The request clashes with stored state (a duplicate, an object still in use)."""


class StaleWrite(ApplicationError):
    """A guarded write found the row no longer in the state it expected.

    Raised by storage when another process (or recovery) moved the instance on;
    the writer must drop its work rather than overwrite newer state.
    """


class UnstorableValue(ApplicationError):
    """A value the storage backend cannot hold, such as a NUL character in
    PostgreSQL text or a lone surrogate that no driver can encode.

    Named so that a use case can answer it as the caller's bad input without
    catching every ValueError, which would also swallow programming errors.
    """


class Unauthorized(ApplicationError):
    """The request carries no API key, or one that is unknown, expired or revoked."""


class Forbidden(ApplicationError):
    """The caller may not do this: the tenant named in the request is not the
    caller's (its `x-tenant-id` header or its API key's), or its key does not
    allow the call (a tenant key managing keys, a capability it lacks)."""


class InstanceTerminal(ApplicationError):
    """The instance has ended (completed, failed or cancelled): it takes no more signals."""

    def __init__(self, instance_id: str, state: str) -> None:
        self.instance_id = instance_id
        self.state = state
        super().__init__(f"instance {instance_id} is {state}: it takes no more signals")


class OutputTooLarge(ApplicationError):
    """A worker's output exceeds the configured limit (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"output is {size} bytes; the limit is {limit}")


class ContextTooLarge(ApplicationError):
    """An instance context over `max_context_bytes` (HTTP 413, as in Orch8)."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        self.path = path
        self.size = size
        self.limit = limit
        super().__init__(
            f"{path}: serialized size {size} bytes exceeds the limit of {limit} (max_context_bytes)"
        )


class StreamUnavailable(ApplicationError):
    """No stream can be opened now: the per-process limit is reached or the server stops."""


class ShuttingDown(ApplicationError):
    """The process is draining: it finishes in-flight work and takes no new claims."""
