"""Calling one handler attempt and turning whatever happens into an outcome."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.handlers import DELETE, HandlerResult, StepCall, StepFailed

_log = logging.getLogger("orch8.engine")


@frozen
class Succeeded:
    output: Any
    size: int
    data: Mapping[str, Any] | None = None
    state: Mapping[str, Any] | None = None


@frozen
class Failed:
    message: str
    retryable: bool


Outcome = Succeeded | Failed


async def call_handler(
    registry: HandlerRegistry, call: StepCall, *, timeout_ms: int | None
) -> Outcome:
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
