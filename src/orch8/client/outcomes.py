"""What a handler's run came to, as the report the worker will send for it.

The failure semantics of the module `orch8.client.worker` are decided here: which
exceptions are retryable, what a crash's message says, and which outputs the
server could never store.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from orch8.client.handlers import Handler
from orch8.client.types import JSON, Task

# One logger for the whole worker, so a host configures a single name.
_log = logging.getLogger("orch8.client.worker")

MAX_MESSAGE_CHARS = 8_000  # an error message is a diagnosis, not a payload: keep it small


@dataclass(frozen=True)
class Success:
    output: JSON


@dataclass(frozen=True)
class Failure:
    message: str
    retryable: bool


Outcome = Success | Failure


class TimedOut(Exception):
    """A handler that outlived the task's `timeout_ms`: retryable, since the next
    attempt may well be faster."""

    retryable = True


async def call_handler(fn: Handler, task: Task) -> Any:
    """Run `fn` on `task`, cut short at the task's `timeout_ms` when it has one."""
    if not task.timeout_ms:
        return await fn(task)
    scope = asyncio.timeout(task.timeout_ms / 1000)
    try:
        async with scope:
            return await fn(task)
    except TimeoutError:
        if scope.expired():
            raise TimedOut(f"handler timed out after {task.timeout_ms} ms") from None
        raise


async def outcome_of(
    call: asyncio.Task[Any], lost: asyncio.Event, task: Task, worker_id: str
) -> Outcome | None:
    """What the handler came to; None when it was cancelled because the claim was lost."""
    try:
        output = await call
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the worker is stopping: not the handler's doing
        if lost.is_set():
            _log.warning(
                "worker %s: lost the claim on task %s; handler cancelled",
                worker_id,
                task.id,
            )
            return None
        return Failure("handler was cancelled", retryable=True)
    except Exception as exc:
        return failure_of(exc, task, worker_id)
    if output is None:
        output = {}  # "nothing to add": an empty object merges nothing into context.data
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Failure(f"handler output is not JSON: {exc}", retryable=False)
    return Success(output)


def failure_of(exc: Exception, task: Task, worker_id: str) -> Failure:
    """An exception's failure report: retryable unless it says `retryable = False`."""
    retryable = bool(getattr(exc, "retryable", True))
    text = str(exc) or type(exc).__name__
    if getattr(exc, "retryable", None) is None:  # a crash, not a decision: keep the trace
        text = f"{type(exc).__name__}: {text}"
        _log.exception(
            "worker %s: handler %s crashed on task %s (attempt %d)",
            worker_id,
            task.handler_name,
            task.id,
            task.attempt,
            exc_info=exc,
        )
    else:
        _log.info(
            "worker %s: task %s failed (%s): %s",
            worker_id,
            task.id,
            "retryable" if retryable else "permanent",
            text,
        )
    return Failure(text[:MAX_MESSAGE_CHARS], retryable)
