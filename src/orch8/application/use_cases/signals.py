"""Sending signals to instances, and listing what waits for a person."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import frozen

from orch8.application.engine.bell import SignalBell
from orch8.application.errors import NotFound
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import (
    InstanceFilter,
    InstanceStore,
    Page,
    SequenceStore,
    SignalInbox,
    SnapshotStore,
)
from orch8.application.use_cases.tenancy import visible
from orch8.domain.errors import ValidationError
from orch8.domain.instance import InstanceState
from orch8.domain.sequence import StepBlock, walk
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import NodeState


@frozen
class Approval:
    """One step waiting at its `wait_for_input` gate."""

    instance_id: str
    tenant_id: str
    namespace: str
    sequence_id: str
    sequence_name: str
    block_id: str
    prompt: str
    choices: list[dict[str, str]]
    store_as: str | None
    timeout_ms: int | None
    escalation_handler: str | None
    waiting_since: Any
    metadata: dict[str, Any]


class SignalService:
    def __init__(
        self,
        sequences: SequenceStore,
        instances: InstanceStore,
        signals: SignalInbox,
        snapshots: SnapshotStore,
        clock: Clock,
        ids: IdGenerator,
        bell: SignalBell,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._sequences = sequences
        self._instances = instances
        self._signals = signals
        self._snapshots = snapshots
        self._clock = clock
        self._ids = ids
        self._bell = bell
        self._wake = wake

    async def send(
        self,
        instance_id: str,
        kind: SignalKind,
        payload: Any,
        *,
        name: str | None = None,
        caller: str | None,
    ) -> Signal:
        inst = await self._instances.get(instance_id)
        if inst is None or not visible(inst.tenant_id, caller):
            raise NotFound("instance", instance_id)
        signal = Signal(
            id=self._ids.new_id(),
            instance_id=instance_id,
            tenant_id=inst.tenant_id,
            kind=kind,
            created_at=self._clock.now(),
            payload=payload,
            name=name,
        )
        block = signal.human_input_block
        if block is not None:
            await self._check_choice(inst.sequence_id, block, payload)
        if kind is SignalKind.UPDATE_CONTEXT and not (
            isinstance(payload, dict) and isinstance(payload.get("data"), dict)
        ):
            raise ValidationError('must be {"data": {...}}', path="payload")
        await self._signals.enqueue(signal)
        self._bell.ring(instance_id)
        if self._wake is not None:
            self._wake()
        return signal

    async def _check_choice(self, sequence_id: str, block_id: str, payload: Any) -> None:
        seq = await self._sequences.get(sequence_id)
        step = None
        if seq is not None:
            step = next(
                (b for b, _ in walk(seq.blocks) if b.id == block_id and isinstance(b, StepBlock)),
                None,
            )
        if step is None or step.wait_for_input is None:
            raise ValidationError(f"block '{block_id}' does not wait for input", path="signal_type")
        value = payload.get("value") if isinstance(payload, dict) else None
        allowed = [c.value for c in step.wait_for_input.choices]
        if value not in allowed:
            raise ValidationError(f"must be one of {allowed}", path="payload.value")

    async def approvals(
        self, flt: InstanceFilter, page: Page, *, caller: str | None
    ) -> list[Approval]:
        """Steps waiting for a person, newest instances first."""
        tenant = caller if caller is not None else flt.tenant_id
        waiting = await self._instances.query(
            InstanceFilter(
                tenant_id=tenant, namespace=flt.namespace, states=(InstanceState.WAITING,)
            ),
            Page(page.offset, page.limit),
        )
        found: list[Approval] = []
        for inst in waiting:
            loaded = await self._snapshots.load(inst.id)
            seq = await self._sequences.get(inst.sequence_id)
            if loaded is None or seq is None:
                continue
            nodes = {n.block_id: n for n in loaded[1]}
            for block, _ in walk(seq.blocks):
                node = nodes.get(block.id)
                gate = block.wait_for_input if isinstance(block, StepBlock) else None
                if gate is None or node is None or node.state is not NodeState.WAITING:
                    continue
                found.append(
                    Approval(
                        instance_id=inst.id,
                        tenant_id=inst.tenant_id,
                        namespace=inst.namespace,
                        sequence_id=seq.id,
                        sequence_name=seq.name,
                        block_id=block.id,
                        prompt=gate.prompt,
                        choices=[{"label": c.label, "value": c.value} for c in gate.choices],
                        store_as=gate.store_as,
                        timeout_ms=gate.timeout_ms,
                        escalation_handler=gate.escalation_handler,
                        waiting_since=node.started_at,
                        metadata=dict(inst.metadata),
                    )
                )
        return found
