"""What a worker accepts as a handler: a coroutine function of one `Task`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orch8.client.types import Task

Handler = Callable[[Task], Awaitable[Any]]
HandlerT = TypeVar("HandlerT", bound=Handler)


def check_handler(name: str, fn: Handler) -> None:
    """Refuse an empty name, and plain functions: a blocking handler would stall every
    other task and the heartbeats of its worker (run blocking code with
    `asyncio.to_thread` inside an async handler instead)."""
    if not name:
        raise ValueError("a handler name must not be empty")
    if not callable(fn) or not (
        inspect.iscoroutinefunction(fn)
        or inspect.iscoroutinefunction(type(fn).__call__)  # an object with async __call__
    ):
        raise TypeError(f"handler {name!r} must be an async function (async def)")
