"""In-process wake-up for long-polling workers: rung when tasks for a handler appear."""

from __future__ import annotations

import asyncio
from types import TracebackType


class _Round:
    """One round of a handler's bell: every waiter armed before the next ring."""

    __slots__ = ("event", "waiters")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiters = 0


class Ticket:
    """A place in the current round of one handler's bell, taken *before* looking for
    work, so that a ring between the look and the wait is not lost. Use as a context
    manager: leaving it gives the place back."""

    def __init__(self, bell: TaskBell, handler_name: str, round_: _Round) -> None:
        self._bell = bell
        self._handler = handler_name
        self._round = round_
        self._open = True

    @property
    def rung(self) -> bool:
        return self._round.event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a ring since this ticket was taken; True when rung."""
        if self._round.event.is_set():
            return True
        try:
            await asyncio.wait_for(self._round.event.wait(), max(seconds, 0.0))
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._bell._leave(self._handler, self._round)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TaskBell:
    """Long-polls wait on the bell of their handler name; the engine rings it when it
    creates tasks (and a cross-process listener, where the store has one, rings it for
    tasks created elsewhere). A ring wakes every current waiter of that handler.

    Only handlers somebody is waiting for take memory: a round is dropped when its
    last waiter leaves, so arbitrary handler names in polls cannot make it grow.
    After `close` (shutdown) every wait returns at once.
    """

    def __init__(self) -> None:
        self._rounds: dict[str, _Round] = {}
        self._closed = False

    def ring(self, handler_name: str) -> None:
        round_ = self._rounds.pop(handler_name, None)
        if round_ is not None:
            round_.event.set()

    def ring_all(self) -> None:
        """Wake every waiter (tasks came back to pending, or the process stops)."""
        rounds, self._rounds = self._rounds, {}
        for round_ in rounds.values():
            round_.event.set()

    def close(self) -> None:
        self._closed = True
        self.ring_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def arm(self, handler_name: str) -> Ticket:
        round_ = self._rounds.get(handler_name)
        if round_ is None:
            round_ = _Round()
            if self._closed:
                round_.event.set()
            else:
                self._rounds[handler_name] = round_
        round_.waiters += 1
        return Ticket(self, handler_name, round_)

    async def wait(self, handler_name: str, seconds: float) -> bool:
        """Wait up to `seconds` for a ring; True when rung."""
        with self.arm(handler_name) as ticket:
            return await ticket.wait(seconds)

    def _leave(self, handler_name: str, round_: _Round) -> None:
        round_.waiters -= 1
        if round_.waiters <= 0 and self._rounds.get(handler_name) is round_:
            del self._rounds[handler_name]

    def waiting(self) -> int:
        """How many handler names have waiters now (for tests and metrics)."""
        return len(self._rounds)
