"""Time and identity come in through ports so engine logic can be tested with a fake clock."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    async def sleep_until(self, instant: datetime) -> None:
        """Return once `now()` has reached `instant` (at once if it has)."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> str:
        """A fresh, globally unique id (UUID text); later ids sort after earlier ones."""
        ...
