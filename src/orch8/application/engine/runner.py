"""Advancing one claimed instance: evaluate, call handlers, persist after every step.

The runner owns the instance's in-memory snapshot while it holds the claim.
Each handler result is applied, the tree re-evaluated at once (the event path:
no tick between steps), and the change written as one guarded transaction —
the step's output, the nodes that moved (this step finished, the next ones
started), the context and the instance state. Steps of parallel branches run
concurrently, up to a per-instance bound. When nothing can run the final
transition (sleep, wait, complete, fail) rides in the same write.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import evolve, frozen

from orch8.application.engine.bell import SignalBell
from orch8.application.engine.children import build_child, child_results, with_ref
from orch8.application.engine.places import PlaceQueue
from orch8.application.engine.sequence_cache import CachedSequence, SequenceCache
from orch8.application.engine.signals import CANCEL_KEY, SignalState, absorb
from orch8.application.engine.step_call import Failed, Outcome, Succeeded, call_handler
from orch8.application.engine.task_bell import TaskBell
from orch8.application.errors import InstanceTerminal, NotFound, StaleWrite
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.events import ChangeFeed, InstanceChanged, NoFeed
from orch8.application.ports.handlers import DELETE, StepCall
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.domain.errors import DomainError
from orch8.domain.evaluator import (
    Advance,
    Cancelled,
    ChildResult,
    Complete,
    Fail,
    RunStep,
    Snapshot,
    advance,
    step_deferred,
    step_failed,
    step_succeeded,
)
from orch8.domain.evaluator.walk import scope_for
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import ERROR_REF, BlockOutput
from orch8.domain.sequence import Block, StepBlock
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tasks import TaskState, WorkerTask
from orch8.domain.templates import render
from orch8.domain.tree import Node, NodeState

_log = logging.getLogger("orch8.engine")

# How often a running instance looks for signals sent through another process.
SIGNAL_POLL_S = 1.0
# A step whose rate-limit place is further off than this (at least; the engine
# makes it five scheduler ticks when that is more) hands its instance back and
# is woken this much before the place, then waits in-process for the exact
# instant; nearer places are awaited in-process straight away.
RESERVATION_LEAD = timedelta(milliseconds=500)
# The most a wait for a rate-limit place starts early to make up for this
# process's lateness in waking.
MAX_WAKE_EARLY = timedelta(seconds=1)
# How often a running instance may ask whether a more urgent one waits for its slot.
PREEMPT_CHECK_S = 0.05


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
        self.places = PlaceQueue(storage.rate_limits, clock)
        self.reservation_lead = reservation_lead
        self.wake_early = timedelta(0)

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
            children = await child_results(self.storage, nodes)
            outputs = {k: v.output for k, v in latest.items()}
            drive = _Drive(self, instance, cached, snapshot, outputs, children)
            external = [n.block_id for n in nodes if _waits_on_task(n)]
            if external:
                drive.task_results = await self.storage.tasks.results(instance.id, external)
            await drive.run()
        except StaleWrite:
            _log.info("instance %s moved on elsewhere; dropping this run", instance.id)


STATE_KEY = "state"


def _waits_on_task(node: Node) -> bool:
    return node.state is NodeState.WAITING and node.block_type == "step" and node.ref is not None


@frozen
class Dispatched:
    """The step's handler lives in an external worker: this task was created for it."""

    task: WorkerTask


def _lateness(estimate: timedelta, seen: timedelta) -> timedelta:
    return min(max(estimate * 0.9, seen), MAX_WAKE_EARLY)


@frozen
class Deferred:
    """An attempt not made yet: the step's rate-limit place is at `reserved_at`, and
    its instance is handed back until `until`, a little before it."""

    until: datetime
    reserved_at: datetime | None = None


def apply_changes(
    snapshot: Snapshot, data: Mapping[str, Any] | None, state: Mapping[str, Any] | None
) -> Snapshot:
    """Merge a handler's context changes: `data` into context.data, `state` into the
    per-instance key-value state kept at context.runtime["state"]."""
    if not data and not state:
        return snapshot
    ctx = snapshot.context
    if data:
        ctx = evolve(ctx, data={**ctx.data, **data})
    if state:
        current = dict(ctx.runtime.get(STATE_KEY) or {})
        for key, value in state.items():
            if value is DELETE:
                current.pop(key, None)
            else:
                current[key] = value
        ctx = evolve(ctx, runtime={**ctx.runtime, STATE_KEY: current})
    return evolve(snapshot, context=ctx)


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
        self.committed = snapshot
        self.outputs = outputs
        self.children = children
        self.rows: list[BlockOutput] = []
        self.new_children: list[Instance] = []
        self.inflight: dict[
            asyncio.Task[Outcome | Deferred | Dispatched], tuple[RunStep, dict[str, Any]]
        ] = {}
        self.signals = SignalState(cancel=bool(snapshot.context.runtime.get(CANCEL_KEY)))
        self.checked_at = 0.0
        self.steps_run = 0
        self.preempt_checked_at = 0.0
        self.task_results: dict[str, WorkerTask] = {}
        self.new_tasks: list[WorkerTask] = []

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
        for block_id, value in adv.outputs:
            self._record(block_id, value, attempt=1)
        for block_id in adv.consumed_inputs:
            self.signals.inputs.pop(block_id, None)
            self.signals.delivered.append(self.signals.input_signal.pop(block_id))
        return adv

    async def _check_signals(self, *, force: bool = False) -> bool:
        """Read the inbox at start, when this process was told of a signal, and at least
        every SIGNAL_POLL_S while running (a signal sent through another process).
        True when something changed that needs a new evaluation."""
        now = asyncio.get_running_loop().time()
        rung = self.r.bell.take(self.instance.id)
        if not (force or rung or now - self.checked_at >= SIGNAL_POLL_S):
            return False
        self.checked_at = now
        pending = await self.r.storage.signals.pending(self.instance.id)
        if not pending:
            return False
        before = (len(self.signals.delivered), len(self.signals.inputs), self.signals.cancel)
        absorb(self.signals, pending, self.snapshot)
        if self.signals.data:
            self.snapshot = apply_changes(self.snapshot, self.signals.data, None)
            self.signals.data = {}
        if self.signals.cancel and not self.snapshot.context.runtime.get(CANCEL_KEY):
            ctx = self.snapshot.context
            self.snapshot = evolve(
                self.snapshot, context=evolve(ctx, runtime={**ctx.runtime, CANCEL_KEY: True})
            )
        return before != (
            len(self.signals.delivered),
            len(self.signals.inputs),
            self.signals.cancel,
        )

    def _apply_task_results(self) -> None:
        """Steps whose worker task ended while the instance waited: record how."""
        assert self.cached is not None
        for block_id, task in self.task_results.items():
            node = self.snapshot.nodes.get(block_id)
            block = self.cached.steps.get(block_id)
            if node is None or block is None or not _waits_on_task(node) or node.ref != task.id:
                continue
            if not task.state.is_final or task.state is TaskState.CANCELLED:
                continue
            self.snapshot = self.snapshot.with_node(evolve(node, state=NodeState.RUNNING))
            step = RunStep(block, node.attempts)
            if task.state is TaskState.COMPLETED:
                data = task.output if isinstance(task.output, Mapping) else None
                size = len(json.dumps(task.output))
                self._apply(step, Succeeded(task.output, size, data=data))
            else:
                message = task.error_message or "worker reported a failure"
                self._apply(step, Failed(message, bool(task.error_retryable)))
            self.steps_run += 1
        self.task_results = {}

    async def run(self) -> None:
        await self._check_signals(force=True)
        self._apply_task_results()
        adv = self._advance()
        try:
            while True:
                if await self._check_signals():
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
                self._cancel_stale()
                if adv.run and not self.inflight and await self._should_yield():
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
                    self._launch(adv.run)
                if not self.inflight:
                    await self._park(adv)
                    return
                await self._write(InstanceState.RUNNING, None)
                await self._collect()
                adv = self._advance()
        finally:
            for task in self.inflight:
                task.cancel()

    async def _should_yield(self) -> bool:
        """After a step, with every slot taken, hand the claim back if a higher-priority
        instance is due (asked at most every PREEMPT_CHECK_S)."""
        if self.steps_run == 0 or not self.r.saturated():
            return False
        now = asyncio.get_running_loop().time()
        if now - self.preempt_checked_at < PREEMPT_CHECK_S:
            return False
        self.preempt_checked_at = now
        return await self.r.storage.instances.has_due_higher_priority(
            self.instance.priority, self.r.clock.now()
        )

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
        now = self.r.clock.now()
        refused = False
        for start in adv.children:
            built = await build_child(self.r.storage, self.r.ids, self.instance, start, now)
            node = self.snapshot.nodes[start.block.id]
            if isinstance(built, str):
                failed = evolve(node, state=NodeState.FAILED, error=built, completed_at=now)
                self.snapshot = self.snapshot.with_node(failed)
                refused = True
            else:
                self.new_children.append(built)
                self.snapshot = self.snapshot.with_node(with_ref(node, built.id))
        return refused

    def _cancel_stale(self) -> None:
        """Stop handler calls whose node was cancelled (a race lost, a branch failed)."""
        for task, (step, _) in self.inflight.items():
            node = self.snapshot.nodes.get(step.block.id)
            if node is None or node.state is not NodeState.RUNNING or node.attempts != step.attempt:
                task.cancel()

    def _launch(self, steps: tuple[RunStep, ...]) -> None:
        busy = {(s.block.id, s.attempt) for s, _ in self.inflight.values()}
        for step in steps:
            if len(self.inflight) >= self.r.max_parallel_steps:
                return
            if (step.block.id, step.attempt) in busy:
                continue
            task = asyncio.create_task(self._call(step))
            self.inflight[task] = (step, {})

    async def _call(self, step: RunStep) -> Outcome | Deferred | Dispatched:
        key = step.block.rate_limit_key
        if key is not None:
            deferred = await self._take_place(step, key)
            if deferred is not None:
                return deferred
        now = self.r.clock.now()
        scope = scope_for(
            self.snapshot.context, self.outputs, step.locals, instance_id=self.instance.id, now=now
        )
        try:
            params = render(dict(step.block.params), scope)
        except DomainError as exc:
            return Failed(f"params: {exc}", retryable=False)
        if self.r.handlers.get(step.block.handler) is None:
            return Dispatched(self._task_for(step, params, now))
        call = StepCall(
            instance_id=self.instance.id,
            tenant_id=self.instance.tenant_id,
            block_id=step.block.id,
            handler=step.block.handler,
            params=params,
            context=self.snapshot.context,
            attempt=step.attempt,
        )
        return await call_handler(self.r.handlers, call, timeout_ms=step.block.timeout_ms)

    async def _take_place(self, step: RunStep, key: str) -> Deferred | None:
        """Wait for the step's place under its rate limit (None: start now), or defer
        the step to just before a place that is far off.

        The place is asked for once and kept on the node while the instance is
        handed back, so the step is counted once however long it waits. A place
        missed by more than its grace (the process was down, or too busy to
        wake in time) is lost: starting then could crowd the window, so the
        step asks for a new one. Waits make up for the lateness this process's
        wake-ups have shown (`_wait_for`), so a process that is steadily slow to
        wake still starts its steps in time.
        """
        node = self.snapshot.nodes.get(step.block.id)
        held = None if node is None else node.reserved_at
        tenant = self.instance.tenant_id
        while True:
            place = await self.r.places.ask(tenant, key, held)
            if place is None:
                return None
            if held is not None and place.fresh:
                _log.info(
                    "step %s of %s missed its rate-limit place at %s; its new place is at %s",
                    step.block.id,
                    self.instance.id,
                    held.isoformat(),
                    place.at.isoformat(),
                )
            lead = self.r.reservation_lead
            if place.at - self.r.clock.now() > lead:
                return Deferred(place.at - lead, reserved_at=place.at)
            await self._wait_for(place.at)
            if not place.lapsed(self.r.clock.now()):
                return None
            held = place.at  # too late to start: the next ask gives a new place

    async def _wait_for(self, instant: datetime) -> None:
        """Return at `instant` or just after, never before. The wake-up is aimed early
        by the lateness recent wake-ups showed (the largest seen, fading by a tenth
        at each new one, at most MAX_WAKE_EARLY), then the rest is slept exactly."""
        clock, r = self.r.clock, self.r
        aim = instant - r.wake_early
        if aim > clock.now():
            await clock.sleep_until(aim)
            r.wake_early = _lateness(r.wake_early, clock.now() - aim)
        if clock.now() < instant:
            await clock.sleep_until(instant)
            r.wake_early = _lateness(r.wake_early, clock.now() - instant)

    def _task_for(self, step: RunStep, params: Any, now: datetime) -> WorkerTask:
        context = self.snapshot.context
        return WorkerTask(
            id=self.r.ids.new_id(),
            instance_id=self.instance.id,
            tenant_id=self.instance.tenant_id,
            block_id=step.block.id,
            handler_name=step.block.handler,
            attempt=step.attempt,
            created_at=now,
            params=params,
            context={"data": dict(context.data), "config": dict(context.config)},
            queue_name=step.block.queue_name,
            timeout_ms=step.block.timeout_ms,
        )

    async def _collect(self) -> None:
        """Wait for a running step to finish — or for a signal (checked at least every
        SIGNAL_POLL_S), so that a cancel or pause is seen while long steps run."""
        bell = asyncio.ensure_future(self.r.bell.wait(self.instance.id, SIGNAL_POLL_S))
        try:
            done, _ = await asyncio.wait(
                [*self.inflight, bell], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            bell.cancel()
        for task in self.inflight.copy():
            if task in done:
                step, _ = self.inflight.pop(task)
                if not task.cancelled():
                    self._apply(step, task.result())

    def _apply(self, step: RunStep, outcome: Outcome | Deferred | Dispatched) -> None:
        """Record a finished attempt; a stale one (its node cancelled meanwhile) is dropped."""
        now = self.r.clock.now()
        if isinstance(outcome, Dispatched):  # the instance waits for a worker
            node = self.snapshot.nodes.get(step.block.id)
            if node is not None and node.state is NodeState.RUNNING:
                waiting = evolve(node, state=NodeState.WAITING, ref=outcome.task.id)
                self.snapshot = self.snapshot.with_node(waiting)
                self.new_tasks.append(outcome.task)
            return
        if isinstance(outcome, Deferred):  # its rate-limit place is later: wait, never fail
            _log.debug(
                "step %s of %s has its rate-limit place at %s",
                step.block.id,
                self.instance.id,
                outcome.reserved_at,
            )
            self.snapshot = step_deferred(
                self.snapshot,
                step.block,
                step.attempt,
                outcome.until,
                reserved_at=outcome.reserved_at,
            )
            return
        before = self.snapshot
        if isinstance(outcome, Succeeded):
            self.snapshot = step_succeeded(self.snapshot, step.block, step.attempt, now)
            if self.snapshot is not before:
                self._record(step.block.id, outcome.output, step.attempt, size=outcome.size)
                self.snapshot = apply_changes(self.snapshot, outcome.data, outcome.state)
        elif isinstance(outcome, Failed):
            self.snapshot = step_failed(
                self.snapshot,
                step.block,
                step.attempt,
                outcome.message,
                retryable=outcome.retryable,
                now=now,
            )
            if self.snapshot is not before:
                error = {"error": outcome.message, "retryable": outcome.retryable}
                self._record(step.block.id, error, step.attempt, ref=ERROR_REF)

    def _record(
        self, block_id: str, output: Any, attempt: int, *, size: int = 0, ref: str | None = None
    ) -> None:
        self.rows.append(
            BlockOutput(
                id=self.r.ids.new_id(),
                instance_id=self.instance.id,
                block_id=block_id,
                output=output,
                attempt=attempt,
                created_at=self.r.clock.now(),
                output_size=size,
                output_ref=ref,
            )
        )
        if ref is None:
            self.outputs[block_id] = output

    # writes ----------------------------------------------------------------
    async def _finish(self, adv: Advance) -> None:
        for task in self.inflight:
            task.cancel()
        outcome = adv.outcome
        if isinstance(outcome, Complete):
            await self._write(InstanceState.COMPLETED, None, wake_parent=True)
            return
        assert self.cached is not None
        sequence = self.cached.sequence
        if isinstance(outcome, Cancelled):
            await self._cleanup(sequence.on_cancel)
            children = self._children_to_cancel()
            await self._write(InstanceState.CANCELLED, None, wake_parent=True)
            await self._cancel_children(children)
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
                self._apply_cleanup(block, await self._call(RunStep(block, 1)))

    def _apply_cleanup(self, block: StepBlock, outcome: Outcome | Deferred | Dispatched) -> None:
        if isinstance(outcome, Succeeded):
            self._record(block.id, outcome.output, 1, size=outcome.size)
        elif isinstance(outcome, Failed):
            error = {"error": outcome.message, "retryable": outcome.retryable}
            self._record(block.id, error, 1, ref=ERROR_REF)

    def _children_to_cancel(self) -> list[str]:
        return [
            n.ref
            for n in self.snapshot.nodes.values()
            if n.block_type == "sub_sequence"
            and n.ref
            and n.state is NodeState.CANCELLED
            and self.committed.nodes.get(n.block_id, n).state is not NodeState.CANCELLED
        ]

    async def _cancel_children(self, child_ids: list[str]) -> None:
        for child_id in child_ids:
            signal = Signal(
                id=self.r.ids.new_id(),
                instance_id=child_id,
                tenant_id=self.instance.tenant_id,
                kind=SignalKind.CANCEL,
                created_at=self.r.clock.now(),
            )
            try:
                await self.r.storage.signals.enqueue(signal)
            except (NotFound, InstanceTerminal):
                continue
            self.r.bell.ring(child_id)

    async def _park(self, adv: Advance) -> None:
        now = self.r.clock.now()
        if adv.run:  # stopping: hand the started steps back, due now
            await self._write(InstanceState.SCHEDULED, now)
        elif adv.waiting:  # for a child or a person; until a timeout at the latest
            await self._write(InstanceState.WAITING, adv.wake_at)
        elif adv.wake_at is not None:
            await self._write(InstanceState.SCHEDULED, adv.wake_at)
        else:
            await self._write(InstanceState.WAITING, None)

    async def _write(
        self, state: InstanceState, next_fire_at: Any, *, wake_parent: bool = False
    ) -> None:
        snapshot, committed = self.snapshot, self.committed
        nodes = snapshot.changed_nodes(committed)
        context_changed = snapshot.context != committed.context
        delivered = tuple(self.signals.delivered)
        tasks = tuple(self.new_tasks)
        if state is InstanceState.RUNNING and not (
            nodes or context_changed or self.rows or self.new_children or delivered or tasks
        ):
            return
        abandoned = [
            n.block_id
            for n in nodes
            if n.state is NodeState.CANCELLED
            and n.ref is not None
            and n.block_type == "step"
            and (old := committed.nodes.get(n.block_id)) is not None
            and old.state is NodeState.WAITING
        ]
        await self.r.storage.snapshots.commit(
            SnapshotWrite(
                instance_id=self.instance.id,
                expected_state=InstanceState.RUNNING,
                state=state,
                next_fire_at=next_fire_at,
                updated_at=self.r.clock.now(),
                context=snapshot.context if context_changed else None,
                nodes=nodes,
                outputs=tuple(self.rows),
                children=tuple(self.new_children),
                wake_parent=self.instance.parent_instance_id if wake_parent else None,
                delivered_signals=delivered,
                tasks=tasks,
            )
        )
        self.signals.delivered = []
        self.new_tasks = []
        for handler in {t.handler_name for t in tasks}:
            self.r.task_bell.ring(handler)
        if abandoned:
            await self.r.storage.tasks.cancel_open(self.instance.id, abandoned, self.r.clock.now())
        self.r.feed.publish(InstanceChanged(self.instance.id, state, tuple(self.rows)))
        self.committed = snapshot
        self.rows = []
        self.new_children = []
