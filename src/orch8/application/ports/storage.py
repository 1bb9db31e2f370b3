"""Storage ports: role-sized Protocols whose docstrings are the contract.

Every adapter (memory, SQLite, PostgreSQL) implements all of them and is held
to the same contract test suite. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from attrs import frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.cron import CronSchedule
from orch8.domain.instance import ALLOWED_TRANSITIONS, Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.rate_limits import Admission, RateLimit
from orch8.domain.sequence import Sequence
from orch8.domain.signals import Signal
from orch8.domain.tasks import TaskState, WorkerTask
from orch8.domain.tree import Node


@frozen
class SequenceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    name: str | None = None


@frozen
class InstanceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    sequence_id: str | None = None
    states: tuple[InstanceState, ...] = ()


@frozen
class Page:
    offset: int = 0
    limit: int = 100


# How long `claim_due` holds back an instance that its concurrency cap kept from
# running, so it does not sit at the head of every claim until a slot frees.
CAP_DEFERRAL = timedelta(seconds=1)
# `bulk_reschedule` clamps shifted fire times into this range (every backend,
# and Python's datetime, can hold it).
EARLIEST_FIRE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_FIRE = datetime(9999, 12, 31, tzinfo=UTC)
RESCHEDULABLE = (InstanceState.SCHEDULED, InstanceState.PAUSED)


def movable_to(
    target: InstanceState, states: tuple[InstanceState, ...] = ()
) -> tuple[InstanceState, ...]:
    """The states `bulk_update_state` moves to `target`: those the lifecycle lets
    reach it, except `failed` (a retry must also reset the execution tree),
    narrowed to `states` when given."""
    found = tuple(
        s
        for s in InstanceState
        if target in ALLOWED_TRANSITIONS[s] and s is not InstanceState.FAILED
    )
    return tuple(s for s in found if s in states) if states else found


def reschedulable(states: tuple[InstanceState, ...] = ()) -> tuple[InstanceState, ...]:
    """The states `bulk_reschedule` shifts: scheduled and paused, narrowed to `states`."""
    return tuple(s for s in RESCHEDULABLE if s in states) if states else RESCHEDULABLE


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


class InstanceStore(Protocol):
    async def create(self, instances: Seq[Instance]) -> None:
        """Insert instances atomically: all or none.

        Raises Conflict on a duplicate id, a duplicate (tenant_id, idempotency_key),
        or a sequence_id that does not exist. The idempotency check is a unique
        index, so of concurrent creates with one key exactly one succeeds and the
        others raise Conflict (and then find the winner with
        `find_by_idempotency_key`).
        """
        ...

    async def get(self, instance_id: str) -> Instance | None: ...

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Instance | None:
        """The tenant's instance created with idempotency `key`, or None."""
        ...

    async def update_state(
        self,
        instance_id: str,
        expected: InstanceState,
        new: InstanceState,
        next_fire_at: datetime | None,
        now: datetime,
    ) -> None:
        """Move one instance from `expected` to `new`, storing `next_fire_at` as given
        and updated_at = now, in one transaction guarded like a snapshot write.

        Raises StaleWrite (and writes nothing) when the instance does not exist or
        is no longer in `expected`. The caller has checked that the lifecycle
        allows the transition. When `new` is terminal, the instance's parent
        (parent_instance_id) is made due in the same transaction if it is waiting
        or scheduled, as `SnapshotWrite.wake_parent` does.
        """
        ...

    async def replace_context(
        self, instance_id: str, context: ExecutionContext, now: datetime
    ) -> None:
        """Replace the whole context of an instance (updated_at = now).

        Raises NotFound for an unknown instance, and StaleWrite (nothing written)
        when it is `running`: the engine owns a claimed instance's context and
        its next step write would silently undo the change (an `update_context`
        signal is the way to change a running instance). The check and the
        write are one atomic statement.
        """
        ...

    async def bulk_update_state(
        self, flt: InstanceFilter, new_state: InstanceState, now: datetime
    ) -> int:
        """Move every instance matching `flt` that is in one of
        `movable_to(new_state, flt.states)` to `new_state`, in one transaction;
        returns how many moved. updated_at = now; moving to `scheduled` makes
        the instance due now (next_fire_at = now), other targets keep
        next_fire_at. Failed instances are never moved (see `movable_to`).
        """
        ...

    async def bulk_reschedule(self, flt: InstanceFilter, offset_seconds: int, now: datetime) -> int:
        """Shift next_fire_at of every instance matching `flt` that is in one of
        `reschedulable(flt.states)` by `offset_seconds` (a missing fire time
        counts as `now`), clamped to [EARLIEST_FIRE, LATEST_FIRE], with
        updated_at = now, in one transaction; returns how many moved.
        """
        ...

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        """Newest first (created_at, then id, descending)."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        """Atomically take up to `limit` scheduled instances whose fire time has come.

        Order: priority descending, then next_fire_at ascending, ties in creation
        order. A limit of zero or less claims nothing. Each returned
        instance is already `running` with updated_at = now in storage; two
        concurrent callers (threads, processes) never receive the same instance.

        Concurrency caps: an instance with both `concurrency_key` and
        `max_concurrency` is claimed only while fewer than its `max_concurrency`
        instances with that key are `running`, counting those claimed (in claim
        order) by this call and by every concurrent caller. One held back by its
        cap stays `scheduled` with next_fire_at = now + CAP_DEFERRAL (updated_at
        kept). Candidates are the first `limit` due instances in claim order, so
        a call may return fewer than `limit` while others are due.
        """
        ...

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        """Return instances `running` and not updated since `stale_before` to `scheduled`
        (next_fire_at = now); the count moved."""
        ...

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        """Refresh updated_at of running instances so recovery does not steal them."""
        ...

    async def has_due_higher_priority(self, priority: Priority, now: datetime) -> bool:
        """Whether a `scheduled` instance of a priority above `priority` is due at `now`
        (an index probe: the engine asks it between steps when it has no free slot)."""
        ...

    async def wake_due_waiting(self, now: datetime) -> int:
        """Make due every `waiting` instance whose next_fire_at has come (a wait for
        input that timed out); returns how many. Waiting instances without a
        next_fire_at wait for an event only."""
        ...

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        """Make due every `waiting` instance that has a `waiting` tree node whose `ref`
        names an instance in a terminal state; returns how many were woken.

        The safety net behind `SnapshotWrite.wake_parent`, for a parent that was
        still running when its child finished and then went to wait.
        """
        ...


@frozen
class SnapshotWrite:
    """One step's effects, written atomically with the instance's state transition.

    The write applies only if the instance is still in `expected_state`: a
    process that lost its claim must not overwrite newer state.

    `tasks` are new worker tasks, inserted with the write that parks their step. A
    task whose (instance, block, attempt) belongs to a task still open is ignored (it
    already exists); a finished one under that key is replaced (a loop's next
    iteration runs the step afresh).

    `delivered_signals` are marked delivered (delivered_at = updated_at) in the
    same transaction, so a signal is acted on exactly once.

    `children` are new instances (sub_sequence children) inserted in the same
    transaction as the node that waits for them, so a crash can neither lose a
    child nor start it twice. `wake_parent` names an instance to make due now if
    it is `waiting` or `scheduled` (a child reaching its end wakes its parent).
    """

    instance_id: str
    expected_state: InstanceState
    state: InstanceState
    next_fire_at: datetime | None
    updated_at: datetime
    context: ExecutionContext | None = None
    nodes: tuple[Node, ...] = ()
    outputs: tuple[BlockOutput, ...] = ()
    children: tuple[Instance, ...] = ()
    wake_parent: str | None = None
    delivered_signals: tuple[str, ...] = ()
    tasks: tuple[WorkerTask, ...] = ()


class SnapshotStore(Protocol):
    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        """The instance and its execution-tree nodes: one bounded read, whatever
        the number of steps already run."""
        ...

    async def commit(self, write: SnapshotWrite) -> None:
        """Apply `write` in one transaction; raises StaleWrite if the guard fails
        (and then writes nothing). Adapters may group concurrent commits into one
        transaction, but each write still lands whole or not at all, and commits
        from one process apply in call order. A caller cancelled while waiting
        may still see its write committed: once handed over, it is never torn.
        A duplicate output id raises Conflict for that write alone."""
        ...


class OutputStore(Protocol):
    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        """Every output row of an instance, oldest first (created_at, then write order)."""
        ...

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        """The newest successful output (output_ref None) of each named block that has one.

        What templates read as `outputs.<block_id>`: its cost depends on the
        blocks named, never on how many steps the instance has run.
        """
        ...


class SignalInbox(Protocol):
    async def enqueue(self, signal: Signal) -> None:
        """Store `signal` for delivery, atomically with a check of its instance.

        Raises NotFound when the instance does not exist, InstanceTerminal when
        it is completed, failed or cancelled, and Conflict when the signal id is
        taken (nothing stored in each case). In the same
        transaction, makes the instance due now (state `scheduled`, next_fire_at =
        signal.created_at unless already earlier) when it is `scheduled` or
        `waiting`, or `paused` and the signal is resume or cancel — so the engine
        sees the signal at once instead of at its next timer.
        """
        ...

    async def pending(self, instance_id: str) -> list[Signal]:
        """Undelivered signals of an instance, oldest first (created_at, then enqueue order)."""
        ...


@frozen
class TaskFilter:
    tenant_id: str | None = None
    handler_name: str | None = None
    state: TaskState | None = None
    instance_id: str | None = None


@frozen
class WorkerSeen:
    """A worker's last poll for one handler (tenant_id "" when unscoped), and how
    many tasks of that handler it holds claimed now."""

    worker_id: str
    handler_name: str
    tenant_id: str
    queue_name: str | None
    last_seen_at: datetime
    in_flight: int = 0


@frozen
class TaskStats:
    """Task counts per (handler_name, state), and the workers holding claimed tasks."""

    counts: tuple[tuple[str, TaskState, int], ...] = ()
    active_workers: tuple[str, ...] = ()


class TaskQueue(Protocol):
    """Worker tasks. New tasks are written with the snapshot that parks their step
    (`SnapshotWrite.tasks`); the methods here are the worker protocol's side."""

    async def poll(
        self,
        handler_name: str,
        worker_id: str,
        limit: int,
        now: datetime,
        *,
        queue_name: str | None = None,
        tenant_id: str | None = None,
    ) -> list[WorkerTask]:
        """Claim up to `limit` pending tasks of `handler_name` (oldest first), atomically
        and disjointly across processes (SKIP LOCKED): state claimed, worker_id,
        claimed_at = heartbeat_at = now, claim_epoch + 1. Records the worker as seen."""
        ...

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, now: datetime
    ) -> WorkerTask:
        """Refresh heartbeat_at. NotFound for an unknown task; Conflict when the task is
        not claimed by `worker_id` at `claim_epoch` (None: any epoch of that worker)."""
        ...

    async def complete(
        self, task_id: str, worker_id: str, claim_epoch: int | None, output: Any, now: datetime
    ) -> WorkerTask:
        """Mark completed with `output` and, in the same transaction, make the task's
        instance due now if it is waiting or scheduled. A repeat of the same worker's
        completion returns the task unchanged; any other mismatch is a Conflict."""
        ...

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        now: datetime,
    ) -> WorkerTask:
        """Mark failed (with message and retryable) and wake the instance, as `complete`."""
        ...

    async def get(self, task_id: str) -> WorkerTask | None: ...

    async def query(self, flt: TaskFilter, page: Page) -> list[WorkerTask]:
        """Newest first."""
        ...

    async def results(self, instance_id: str, block_ids: Seq[str]) -> dict[str, WorkerTask]:
        """The newest task of each named block of an instance (what the engine reads to
        learn how an external step ended)."""
        ...

    async def cancel_open(self, instance_id: str, block_ids: Seq[str], now: datetime) -> int:
        """Cancel the pending or claimed tasks of those blocks (their step was cancelled)."""
        ...

    async def reap_stale(self, heartbeat_before: datetime, now: datetime) -> int:
        """Claimed tasks whose heartbeat is older than `heartbeat_before` go back to
        pending (worker cleared; the next claim gets a new epoch). Returns the count."""
        ...

    async def expire_timed_out(self, now: datetime) -> int:
        """Tasks still open past created_at + timeout_ms fail, not retryable, and wake
        their instance. Returns the count."""
        ...

    async def workers(self, tenant_id: str | None) -> list[WorkerSeen]:
        """Worker registrations, most recently seen first; with `tenant_id`, that
        tenant's and the unscoped ones (in_flight then counts that tenant's tasks)."""
        ...

    async def stats(self, tenant_id: str | None) -> TaskStats:
        """Counts of every task (of `tenant_id` when given), sorted by handler and state;
        active workers sorted by id."""
        ...


class RateLimitStore(Protocol):
    """Per-tenant limits on keyed uses (a step's `rate_limit_key`) and the atomic
    admission check behind them: an exact sliding log (domain/rate_limits.py)."""

    async def upsert(self, limit: RateLimit) -> RateLimit:
        """Store the limit of (limit.tenant_id, limit.key), replacing any existing one;
        returns what is stored. A replaced limit keeps its created_at and its
        admission log: the new numbers apply at once to the admissions already
        made (lowering a limit never opens a burst)."""
        ...

    async def get(self, tenant_id: str, key: str) -> RateLimit | None: ...

    async def list(self, tenant_id: str | None) -> list[RateLimit]:
        """The limits of one tenant (None: of every tenant), by tenant_id, then key."""
        ...

    async def delete(self, tenant_id: str, key: str) -> bool:
        """Remove the limit and its admission log in one transaction; False when absent.
        A use of the key is then always admitted (until a limit is stored again,
        which starts with an empty log)."""
        ...

    async def acquire(
        self, tenant_id: str, key: str, now: datetime, held: datetime | None = None
    ) -> Admission | None:
        """The place of one use of `key` asking at `now` (`RateLimit.keep`, `RateLimit.reserve`).

        Atomically, across every process sharing the database (the uses of one
        key are serialised by a lock on its limit row): a `held` place that can
        still be used (`now` at most the limit's grace after it) is kept, and
        nothing is recorded; otherwise a new place is reserved and recorded in
        the log: at `now` when the window has room, else at the earliest
        instant after every place already given at which it will. The caller
        starts the use at `admission.at` (sleeping or deferring until then) and
        no later than `admission.deadline`; past it, the place is lost and the
        use asks again holding it: the lapsed place, never used, is removed
        from the log and a new one given. So in any half-open interval of
        `window_seconds`, at most `max_count` uses start, whatever the number
        of callers.

        Instants later than `now` already in the log (reservations, or another
        process's clock running ahead) only make the limit stricter.
        Admissions older than two windows behind `now` are pruned as new ones
        are recorded.

        With no limit stored for (tenant_id, key) every use may start now:
        None, and nothing is recorded.
        """
        ...

    async def acquire_many(
        self,
        tenant_id: str,
        key: str,
        now: Callable[[], datetime],
        helds: Seq[datetime | None],
    ) -> builtins.list[Admission] | None:
        """`acquire` for several uses of one key, in order, in one transaction: one
        place per entry of `helds` (each as `acquire` would give it, after the
        ones before it). None when the key has no limit. `now` is read once the
        key's lock is held, so the places are never stamped with an instant from
        before a wait for it."""
        ...


# How long `CronStore.claim_due` holds a schedule for the process that took it:
# a holder that dies before settling its occurrence delays it by this much.
CRON_CLAIM_LEASE = timedelta(seconds=30)


class CronStore(Protocol):
    """Cron schedules, and the bookkeeping of their fires.

    A fire is claimed (`claim_due`), acted on, then settled by exactly one of
    `record_fire`, `record_skip` or `hold`. Settling is guarded by the
    occurrence being settled: it applies only while the schedule's
    next_fire_at still equals `fire_at` (an edit in between wins) and returns
    whether it applied.
    """

    async def create(self, schedule: CronSchedule) -> None:
        """Insert a schedule; Conflict when the id exists."""
        ...

    async def get(self, schedule_id: str) -> CronSchedule | None: ...

    async def query(self, tenant_id: str | None) -> list[CronSchedule]:
        """One tenant's schedules (None: every tenant's), oldest first (created_at, id)."""
        ...

    async def update(self, schedule: CronSchedule) -> bool:
        """Store the user-editable fields of `schedule` (cron_expr, timezone, metadata,
        enabled, overlap_policy) with its next_fire_at and updated_at, and drop any
        claim on it; the fire bookkeeping (last_triggered_at, skipped_fires,
        last_skipped_at) is left as stored. False when there is no such schedule."""
        ...

    async def delete(self, schedule_id: str) -> bool:
        """Remove a schedule; False when absent. Instances it started are kept."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[CronSchedule]:
        """Atomically take up to `limit` enabled schedules whose next_fire_at has come
        and that no caller holds, earliest next_fire_at first, holding each until
        now + CRON_CLAIM_LEASE. Two concurrent callers (threads, processes) never
        take the same schedule; a holder that never settles it loses it when the
        hold expires, and the next taker gets the same occurrence. The returned
        schedules carry the occurrence to fire as next_fire_at (a claim does not
        change it). A limit of zero or less takes nothing."""
        ...

    async def record_fire(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        """The occurrence `fire_at` started its instance: last_triggered_at = updated_at
        = now, next_fire_at = `next_fire_at`, claim released."""
        ...

    async def record_skip(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        """The occurrence `fire_at` was skipped (overlap policy `skip`): skipped_fires + 1,
        last_skipped_at = updated_at = now, next_fire_at = `next_fire_at`, claim released."""
        ...

    async def hold(self, schedule_id: str, fire_at: datetime, until: datetime) -> bool:
        """Keep the occurrence `fire_at` pending but unclaimable until `until` (overlap
        policy `buffer_one` waiting for the previous run)."""
        ...

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest next_fire_at among enabled schedules no caller holds at `now`
        (None when there is none): when a claim will next find work. May be in
        the past when due schedules are waiting to be claimed."""
        ...

    async def active_instance_ids(self, tenant_id: str, schedule_id: str) -> list[str]:
        """The tenant's instances not yet ended (scheduled, running, waiting, paused)
        whose metadata.cron_schedule_id is `schedule_id`, oldest first."""
        ...


class Storage(Protocol):
    """The whole storage of one backend; what the composition root hands the engine."""

    @property
    def sequences(self) -> SequenceStore: ...

    @property
    def instances(self) -> InstanceStore: ...

    @property
    def snapshots(self) -> SnapshotStore: ...

    @property
    def outputs(self) -> OutputStore: ...

    @property
    def signals(self) -> SignalInbox: ...

    @property
    def rate_limits(self) -> RateLimitStore: ...

    @property
    def tasks(self) -> TaskQueue: ...

    @property
    def cron(self) -> CronStore: ...

    async def migrate(self) -> None:
        """Bring the schema to the latest version; safe to run repeatedly."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests (used by /health/ready)."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release connections; safe to call twice."""
        ...
