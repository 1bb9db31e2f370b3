"""The contract between the engine and the code a step calls."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.context_changes import DELETE as DELETE


@frozen
class StepCall:
    """One attempt of a step, as its handler sees it.

    `now` is the engine's clock reading for the attempt (the instant its params
    were rendered at); handlers that read the time use it rather than the wall
    clock, so a simulated clock reaches them too.
    """

    instance_id: str
    tenant_id: str
    block_id: str
    handler: str
    params: Mapping[str, Any]
    context: ExecutionContext
    attempt: int
    now: datetime


@frozen
class HandlerResult:
    """A handler's output plus changes to the instance it ran in.

    Plain return values are outputs only. Handlers that work on the instance
    (`transform`, `set_state`, ...) return this instead: `data` is merged into
    `context.data` and `state` into the per-instance key-value state (readable
    as `{{ state.key }}`), in the same write as the step's output.
    """

    output: Any
    data: Mapping[str, Any] | None = None
    state: Mapping[str, Any] | None = None


class StepFailed(Exception):
    """A handler's way to fail an attempt. `retryable` lets the step's retry policy apply."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.message = message
        self.retryable = retryable
        super().__init__(message)


class StepHandler(Protocol):
    async def __call__(self, call: StepCall) -> Any:
        """Run one attempt and return its JSON-serialisable output (or a HandlerResult).

        Raise StepFailed to fail the attempt; any other exception is treated as
        a retryable failure with the exception's text as its message.
        """
        ...
