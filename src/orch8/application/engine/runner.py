"""Advancing one claimed instance: evaluate, call handlers, persist after every step.

Each step costs one storage write: the step's output, the node changes (this
step finished, the next one started), the context and the instance state land
in one guarded transaction. When the next decision is not another step (sleep,
complete, fail), that transition rides in the same write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from orch8.application.engine.sequence_cache import SequenceCache
from orch8.application.engine.step_call import Failed, Succeeded, call_handler
from orch8.application.errors import StaleWrite
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.handlers import StepCall
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.domain.evaluator import (
    Advance,
    Complete,
    Fail,
    RunStep,
    Sleep,
    Snapshot,
    advance,
    step_failed,
    step_succeeded,
)
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import ERROR_REF, BlockOutput
from orch8.domain.sequence import Sequence

_log = logging.getLogger("orch8.engine")


class InstanceRunner:
    def __init__(
        self,
        storage: Storage,
        handlers: HandlerRegistry,
        clock: Clock,
        ids: IdGenerator,
        sequences: SequenceCache,
        *,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._storage = storage
        self._handlers = handlers
        self._clock = clock
        self._ids = ids
        self._sequences = sequences
        self._stopping = stopping

    async def run(self, claimed: Instance) -> None:
        """Run a claimed (already `running`) instance until it sleeps, ends or must yield."""
        loaded = await self._storage.snapshots.load(claimed.id)
        if loaded is None:
            return
        instance, nodes = loaded
        if instance.state is not InstanceState.RUNNING:
            return
        sequence = await self._sequences.get(instance.sequence_id)
        if sequence is None:
            await self._write(
                instance,
                Snapshot(instance.context),
                Snapshot(instance.context),
                InstanceState.FAILED,
                [],
            )
            return
        try:
            await self._drive(
                sequence, instance, Snapshot(instance.context, {n.block_id: n for n in nodes})
            )
        except StaleWrite:
            _log.info("instance %s moved on elsewhere; dropping this run", instance.id)

    async def _drive(self, sequence: Sequence, instance: Instance, loaded: Snapshot) -> None:
        committed = loaded
        outputs: list[BlockOutput] = []
        adv = advance(sequence, loaded, self._clock.now(), instance_id=instance.id)
        while isinstance(adv.decision, RunStep):
            snapshot, outputs = await self._run_step(sequence, instance, adv)
            adv = advance(sequence, snapshot, self._clock.now(), instance_id=instance.id)
            if not isinstance(adv.decision, RunStep):
                break
            if self._stopping():
                # Shutting down: record the finished step, hand the rest back.
                await self._write(
                    instance, committed, snapshot, InstanceState.SCHEDULED, outputs, fire_now=True
                )
                return
            await self._write(instance, committed, adv.snapshot, InstanceState.RUNNING, outputs)
            committed = adv.snapshot
            outputs = []
        await self._settle(instance, committed, adv, outputs)

    async def _settle(
        self, instance: Instance, committed: Snapshot, adv: Advance, outputs: list[BlockOutput]
    ) -> None:
        decision = adv.decision
        if isinstance(decision, Sleep):
            await self._write(
                instance,
                committed,
                adv.snapshot,
                InstanceState.SCHEDULED,
                outputs,
                fire_at=decision,
            )
        elif isinstance(decision, Complete):
            await self._write(instance, committed, adv.snapshot, InstanceState.COMPLETED, outputs)
        elif isinstance(decision, Fail):
            _log.info(
                "instance %s failed at %s: %s", instance.id, decision.block_id, decision.error
            )
            await self._write(instance, committed, adv.snapshot, InstanceState.FAILED, outputs)

    async def _run_step(
        self, sequence: Sequence, instance: Instance, adv: Advance
    ) -> tuple[Snapshot, list[BlockOutput]]:
        assert isinstance(adv.decision, RunStep)
        step, attempt = adv.decision.block, adv.decision.attempt
        snapshot = adv.snapshot
        call = StepCall(
            instance_id=instance.id,
            tenant_id=instance.tenant_id,
            block_id=step.id,
            handler=step.handler,
            params=step.params,
            context=snapshot.context,
            attempt=attempt,
        )
        outcome = await call_handler(self._handlers, call, timeout_ms=step.timeout_ms)
        now = self._clock.now()
        if isinstance(outcome, Succeeded):
            out = BlockOutput(
                id=self._ids.new_id(),
                instance_id=instance.id,
                block_id=step.id,
                output=outcome.output,
                attempt=attempt,
                created_at=now,
                output_size=outcome.size,
            )
            return step_succeeded(sequence, snapshot, step.id, now), [out]
        assert isinstance(outcome, Failed)
        error = {"error": outcome.message, "retryable": outcome.retryable}
        out = BlockOutput(
            id=self._ids.new_id(),
            instance_id=instance.id,
            block_id=step.id,
            output=error,
            attempt=attempt,
            created_at=now,
            output_ref=ERROR_REF,
        )
        after = step_failed(
            sequence, snapshot, step.id, outcome.message, retryable=outcome.retryable, now=now
        )
        return after, [out]

    async def _write(
        self,
        instance: Instance,
        committed: Snapshot,
        snapshot: Snapshot,
        state: InstanceState,
        outputs: list[BlockOutput],
        *,
        fire_at: Sleep | None = None,
        fire_now: bool = False,
    ) -> None:
        now = self._clock.now()
        next_fire = fire_at.until if fire_at is not None else (now if fire_now else None)
        await self._storage.snapshots.commit(
            SnapshotWrite(
                instance_id=instance.id,
                expected_state=InstanceState.RUNNING,
                state=state,
                next_fire_at=next_fire,
                updated_at=now,
                context=snapshot.context if snapshot.context != committed.context else None,
                nodes=snapshot.changed_nodes(committed),
                outputs=tuple(outputs),
            )
        )
