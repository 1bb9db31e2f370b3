"""Sequence versions are immutable once created, so the engine caches them by id,
together with the output ids their templates and expressions read."""

from __future__ import annotations

from collections import OrderedDict

from attrs import frozen

from orch8.application.ports.storage import SequenceStore
from orch8.domain.references import referenced_outputs
from orch8.domain.sequence import Block, Sequence, StepBlock, walk


@frozen
class CachedSequence:
    sequence: Sequence
    reads_outputs: frozenset[str]
    steps: dict[str, StepBlock]

    @staticmethod
    def of(sequence: Sequence) -> CachedSequence:
        blocks: list[Block] = [b for b, _ in walk(sequence.blocks)]
        return CachedSequence(
            sequence,
            referenced_outputs(sequence),
            {b.id: b for b in blocks if isinstance(b, StepBlock)},
        )


class SequenceCache:
    def __init__(self, store: SequenceStore, capacity: int = 1000) -> None:
        self._store = store
        self._capacity = capacity
        self._items: OrderedDict[str, CachedSequence] = OrderedDict()

    async def get(self, sequence_id: str) -> CachedSequence | None:
        found = self._items.get(sequence_id)
        if found is not None:
            self._items.move_to_end(sequence_id)
            return found
        loaded = await self._store.get(sequence_id)
        if loaded is None:
            return None
        cached = CachedSequence.of(loaded)
        self._items[sequence_id] = cached
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return cached
