"""Cross-process news of new worker tasks, for stores that can deliver it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class TaskNotifications(Protocol):
    """A store that tells this process when any process sharing it creates tasks.

    `listen` starts delivery: from then on `callback(handler_name)` is called on the
    event loop whenever tasks of that handler are created (or handed back to
    pending) anywhere, until the store is closed. Delivery is best effort (a
    lost connection loses notifications), so waiters still re-check now and then.
    """

    async def listen(self, callback: Callable[[str], None]) -> None: ...
