"""In-process signal doorbell: tells a running instance to read its inbox now."""

from __future__ import annotations

import asyncio

MAX_RUNG = 10_000


class SignalBell:
    """Signals sent through this process ring the bell. The runner holding the instance
    reads its inbox at once — even while it waits for running steps, so a cancel does
    not wait for them — instead of at its periodic check."""

    def __init__(self) -> None:
        self._rung: set[str] = set()
        self._listeners: dict[str, asyncio.Event] = {}

    def ring(self, instance_id: str) -> None:
        if len(self._rung) >= MAX_RUNG:
            # Rung for instances another process runs are never taken here; forget
            # them rather than grow (the periodic inbox check still finds signals).
            self._rung.clear()
        self._rung.add(instance_id)
        listener = self._listeners.get(instance_id)
        if listener is not None:
            listener.set()

    def take(self, instance_id: str) -> bool:
        if instance_id in self._rung:
            self._rung.discard(instance_id)
            return True
        return False

    async def wait(self, instance_id: str, seconds: float) -> None:
        """Return when the bell rings for `instance_id`, or after `seconds`."""
        if instance_id in self._rung:
            return
        event = self._listeners.setdefault(instance_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._listeners.pop(instance_id, None)
