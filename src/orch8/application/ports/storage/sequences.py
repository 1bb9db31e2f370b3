"""`SequenceStore`: immutable sequence versions."""

from __future__ import annotations

from typing import Protocol

from orch8.application.ports.storage.paging import Page, SequenceFilter
from orch8.domain.sequence import Sequence


class SequenceStore(Protocol):
    async def create(self, sequence: Sequence) -> None:
        """Insert a sequence version.

        Raises Conflict when the id exists, or when (tenant, namespace, name,
        version) is taken.
        """
        ...

    async def get(self, sequence_id: str) -> Sequence | None: ...

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        """The given version, or with version None the highest non-deprecated one."""
        ...

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        """Every version of a name, highest first."""
        ...

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        """Newest first (created_at, then id, descending)."""
        ...

    async def deprecate(self, sequence_id: str) -> bool:
        """Mark deprecated; False when there is no such sequence."""
        ...

    async def delete(self, sequence_id: str) -> bool:
        """Remove a sequence; False when absent. Raises Conflict if instances use it."""
        ...
