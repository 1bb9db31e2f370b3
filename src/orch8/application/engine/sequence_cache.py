"""Sequence versions are immutable once created, so the engine caches them by id."""

from __future__ import annotations

from collections import OrderedDict

from orch8.application.ports.storage import SequenceStore
from orch8.domain.sequence import Sequence


class SequenceCache:
    def __init__(self, store: SequenceStore, capacity: int = 1000) -> None:
        self._store = store
        self._capacity = capacity
        self._items: OrderedDict[str, Sequence] = OrderedDict()

    async def get(self, sequence_id: str) -> Sequence | None:
        found = self._items.get(sequence_id)
        if found is not None:
            self._items.move_to_end(sequence_id)
            return found
        loaded = await self._store.get(sequence_id)
        if loaded is not None:
            self._items[sequence_id] = loaded
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return loaded
