"""Wall-clock time in UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orch8.application.ports.clock import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, instant: datetime) -> None:
        # The event loop's timer runs on the monotonic clock and may wake a hair
        # early against the wall clock: look again until the instant has passed.
        left = (instant - datetime.now(UTC)).total_seconds()
        while left > 0:
            await asyncio.sleep(left)
            left = (instant - datetime.now(UTC)).total_seconds()
