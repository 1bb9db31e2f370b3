"""Making one attempt of a step: its params rendered, then its handler called (or the
step handed to a worker), whatever happens turned into a result.

A handler's failure, timeout or bad output fails the attempt, never the
engine: only cancellation passes through, so a cancelled call stays cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orch8.application.engine.worker_dispatch import dispatch
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import IdGenerator
from orch8.application.ports.handlers import DELETE, HandlerResult, StepCall, StepFailed
from orch8.domain.context import ExecutionContext
from orch8.domain.errors import DomainError
from orch8.domain.evaluator import RunStep
from orch8.domain.evaluator.attempts import Dispatched, Failed, HandlerOutcome, Succeeded
from orch8.domain.evaluator.walk import scope_for
from orch8.domain.instance import Instance
from orch8.domain.templates import render

_log = logging.getLogger("orch8.engine")


def make_call(
    handlers: HandlerRegistry,
    ids: IdGenerator,
    instance: Instance,
    step: RunStep,
    context: ExecutionContext,
    outputs: Mapping[str, Any],
    now: datetime,
) -> StepCall | Failed | Dispatched:
    """The call to hand `call_handler`, or the attempt's result when there is none to
    make here: params that do not render fail it for good, and a handler not
    registered in this process is an external worker's (the step becomes a task
    for it). Not a coroutine itself: it runs before every step."""
    block = step.block
    scope = scope_for(context, outputs, step.locals, instance_id=instance.id, now=now)
    try:
        params = render(dict(block.params), scope)
    except DomainError as exc:
        return Failed(f"params: {exc}", retryable=False)
    if handlers.get(block.handler) is None:
        return dispatch(ids, instance, step, params, context, now)
    return StepCall(
        instance_id=instance.id,
        tenant_id=instance.tenant_id,
        block_id=block.id,
        handler=block.handler,
        params=params,
        context=context,
        attempt=step.attempt,
        now=now,
    )


async def call_handler(
    registry: HandlerRegistry, call: StepCall, *, timeout_ms: int | None
) -> HandlerOutcome:
    handler = registry.get(call.handler)
    if handler is None:
        return Failed(f"no handler named '{call.handler}' is registered", retryable=False)
    try:
        if timeout_ms is None:
            output = await handler(call)
        else:
            async with asyncio.timeout(timeout_ms / 1000):
                output = await handler(call)
    except StepFailed as exc:
        return Failed(exc.message, exc.retryable)
    except TimeoutError:
        return Failed(f"step timed out after {timeout_ms} ms", retryable=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log.exception("handler %s raised", call.handler)
        return Failed(f"{type(exc).__name__}: {exc}", retryable=True)
    data = state = None
    if isinstance(output, HandlerResult):
        output, data, state = output.output, output.data, output.state
    try:
        size = len(json.dumps(output))
        json.dumps(data)
        json.dumps({k: v for k, v in (state or {}).items() if v is not DELETE})
    except (TypeError, ValueError) as exc:
        return Failed(f"handler output is not JSON: {exc}", retryable=False)
    return Succeeded(output, size, data, state)
