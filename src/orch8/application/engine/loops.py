"""Supervised background loops: a crash is logged, counted and the loop restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

_log = logging.getLogger("orch8.engine")

MAX_BACKOFF_S = 5.0


async def supervised(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    interval_s: float,
    stop: asyncio.Event,
    wake: asyncio.Event | None = None,
) -> None:
    """Run `body` every `interval_s` (or sooner when `wake` is set) until `stop` is set.

    Errors back off exponentially (up to MAX_BACKOFF_S) so a database outage
    does not become a hot loop, and never end the loop.
    """
    failures = 0
    while not stop.is_set():
        try:
            await body()
            failures = 0
            delay = interval_s
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            delay = min(max(interval_s, 0.1) * 2**failures, MAX_BACKOFF_S)
            _log.exception("%s loop failed (%d in a row); retrying in %.1fs", name, failures, delay)
        await _sleep(delay, stop, wake)


async def _sleep(seconds: float, stop: asyncio.Event, wake: asyncio.Event | None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    if wake is not None:
        wake.clear()
