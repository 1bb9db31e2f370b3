"""Sequence versions in memory: the reference behaviour of `SequenceStore`.

A version is unique by (tenant, namespace, name, version), and a sequence with
instances cannot be deleted, as the SQL schemas enforce with constraints.
"""

from __future__ import annotations

from attrs import evolve

from orch8.adapters.memory.state import MemoryState
from orch8.application.errors import Conflict
from orch8.application.ports.storage import Page, SequenceFilter, SequenceStore
from orch8.domain.sequence import Sequence


class MemorySequenceStore(SequenceStore):
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def create(self, sequence: Sequence) -> None:
        if sequence.id in self._s.sequences:
            raise Conflict(f"sequence {sequence.id} already exists")
        for other in self._s.sequences.values():
            if (other.tenant_id, other.namespace, other.name, other.version) == (
                sequence.tenant_id,
                sequence.namespace,
                sequence.name,
                sequence.version,
            ):
                raise Conflict(
                    f"sequence '{sequence.name}' version {sequence.version} already exists"
                )
        self._s.sequences[sequence.id] = sequence

    async def get(self, sequence_id: str) -> Sequence | None:
        return self._s.sequences.get(sequence_id)

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        versions = await self.versions(tenant_id, namespace, name)
        if version is not None:
            return next((s for s in versions if s.version == version), None)
        return next((s for s in versions if not s.deprecated), None)

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        found = [
            s
            for s in self._s.sequences.values()
            if (s.tenant_id, s.namespace, s.name) == (tenant_id, namespace, name)
        ]
        return sorted(found, key=lambda s: s.version, reverse=True)

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        found = [
            s
            for s in self._s.sequences.values()
            if (flt.tenant_id is None or s.tenant_id == flt.tenant_id)
            and (flt.namespace is None or s.namespace == flt.namespace)
            and (flt.name is None or s.name == flt.name)
        ]
        found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return found[page.offset : page.offset + page.limit]

    async def deprecate(self, sequence_id: str) -> bool:
        seq = self._s.sequences.get(sequence_id)
        if seq is None:
            return False
        self._s.sequences[sequence_id] = evolve(seq, deprecated=True)
        return True

    async def delete(self, sequence_id: str) -> bool:
        if sequence_id not in self._s.sequences:
            return False
        if any(i.sequence_id == sequence_id for i in self._s.instances.values()):
            raise Conflict(f"sequence {sequence_id} still has instances")
        del self._s.sequences[sequence_id]
        return True
