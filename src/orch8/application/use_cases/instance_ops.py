"""Operating on instances from outside: batch start, state and context changes,
retry from the dead-letter queue, and bulk changes by filter.

Every single-instance operation reads the instance tenant-scoped (another
tenant's instance is absent), validates against the lifecycle, and writes with
a guard on the state it validated against: a concurrent change (the engine
finishing a step, another operator) makes the write stale instead of being
overwritten, and the operation is validated again against the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from attrs import evolve

from orch8.application.commands import NewInstance
from orch8.application.errors import Conflict, NotFound, StaleWrite, UnstorableValue
from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import (
    InstanceFilter,
    InstanceStore,
    Page,
    SequenceStore,
    SnapshotStore,
    SnapshotWrite,
)
from orch8.application.use_cases.instances import InstanceService, check_context_size
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.context import ExecutionContext
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState, check_transition
from orch8.domain.retry import retry_nodes

MAX_BATCH = 10_000
# Instances inserted per transaction by a batch create.
BATCH_CHUNK = 1_000
# A bulk reschedule moves fire times by at most about a century either way.
MAX_OFFSET_SECONDS = 100 * 366 * 24 * 3600
# Validate-then-write rounds before a contended instance is reported as a conflict.
_ATTEMPTS = 3


class InstanceOps:
    """`wake` is called when an operation made instances due now (the engine's
    nudge), so they run without waiting for the next tick."""

    def __init__(
        self,
        sequences: SequenceStore,
        instances: InstanceStore,
        snapshots: SnapshotStore,
        creator: InstanceService,
        clock: Clock,
        wake: Callable[[], None] | None = None,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.max_batch = max_batch
        self._sequences = sequences
        self._instances = instances
        self._snapshots = snapshots
        self._clock = clock
        self._creator = creator
        self._wake = wake

    def _nudge(self) -> None:
        if self._wake is not None:
            self._wake()

    async def _visible(self, instance_id: str, caller: str | None) -> Instance:
        inst = await self._instances.get(instance_id)
        if inst is None or not visible(inst.tenant_id, caller):
            raise NotFound("instance", instance_id)
        return inst

    # batch ---------------------------------------------------------------------
    async def create_batch(self, cmds: list[NewInstance], *, caller: str | None) -> int:
        """Start up to `max_batch` instances, BATCH_CHUNK per transaction, after
        validating them all; returns how many were created (requests answered by
        an existing instance through their idempotency key are not counted)."""
        if len(cmds) > self.max_batch:
            raise ValidationError(
                f"batch size must not exceed {self.max_batch:,}", path="instances"
            )
        if not cmds:
            return 0
        started = await self._creator.create_many(cmds, caller=caller, chunk_size=BATCH_CHUNK)
        self._nudge()
        return sum(not s.deduplicated for s in started)

    # single instance -----------------------------------------------------------
    async def set_state(
        self,
        instance_id: str,
        target: InstanceState,
        next_fire_at: datetime | None,
        *,
        caller: str | None,
    ) -> Instance:
        """Move an instance along the lifecycle (InvalidTransition otherwise).

        Without `next_fire_at`, `scheduled` means due now and other targets
        clear the fire time. failed -> scheduled is a retry (see `retry`).
        """
        for _ in range(_ATTEMPTS):
            inst = await self._visible(instance_id, caller)
            if inst.state is InstanceState.FAILED and target is InstanceState.SCHEDULED:
                return await self.retry(instance_id, caller=caller)
            check_transition(inst.state, target)
            now = self._clock.now()
            fire = next_fire_at
            if fire is None and target is InstanceState.SCHEDULED:
                fire = now
            try:
                await self._instances.update_state(inst.id, inst.state, target, fire, now)
            except StaleWrite:
                continue
            if target is InstanceState.SCHEDULED:
                self._nudge()
            return evolve(inst, state=target, next_fire_at=fire, updated_at=now)
        raise Conflict(f"instance {instance_id} keeps changing state; try again")

    async def replace_context(
        self, instance_id: str, context: ExecutionContext, *, caller: str | None
    ) -> None:
        """Replace the whole context, as Orch8 does. Refused (Conflict) while the
        instance runs: the engine would overwrite it with its next step."""
        await self._visible(instance_id, caller)
        check_context_size(context, self._creator.max_context_bytes, "context")
        try:
            await self._instances.replace_context(instance_id, context, self._clock.now())
        except UnstorableValue as exc:  # e.g. a NUL character in PostgreSQL text
            raise ValidationError(str(exc), path="context") from None
        except StaleWrite:
            raise Conflict(
                f"instance {instance_id} is running; its context can change through an "
                "update_context signal, or once it is not running"
            ) from None

    async def retry(self, instance_id: str, *, caller: str | None) -> Instance:
        """failed -> scheduled (due now), with the failed part of the execution tree
        made runnable again, in one write guarded on `failed`."""
        loaded = await self._snapshots.load(instance_id)
        if loaded is None or not visible(loaded[0].tenant_id, caller):
            raise NotFound("instance", instance_id)
        inst, nodes = loaded
        if inst.state is not InstanceState.FAILED:
            raise ValidationError(
                f"can only retry failed instances, current state: {inst.state.value}",
                path="state",
            )
        seq = await self._sequences.get(inst.sequence_id)
        updates = retry_nodes(seq, {n.block_id: n for n in nodes}) if seq is not None else ()
        now = self._clock.now()
        try:
            await self._snapshots.commit(
                SnapshotWrite(
                    instance_id=inst.id,
                    expected_state=InstanceState.FAILED,
                    state=InstanceState.SCHEDULED,
                    next_fire_at=now,
                    updated_at=now,
                    nodes=updates,
                )
            )
        except StaleWrite:
            raise Conflict(f"instance {instance_id} changed while being retried") from None
        self._nudge()
        return evolve(inst, state=InstanceState.SCHEDULED, next_fire_at=now, updated_at=now)

    # many instances ------------------------------------------------------------
    async def dead_letters(
        self, flt: InstanceFilter, page: Page, *, caller: str | None
    ) -> list[Instance]:
        """The failed instances (the dead-letter queue), newest first."""
        found = await self._creator.query(
            evolve(flt, states=(InstanceState.FAILED,)), page, caller=caller
        )
        return found.items

    async def bulk_set_state(
        self, flt: InstanceFilter, target: InstanceState, *, caller: str | None
    ) -> int:
        """Move every matching instance the lifecycle lets reach `target` (failed
        ones excepted: retry them one by one); returns how many moved."""
        scoped = self._bulk_filter(flt, caller)
        moved = await self._instances.bulk_update_state(scoped, target, self._clock.now())
        if moved and target is InstanceState.SCHEDULED:
            self._nudge()
        return moved

    async def bulk_reschedule(
        self, flt: InstanceFilter, offset_seconds: int, *, caller: str | None
    ) -> int:
        """Shift the fire time of every matching scheduled or paused instance."""
        if abs(offset_seconds) > MAX_OFFSET_SECONDS:
            raise ValidationError(
                f"must be within ±{MAX_OFFSET_SECONDS} seconds", path="offset_secs"
            )
        scoped = self._bulk_filter(flt, caller)
        moved = await self._instances.bulk_reschedule(scoped, offset_seconds, self._clock.now())
        if moved and offset_seconds < 0:
            self._nudge()
        return moved

    @staticmethod
    def _bulk_filter(flt: InstanceFilter, caller: str | None) -> InstanceFilter:
        """Bulk changes are always tenant-scoped, as Orch8 requires."""
        try:
            tenant = effective_tenant(flt.tenant_id, caller, default=None)
        except ValidationError:
            raise ValidationError(
                "bulk operations require a tenant_id (or an x-tenant-id header)",
                path="filter.tenant_id",
            ) from None
        return evolve(flt, tenant_id=tenant)
