"""The two flags every part of the engine shares.

`wake` is set when something became due now (a new instance, a freed slot, a
finished worker task): the scheduler loop ticks at once instead of at its next
interval. `stop` is set while the engine is stopping: runners hand their work
back at the next step boundary. The composition root builds one `EngineFlags`
per process and hands it to the engine, its runner and the use cases that make
work due, so none of them needs a reference to the engine itself.
"""

from __future__ import annotations

import asyncio

from attrs import Factory, define


@define
class EngineFlags:
    wake: asyncio.Event = Factory(asyncio.Event)
    stop: asyncio.Event = Factory(asyncio.Event)

    def nudge(self) -> None:
        self.wake.set()

    def stopping(self) -> bool:
        return self.stop.is_set()
