"""Instance operations over HTTP, on real SQLite storage: idempotent and batch
creates, state and context patches, retry from the dead-letter queue (with the
engine run in-process), and bulk changes by filter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orch8.adapters.system import SystemClock, UuidGenerator
from orch8.application.engine.service import EngineConfig
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.ports.handlers import StepCall, StepFailed
from orch8.application.ports.storage import InstanceFilter, Page, Storage
from orch8.bootstrap.engine import build_engine
from orch8.domain.instance import ALLOWED_TRANSITIONS, InstanceState
from orch8.entrypoints.http.app import create_app
from tests.integration.conftest import Api, api_deps, make_storage

S = InstanceState
V1 = "/api/v1"


class Engine:
    """The engine's runner and scheduler on the API's storage, driven by hand.

    `flaky` fails the first `failures[block_id]` calls of a block, then succeeds.
    """

    def __init__(self, storage: Storage) -> None:
        self.calls: list[str] = []
        self.failures: dict[str, int] = {}
        registry = HandlerRegistry(BUILTIN_HANDLERS)
        registry.register("flaky", self._flaky)
        config = EngineConfig(batch_size=50, max_concurrent_steps=50)
        engine = build_engine(storage, registry, SystemClock(), UuidGenerator(), config)
        self.scheduler = engine.scheduler

    async def _flaky(self, call: StepCall) -> Any:
        self.calls.append(call.block_id)
        if self.failures.get(call.block_id, 0) > 0:
            self.failures[call.block_id] -= 1
            raise StepFailed(f"{call.block_id} is down", retryable=False)
        return {"ran": call.block_id}

    async def settle(self) -> None:
        for _ in range(20):
            claimed = await self.scheduler.tick()
            await self.scheduler.drain(5)
            if not claimed:
                return


@pytest.fixture
async def ops_api(tmp_path: Path) -> AsyncIterator[Api]:
    storage = make_storage(tmp_path / "db")
    await storage.migrate()
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(api_deps(storage))))
    await client.start_server()
    try:
        yield Api(client, storage)
    finally:
        await client.close()
        await storage.close()


async def _force(api: Api, instance_id: str, state: InstanceState) -> None:
    """Put an instance (created scheduled) into `state`, straight through storage."""
    if state is not S.SCHEDULED:
        now = datetime.now(UTC)
        await api.storage.instances.update_state(instance_id, S.SCHEDULED, state, None, now)


async def _state(api: Api, instance_id: str) -> str:
    reply = await api.call("GET", f"{V1}/instances/{instance_id}")
    assert reply.status == 200, reply.body
    state: str = reply.body["state"]
    return state


def flaky(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "flaky", "params": {}, **extra}


# idempotency -------------------------------------------------------------------


async def test_a_repeated_idempotency_key_answers_the_existing_instance(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    body = {"sequence_id": seq, "idempotency_key": "order-7"}
    first = await ops_api.call("POST", f"{V1}/instances", json=body)
    again = await ops_api.call("POST", f"{V1}/instances", json=body)
    assert (first.status, first.body["deduplicated"]) == (201, False)
    assert again.status == 200
    assert again.body == {"id": first.body["id"], "deduplicated": True}
    other = await ops_api.create_sequence("other", tenant="globex")
    theirs = await ops_api.call(
        "POST", f"{V1}/instances", json={"sequence_id": other, "idempotency_key": "order-7"}
    )
    assert theirs.status == 201  # keys are per tenant


async def test_fifty_concurrent_creates_with_one_key_make_one_instance(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    body = {"sequence_id": seq, "idempotency_key": "race", "tenant_id": "acme"}
    replies = await asyncio.gather(
        *(ops_api.call("POST", f"{V1}/instances", json=body) for _ in range(50))
    )
    statuses = sorted(r.status for r in replies)
    assert statuses == [200] * 49 + [201]
    ids = {r.body["id"] for r in replies}
    assert len(ids) == 1
    assert sum(r.body["deduplicated"] for r in replies) == 49
    stored = await ops_api.storage.instances.query(InstanceFilter(), Page(0, 100))
    assert [i.id for i in stored] == list(ids)


async def test_an_empty_idempotency_key_is_refused(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    body = {"sequence_id": seq, "idempotency_key": ""}
    await ops_api.expect_error(400, "POST", f"{V1}/instances", "idempotency_key", json=body)


# batch -------------------------------------------------------------------------


async def test_a_batch_of_ten_thousand_starts_in_one_request(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    items = [{"sequence_id": seq, "metadata": {"n": n}} for n in range(10_000)]
    started = time.perf_counter()
    reply = await ops_api.call("POST", f"{V1}/instances/batch", json={"instances": items})
    elapsed = time.perf_counter() - started
    print(f"\nbatch of 10,000 instances: {elapsed:.2f} s")
    assert reply.status == 201, reply.body
    assert reply.body == {"count": 10_000}
    page = await ops_api.call("GET", f"{V1}/instances?limit=1000&state=scheduled")
    assert len(page.body["items"]) == 1000
    assert page.body["has_more"] is True
    stored = await ops_api.storage.instances.query(InstanceFilter(), Page(0, 20_000))
    assert len(stored) == 10_000
    assert sorted(i.metadata["n"] for i in stored) == list(range(10_000))


async def test_a_batch_commits_one_chunk_per_transaction(
    ops_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seq = await ops_api.create_sequence()
    sizes: list[int] = []
    store = ops_api.storage.instances
    original = store.create

    async def counting(instances: Any) -> None:
        sizes.append(len(instances))
        await original(instances)

    monkeypatch.setattr(store, "create", counting)
    items = [{"sequence_id": seq} for _ in range(2_500)]
    reply = await ops_api.call("POST", f"{V1}/instances/batch", json={"instances": items})
    assert reply.body == {"count": 2_500}
    assert sizes == [1_000, 1_000, 500]


async def test_a_batch_is_deduplicated_by_idempotency_key(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    existing = await ops_api.create_instance(seq, idempotency_key="a")
    items = [
        {"sequence_id": seq, "idempotency_key": "a"},
        {"sequence_id": seq, "idempotency_key": "b"},
        {"sequence_id": seq, "idempotency_key": "b"},
        {"sequence_id": seq},
    ]
    reply = await ops_api.call("POST", f"{V1}/instances/batch", json={"instances": items})
    assert reply.body == {"count": 2}
    assert (await ops_api.storage.instances.find_by_idempotency_key("acme", "a")) is not None
    stored = await ops_api.storage.instances.query(InstanceFilter(), Page(0, 10))
    assert len(stored) == 3
    assert existing in {i.id for i in stored}


async def test_an_empty_batch_is_a_no_op(ops_api: Api) -> None:
    reply = await ops_api.call("POST", f"{V1}/instances/batch", json={"instances": []})
    assert (reply.status, reply.body) == (200, {"count": 0})


@pytest.mark.parametrize(
    ("item", "status", "fragment"),
    [
        ({"priority": "urgent"}, 400, "instances[2].priority"),
        ({"next_fire_at": "yesterday"}, 400, "instances[2].next_fire_at"),
        ({"max_concurrency": 0}, 400, "instances[2].max_concurrency"),
        ({"context": []}, 400, "instances[2].context"),
        ({"sequence_id": 5}, 400, "instances[2].sequence_id"),
        ({"sequence_id": "nope"}, 404, "instances[2]"),
        ({"tenant_id": "globex"}, 403, "instances[2]"),
        ({"namespace": "billing"}, 400, "instances[2].namespace"),
    ],
)
async def test_a_bad_batch_item_is_named_by_its_index_and_nothing_starts(
    ops_api: Api, item: dict[str, Any], status: int, fragment: str
) -> None:
    seq = await ops_api.create_sequence()
    items = [{"sequence_id": seq} for _ in range(4)]
    items[2] = {**items[2], **item}
    await ops_api.expect_error(
        status, "POST", f"{V1}/instances/batch", fragment, json={"instances": items}, tenant="acme"
    )
    assert await ops_api.storage.instances.query(InstanceFilter(), Page()) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "instances"),
        ({"instances": {}}, "instances"),
        ({"instances": [1]}, "instances[0]"),
        ([], "body"),
    ],
)
async def test_a_malformed_batch_body_is_a_400(ops_api: Api, body: Any, fragment: str) -> None:
    await ops_api.expect_error(400, "POST", f"{V1}/instances/batch", fragment, json=body)


async def test_a_batch_over_ten_thousand_is_refused(ops_api: Api) -> None:
    items = [{"sequence_id": "x"}] * 10_001
    await ops_api.expect_error(
        400, "POST", f"{V1}/instances/batch", "10,000", json={"instances": items}
    )


# PATCH state -------------------------------------------------------------------

INVALID = [
    (a, b)
    for a in S
    for b in S
    if b not in ALLOWED_TRANSITIONS[a] and not (a is S.FAILED and b is S.SCHEDULED)
]
VALID = [(a, b) for a in S for b in ALLOWED_TRANSITIONS[a] if a is not S.FAILED]


@pytest.mark.parametrize(("current", "target"), INVALID, ids=lambda s: s.value)
async def test_every_invalid_transition_is_a_400(
    ops_api: Api, current: InstanceState, target: InstanceState
) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await _force(ops_api, iid, current)
    message = await ops_api.expect_error(
        400, "PATCH", f"{V1}/instances/{iid}/state", json={"state": target.value}
    )
    assert f"from {current.value} to {target.value}" in message
    assert await _state(ops_api, iid) == current.value


@pytest.mark.parametrize(("current", "target"), VALID, ids=lambda s: s.value)
async def test_every_valid_transition_is_applied(
    ops_api: Api, current: InstanceState, target: InstanceState
) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await _force(ops_api, iid, current)
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json={"state": target})
    assert reply.status == 200, reply.body
    assert (reply.body["id"], reply.body["state"]) == (iid, target.value)
    assert await _state(ops_api, iid) == target.value


async def test_a_state_patch_sets_the_fire_time(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await _force(ops_api, iid, S.PAUSED)
    body = {"state": "scheduled", "next_fire_at": "2031-05-01T10:00:00Z"}
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json=body)
    assert reply.body["next_fire_at"] == "2031-05-01T10:00:00Z"
    got = await ops_api.call("GET", f"{V1}/instances/{iid}")
    assert got.body["next_fire_at"] == "2031-05-01T10:00:00Z"
    # Without one, scheduling means due now.
    await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json={"state": "paused"})
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json={"state": "scheduled"})
    fire = datetime.fromisoformat(reply.body["next_fire_at"].replace("Z", "+00:00"))
    assert abs(fire - datetime.now(UTC)) < timedelta(seconds=30)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "state"),
        ({"state": "sleeping"}, "state"),
        ({"state": 3}, "state"),
        ({"state": "paused", "next_fire_at": "soon"}, "next_fire_at"),
        ([], "body"),
    ],
)
async def test_a_malformed_state_patch_is_a_400(ops_api: Api, body: Any, fragment: str) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await ops_api.expect_error(400, "PATCH", f"{V1}/instances/{iid}/state", fragment, json=body)


async def test_state_patches_are_tenant_scoped(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    body = {"state": "paused"}
    await ops_api.expect_error(404, "PATCH", f"{V1}/instances/nope/state", json=body)
    await ops_api.expect_error(
        404, "PATCH", f"{V1}/instances/{iid}/state", json=body, tenant="globex"
    )
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json=body, tenant="acme")
    assert reply.status == 200


# PATCH context -----------------------------------------------------------------


async def test_a_context_patch_replaces_the_whole_context(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq, context={"data": {"old": 1}, "config": {"c": 1}})
    context = {"data": {"new": [1, 2]}}
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/context", json={"context": context})
    assert (reply.status, reply.body) == (200, {"id": iid})
    got = await ops_api.call("GET", f"{V1}/instances/{iid}")
    assert got.body["context"] == {
        "data": {"new": [1, 2]},
        "config": {},
        "audit": [],
        "runtime": {},
    }


async def test_the_context_of_a_running_instance_is_not_replaced(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq, context={"data": {"old": 1}})
    await _force(ops_api, iid, S.RUNNING)
    body = {"context": {"data": {}}}
    await ops_api.expect_error(409, "PATCH", f"{V1}/instances/{iid}/context", "running", json=body)
    got = await ops_api.call("GET", f"{V1}/instances/{iid}")
    assert got.body["context"]["data"] == {"old": 1}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [({}, "context"), ({"context": 1}, "context"), ({"context": {"data": []}}, "context.data")],
)
async def test_a_malformed_context_patch_is_a_400(ops_api: Api, body: Any, fragment: str) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await ops_api.expect_error(400, "PATCH", f"{V1}/instances/{iid}/context", fragment, json=body)


async def test_context_patches_are_tenant_scoped(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    body = {"context": {}}
    await ops_api.expect_error(404, "PATCH", f"{V1}/instances/nope/context", json=body)
    await ops_api.expect_error(
        404, "PATCH", f"{V1}/instances/{iid}/context", json=body, tenant="globex"
    )


# retry and the dead-letter queue -----------------------------------------------


async def test_retry_from_the_dlq_reruns_the_failed_step(ops_api: Api) -> None:
    engine = Engine(ops_api.storage)
    engine.failures["b"] = 1
    seq = await ops_api.create_sequence(blocks=[flaky("a"), flaky("b"), flaky("c")])
    iid = await ops_api.create_instance(seq)
    await engine.settle()
    assert await _state(ops_api, iid) == "failed"
    assert engine.calls == ["a", "b"]
    dlq = await ops_api.call("GET", f"{V1}/instances/dlq")
    assert [i["id"] for i in dlq.body] == [iid]

    reply = await ops_api.call("POST", f"{V1}/instances/{iid}/retry")
    assert reply.status == 200, reply.body
    assert (reply.body["id"], reply.body["state"]) == (iid, "scheduled")
    assert (await ops_api.call("GET", f"{V1}/instances/dlq")).body == []
    await engine.settle()
    assert await _state(ops_api, iid) == "completed"
    assert engine.calls == ["a", "b", "b", "c"]  # a is not repeated
    outputs = (await ops_api.call("GET", f"{V1}/instances/{iid}/outputs")).body
    assert [(o["block_id"], o["output_ref"]) for o in outputs if o["output_ref"] is None] == [
        ("a", None),
        ("b", None),
        ("c", None),
    ]


async def test_retry_resumes_a_failed_parallel_branch(ops_api: Api) -> None:
    engine = Engine(ops_api.storage)
    engine.failures["right"] = 1
    parallel = {
        "type": "parallel",
        "id": "both",
        "branches": [[flaky("left")], [flaky("right")]],
    }
    seq = await ops_api.create_sequence(blocks=[parallel, flaky("after")])
    iid = await ops_api.create_instance(seq)
    await engine.settle()
    assert await _state(ops_api, iid) == "failed"
    assert (await ops_api.call("POST", f"{V1}/instances/{iid}/retry")).status == 200
    await engine.settle()
    assert await _state(ops_api, iid) == "completed"
    assert engine.calls.count("right") == 2
    assert engine.calls[-1] == "after"


async def test_a_failed_to_scheduled_patch_is_a_retry(ops_api: Api) -> None:
    engine = Engine(ops_api.storage)
    engine.failures["a"] = 1
    seq = await ops_api.create_sequence(blocks=[flaky("a")])
    iid = await ops_api.create_instance(seq)
    await engine.settle()
    reply = await ops_api.call("PATCH", f"{V1}/instances/{iid}/state", json={"state": "scheduled"})
    assert reply.body["state"] == "scheduled"
    await engine.settle()
    assert await _state(ops_api, iid) == "completed"


@pytest.mark.parametrize("state", [s for s in S if s is not S.FAILED])
async def test_only_failed_instances_can_be_retried(ops_api: Api, state: InstanceState) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await _force(ops_api, iid, state)
    await ops_api.expect_error(
        400, "POST", f"{V1}/instances/{iid}/retry", f"current state: {state.value}"
    )


async def test_retry_is_tenant_scoped(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    iid = await ops_api.create_instance(seq)
    await _force(ops_api, iid, S.FAILED)
    await ops_api.expect_error(404, "POST", f"{V1}/instances/{iid}/retry", tenant="globex")
    await ops_api.expect_error(404, "POST", f"{V1}/instances/nope/retry")


async def test_the_dlq_lists_failed_instances_paged_and_scoped(ops_api: Api) -> None:
    acme = await ops_api.create_sequence()
    globex = await ops_api.create_sequence("g", tenant="globex")
    failed = []
    for _ in range(3):
        iid = await ops_api.create_instance(acme)
        await _force(ops_api, iid, S.FAILED)
        failed.append(iid)
    await ops_api.create_instance(acme)  # scheduled: not in the DLQ
    theirs = await ops_api.create_instance(globex)
    await _force(ops_api, theirs, S.FAILED)
    everything = (await ops_api.call("GET", f"{V1}/instances/dlq")).body
    assert {i["id"] for i in everything} == {*failed, theirs}
    assert all(i["state"] == "failed" for i in everything)
    mine = (await ops_api.call("GET", f"{V1}/instances/dlq", tenant="acme")).body
    assert {i["id"] for i in mine} == set(failed)
    page = (await ops_api.call("GET", f"{V1}/instances/dlq?tenant_id=acme&limit=2")).body
    rest = (await ops_api.call("GET", f"{V1}/instances/dlq?tenant_id=acme&offset=2")).body
    assert len(page) == 2
    assert {i["id"] for i in page + rest} == set(failed)
    await ops_api.expect_error(400, "GET", f"{V1}/instances/dlq?limit=0", "limit")
    legacy = await ops_api.call("GET", "/instances/dlq", tenant="acme")  # the bare mount too
    assert {i["id"] for i in legacy.body} == set(failed)


# bulk --------------------------------------------------------------------------


async def test_bulk_state_moves_matching_instances_along_allowed_transitions(
    ops_api: Api,
) -> None:
    seq = await ops_api.create_sequence()
    ids = {}
    for state in S:
        iid = await ops_api.create_instance(seq)
        await _force(ops_api, iid, state)
        ids[state] = iid
    body = {"filter": {"tenant_id": "acme"}, "state": "cancelled"}
    reply = await ops_api.call("PATCH", f"{V1}/instances/bulk/state", json=body)
    assert reply.body == {"count": 4}  # scheduled, running, waiting, paused
    for state, iid in ids.items():
        expected = "cancelled" if not state.is_terminal else state.value
        assert await _state(ops_api, iid) == expected


async def test_bulk_state_keeps_to_its_filter(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    other = await ops_api.create_sequence("other")
    mine = [await ops_api.create_instance(seq) for _ in range(3)]
    theirs = await ops_api.create_instance(other)
    await _force(ops_api, mine[0], S.WAITING)
    body = {"filter": {"sequence_id": seq, "states": ["scheduled"]}, "state": "paused"}
    reply = await ops_api.call("PATCH", f"{V1}/instances/bulk/state", json=body, tenant="acme")
    assert reply.body == {"count": 2}
    assert [await _state(ops_api, i) for i in [*mine, theirs]] == [
        "waiting",
        "paused",
        "paused",
        "scheduled",
    ]


async def test_bulk_reschedule_shifts_fire_times(ops_api: Api) -> None:
    seq = await ops_api.create_sequence()
    fire = "2030-01-01T00:00:00Z"
    ids = [await ops_api.create_instance(seq, next_fire_at=fire) for _ in range(2)]
    done = await ops_api.create_instance(seq, next_fire_at=fire)
    await _force(ops_api, done, S.COMPLETED)
    body = {"filter": {"tenant_id": "acme"}, "offset_secs": 3600}
    reply = await ops_api.call("PATCH", f"{V1}/instances/bulk/reschedule", json=body)
    assert reply.body == {"count": 2}
    for iid in ids:
        got = await ops_api.call("GET", f"{V1}/instances/{iid}")
        assert got.body["next_fire_at"] == "2030-01-01T01:00:00Z"


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("state", {"state": "paused"}, 400, "filter"),
        ("state", {"filter": {}, "state": "paused"}, 400, "filter.tenant_id"),
        ("state", {"filter": {"tenant_id": "acme"}}, 400, "state"),
        ("state", {"filter": {"tenant_id": "acme"}, "state": "gone"}, 400, "state"),
        ("state", {"filter": {"tenant_id": 1}, "state": "paused"}, 400, "filter.tenant_id"),
        ("state", {"filter": {"states": ["x"]}, "state": "paused"}, 400, "filter.states[0]"),
        ("state", {"filter": {"states": "failed"}, "state": "paused"}, 400, "filter.states"),
        ("state", {"filter": [], "state": "paused"}, 400, "filter"),
        ("reschedule", {"filter": {"tenant_id": "acme"}}, 400, "offset_secs"),
        ("reschedule", {"filter": {"tenant_id": "a"}, "offset_secs": 1.5}, 400, "offset_secs"),
        ("reschedule", {"filter": {"tenant_id": "a"}, "offset_secs": 2**40}, 400, "offset_secs"),
        ("reschedule", {"filter": {}, "offset_secs": 5}, 400, "filter.tenant_id"),
    ],
)
async def test_a_malformed_bulk_request_is_a_400(
    ops_api: Api, path: str, body: Any, status: int, fragment: str
) -> None:
    await ops_api.expect_error(status, "PATCH", f"{V1}/instances/bulk/{path}", fragment, json=body)


async def test_bulk_changes_cannot_reach_another_tenant(ops_api: Api) -> None:
    seq = await ops_api.create_sequence("g", tenant="globex")
    iid = await ops_api.create_instance(seq)
    body = {"filter": {"tenant_id": "globex"}, "state": "paused"}
    await ops_api.expect_error(
        403, "PATCH", f"{V1}/instances/bulk/state", "tenant_id", json=body, tenant="acme"
    )
    body = {"filter": {}, "state": "paused"}
    reply = await ops_api.call("PATCH", f"{V1}/instances/bulk/state", json=body, tenant="acme")
    assert reply.body == {"count": 0}
    assert await _state(ops_api, iid) == "scheduled"
