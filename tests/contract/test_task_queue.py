"""TaskQueue contract, and tasks written with snapshot writes, run against every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from attrs import evolve

from orch8.application.errors import Conflict, NotFound, StaleWrite
from orch8.application.ports.storage import Page, SnapshotWrite, Storage, TaskFilter
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.task_claims import TIMED_OUT
from orch8.domain.tasks import TaskState, WorkerTask
from tests.contract.builders import at, make_instance, make_sequence, new_id

S = InstanceState
T = TaskState


def make_task(
    inst: Instance,
    block_id: str = "charge",
    *,
    attempt: int = 1,
    handler: str = "email",
    created_at: datetime | None = None,
    **fields: Any,
) -> WorkerTask:
    return WorkerTask(
        id=fields.pop("id", None) or new_id("task"),
        instance_id=inst.id,
        tenant_id=inst.tenant_id,
        block_id=block_id,
        handler_name=handler,
        attempt=attempt,
        created_at=created_at or at(1),
        params=fields.pop("params", {"to": "ada@example.com", "n": [1, 2.5, None]}),
        context=fields.pop("context", {"data": {"name": "Ada"}, "config": {}}),
        **fields,
    )


async def _instance(storage: Storage, state: InstanceState = S.RUNNING, **kw: Any) -> Instance:
    seq = make_sequence(new_id("seq"), tenant_id=kw.pop("tenant_id", "acme"))
    await storage.sequences.create(seq)
    inst = make_instance(seq, state=state, **kw)
    await storage.instances.create([inst])
    return inst


def _parking(inst: Instance, *tasks: WorkerTask, **fields: Any) -> SnapshotWrite:
    return SnapshotWrite(
        instance_id=inst.id,
        expected_state=fields.pop("expected_state", S.RUNNING),
        state=fields.pop("state", S.WAITING),
        next_fire_at=fields.pop("next_fire_at", None),
        updated_at=fields.pop("updated_at", at(1)),
        tasks=tasks,
        **fields,
    )


async def _parked(storage: Storage, *tasks: WorkerTask, inst: Instance | None = None) -> Instance:
    """An instance waiting for `tasks` (made for a fresh instance when none is given)."""
    if inst is None:
        inst = await _instance(storage)
    tasks = tuple(evolve(t, instance_id=inst.id, tenant_id=inst.tenant_id) for t in tasks)
    await storage.snapshots.commit(_parking(inst, *tasks))
    return inst


async def _get_task(storage: Storage, task_id: str) -> WorkerTask:
    found = await storage.tasks.get(task_id)
    assert found is not None
    return found


async def _get_instance(storage: Storage, inst: Instance) -> Instance:
    found = await storage.instances.get(inst.id)
    assert found is not None
    return found


async def _one_claimed(storage: Storage, worker: str = "w1", **task_fields: Any) -> WorkerTask:
    inst = await _instance(storage)
    task = make_task(inst, **task_fields)
    await storage.snapshots.commit(_parking(inst, task))
    claimed = await storage.tasks.poll(task.handler_name, worker, 1, at(2))
    assert [t.id for t in claimed] == [task.id]
    return claimed[0]


# --- tasks written with the snapshot write ------------------------------------------


async def test_tasks_round_trip_with_the_write_that_parks_their_step(storage: Storage) -> None:
    inst = await _instance(storage)
    task = make_task(
        inst,
        params={"nested": {"ünïcode": "✓", "list": [1, {"x": None}]}, "big": 2**62},
        queue_name="emails",
        timeout_ms=30_000,
    )
    other = make_task(inst, "notify", handler="sms", params={}, context={})
    await storage.snapshots.commit(_parking(inst, task, other))
    assert await storage.tasks.get(task.id) == task
    assert await storage.tasks.get(other.id) == other
    assert (await _get_instance(storage, inst)).state is S.WAITING


async def test_no_task_is_stored_when_the_guard_fails(storage: Storage) -> None:
    inst = await _instance(storage, S.SCHEDULED)
    task = make_task(inst)
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(_parking(inst, task))
    assert await storage.tasks.get(task.id) is None
    assert await storage.tasks.poll("email", "w1", 10, at(2)) == []


async def test_a_repeated_instance_block_attempt_is_ignored(storage: Storage) -> None:
    inst = await _instance(storage)
    first = make_task(inst)
    twin = make_task(inst, params={"other": True})  # same block and attempt, new id
    await storage.snapshots.commit(_parking(inst, first, twin))
    assert await storage.tasks.get(first.id) == first
    assert await storage.tasks.get(twin.id) is None
    again = make_task(inst, created_at=at(5))
    write = _parking(inst, again, expected_state=S.WAITING, state=S.WAITING)
    await storage.snapshots.commit(write)  # the write applies; only the task is skipped
    assert await storage.tasks.get(again.id) is None
    retry = make_task(inst, attempt=2, created_at=at(5))
    await storage.snapshots.commit(_parking(inst, retry, expected_state=S.WAITING))
    assert await storage.tasks.get(retry.id) == retry


async def test_concurrent_writes_store_exactly_the_tasks_of_the_writes_that_applied(
    storage: Storage,
) -> None:
    fresh = [await _instance(storage) for _ in range(6)]
    moved_on = await _instance(storage, S.PAUSED)
    writes = [(inst, make_task(inst, handler="bulk")) for inst in [*fresh, moved_on]]
    outcomes = await asyncio.gather(
        *(storage.snapshots.commit(_parking(i, t)) for i, t in writes), return_exceptions=True
    )
    assert [isinstance(o, StaleWrite) for o in outcomes] == [False] * 6 + [True]
    stored = {t.id for t in await storage.tasks.query(TaskFilter(handler_name="bulk"), Page())}
    assert stored == {t.id for _, t in writes[:6]}


# --- poll ---------------------------------------------------------------------------


async def test_poll_claims_the_oldest_pending_tasks_of_the_handler(storage: Storage) -> None:
    inst = await _instance(storage)
    tasks = [make_task(inst, f"b{i}", created_at=at(t)) for i, t in enumerate([3.0, 1.0, 2.0, 4.0])]
    sms = make_task(inst, "sms", handler="sms", created_at=at(0))
    await _parked(storage, *tasks, sms, inst=inst)
    first = await storage.tasks.poll("email", "w1", 2, at(10))
    assert [t.id for t in first] == [tasks[1].id, tasks[2].id]
    for task in first:
        assert task.state is T.CLAIMED
        assert (task.worker_id, task.claimed_at, task.heartbeat_at) == ("w1", at(10), at(10))
        assert task.claim_epoch == 1
        assert await storage.tasks.get(task.id) == task
    rest = await storage.tasks.poll("email", "w2", 5, at(11))
    assert [t.id for t in rest] == [tasks[0].id, tasks[3].id]
    assert await storage.tasks.poll("email", "w3", 5, at(12)) == []
    assert await storage.tasks.poll("email", "w3", 0, at(12)) == []
    assert [t.id for t in await storage.tasks.poll("sms", "w1", 5, at(12))] == [sms.id]


async def test_poll_can_be_narrowed_to_a_queue_and_a_tenant(storage: Storage) -> None:
    acme = await _instance(storage)
    other = await _instance(storage, tenant_id="globex")
    plain = make_task(acme, "a", created_at=at(1))
    queued = make_task(acme, "b", created_at=at(2), queue_name="vip")
    foreign = make_task(other, "c", created_at=at(3), queue_name="vip")
    await _parked(storage, plain, queued, inst=acme)
    await _parked(storage, foreign, inst=other)

    async def ids(**narrow: Any) -> list[str]:
        return [t.id for t in await storage.tasks.poll("email", "w", 5, at(5), **narrow)]

    assert await ids(queue_name="vip", tenant_id="acme") == [queued.id]
    assert await ids(tenant_id="acme") == [plain.id]
    assert await ids(queue_name="none") == []
    assert await ids() == [foreign.id]


async def test_concurrent_polls_claim_disjoint_tasks(storage: Storage) -> None:
    inst = await _instance(storage)
    tasks = [make_task(inst, f"b{i:03d}", created_at=at(i / 100)) for i in range(60)]
    await _parked(storage, *tasks, inst=inst)
    batches = await asyncio.gather(
        *(storage.tasks.poll("email", f"w{i}", 7, at(10)) for i in range(12))
    )
    claimed = [t.id for batch in batches for t in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert all(t.worker_id == f"w{i}" for i, batch in enumerate(batches) for t in batch)


# --- heartbeat, complete, fail: the claim fence ---------------------------------------


async def test_heartbeat_refreshes_only_the_holders_claim(storage: Storage) -> None:
    task = await _one_claimed(storage)
    beat = await storage.tasks.heartbeat(task.id, "w1", 1, at(3))
    assert beat == evolve(task, heartbeat_at=at(3))
    assert await storage.tasks.heartbeat(task.id, "w1", None, at(4)) == evolve(
        task, heartbeat_at=at(4)
    )
    with pytest.raises(Conflict):
        await storage.tasks.heartbeat(task.id, "w2", None, at(5))
    with pytest.raises(Conflict):
        await storage.tasks.heartbeat(task.id, "w1", 7, at(5))
    with pytest.raises(NotFound):
        await storage.tasks.heartbeat("no-such-task", "w1", None, at(5))
    assert (await _get_task(storage, task.id)).heartbeat_at == at(4)


async def test_complete_stores_the_output_and_wakes_the_instance(storage: Storage) -> None:
    task = await _one_claimed(storage)
    output = {"sent": True, "ids": ["m-1", "m-2"], "ünïcode": "✓", "nested": {"n": None}}
    done = await storage.tasks.complete(task.id, "w1", 1, output, at(4))
    assert done == evolve(task, state=T.COMPLETED, output=output, completed_at=at(4))
    assert await storage.tasks.get(task.id) == done
    inst = await storage.instances.get(task.instance_id)
    assert inst is not None
    assert (inst.state, inst.next_fire_at) == (S.SCHEDULED, at(4))


async def test_a_repeated_completion_is_idempotent(storage: Storage) -> None:
    task = await _one_claimed(storage)
    done = await storage.tasks.complete(task.id, "w1", 1, {"first": 1}, at(4))
    await storage.instances.update_state(task.instance_id, S.SCHEDULED, S.RUNNING, None, at(5))
    assert await storage.tasks.complete(task.id, "w1", 1, {"second": 2}, at(6)) == done
    assert await storage.tasks.complete(task.id, "w1", None, {"third": 3}, at(6)) == done
    inst = await storage.instances.get(task.instance_id)
    assert inst is not None and inst.state is S.RUNNING  # a repeat wakes nothing
    for worker, epoch in (("w2", None), ("w1", 2)):
        with pytest.raises(Conflict):
            await storage.tasks.complete(task.id, worker, epoch, {}, at(7))
    with pytest.raises(Conflict):  # a completed task cannot fail
        await storage.tasks.fail(task.id, "w1", 1, "late", False, at(7))


async def test_fail_stores_the_error_and_wakes_the_instance(storage: Storage) -> None:
    task = await _one_claimed(storage)
    message = "SMTP refused: ünïcode ✓ and a NUL \x00 byte"
    failed = await storage.tasks.fail(task.id, "w1", 1, message, True, at(4))
    assert failed == evolve(
        task,
        state=T.FAILED,
        error_message=message,
        error_retryable=True,
        completed_at=at(4),
    )
    assert await storage.tasks.get(task.id) == failed
    inst = await storage.instances.get(task.instance_id)
    assert inst is not None and inst.state is S.SCHEDULED
    assert await storage.tasks.fail(task.id, "w1", 1, "again", False, at(5)) == failed
    with pytest.raises(Conflict):
        await storage.tasks.complete(task.id, "w1", 1, {}, at(5))
    with pytest.raises(NotFound):
        await storage.tasks.fail("no-such-task", "w1", 1, "x", False, at(5))


async def test_reports_on_a_pending_task_are_refused(storage: Storage) -> None:
    inst = await _instance(storage)
    task = make_task(inst)
    await _parked(storage, task, inst=inst)
    for report in (
        storage.tasks.heartbeat(task.id, "w1", None, at(2)),
        storage.tasks.complete(task.id, "w1", None, {}, at(2)),
        storage.tasks.fail(task.id, "w1", None, "x", False, at(2)),
    ):
        with pytest.raises(Conflict):
            await report
    assert await storage.tasks.get(task.id) == task


@pytest.mark.parametrize(
    ("state", "woken"),
    [
        (S.WAITING, True),
        (S.SCHEDULED, True),
        (S.PAUSED, False),
        (S.RUNNING, False),
        (S.CANCELLED, False),
    ],
)
async def test_a_report_wakes_only_a_waiting_or_scheduled_instance(
    storage: Storage, state: InstanceState, woken: bool
) -> None:
    inst = await _instance(storage)
    task = make_task(inst)
    await storage.snapshots.commit(_parking(inst, task, state=state, next_fire_at=None))
    await storage.tasks.poll("email", "w1", 1, at(2))
    await storage.tasks.complete(task.id, "w1", 1, None, at(4))
    after = await _get_instance(storage, inst)
    assert after.state is (S.SCHEDULED if woken else state)
    assert (await _get_task(storage, task.id)).state is T.COMPLETED


async def test_waking_keeps_an_earlier_fire_time(storage: Storage) -> None:
    inst = await _instance(storage)
    task = make_task(inst)
    write = _parking(inst, task, state=S.SCHEDULED, next_fire_at=at(3))
    await storage.snapshots.commit(write)
    await storage.tasks.poll("email", "w1", 1, at(2))
    await storage.tasks.fail(task.id, "w1", None, "boom", False, at(9))
    assert (await _get_instance(storage, inst)).next_fire_at == at(3)


# --- reaper and timeouts ---------------------------------------------------------------


async def test_epoch_fencing_after_a_reap(storage: Storage) -> None:
    task = await _one_claimed(storage, worker="w1")  # claimed at at(2), epoch 1
    fresh = await _one_claimed(storage, worker="w9", block_id="other")
    await storage.tasks.heartbeat(fresh.id, "w9", 1, at(100))
    assert await storage.tasks.reap_stale(at(50), at(100)) == 1
    back = await _get_task(storage, task.id)
    assert back == evolve(task, state=T.PENDING, worker_id=None, claimed_at=None, heartbeat_at=None)
    assert (await _get_task(storage, fresh.id)).state is T.CLAIMED
    [again] = await storage.tasks.poll("email", "w1", 1, at(101))  # the same worker, anew
    assert (again.id, again.claim_epoch) == (task.id, 2)
    with pytest.raises(Conflict):  # its old claim is stale
        await storage.tasks.complete(task.id, "w1", 1, {"late": True}, at(102))
    with pytest.raises(Conflict):
        await storage.tasks.heartbeat(task.id, "w1", 1, at(102))
    done = await storage.tasks.complete(task.id, "w1", 2, {"ok": True}, at(103))
    assert (done.state, done.output, done.claim_epoch) == (T.COMPLETED, {"ok": True}, 2)


async def test_a_reaped_task_goes_to_another_worker(storage: Storage) -> None:
    task = await _one_claimed(storage, worker="dead")
    assert await storage.tasks.reap_stale(at(2), at(60)) == 0  # not older than the cutoff
    assert await storage.tasks.reap_stale(at(3), at(60)) == 1
    [taken] = await storage.tasks.poll("email", "alive", 1, at(61))
    assert (taken.id, taken.worker_id, taken.claim_epoch) == (task.id, "alive", 2)
    with pytest.raises(Conflict):
        await storage.tasks.complete(task.id, "dead", None, {"late": True}, at(62))
    with pytest.raises(Conflict):
        await storage.tasks.complete(task.id, "dead", 1, {"late": True}, at(62))
    assert (await _get_task(storage, task.id)).output is None


async def test_open_tasks_past_their_timeout_fail(storage: Storage) -> None:
    inst = await _instance(storage)
    pending = make_task(inst, "a", timeout_ms=1000, created_at=at(0))
    claimed = make_task(inst, "b", timeout_ms=1500, created_at=at(0), handler="sms")
    later = make_task(inst, "c", timeout_ms=5000, created_at=at(0))
    forever = make_task(inst, "d", created_at=at(0))
    await _parked(storage, pending, claimed, later, forever, inst=inst)
    await storage.tasks.poll("sms", "w1", 1, at(0.5))
    assert await storage.tasks.expire_timed_out(at(0.999)) == 0
    assert await storage.tasks.expire_timed_out(at(1.5)) == 2
    for task in (pending, claimed):
        got = await _get_task(storage, task.id)
        assert (got.state, got.error_message, got.error_retryable) == (T.FAILED, TIMED_OUT, False)
        assert got.completed_at == at(1.5)
    assert (await _get_task(storage, later.id)).state is T.PENDING
    assert (await _get_task(storage, forever.id)).state is T.PENDING
    woken = await _get_instance(storage, inst)
    assert (woken.state, woken.next_fire_at) == (S.SCHEDULED, at(1.5))
    assert await storage.tasks.expire_timed_out(at(1.6)) == 0
    with pytest.raises(Conflict):
        await storage.tasks.complete(claimed.id, "w1", 1, {}, at(2))


# --- what the engine reads, and cancellation ---------------------------------------------


async def test_results_give_the_newest_task_of_each_named_block(storage: Storage) -> None:
    inst = await _instance(storage)
    first = make_task(inst, "a", attempt=1, created_at=at(1))
    second = make_task(inst, "a", attempt=2, created_at=at(2))
    b = make_task(inst, "b", created_at=at(1))
    c = make_task(inst, "c", created_at=at(1))
    await _parked(storage, first, second, b, c, inst=inst)
    other = await _parked(storage, make_task(inst, "a", created_at=at(9)))
    assert other.id != inst.id
    found = await storage.tasks.results(inst.id, ["a", "b", "missing"])
    assert found == {"a": second, "b": b}
    assert await storage.tasks.results(inst.id, []) == {}


async def test_cancel_open_cancels_pending_and_claimed_tasks_of_those_blocks(
    storage: Storage,
) -> None:
    inst = await _instance(storage)
    pending = make_task(inst, "a")
    claimed = make_task(inst, "b", handler="sms")
    done = make_task(inst, "c", handler="fax")
    untouched = make_task(inst, "d")
    await _parked(storage, pending, claimed, done, untouched, inst=inst)
    await storage.tasks.poll("sms", "w1", 1, at(2))
    await storage.tasks.poll("fax", "w1", 1, at(2))
    await storage.tasks.complete(done.id, "w1", 1, "ok", at(3))
    assert await storage.tasks.cancel_open(inst.id, ["a", "b", "c"], at(4)) == 2
    for task in (pending, claimed):
        got = await _get_task(storage, task.id)
        assert (got.state, got.completed_at) == (T.CANCELLED, at(4))
    assert (await _get_task(storage, done.id)).state is T.COMPLETED
    assert (await _get_task(storage, untouched.id)).state is T.PENDING
    with pytest.raises(Conflict):
        await storage.tasks.complete(claimed.id, "w1", 1, {}, at(5))
    assert await storage.tasks.poll("email", "w2", 5, at(5)) != []  # only "d" is left
    assert await storage.tasks.cancel_open(inst.id, ["a"], at(6)) == 0


# --- the read side ----------------------------------------------------------------------


async def test_query_filters_and_pages_newest_first(storage: Storage) -> None:
    acme = await _instance(storage)
    globex = await _instance(storage, tenant_id="globex")
    a = [make_task(acme, f"a{i}", created_at=at(i)) for i in range(4)]
    g = make_task(globex, "g", handler="sms", created_at=at(10))
    await _parked(storage, *a, inst=acme)
    await _parked(storage, g, inst=globex)
    await storage.tasks.poll("email", "w1", 1, at(20))  # claims a[0]

    async def ids(**flt: Any) -> list[str]:
        page = Page(flt.pop("offset", 0), flt.pop("limit", 100))
        return [t.id for t in await storage.tasks.query(TaskFilter(**flt), page)]

    assert await ids() == [g.id, a[3].id, a[2].id, a[1].id, a[0].id]
    assert await ids(tenant_id="acme", offset=1, limit=2) == [a[2].id, a[1].id]
    assert await ids(handler_name="sms") == [g.id]
    assert await ids(state=T.CLAIMED) == [a[0].id]
    assert await ids(instance_id=globex.id) == [g.id]
    assert await ids(tenant_id="nobody") == []


async def test_workers_are_recorded_by_every_poll(storage: Storage) -> None:
    task = await _one_claimed(storage, worker="w1")  # polls "email" at at(2)
    await storage.tasks.poll("sms", "w1", 1, at(3), queue_name="vip")
    await storage.tasks.poll("email", "w2", 0, at(4), tenant_id="acme")
    await storage.tasks.poll("email", "w3", 1, at(5), tenant_id="globex")
    seen = await storage.tasks.workers(None)
    assert [(w.worker_id, w.handler_name, w.tenant_id) for w in seen] == [
        ("w3", "email", "globex"),
        ("w2", "email", "acme"),
        ("w1", "sms", ""),
        ("w1", "email", ""),
    ]
    assert seen[2].queue_name == "vip" and seen[2].last_seen_at == at(3)
    assert [w.in_flight for w in seen] == [0, 0, 0, 1]
    scoped = await storage.tasks.workers("acme")
    assert [(w.worker_id, w.handler_name) for w in scoped] == [
        ("w2", "email"),
        ("w1", "sms"),
        ("w1", "email"),
    ]
    assert scoped[2].in_flight == 1  # the claimed task is acme's
    assert [w.in_flight for w in await storage.tasks.workers("globex")] == [0, 0, 0]
    await storage.tasks.complete(task.id, "w1", None, {}, at(6))
    assert [w.in_flight for w in await storage.tasks.workers(None)] == [0, 0, 0, 0]
    await storage.tasks.poll("email", "w1", 1, at(9))
    assert (await storage.tasks.workers(None))[0].worker_id == "w1"


async def test_stats_count_tasks_per_handler_and_state(storage: Storage) -> None:
    acme = await _instance(storage)
    globex = await _instance(storage, tenant_id="globex")
    await _parked(
        storage,
        make_task(acme, "a", created_at=at(1)),
        make_task(acme, "b", created_at=at(2)),
        make_task(acme, "c", handler="sms"),
        inst=acme,
    )
    await _parked(storage, make_task(globex, "g"), inst=globex)
    [claimed] = await storage.tasks.poll("email", "w1", 1, at(3), tenant_id="acme")
    await storage.tasks.poll("sms", "w2", 1, at(3))
    await storage.tasks.complete(claimed.id, "w1", 1, {}, at(4))
    await storage.tasks.poll("email", "w3", 1, at(5), tenant_id="acme")
    stats = await storage.tasks.stats(None)
    assert stats.counts == (
        ("email", T.CLAIMED, 1),
        ("email", T.COMPLETED, 1),
        ("email", T.PENDING, 1),
        ("sms", T.CLAIMED, 1),
    )
    assert stats.active_workers == ("w2", "w3")
    acme_stats = await storage.tasks.stats("acme")
    assert acme_stats.counts == (
        ("email", T.CLAIMED, 1),
        ("email", T.COMPLETED, 1),
        ("sms", T.CLAIMED, 1),
    )
    assert (await storage.tasks.stats("nobody")).counts == ()


@pytest.mark.parametrize("output", [None, "plain", 42, [1, "two", None], {"deep": {"x": [{}]}}])
async def test_any_json_output_round_trips(storage: Storage, output: Any) -> None:
    task = await _one_claimed(storage)
    await storage.tasks.complete(task.id, "w1", 1, output, at(3))
    assert (await _get_task(storage, task.id)).output == output


async def test_a_finished_task_is_replaced_by_a_new_one_for_the_same_attempt(storage) -> None:
    """A loop runs its body again with attempts starting over: the new task must land."""
    from orch8.application.ports.storage import SnapshotWrite as _Write
    from orch8.domain.instance import InstanceState as _S
    from orch8.domain.tasks import TaskState as _T
    from orch8.domain.tasks import WorkerTask as _Task
    from tests.contract.builders import T0 as _T0
    from tests.contract.builders import make_instance as _inst
    from tests.contract.builders import make_sequence as _seq

    seq = _seq()
    await storage.sequences.create(seq)
    inst = _inst(seq, state=_S.RUNNING)
    await storage.instances.create([inst])
    first = _Task("task-1", inst.id, inst.tenant_id, "b", "h", 1, _T0)
    await storage.snapshots.commit(
        _Write(inst.id, _S.RUNNING, _S.RUNNING, None, _T0, tasks=(first,))
    )
    duplicate = _Task("task-dup", inst.id, inst.tenant_id, "b", "h", 1, _T0)
    await storage.snapshots.commit(
        _Write(inst.id, _S.RUNNING, _S.RUNNING, None, _T0, tasks=(duplicate,))
    )
    assert (await storage.tasks.results(inst.id, ["b"]))["b"].id == "task-1"  # open: kept
    (claimed,) = await storage.tasks.poll("h", "w", 1, _T0)
    await storage.tasks.complete(claimed.id, "w", claimed.claim_epoch, {}, _T0)
    second = _Task("task-2", inst.id, inst.tenant_id, "b", "h", 1, _T0)
    await storage.snapshots.commit(
        _Write(inst.id, _S.RUNNING, _S.RUNNING, None, _T0, tasks=(second,))
    )
    latest = (await storage.tasks.results(inst.id, ["b"]))["b"]
    assert (latest.id, latest.state) == ("task-2", _T.PENDING)
