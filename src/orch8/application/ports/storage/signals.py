"""`SignalInbox`: per-instance signal delivery, exactly once."""

from __future__ import annotations

from typing import Protocol

from orch8.domain.signals import Signal


class SignalInbox(Protocol):
    async def enqueue(self, signal: Signal) -> None:
        """Store `signal` for delivery, atomically with a check of its instance.

        Raises NotFound when the instance does not exist, InstanceTerminal when
        it is completed, failed or cancelled, and Conflict when the signal id is
        taken (nothing stored in each case). In the same
        transaction, makes the instance due now (state `scheduled`, next_fire_at =
        signal.created_at unless already earlier) when it is `scheduled` or
        `waiting`, or `paused` and the signal is resume or cancel — so the engine
        sees the signal at once instead of at its next timer.
        """
        ...

    async def pending(self, instance_id: str) -> list[Signal]:
        """Undelivered signals of an instance, oldest first (created_at, then enqueue order)."""
        ...
