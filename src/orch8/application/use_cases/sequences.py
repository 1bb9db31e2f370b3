"""Registering, finding and retiring sequence versions."""

from __future__ import annotations

from attrs import frozen

from orch8.application.commands import NewSequence
from orch8.application.errors import NotFound
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import Page, SequenceFilter, SequenceStore
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.errors import ValidationError
from orch8.domain.sequence import Sequence
from orch8.domain.validation import validate_blocks


@frozen
class SequencePage:
    items: list[Sequence]
    has_more: bool


class SequenceCatalog:
    """Every sequence use case; they share the same three collaborators."""

    def __init__(self, sequences: SequenceStore, clock: Clock, ids: IdGenerator) -> None:
        self._sequences = sequences
        self._clock = clock
        self._ids = ids

    async def create(self, cmd: NewSequence, *, caller: str | None) -> Sequence:
        tenant = effective_tenant(cmd.tenant_id, caller, default=None)
        cleanup = tuple(t for t in (cmd.on_failure, cmd.on_cancel) if t is not None)
        validate_blocks(cmd.blocks, cleanup=cleanup)
        version = cmd.version
        if version is None:
            existing = await self._sequences.versions(tenant, cmd.namespace, cmd.name)
            version = existing[0].version + 1 if existing else 1
        elif version <= 0:
            raise ValidationError("must be positive", path="version")
        sequence = Sequence(
            id=cmd.id or self._ids.new_id(),
            tenant_id=tenant,
            namespace=cmd.namespace,
            name=cmd.name,
            version=version,
            blocks=cmd.blocks,
            created_at=cmd.created_at or self._clock.now(),
            deprecated=cmd.deprecated,
            input_schema=cmd.input_schema,
            on_failure=cmd.on_failure,
            on_cancel=cmd.on_cancel,
        )
        await self._sequences.create(sequence)
        return sequence

    async def get(self, sequence_id: str, *, caller: str | None) -> Sequence:
        seq = await self._sequences.get(sequence_id)
        if seq is None or not visible(seq.tenant_id, caller):
            raise NotFound("sequence", sequence_id)
        return seq

    async def by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None, *, caller: str | None
    ) -> Sequence:
        if not visible(tenant_id, caller):
            raise NotFound("sequence", name)
        seq = await self._sequences.get_by_name(tenant_id, namespace, name, version)
        if seq is None:
            raise NotFound("sequence", name if version is None else f"{name} v{version}")
        return seq

    async def versions(
        self, tenant_id: str, namespace: str, name: str, *, caller: str | None
    ) -> list[Sequence]:
        if not visible(tenant_id, caller):
            return []
        return await self._sequences.versions(tenant_id, namespace, name)

    async def query(self, flt: SequenceFilter, page: Page, *, caller: str | None) -> SequencePage:
        if caller is not None:
            if flt.tenant_id not in (None, caller):
                return SequencePage([], has_more=False)
            flt = SequenceFilter(tenant_id=caller, namespace=flt.namespace, name=flt.name)
        found = await self._sequences.query(flt, Page(page.offset, page.limit + 1))
        return SequencePage(found[: page.limit], has_more=len(found) > page.limit)

    async def deprecate(self, sequence_id: str, *, caller: str | None) -> Sequence:
        await self.get(sequence_id, caller=caller)
        await self._sequences.deprecate(sequence_id)
        return await self.get(sequence_id, caller=caller)

    async def delete(self, sequence_id: str, *, caller: str | None) -> None:
        await self.get(sequence_id, caller=caller)
        if not await self._sequences.delete(sequence_id):
            raise NotFound("sequence", sequence_id)
