"""`InstanceStore`: instance rows, claims, recovery and bulk operations."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta
from typing import Protocol

from orch8.application.ports.storage.paging import InstanceFilter, Page
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import ALLOWED_TRANSITIONS, Instance, InstanceState, Priority

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
