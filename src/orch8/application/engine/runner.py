"""Advancing one claimed instance: evaluate, call handlers, persist after every step.

The runner owns the instance's in-memory snapshot while it holds the claim.
Each handler result is applied, the tree re-evaluated at once (the event path:
no tick between steps), and the change written as one guarded transaction —
the step's output, the nodes that moved (this step finished, the next ones
started), the context and the instance state. Steps of parallel branches run
concurrently, up to a per-instance bound. When nothing can run the final
transition (sleep, wait, complete, fail) rides in the same write.

This module is the loop; its parts live beside it so each can be tested
alone: applying a result to the snapshot (`domain/evaluator/attempts.py`),
making an attempt (`step_call.py`), the attempts running at once
(`inflight.py`), rate-limit places (`places.py`), the guarded write
(`pending_write.py`), children (`children.py`), worker tasks
(`worker_dispatch.py`), signals (`signals.py`) and preemption
(`preemption.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any

from orch8.application.engine.bell import SignalBell
from orch8.application.engine.children import (
    cancel_children,
    child_results,
    children_to_cancel,
    start_children,
)
from orch8.application.engine.inflight import Inflight
from orch8.application.engine.pending_write import PendingWrite
from orch8.application.engine.places import RESERVATION_LEAD, PlaceQueue, PlaceWaiter
from orch8.application.engine.preemption import Preemption
from orch8.application.engine.sequence_cache import CachedSequence, SequenceCache
from orch8.application.engine.signals import Inbox
from orch8.application.engine.step_call import call_handler, make_call
from orch8.application.engine.task_bell import TaskBell
from orch8.application.engine.worker_dispatch import task_results
from orch8.application.errors import StaleWrite
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.events import ChangeFeed, InstanceChanged, NoFeed
from orch8.application.ports.handlers import StepCall
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import Storage
from orch8.domain.context_keys import CANCEL_KEY
from orch8.domain.evaluator import (
    Advance,
    Cancelled,
    ChildResult,
    Complete,
    Fail,
    RunStep,
    Snapshot,
    advance,
)
from orch8.domain.evaluator.attempts import (
    Applied,
    AttemptResult,
    Ending,
    Failed,
    Stamp,
    Succeeded,
    apply_attempt,
    apply_task_results,
    result_row,
)
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Block, StepBlock
from orch8.domain.tasks import TaskState, WorkerTask

__all__ = ["RESERVATION_LEAD", "InstanceRunner"]

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
        max_parallel_steps: int = 8,
        feed: ChangeFeed | None = None,
        bell: SignalBell | None = None,
        saturated: Callable[[], bool] = lambda: False,
        reservation_lead: timedelta = RESERVATION_LEAD,
        task_bell: TaskBell | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.storage = storage
        self.handlers = handlers
        self.clock = clock
        self.ids = ids
        self.sequences = sequences
        self.stopping = stopping
        self.max_parallel_steps = max_parallel_steps
        self.feed: ChangeFeed = feed or NoFeed()
        self.bell = bell or SignalBell()
        self.saturated = saturated
        self.task_bell = task_bell or TaskBell()
        self.metrics: Metrics = metrics or NoMetrics()
        queue = PlaceQueue(storage.rate_limits, clock)
        self.places = PlaceWaiter(queue, clock, lead=reservation_lead, metrics=self.metrics)

    async def run(self, claimed: Instance) -> None:
        """Run a claimed (already `running`) instance until it sleeps, waits, ends or
        must hand its work back."""
        loaded = await self.storage.snapshots.load(claimed.id)
        if loaded is None or loaded[0].state is not InstanceState.RUNNING:
            return
        instance, nodes = loaded
        cached = await self.sequences.get(instance.sequence_id)
        snapshot = Snapshot(instance.context, {n.block_id: n for n in nodes})
        try:
            if cached is None:
                await _Drive(self, instance, None, snapshot, {}, {}).fail("sequence not found")
                return
            latest = await self.storage.outputs.latest(instance.id, sorted(cached.reads_outputs))
            children = await child_results(self.storage.instances, self.storage.outputs, nodes)
            outputs = {k: v.output for k, v in latest.items()}
            drive = _Drive(self, instance, cached, snapshot, outputs, children)
            await drive.run(await task_results(self.storage.tasks, instance.id, nodes))
        except StaleWrite:
            _log.info("instance %s moved on elsewhere; dropping this run", instance.id)


class _Drive:
    """One run of one instance: the loop of evaluate → run → record."""

    def __init__(
        self,
        runner: InstanceRunner,
        instance: Instance,
        cached: CachedSequence | None,
        snapshot: Snapshot,
        outputs: dict[str, Any],
        children: dict[str, ChildResult],
    ) -> None:
        self.r = runner
        self.instance = instance
        self.cached = cached
        self.snapshot = snapshot
        self.pending = PendingWrite(instance, snapshot)
        self.outputs = outputs
        self.children = children
        self.inflight = Inflight(runner.max_parallel_steps)
        cancel = bool(snapshot.context.runtime.get(CANCEL_KEY))
        self.inbox = Inbox(runner.storage.signals, runner.bell, instance.id, cancel)
        self.signals = self.inbox.state
        self.steps_run = 0
        self.preemption = Preemption(
            runner.storage.instances, runner.clock, runner.saturated, instance.priority
        )

    def _advance(self) -> Advance:
        assert self.cached is not None
        adv = advance(
            self.cached.sequence,
            self.snapshot,
            self.r.clock.now(),
            instance_id=self.instance.id,
            outputs=self.outputs,
            children=self.children,
            inputs=self.signals.inputs,
            cancelling=self.signals.cancel,
            timezone=self.instance.timezone or "UTC",
        )
        self.snapshot = adv.snapshot
        if adv.outputs:
            at = self._stamp()
            self._record(*(at.row(block_id, value, 1) for block_id, value in adv.outputs))
        for block_id in adv.consumed_inputs:
            self.signals.inputs.pop(block_id, None)
            self.pending.delivered.append(self.signals.input_signal.pop(block_id))
        return adv

    async def _read_signals(self) -> bool:
        """True when a signal changed something that needs a new evaluation."""
        taken = await self.inbox.read(self.snapshot)
        if taken is None:
            return False
        self.snapshot, delivered = taken
        self.pending.delivered += delivered
        return True

    async def run(self, task_results: Mapping[str, WorkerTask]) -> None:
        """`task_results`: the tasks of steps that wait on a worker, by block id."""
        assert self.cached is not None
        await self._read_signals()
        if task_results:  # steps whose worker task ended while the instance waited
            at = self._stamp()
            applied, ended = apply_task_results(self.snapshot, self.cached.steps, task_results, at)
            self._keep(applied)
            self.steps_run += ended
            _time_workers(self.r.metrics, task_results.values())
        adv = self._advance()
        try:
            while True:
                if self.inbox.due() and await self._read_signals():
                    adv = self._advance()
                if self.signals.pause and not self.signals.cancel:
                    await self._pause()
                    return
                if adv.children and await self._start_children(adv):
                    adv = self._advance()  # a child could not start: its node failed
                    continue
                if adv.outcome is not None:
                    await self._finish(adv)
                    return
                self.inflight.cancel_stale(self.snapshot)
                if adv.run and not self.inflight and self.steps_run and await self.preemption.due():
                    # Cooperative preemption: a more urgent instance waits for a slot.
                    await self._write(InstanceState.SCHEDULED, self.r.clock.now())
                    return
                if len(adv.run) == 1 and not self.inflight and not self.r.stopping():
                    # The common sequential case: call inline, no task to schedule.
                    (step,) = adv.run
                    await self._write(InstanceState.RUNNING, None)
                    self._apply(step, await self._call(step))
                    self.steps_run += 1
                    adv = self._advance()
                    continue
                if not self.r.stopping():
                    self.inflight.launch(adv.run, self._call)
                if not self.inflight:  # no progress left in this run: sleep or wait
                    await self._write(*adv.parked(self.r.clock.now()))
                    return
                await self._write(InstanceState.RUNNING, None)
                await self._collect()
                adv = self._advance()
        finally:
            self.inflight.cancel_all()

    async def _pause(self) -> None:
        """Pause takes effect after the running steps: let them finish, record, stop."""
        while self.inflight:
            await self._collect()
        await self._write(InstanceState.PAUSED, None)

    async def fail(self, error: str) -> None:
        _log.warning("instance %s failed: %s", self.instance.id, error)
        await self._write(InstanceState.FAILED, None, wake_parent=True)

    # effects ---------------------------------------------------------------
    async def _start_children(self, adv: Advance) -> bool:
        r = self.r
        started = await start_children(
            r.storage.sequences, r.ids, self.instance, adv.children, self.snapshot, r.clock.now()
        )
        self.snapshot = started.snapshot
        self.pending.children += started.children
        return started.refused

    async def _call(self, step: RunStep) -> AttemptResult:
        block, instance, r = step.block, self.instance, self.r
        if block.rate_limit_key is not None:
            node = self.snapshot.nodes.get(block.id)
            held = None if node is None else node.reserved_at
            deferred = await r.places.take(instance, block, held)
            if deferred is not None:
                return deferred
        # Read after the wait for a place: the context as the steps done meanwhile left it.
        context = self.snapshot.context
        call = make_call(r.handlers, r.ids, instance, step, context, self.outputs, r.clock.now())
        if not isinstance(call, StepCall):  # params did not render, or a worker's step
            return call
        started = perf_counter()
        result = await call_handler(r.handlers, call, timeout_ms=block.timeout_ms)
        r.metrics.handler_ran(call.handler, perf_counter() - started)
        return result

    async def _collect(self) -> None:
        """Wait for a running step to finish — or for a signal (checked at least every
        second), so that a cancel or pause is seen while long steps run."""
        for step, result in await self.inflight.finished(self.inbox.wait()):
            self._apply(step, result)

    def _stamp(self) -> Stamp:
        return Stamp(self.instance.id, self.r.clock.now(), self.r.ids.new_id)

    def _apply(self, step: RunStep, result: AttemptResult) -> None:
        at = Stamp(self.instance.id, self.r.clock.now(), self.r.ids.new_id)
        self._keep(apply_attempt(self.snapshot, step, result, at))

    def _keep(self, applied: Applied) -> None:
        self.snapshot = applied.snapshot
        for ending in applied.ends:
            self.r.metrics.attempt_ended(ending)
        self._record(*applied.rows)
        if applied.task is not None:
            self.pending.tasks.append(applied.task)

    def _record(self, *rows: BlockOutput) -> None:
        for row in rows:
            self.pending.rows.append(row)
            if row.output_ref is None:
                self.outputs[row.block_id] = row.output

    # writes ----------------------------------------------------------------
    async def _finish(self, adv: Advance) -> None:
        self.inflight.cancel_all()
        outcome = adv.outcome
        if isinstance(outcome, Complete):
            await self._write(InstanceState.COMPLETED, None, wake_parent=True)
            return
        assert self.cached is not None
        sequence = self.cached.sequence
        if isinstance(outcome, Cancelled):
            await self._cleanup(sequence.on_cancel)
            children = children_to_cancel(self.snapshot, self.pending.committed)
            await self._write(InstanceState.CANCELLED, None, wake_parent=True)
            r = self.r
            await cancel_children(
                r.storage.signals, r.ids, r.clock, r.bell, self.instance.tenant_id, children
            )
            return
        assert isinstance(outcome, Fail)
        _log.info("instance %s failed at %s: %s", self.instance.id, outcome.block_id, outcome.error)
        await self._cleanup(sequence.on_failure)
        await self._write(InstanceState.FAILED, None, wake_parent=True)

    async def _cleanup(self, blocks: tuple[Block, ...] | None) -> None:
        """on_failure / on_cancel: each top-level step once, best effort, recorded in the
        instance's final write."""
        for block in blocks or ():
            if isinstance(block, StepBlock):
                result = await self._call(RunStep(block, 1))
                if isinstance(result, Succeeded | Failed):  # made once, never retried
                    ending = Ending.SUCCEEDED if isinstance(result, Succeeded) else Ending.FAILED
                    self.r.metrics.attempt_ended(ending)
                row = result_row(result, block.id, 1, self._stamp())
                if row is not None:
                    self._record(row)

    async def _write(
        self, state: InstanceState, next_fire_at: datetime | None, *, wake_parent: bool = False
    ) -> None:
        r, snapshot = self.r, self.snapshot
        write = self.pending.build(
            snapshot, state, next_fire_at, r.clock.now(), wake_parent=wake_parent
        )
        if write is None:
            return
        abandoned = self.pending.abandoned(write)
        await r.storage.snapshots.commit(write)
        self.pending.committed_as(snapshot)
        if write.delivered_signals:
            r.metrics.signals_delivered(len(write.delivered_signals))
        if state is InstanceState.COMPLETED:
            r.metrics.instance_completed()
        elif state is InstanceState.FAILED:
            r.metrics.instance_failed()
        for handler in {t.handler_name for t in write.tasks}:
            r.task_bell.ring(handler)
        if abandoned:
            await r.storage.tasks.cancel_open(self.instance.id, abandoned, r.clock.now())
        r.feed.publish(InstanceChanged(self.instance.id, state, write.outputs))


def _time_workers(metrics: Metrics, tasks: Iterable[WorkerTask]) -> None:
    """A worker's step takes from its claim to its report (as the worker reported it)."""
    for task in tasks:
        if task.state in _REPORTED and task.claimed_at is not None and task.completed_at:
            seconds = (task.completed_at - task.claimed_at).total_seconds()
            metrics.handler_ran(task.handler_name, max(seconds, 0.0))


_REPORTED = (TaskState.COMPLETED, TaskState.FAILED)
