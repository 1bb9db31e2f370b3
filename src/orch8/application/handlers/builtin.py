"""The built-in handlers that need nothing but the step's params."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from orch8.application.handlers.data import DATA_HANDLERS
from orch8.application.ports.handlers import StepCall, StepFailed, StepHandler

_log = logging.getLogger("orch8.handlers")

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

MAX_SLEEP_MS = 3_600_000


async def noop(call: StepCall) -> dict[str, Any]:
    return {}


async def log(call: StepCall) -> dict[str, Any]:
    message = call.params.get("message", "")
    level = str(call.params.get("level", "info")).lower()
    _log.log(
        _LEVELS.get(level, logging.INFO),
        "%s",
        message,
        extra={"instance_id": call.instance_id, "block_id": call.block_id},
    )
    return {"message": message, "level": level}


async def sleep(call: StepCall) -> dict[str, Any]:
    """Sleeps in-process; durable waits belong in a step's `delay` instead."""
    raw = call.params.get("duration_ms", 100)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise StepFailed("params.duration_ms must be a non-negative number", retryable=False)
    millis = min(int(raw), MAX_SLEEP_MS)
    await asyncio.sleep(millis / 1000)
    return {"slept_ms": millis}


async def fail(call: StepCall) -> dict[str, Any]:
    """Fails on purpose (tests, drills). Retryable unless `retryable: false`."""
    message = str(call.params.get("message", "step failed by the fail handler"))
    retryable = call.params.get("retryable", True)
    raise StepFailed(message, retryable=retryable is not False)


BUILTIN_HANDLERS: dict[str, StepHandler] = {
    "noop": noop,
    "log": log,
    "sleep": sleep,
    "fail": fail,
    **DATA_HANDLERS,
}
