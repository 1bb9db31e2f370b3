"""The contract between the engine and the code a step calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from attrs import frozen

from orch8.domain.context import ExecutionContext


@frozen
class StepCall:
    instance_id: str
    tenant_id: str
    block_id: str
    handler: str
    params: Mapping[str, Any]
    context: ExecutionContext
    attempt: int


class StepFailed(Exception):
    """A handler's way to fail an attempt. `retryable` lets the step's retry policy apply."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.message = message
        self.retryable = retryable
        super().__init__(message)


class StepHandler(Protocol):
    async def __call__(self, call: StepCall) -> Any:
        """Run one attempt and return its JSON-serialisable output.

        Raise StepFailed to fail the attempt; any other exception is treated as
        a retryable failure with the exception's text as its message.
        """
        ...
