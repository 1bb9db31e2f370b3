"""In-process notifications of instance changes (for live streams and quick wake-ups)."""

from __future__ import annotations

from typing import Protocol

from attrs import frozen

from orch8.domain.instance import InstanceState
from orch8.domain.outputs import BlockOutput


@frozen
class InstanceChanged:
    """What one committed write did to an instance: its new state and the outputs added."""

    instance_id: str
    state: InstanceState
    outputs: tuple[BlockOutput, ...] = ()


class ChangeFeed(Protocol):
    def publish(self, change: InstanceChanged) -> None:
        """Announce a committed change; must not block or raise (fire and forget).

        Only changes made by this process are announced: readers that must also see
        other processes' changes poll storage as well.
        """
        ...


class NoFeed(ChangeFeed):
    def publish(self, change: InstanceChanged) -> None:
        return None
