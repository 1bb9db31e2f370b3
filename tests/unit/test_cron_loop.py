"""The cron loop (`CronFirer.tick`) and the cron use cases, on the memory store with
a fake clock: each overlap policy, missed fires collapsing into one, disabled
schedules, repeated fires after a crash, and the engine running the loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orch8.adapters.cron import CroniterCalendar
from orch8.adapters.memory import MemoryStorage
from orch8.application.commands import NewSequence
from orch8.application.engine.cron import BUFFER_RECHECK, CronFirer
from orch8.application.engine.service import EngineConfig
from orch8.application.errors import NotFound
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.ports.storage import CRON_CLAIM_LEASE, InstanceFilter, Page
from orch8.application.use_cases.cron import CronChanges, NewCron
from orch8.bootstrap.engine import build_engine
from orch8.codec.blocks import read_blocks
from orch8.domain.cron import CronSchedule, OverlapPolicy
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.signals import SignalKind
from tests.unit.fakes import CountingIds, FakeClock, RecordingMetrics, build_process

S = InstanceState
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return START + timedelta(minutes=n)


class Harness:
    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.clock = FakeClock(START)
        self.ids = CountingIds()
        self.calendar = CroniterCalendar()
        self.metrics = RecordingMetrics()
        use_cases = build_process(self.storage, self.clock, self.ids).use_cases
        self.signals, self.instances = use_cases.signals, use_cases.instances
        self.firer = self.new_firer()
        self.cron = use_cases.cron
        self.catalog = use_cases.sequences
        self.sequence_id = ""

    def new_firer(self) -> CronFirer:
        return CronFirer(
            self.storage.cron,
            self.calendar,
            self.clock,
            self.instances,
            self.signals,
            metrics=self.metrics,
        )

    async def sequence(self, tenant: str = "acme") -> str:
        seq = await self.catalog.create(
            NewSequence(
                tenant_id=tenant,
                namespace="default",
                name="report",
                blocks=read_blocks([{"type": "step", "id": "a", "handler": "noop"}], "blocks"),
            ),
            caller=None,
        )
        self.sequence_id = seq.id
        return seq.id

    async def schedule(self, expr: str = "* * * * *", **fields: Any) -> CronSchedule:
        if not self.sequence_id:
            await self.sequence()
        cmd = NewCron(sequence_id=self.sequence_id, cron_expr=expr, tenant_id="acme", **fields)
        return await self.cron.create(cmd, caller=None)

    async def at(self, when: datetime) -> int:
        """Move the clock to `when` and run one tick."""
        self.clock.current = when
        return await self.firer.tick()

    async def runs(self) -> list[Instance]:
        found = await self.storage.instances.query(InstanceFilter(), Page(0, 1000))
        return sorted(found, key=lambda i: i.metadata["cron_fire_at"])

    async def fetch(self, schedule: CronSchedule) -> CronSchedule:
        found = await self.storage.cron.get(schedule.id)
        assert found is not None
        return found

    async def finish(self, inst: Instance) -> None:
        await self.storage.instances.update_state(inst.id, S.SCHEDULED, S.RUNNING, None, START)
        await self.storage.instances.update_state(inst.id, S.RUNNING, S.COMPLETED, None, START)


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_a_due_schedule_starts_one_instance_and_moves_on(h: Harness) -> None:
    schedule = await h.schedule(
        "* * * * *", timezone="Europe/Berlin", metadata={"campaign": "spring"}
    )
    assert schedule.next_fire_at == minute(1)
    assert await h.at(minute(1) - timedelta(microseconds=1)) == 0
    assert await h.at(minute(1) + timedelta(seconds=2)) == 1
    [run] = await h.runs()
    assert run.sequence_id == h.sequence_id
    assert run.tenant_id == "acme"
    assert run.namespace == "default"
    assert run.state is S.SCHEDULED
    assert run.priority is Priority.NORMAL
    assert run.timezone == "Europe/Berlin"
    assert dict(run.metadata) == {
        "campaign": "spring",
        "cron_schedule_id": schedule.id,
        "cron_fire_at": "2026-03-02T09:01:00Z",
    }
    assert run.idempotency_key == f"cron:{schedule.id}:2026-03-02T09:01:00Z"
    stored = await h.fetch(schedule)
    assert stored.next_fire_at == minute(2)
    assert stored.last_triggered_at == minute(1) + timedelta(seconds=2)
    assert await h.at(minute(1) + timedelta(seconds=30)) == 0  # not due again yet


async def test_allow_fires_while_the_previous_run_is_active(h: Harness) -> None:
    await h.schedule("* * * * *")
    for n in range(1, 4):
        assert await h.at(minute(n)) == 1
    runs = await h.runs()
    assert [r.state for r in runs] == [S.SCHEDULED] * 3
    assert [r.metadata["cron_fire_at"] for r in runs] == [
        "2026-03-02T09:01:00Z",
        "2026-03-02T09:02:00Z",
        "2026-03-02T09:03:00Z",
    ]


async def test_missed_occurrences_collapse_into_one_fire(h: Harness) -> None:
    schedule = await h.schedule("* * * * *")
    assert await h.at(minute(90) + timedelta(seconds=10)) == 1  # 90 occurrences passed
    [run] = await h.runs()
    assert run.metadata["cron_fire_at"] == "2026-03-02T09:01:00Z"  # the occurrence pending
    assert (await h.fetch(schedule)).next_fire_at == minute(91)  # first one after now
    assert await h.at(minute(90) + timedelta(seconds=50)) == 0
    assert await h.at(minute(91)) == 1


async def test_a_disabled_schedule_never_fires(h: Harness) -> None:
    await h.schedule("* * * * *", enabled=False)
    for n in range(1, 5):
        assert await h.at(minute(n)) == 0
    assert await h.runs() == []


async def test_disabling_stops_and_enabling_resumes_from_now(h: Harness) -> None:
    schedule = await h.schedule("* * * * *")
    assert await h.at(minute(1)) == 1
    await h.cron.update(schedule.id, CronChanges(enabled=False), caller=None)
    assert await h.at(minute(10)) == 0
    h.clock.current = minute(30) + timedelta(seconds=5)
    updated = await h.cron.update(schedule.id, CronChanges(enabled=True), caller=None)
    assert updated.next_fire_at == minute(31)  # what it missed while off is not fired
    assert await h.at(minute(30) + timedelta(seconds=6)) == 0
    assert await h.at(minute(31)) == 1
    assert len(await h.runs()) == 2


async def test_skip_counts_the_occurrence_while_the_previous_run_is_active(h: Harness) -> None:
    schedule = await h.schedule("* * * * *", overlap_policy=OverlapPolicy.SKIP)
    assert await h.at(minute(1)) == 1
    assert await h.at(minute(2) + timedelta(seconds=1)) == 0
    assert await h.at(minute(3) + timedelta(seconds=2)) == 0
    stored = await h.fetch(schedule)
    assert stored.skipped_fires == 2
    assert stored.last_skipped_at == minute(3) + timedelta(seconds=2)
    assert stored.next_fire_at == minute(4)
    [first] = await h.runs()
    await h.finish(first)
    assert await h.at(minute(4)) == 1  # the previous run ended: fire again
    assert (await h.fetch(schedule)).skipped_fires == 2
    assert len(await h.runs()) == 2
    assert (h.metrics.counts["cron_triggered"], h.metrics.counts["cron_skipped"]) == (2, 2)


async def test_buffer_one_waits_for_the_previous_run_then_fires_once(h: Harness) -> None:
    schedule = await h.schedule("* * * * *", overlap_policy=OverlapPolicy.BUFFER_ONE)
    assert await h.at(minute(1)) == 1
    assert await h.at(minute(2)) == 0  # previous active: held
    stored = await h.fetch(schedule)
    assert stored.next_fire_at == minute(2)  # the occurrence stays pending
    assert stored.skipped_fires == 0
    # held for BUFFER_RECHECK: not even looked at before then
    assert await h.at(minute(2) + BUFFER_RECHECK - timedelta(microseconds=1)) == 0
    # still active at each re-check, across several later occurrences
    for seconds in (5, 65, 125, 185):
        assert await h.at(minute(2) + timedelta(seconds=seconds)) == 0
    [first] = await h.runs()
    await h.finish(first)
    when = minute(5) + timedelta(seconds=10)
    assert await h.at(when) == 1  # fires once for all it buffered
    runs = await h.runs()
    assert [r.metadata["cron_fire_at"] for r in runs] == [
        "2026-03-02T09:01:00Z",
        "2026-03-02T09:02:00Z",
    ]
    stored = await h.fetch(schedule)
    assert stored.next_fire_at == minute(6)
    assert stored.last_triggered_at == when


async def test_cancel_previous_cancels_the_active_runs_then_fires(h: Harness) -> None:
    schedule = await h.schedule("* * * * *", overlap_policy=OverlapPolicy.ALLOW)
    assert await h.at(minute(1)) == 1
    assert await h.at(minute(2)) == 1
    await h.cron.update(
        schedule.id, CronChanges(overlap_policy=OverlapPolicy.CANCEL_PREVIOUS), caller=None
    )
    ended, *active = await h.runs()
    await h.finish(ended)
    assert await h.at(minute(3)) == 1
    for inst in active:
        [signal] = await h.storage.signals.pending(inst.id)
        assert signal.kind is SignalKind.CANCEL
    assert await h.storage.signals.pending(ended.id) == []
    newest = (await h.runs())[-1]
    assert newest.metadata["cron_fire_at"] == "2026-03-02T09:03:00Z"
    assert await h.storage.signals.pending(newest.id) == []


async def test_overlap_only_counts_runs_of_the_same_schedule(h: Harness) -> None:
    other = await h.schedule("* * * * *")
    mine = await h.schedule("* * * * *", overlap_policy=OverlapPolicy.SKIP)
    assert await h.at(minute(1)) == 2
    [other_run] = [r for r in await h.runs() if r.metadata["cron_schedule_id"] == other.id]
    [my_run] = [r for r in await h.runs() if r.metadata["cron_schedule_id"] == mine.id]
    await h.finish(my_run)
    assert await h.at(minute(2)) == 2  # `other` still running does not hold `mine` back
    assert (await h.fetch(mine)).skipped_fires == 0
    assert other_run.state is S.SCHEDULED


async def test_two_loops_on_one_store_fire_each_occurrence_once(h: Harness) -> None:
    await h.schedule("* * * * *")
    twin = h.new_firer()
    h.clock.current = minute(1)
    started = await asyncio.gather(h.firer.tick(), twin.tick(), h.firer.tick(), twin.tick())
    assert sum(started) == 1
    assert len(await h.runs()) == 1


async def test_a_fire_repeated_after_a_crash_starts_no_second_instance(h: Harness) -> None:
    schedule = await h.schedule("* * * * *")
    settle = h.storage.cron.record_fire

    async def crash(*args: Any) -> bool:
        raise RuntimeError("process died before settling")

    h.storage.cron.record_fire = crash  # type: ignore[method-assign]
    assert await h.at(minute(1)) == 0  # the fire failed (logged) ...
    assert len(await h.runs()) == 1  # ... after its instance went in
    h.storage.cron.record_fire = settle  # type: ignore[method-assign]
    assert await h.at(minute(1) + CRON_CLAIM_LEASE - timedelta(seconds=1)) == 0  # still held
    assert await h.at(minute(1) + CRON_CLAIM_LEASE) == 0  # re-fired: deduplicated
    [run] = await h.runs()
    assert run.metadata["cron_fire_at"] == "2026-03-02T09:01:00Z"
    assert (await h.fetch(schedule)).next_fire_at == minute(2)
    assert h.metrics.counts["cron_triggered"] == 1  # one instance, counted once


async def test_a_schedule_whose_sequence_is_gone_moves_on(h: Harness) -> None:
    schedule = await h.schedule("* * * * *")
    assert await h.storage.sequences.delete(h.sequence_id)
    assert await h.at(minute(1)) == 0
    assert await h.runs() == []
    assert (await h.fetch(schedule)).next_fire_at == minute(2)


async def test_seconds_and_timezones(h: Harness) -> None:
    # 09:00 in New York is 14:00 UTC in March before DST starts (Mar 8 2026).
    schedule = await h.schedule("0 0 9 * * * *", timezone="America/New_York")
    assert schedule.next_fire_at == datetime(2026, 3, 2, 14, tzinfo=UTC)
    previews = await h.cron.next_fires(schedule.id, 8, caller=None)
    assert previews[5] == datetime(2026, 3, 7, 14, tzinfo=UTC)
    assert previews[6] == datetime(2026, 3, 8, 13, tzinfo=UTC)  # EDT from here


async def test_create_checks_its_input(h: Harness) -> None:
    await h.sequence()
    cases = [
        (NewCron(sequence_id=h.sequence_id, cron_expr="61 * * * *", tenant_id="acme"), "cron_expr"),
        (
            NewCron(
                sequence_id=h.sequence_id, cron_expr="* * * * *", tenant_id="acme", timezone="Moon"
            ),
            "timezone",
        ),
        (
            NewCron(sequence_id=h.sequence_id, cron_expr="0 0 0 1 1 * 2020", tenant_id="acme"),
            "cron_expr",
        ),
        (
            NewCron(
                sequence_id=h.sequence_id, cron_expr="* * * * *", tenant_id="acme", namespace="x"
            ),
            "namespace",
        ),
        (NewCron(sequence_id=h.sequence_id, cron_expr="* * * * *"), "tenant_id"),
    ]
    for cmd, path in cases:
        with pytest.raises(ValidationError) as info:
            await h.cron.create(cmd, caller=None)
        assert info.value.path == path
    with pytest.raises(NotFound):
        await h.cron.create(NewCron(sequence_id="nope", cron_expr="* * * * *"), caller="acme")
    with pytest.raises(NotFound):  # another tenant's sequence is not there
        await h.cron.create(
            NewCron(sequence_id=h.sequence_id, cron_expr="* * * * *"), caller="other"
        )
    assert await h.storage.cron.query(None) == []


async def test_preview_bounds(h: Harness) -> None:
    schedule = await h.schedule("*/5 * * * *")
    assert len(await h.cron.next_fires(schedule.id, 50, caller=None)) == 50
    for n in (0, 51, -1):
        with pytest.raises(ValidationError) as info:
            await h.cron.next_fires(schedule.id, n, caller=None)
        assert info.value.path == "n"
    with pytest.raises(NotFound):
        await h.cron.next_fires(schedule.id, 5, caller="other")


async def test_the_engine_runs_the_cron_loop(h: Harness) -> None:
    await h.schedule("* * * * *")
    h.clock.current = minute(1)
    engine = build_engine(
        h.storage,
        HandlerRegistry(BUILTIN_HANDLERS),
        h.clock,
        h.ids,
        EngineConfig(tick_interval_s=0.01, cron_tick_s=0.01),
        cron=h.firer,
    )
    await engine.start()
    try:
        for _ in range(500):
            runs = await h.runs()
            if runs and runs[0].state is S.COMPLETED:
                break
            await asyncio.sleep(0.01)
    finally:
        await engine.stop()
    [run] = await h.runs()
    assert run.state is S.COMPLETED  # fired by the cron loop, then run by the scheduler


async def test_the_loop_is_woken_when_the_soonest_schedule_comes_due(h: Harness) -> None:
    await h.schedule("* * * * * *")  # every second
    h.clock.current = START + timedelta(seconds=1.95)
    assert await h.firer.tick() == 1
    assert not h.firer.wake.is_set()
    # next occurrence at START + 2 s: 50 ms away on the (fake) clock
    await asyncio.wait_for(h.firer.wake.wait(), timeout=2)
