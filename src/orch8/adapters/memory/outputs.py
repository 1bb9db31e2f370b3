"""Block outputs in memory: the reference behaviour of `OutputStore`.

Outputs are appended by snapshot commits; this store only reads them.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

from orch8.adapters.memory.state import MemoryState
from orch8.application.ports.storage import OutputStore
from orch8.domain.outputs import BlockOutput


class MemoryOutputStore(OutputStore):
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return sorted(self._s.outputs.get(instance_id, []), key=lambda o: o.created_at)

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        wanted = set(block_ids)
        found: dict[str, BlockOutput] = {}
        for out in await self.list_for_instance(instance_id):
            if out.block_id in wanted and out.output_ref is None:
                found[out.block_id] = out
        return found
