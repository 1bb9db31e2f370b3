"""`OutputStore`: the append-only log of block outputs."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Protocol

from orch8.domain.outputs import BlockOutput


class OutputStore(Protocol):
    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        """Every output row of an instance, oldest first (created_at, then write order)."""
        ...

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        """The newest successful output (output_ref None) of each named block that has one.

        What templates read as `outputs.<block_id>`: its cost depends on the
        blocks named, never on how many steps the instance has run.
        """
        ...
