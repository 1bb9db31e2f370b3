"""Cooperative preemption: a running instance hands its claim back when a more urgent
one waits for a slot.

Asked only while every slot of the process is taken, and at most every
PREEMPT_CHECK_S, so a process with room never pays for the query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import InstanceStore
from orch8.domain.instance import Priority

# How often a running instance may ask whether a more urgent one waits for its slot.
PREEMPT_CHECK_S = 0.05


class Preemption:
    def __init__(
        self,
        instances: InstanceStore,
        clock: Clock,
        saturated: Callable[[], bool],
        priority: Priority,
    ) -> None:
        self._instances = instances
        self._clock = clock
        self._saturated = saturated
        self._priority = priority
        self._checked_at = 0.0

    async def due(self) -> bool:
        """Whether an instance of a higher priority than this one is due."""
        if not self._saturated():
            return False
        now = asyncio.get_running_loop().time()
        if now - self._checked_at < PREEMPT_CHECK_S:
            return False
        self._checked_at = now
        return await self._instances.has_due_higher_priority(self._priority, self._clock.now())
