"""CronStore contract, run against every backend (memory, SQLite, PostgreSQL).

The claim is the heart of it: a due schedule goes to one claimer at a time,
across tasks of one process (the `storage` fixture) and across processes (two
storage objects, each with its own connections, on one database).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

from orch8.application.errors import Conflict
from orch8.application.ports.storage import CRON_CLAIM_LEASE, Storage
from orch8.domain.cron import SCHEDULE_ID_KEY, CronSchedule, OverlapPolicy
from orch8.domain.instance import InstanceState
from tests.contract.backends import POSTGRES, SQLITE, Backend
from tests.contract.builders import T0, at, make_instance, make_sequence, new_id

S = InstanceState


def make_schedule(
    *,
    sequence_id: str = "seq-x",
    tenant_id: str = "acme",
    next_fire_at: datetime | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> CronSchedule:
    created = created_at or T0
    return CronSchedule(
        id=fields.pop("id", None) or new_id("cron"),
        tenant_id=tenant_id,
        namespace="default",
        sequence_id=sequence_id,
        cron_expr=fields.pop("cron_expr", "*/5 * * * *"),
        created_at=created,
        updated_at=fields.pop("updated_at", created),
        next_fire_at=next_fire_at if next_fire_at is not None else at(0),
        **fields,
    )


async def _fetch(storage: Storage, schedule: CronSchedule) -> CronSchedule:
    found = await storage.cron.get(schedule.id)
    assert found is not None
    return found


async def test_create_then_get_round_trips_every_field(storage: Storage) -> None:
    schedule = make_schedule(
        cron_expr="0 30 9 * * MON-FRI *",
        timezone="Australia/Lord_Howe",
        metadata={"campaign": "spring", "n": [1, 2, {"deep": None}], "ünï": "çødé"},
        enabled=False,
        overlap_policy=OverlapPolicy.BUFFER_ONE,
        next_fire_at=at(60.000123),
        last_triggered_at=at(-60),
        skipped_fires=7,
        last_skipped_at=at(-30.5),
        updated_at=at(1),
    )
    await storage.cron.create(schedule)
    assert await storage.cron.get(schedule.id) == schedule


async def test_optional_times_may_be_absent(storage: Storage) -> None:
    schedule = evolve(make_schedule(), next_fire_at=None)
    await storage.cron.create(schedule)
    assert await storage.cron.get(schedule.id) == schedule


async def test_get_unknown_is_none(storage: Storage) -> None:
    assert await storage.cron.get("nope") is None


async def test_create_duplicate_id_conflicts(storage: Storage) -> None:
    schedule = make_schedule()
    await storage.cron.create(schedule)
    with pytest.raises(Conflict):
        await storage.cron.create(evolve(schedule, cron_expr="* * * * *"))
    assert await _fetch(storage, schedule) == schedule


async def test_query_by_tenant_oldest_first(storage: Storage) -> None:
    a2 = make_schedule(created_at=at(2))
    a1 = make_schedule(created_at=at(1))
    b = make_schedule(tenant_id="other", created_at=at(0))
    for s in (a2, a1, b):
        await storage.cron.create(s)
    assert [s.id for s in await storage.cron.query("acme")] == [a1.id, a2.id]
    assert [s.id for s in await storage.cron.query("other")] == [b.id]
    assert [s.id for s in await storage.cron.query(None)] == [b.id, a1.id, a2.id]
    assert await storage.cron.query("nobody") == []


async def test_update_writes_editable_fields_and_keeps_bookkeeping(storage: Storage) -> None:
    schedule = make_schedule(skipped_fires=2, last_skipped_at=at(-5), last_triggered_at=at(-9))
    await storage.cron.create(schedule)
    edited = evolve(
        schedule,
        cron_expr="0 0 * * *",
        timezone="America/New_York",
        metadata={"x": 1},
        enabled=False,
        overlap_policy=OverlapPolicy.CANCEL_PREVIOUS,
        next_fire_at=at(3600),
        updated_at=at(5),
        # bookkeeping is the engine's: an update never writes it
        skipped_fires=0,
        last_skipped_at=None,
        last_triggered_at=None,
        tenant_id="ignored",
    )
    assert await storage.cron.update(edited) is True
    assert await _fetch(storage, schedule) == evolve(
        edited,
        skipped_fires=2,
        last_skipped_at=at(-5),
        last_triggered_at=at(-9),
        tenant_id="acme",
    )
    assert await storage.cron.update(make_schedule()) is False


async def test_delete(storage: Storage) -> None:
    schedule = make_schedule()
    await storage.cron.create(schedule)
    assert await storage.cron.delete(schedule.id) is True
    assert await storage.cron.get(schedule.id) is None
    assert await storage.cron.delete(schedule.id) is False


async def test_claim_takes_enabled_due_schedules_earliest_first(storage: Storage) -> None:
    late = make_schedule(next_fire_at=at(-1))
    early = make_schedule(next_fire_at=at(-10))
    now_due = make_schedule(next_fire_at=at(0))
    future = make_schedule(next_fire_at=at(0.001))
    disabled = make_schedule(next_fire_at=at(-20), enabled=False)
    finished = evolve(make_schedule(), next_fire_at=None)
    for s in (late, early, now_due, future, disabled, finished):
        await storage.cron.create(s)
    claimed = await storage.cron.claim_due(at(0), 10)
    assert [s.id for s in claimed] == [early.id, late.id, now_due.id]
    assert claimed == [early, late, now_due]  # returned as stored: the occurrence to fire


async def test_claim_respects_limit(storage: Storage) -> None:
    schedules = [make_schedule(next_fire_at=at(-i)) for i in range(5)]
    for s in schedules:
        await storage.cron.create(s)
    assert await storage.cron.claim_due(at(0), 0) == []
    assert await storage.cron.claim_due(at(0), -3) == []
    first = await storage.cron.claim_due(at(0), 2)
    second = await storage.cron.claim_due(at(0), 2)
    third = await storage.cron.claim_due(at(0), 2)
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    expected = [s.id for s in reversed(schedules)]
    assert [s.id for s in first + second + third] == expected


async def test_a_claimed_schedule_is_held_until_its_lease_lapses(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    assert [s.id for s in await storage.cron.claim_due(at(0), 5)] == [schedule.id]
    assert await storage.cron.claim_due(at(1), 5) == []
    lapsed = at(0) + CRON_CLAIM_LEASE
    assert await storage.cron.claim_due(lapsed - timedelta(microseconds=1), 5) == []
    again = await storage.cron.claim_due(lapsed, 5)
    assert again == [schedule]  # the same occurrence, for the next taker


async def test_record_fire_advances_and_releases(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    await storage.cron.claim_due(at(0), 5)
    assert await storage.cron.record_fire(schedule.id, at(-1), at(10), at(0.5)) is True
    stored = await _fetch(storage, schedule)
    assert stored == evolve(
        schedule, next_fire_at=at(10), last_triggered_at=at(0.5), updated_at=at(0.5)
    )
    assert await storage.cron.claim_due(at(9), 5) == []
    assert [s.next_fire_at for s in await storage.cron.claim_due(at(10), 5)] == [at(10)]


async def test_settling_is_guarded_by_the_occurrence(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    assert await storage.cron.record_fire(schedule.id, at(-2), at(10), at(0)) is False
    assert await storage.cron.record_skip(schedule.id, at(-2), at(10), at(0)) is False
    assert await storage.cron.hold(schedule.id, at(-2), at(10)) is False
    assert await storage.cron.record_fire("nope", at(-1), at(10), at(0)) is False
    assert await _fetch(storage, schedule) == schedule
    assert [s.id for s in await storage.cron.claim_due(at(0), 5)] == [schedule.id]


async def test_record_skip_counts_and_advances(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    await storage.cron.claim_due(at(0), 5)
    assert await storage.cron.record_skip(schedule.id, at(-1), at(5), at(0.25)) is True
    assert await storage.cron.claim_due(at(5), 5) != []
    assert await storage.cron.record_skip(schedule.id, at(5), None, at(6)) is True
    stored = await _fetch(storage, schedule)
    assert stored == evolve(
        schedule, next_fire_at=None, skipped_fires=2, last_skipped_at=at(6), updated_at=at(6)
    )
    assert await storage.cron.claim_due(at(1000), 5) == []  # nothing left to fire


async def test_hold_keeps_the_occurrence_pending(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    await storage.cron.claim_due(at(0), 5)
    assert await storage.cron.hold(schedule.id, at(-1), at(5)) is True
    assert await _fetch(storage, schedule) == schedule
    assert await storage.cron.claim_due(at(4.9), 5) == []
    assert await storage.cron.claim_due(at(5), 5) == [schedule]


async def test_update_drops_a_claim(storage: Storage) -> None:
    schedule = make_schedule(next_fire_at=at(-1))
    await storage.cron.create(schedule)
    await storage.cron.claim_due(at(0), 5)
    assert await storage.cron.update(evolve(schedule, next_fire_at=at(1))) is True
    assert [s.next_fire_at for s in await storage.cron.claim_due(at(1), 5)] == [at(1)]


async def test_next_due_is_the_earliest_unheld_enabled_fire(storage: Storage) -> None:
    assert await storage.cron.next_due(at(0)) is None
    disabled = make_schedule(next_fire_at=at(-50), enabled=False)
    finished = evolve(make_schedule(), next_fire_at=None)
    early = make_schedule(next_fire_at=at(-10))
    later = make_schedule(next_fire_at=at(20))
    for s in (disabled, finished, early, later):
        await storage.cron.create(s)
    assert await storage.cron.next_due(at(0)) == at(-10)  # due now, waiting for a claim
    await storage.cron.claim_due(at(0), 1)  # held: someone is firing it
    assert await storage.cron.next_due(at(0)) == at(20)
    assert await storage.cron.next_due(at(0) + CRON_CLAIM_LEASE) == at(-10)  # hold lapsed
    await storage.cron.record_fire(early.id, at(-10), at(30), at(0))
    assert await storage.cron.next_due(at(0)) == at(20)


async def test_active_instance_ids(storage: Storage) -> None:
    seq = make_sequence()
    other_seq = make_sequence(tenant_id="other")
    await storage.sequences.create(seq)
    await storage.sequences.create(other_seq)

    def run(state: S, created: float, *, sid: str = "cron-a", tenant_seq: Any = seq) -> Any:
        return make_instance(
            tenant_seq, state=state, created_at=at(created), metadata={SCHEDULE_ID_KEY: sid}
        )

    live = [run(S.SCHEDULED, 3), run(S.RUNNING, 1), run(S.WAITING, 2), run(S.PAUSED, 4)]
    ended = [run(S.COMPLETED, 0), run(S.FAILED, 0), run(S.CANCELLED, 0)]
    elsewhere = [
        run(S.RUNNING, 0, sid="cron-b"),
        run(S.RUNNING, 0, tenant_seq=other_seq),  # same id claimed in another tenant
        make_instance(seq, state=S.RUNNING, metadata={"other": "cron-a"}),
        make_instance(seq, state=S.RUNNING),
    ]
    await storage.instances.create([*live, *ended, *elsewhere])
    found = await storage.cron.active_instance_ids("acme", "cron-a")
    assert found == [live[1].id, live[2].id, live[0].id, live[3].id]
    assert await storage.cron.active_instance_ids("acme", "cron-zzz") == []


async def test_concurrent_claimers_never_share_a_schedule(storage: Storage) -> None:
    schedules = [make_schedule(next_fire_at=at(-i)) for i in range(40)]
    for s in schedules:
        await storage.cron.create(s)
    batches = await asyncio.gather(*(storage.cron.claim_due(at(0), 3) for _ in range(20)))
    ids = [s.id for batch in batches for s in batch]
    assert len(ids) == len(set(ids)) == 40


async def _fire_rounds(stores: list[Storage], schedules: int, rounds: int) -> Counter[Any]:
    """Several claimers per store each round; every claim is fired and moved on a
    second. Counts each (schedule, occurrence) fired."""
    for n in range(schedules):
        await stores[0].cron.create(make_schedule(id=f"cron-r{n:03d}", next_fire_at=at(0)))
    fired: Counter[Any] = Counter()

    async def claimer(store: Storage, now: datetime) -> None:
        for s in await store.cron.claim_due(now, 4):
            assert s.next_fire_at is not None
            fired[(s.id, s.next_fire_at)] += 1
            await asyncio.sleep(0)  # let the other claimers run while this one "fires"
            nxt = s.next_fire_at + timedelta(seconds=1)
            assert await store.cron.record_fire(s.id, s.next_fire_at, nxt, now)

    for r in range(rounds):
        now = at(r)
        for _ in range(3):  # a few passes, so every due schedule gets taken this round
            await asyncio.gather(*(claimer(store, now) for store in stores for _ in range(4)))
    return fired


def _check_each_occurrence_once(fired: Counter[Any], schedules: int, rounds: int) -> None:
    assert set(fired.values()) == {1}, [k for k, v in fired.items() if v > 1]
    expected = {(f"cron-r{n:03d}", at(r)) for n in range(schedules) for r in range(rounds)}
    assert set(fired) == expected


async def test_concurrent_claimers_take_each_occurrence_once(storage: Storage) -> None:
    fired = await _fire_rounds([storage], schedules=12, rounds=5)
    _check_each_occurrence_once(fired, 12, 5)


@pytest.mark.parametrize(
    ("backend", "schedules", "rounds"),
    [(SQLITE, 8, 4), (POSTGRES, 20, 5)],
    ids=["sqlite", "postgres"],
)
async def test_two_processes_take_each_occurrence_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: Backend, schedules: int, rounds: int
) -> None:
    """Two storages on one database, as two `orch8 serve` processes have: for SQLite
    separate connections to one file (its own lock decides), for PostgreSQL two pools."""
    async with backend.stores(request, tmp_path, 2, pool=4) as stores:
        fired = await _fire_rounds(list(stores), schedules=schedules, rounds=rounds)
    _check_each_occurrence_once(fired, schedules, rounds)
