"""The worker protocol over REST: every endpoint, and every way to get it wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from attrs import frozen

from orch8.adapters.sqlite import SqliteStorage
from orch8.adapters.system import SystemClock
from orch8.application.engine.task_bell import TaskBell
from orch8.application.ports.storage import SnapshotWrite
from orch8.application.use_cases.workers import WorkerService
from orch8.domain.instance import InstanceState
from orch8.domain.tasks import WorkerTask
from orch8.entrypoints.http.app import create_app
from tests.contract.builders import make_instance, make_sequence, new_id, now
from tests.integration.conftest import Api, api_deps

OUTPUT_LIMIT = 2048
TASK_FIELDS = {
    "id",
    "instance_id",
    "block_id",
    "handler_name",
    "queue_name",
    "params",
    "context",
    "attempt",
    "timeout_ms",
    "state",
    "worker_id",
    "claimed_at",
    "heartbeat_at",
    "claim_epoch",
    "output",
    "error_message",
    "error_retryable",
    "created_at",
    "completed_at",
}
POLL = "/api/v1/workers/tasks/poll"


@frozen
class Workers:
    api: Api
    storage: SqliteStorage
    bell: TaskBell
    service: WorkerService

    async def task(self, handler: str = "email", *, tenant: str = "acme", **fields: Any) -> str:
        """A task as the engine makes it: written with the snapshot that parks its step."""
        seq = make_sequence(new_id("seq"), tenant_id=tenant)
        await self.storage.sequences.create(seq)
        inst = make_instance(seq, state=InstanceState.RUNNING)
        await self.storage.instances.create([inst])
        task = WorkerTask(
            id=new_id("task"),
            instance_id=inst.id,
            tenant_id=tenant,
            block_id=fields.pop("block_id", "charge"),
            handler_name=handler,
            attempt=1,
            created_at=now(),
            params=fields.pop("params", {"to": "ada@example.com"}),
            context={"data": {"name": "Ada"}, "config": {}},
            **fields,
        )
        write = SnapshotWrite(
            instance_id=inst.id,
            expected_state=InstanceState.RUNNING,
            state=InstanceState.WAITING,
            next_fire_at=None,
            updated_at=now(),
            tasks=(task,),
        )
        await self.storage.snapshots.commit(write)
        self.bell.ring(handler)
        return task.id

    async def claimed(self, handler: str = "email", worker: str = "w1", **fields: Any) -> Any:
        task_id = await self.task(handler, **fields)
        reply = await self.api.call(
            "POST", POLL, json={"handler_name": handler, "worker_id": worker}
        )
        assert reply.status == 200, reply.body
        [task] = reply.body
        assert task["id"] == task_id
        return task


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    storage = SqliteStorage(str(tmp_path / "orch8.db"))
    await storage.migrate()
    bell = TaskBell()
    service = WorkerService(
        storage.tasks, SystemClock(), bell, max_output_bytes=OUTPUT_LIMIT, recheck_s=3600
    )
    deps = api_deps(storage, workers=service)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Workers(Api(client, storage), storage, bell, service)
    finally:
        await client.close()
        await storage.close()


# --- poll ---------------------------------------------------------------------------------


async def test_poll_returns_orch8_worker_tasks(workers: Workers) -> None:
    api = workers.api
    assert (
        await api.call("POST", POLL, json={"handler_name": "email", "worker_id": "w1"})
    ).body == []
    ids = [await workers.task(timeout_ms=5000, queue_name="vip") for _ in range(3)]
    reply = await api.call("POST", POLL, json={"handler_name": "email", "worker_id": "w1"})
    assert reply.status == 200
    [task] = reply.body  # limit defaults to 1
    assert set(task) == TASK_FIELDS
    assert task["id"] == ids[0]
    assert task["state"] == "claimed"
    assert (task["worker_id"], task["claim_epoch"], task["attempt"]) == ("w1", 1, 1)
    assert (task["queue_name"], task["timeout_ms"]) == ("vip", 5000)
    assert task["params"] == {"to": "ada@example.com"}
    assert task["context"] == {"data": {"name": "Ada"}, "config": {}}
    assert task["claimed_at"] == task["heartbeat_at"] and task["claimed_at"].endswith("Z")
    assert (task["output"], task["error_message"], task["completed_at"]) == (None, None, None)
    rest = await api.call(
        "POST",
        "/workers/tasks/poll",
        json={"handler_name": "email", "worker_id": "w2", "limit": 5000},
    )  # the deprecated bare mount works too; limit is clamped, not refused
    assert [t["id"] for t in rest.body] == ids[1:]
    assert rest.headers["Deprecation"]


async def test_poll_with_queue_name_takes_only_that_queue(workers: Workers) -> None:
    plain = await workers.task()
    vip = await workers.task(queue_name="vip")
    body = {"handler_name": "email", "worker_id": "w", "limit": 10, "queue_name": "vip"}
    assert [t["id"] for t in (await workers.api.call("POST", POLL, json=body)).body] == [vip]
    body.pop("queue_name")
    assert [t["id"] for t in (await workers.api.call("POST", POLL, json=body)).body] == [plain]


async def test_the_queue_poll_requires_a_queue(workers: Workers) -> None:
    await workers.task()
    vip = await workers.task(queue_name="vip")
    path = "/api/v1/workers/tasks/poll/queue"
    body = {"handler_name": "email", "worker_id": "w", "limit": 10}
    await workers.api.expect_error(400, "POST", path, "queue_name", json=body)
    reply = await workers.api.call("POST", path, json={**body, "queue_name": "vip"})
    assert [t["id"] for t in reply.body] == [vip]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"worker_id": "w"}, "handler_name"),
        ({"handler_name": "email"}, "worker_id"),
        ({"handler_name": "", "worker_id": "w"}, "handler_name"),
        ({"handler_name": "email", "worker_id": "  "}, "worker_id"),
        ({"handler_name": 7, "worker_id": "w"}, "handler_name"),
        ({"handler_name": "email", "worker_id": "w", "limit": -1}, "limit"),
        ({"handler_name": "email", "worker_id": "w", "limit": "10"}, "limit"),
        ({"handler_name": "email", "worker_id": "w", "limit": 1.5}, "limit"),
        ({"handler_name": "email", "worker_id": "w", "wait_ms": -5}, "wait_ms"),
        ({"handler_name": "email", "worker_id": "w", "wait_ms": True}, "wait_ms"),
        ({"handler_name": "email", "worker_id": "w", "queue_name": 3}, "queue_name"),
        (["email"], "body"),
    ],
)
async def test_poll_refuses_a_malformed_body(workers: Workers, body: Any, fragment: str) -> None:
    await workers.api.expect_error(400, "POST", POLL, fragment, json=body)


async def test_poll_refuses_malformed_json(workers: Workers) -> None:
    await workers.api.expect_error(400, "POST", POLL, "malformed JSON", data="{not json")
    await workers.api.expect_error(400, "POST", POLL, "empty", data="")


async def test_a_long_poll_returns_as_soon_as_a_task_is_created(workers: Workers) -> None:
    body = {"handler_name": "email", "worker_id": "w", "wait_ms": 10_000}
    poll = asyncio.create_task(workers.api.call("POST", POLL, json=body))
    await asyncio.sleep(0.1)
    assert not poll.done()
    started = time.perf_counter()
    task_id = await workers.task()
    reply = await asyncio.wait_for(poll, 5)
    elapsed = time.perf_counter() - started
    assert [t["id"] for t in reply.body] == [task_id]
    assert elapsed < 0.25, elapsed


async def test_a_long_poll_without_work_answers_an_empty_list(workers: Workers) -> None:
    body = {"handler_name": "email", "worker_id": "w", "wait_ms": 150}
    started = time.perf_counter()
    assert (await workers.api.call("POST", POLL, json=body)).body == []
    assert time.perf_counter() - started >= 0.14


# --- heartbeat, complete, fail ----------------------------------------------------------


async def test_heartbeat_refreshes_the_claim(workers: Workers) -> None:
    task = await workers.claimed()
    await asyncio.sleep(0.002)
    path = f"/api/v1/workers/tasks/{task['id']}/heartbeat"
    reply = await workers.api.call("POST", path, json={"worker_id": "w1", "claim_epoch": 1})
    assert reply.status == 200
    assert reply.body["heartbeat_at"] > task["heartbeat_at"]
    assert (await workers.api.call("POST", path, json={"worker_id": "w1"})).status == 200


async def test_complete_records_the_output_and_is_idempotent(workers: Workers) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    body = {"worker_id": "w1", "claim_epoch": 1, "output": {"sent": True, "id": "m-1"}}
    reply = await workers.api.call("POST", path, json=body)
    assert reply.status == 200
    assert reply.body["state"] == "completed"
    assert reply.body["output"] == {"sent": True, "id": "m-1"}
    assert reply.body["completed_at"]
    again = await workers.api.call("POST", path, json={**body, "output": {"other": 1}})
    assert (again.status, again.body) == (200, reply.body)
    inst = await workers.storage.instances.get(task["instance_id"])
    assert inst is not None and inst.state is InstanceState.SCHEDULED  # woken for the engine


@pytest.mark.parametrize("output", [None, "text", 3, [1, 2], {"nested": {"deep": [None]}}])
async def test_complete_takes_any_json_output(workers: Workers, output: Any) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    reply = await workers.api.call("POST", path, json={"worker_id": "w1", "output": output})
    assert (reply.status, reply.body["output"]) == (200, output)


async def test_fail_records_the_error(workers: Workers) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/fail"
    body = {"worker_id": "w1", "claim_epoch": 1, "message": "SMTP refused"}
    reply = await workers.api.call("POST", path, json=body)
    assert reply.status == 200
    assert reply.body["state"] == "failed"
    assert (reply.body["error_message"], reply.body["error_retryable"]) == ("SMTP refused", False)
    assert (await workers.api.call("POST", path, json=body)).body == reply.body  # idempotent
    other = await workers.claimed(block_id="other")
    path = f"/api/v1/workers/tasks/{other['id']}/fail"
    reply = await workers.api.call(
        "POST", path, json={"worker_id": "w1", "message": "later", "retryable": True}
    )
    assert reply.body["error_retryable"] is True


@pytest.mark.parametrize("action", ["heartbeat", "complete", "fail"])
async def test_an_unknown_task_is_404(workers: Workers, action: str) -> None:
    body = {"worker_id": "w1", "output": {}, "message": "x"}
    await workers.api.expect_error(
        404, "POST", f"/api/v1/workers/tasks/no-such-task/{action}", "no-such-task", json=body
    )


@pytest.mark.parametrize("action", ["heartbeat", "complete", "fail"])
async def test_a_wrong_worker_is_409(workers: Workers, action: str) -> None:
    task = await workers.claimed()
    body = {"worker_id": "intruder", "output": {}, "message": "x"}
    path = f"/api/v1/workers/tasks/{task['id']}/{action}"
    await workers.api.expect_error(409, "POST", path, "another worker", json=body)
    [stored] = (await workers.api.call("GET", "/api/v1/workers/tasks")).body
    assert stored["state"] == "claimed"


@pytest.mark.parametrize("action", ["heartbeat", "complete", "fail"])
async def test_a_stale_epoch_is_409(workers: Workers, action: str) -> None:
    task = await workers.claimed(worker="w1")
    await workers.storage.tasks.reap_stale(now(), now())  # w1 lost its claim
    reply = await workers.api.call("POST", POLL, json={"handler_name": "email", "worker_id": "w1"})
    assert reply.body[0]["claim_epoch"] == 2  # and claimed the task anew
    body = {"worker_id": "w1", "claim_epoch": 1, "output": {"late": True}, "message": "x"}
    path = f"/api/v1/workers/tasks/{task['id']}/{action}"
    await workers.api.expect_error(409, "POST", path, "stale", json=body)


async def test_a_report_after_the_claim_was_reaped_is_409(workers: Workers) -> None:
    task = await workers.claimed(worker="dead")
    await workers.storage.tasks.reap_stale(now(), now())
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    await workers.api.expect_error(
        409, "POST", path, "not claimed", json={"worker_id": "dead", "output": 1}
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"worker_id": "w1"}, "output"),
        ({"output": {}}, "worker_id"),
        ({"worker_id": "w1", "output": {}, "claim_epoch": -1}, "claim_epoch"),
        ({"worker_id": "w1", "output": {}, "claim_epoch": "1"}, "claim_epoch"),
        ({"worker_id": "w1", "output": {"nul": "a\u0000b"}}, "NUL"),
        ("just a string", "body"),
    ],
)
async def test_complete_refuses_a_malformed_body(
    workers: Workers, body: Any, fragment: str
) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    await workers.api.expect_error(400, "POST", path, fragment, json=body)


@pytest.mark.parametrize(
    "raw",
    [
        '{"worker_id": "w1", "output": NaN}',
        '{"worker_id": "w1", "output": {"x": Infinity}}',
        '{"worker_id": "w1", "output": {"x": 1',
        '{"worker_id": "w1", "output": "\\ud800"}',
        '{"worker_id": "w1", "output": 99999999999999999999999}',
    ],
)
async def test_complete_refuses_malformed_output_json(workers: Workers, raw: str) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    await workers.api.expect_error(400, "POST", path, data=raw)
    [stored] = (await workers.api.call("GET", "/api/v1/workers/tasks")).body
    assert stored["state"] == "claimed"


async def test_an_oversized_output_is_413(workers: Workers) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/complete"
    big = {"worker_id": "w1", "output": {"blob": "x" * OUTPUT_LIMIT}}
    await workers.api.expect_error(413, "POST", path, str(OUTPUT_LIMIT), json=big)
    fits = {"worker_id": "w1", "output": "x" * (OUTPUT_LIMIT - 2)}  # quotes included
    assert (await workers.api.call("POST", path, json=fits)).status == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"worker_id": "w1"}, "message"),
        ({"worker_id": "w1", "message": 5}, "message"),
        ({"worker_id": "w1", "message": "x", "retryable": "yes"}, "retryable"),
        ({"message": "x"}, "worker_id"),
    ],
)
async def test_fail_refuses_a_malformed_body(workers: Workers, body: Any, fragment: str) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/fail"
    await workers.api.expect_error(400, "POST", path, fragment, json=body)


async def test_heartbeat_refuses_a_malformed_body(workers: Workers) -> None:
    task = await workers.claimed()
    path = f"/api/v1/workers/tasks/{task['id']}/heartbeat"
    await workers.api.expect_error(400, "POST", path, "worker_id", json={})
    await workers.api.expect_error(
        400, "POST", path, "claim_epoch", json={"worker_id": "w1", "claim_epoch": 1.5}
    )


# --- tenancy ------------------------------------------------------------------------------


async def test_tenants_see_only_their_own_tasks(workers: Workers) -> None:
    api = workers.api
    acme = await workers.task(tenant="acme")
    globex = await workers.task(tenant="globex")
    body = {"handler_name": "email", "worker_id": "w", "limit": 10}
    reply = await api.call("POST", POLL, json=body, tenant="globex")
    assert [t["id"] for t in reply.body] == [globex]
    complete = {"worker_id": "w", "output": {}}
    await api.expect_error(
        404, "POST", f"/api/v1/workers/tasks/{globex}/complete", json=complete, tenant="acme"
    )
    listed = await api.call("GET", "/api/v1/workers/tasks?tenant_id=acme", tenant="globex")
    assert [t["id"] for t in listed.body] == [globex]  # the header wins
    listed = await api.call("GET", "/api/v1/workers/tasks?tenant_id=acme")
    assert [t["id"] for t in listed.body] == [acme]
    stats = (await api.call("GET", "/api/v1/workers/tasks/stats", tenant="acme")).body
    assert stats["by_state"] == {"pending": 1}


# --- the read side ------------------------------------------------------------------------


async def test_list_tasks_filters_and_pages(workers: Workers) -> None:
    api = workers.api
    first = await workers.claimed()
    second = await workers.task()
    sms = await workers.task("sms")

    async def ids(query: str) -> list[str]:
        reply = await api.call("GET", f"/api/v1/workers/tasks{query}")
        assert reply.status == 200, reply.body
        for task in reply.body:
            assert set(task) == TASK_FIELDS
        return [t["id"] for t in reply.body]

    assert await ids("") == [sms, second, first["id"]]
    assert await ids("?handler_name=email") == [second, first["id"]]
    assert await ids("?state=claimed") == [first["id"]]
    assert await ids(f"?instance_id={first['instance_id']}") == [first["id"]]
    assert await ids("?limit=1&offset=1") == [second]
    assert await ids("?tenant_id=nobody") == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("?state=running", "state"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
    ],
)
async def test_list_tasks_refuses_bad_parameters(
    workers: Workers, query: str, fragment: str
) -> None:
    await workers.api.expect_error(400, "GET", f"/api/v1/workers/tasks{query}", fragment)


async def test_stats_count_per_state_and_handler(workers: Workers) -> None:
    claimed = await workers.claimed(worker="w1")
    await workers.task()
    await workers.task("sms")
    await workers.api.call(
        "POST",
        f"/api/v1/workers/tasks/{claimed['id']}/heartbeat",
        json={"worker_id": "w1"},
    )
    reply = await workers.api.call("GET", "/api/v1/workers/tasks/stats")
    assert reply.status == 200
    assert reply.body == {
        "by_state": {"claimed": 1, "pending": 2},
        "by_handler": {"email": {"claimed": 1, "pending": 1}, "sms": {"pending": 1}},
        "active_workers": ["w1"],
    }


async def test_workers_lists_the_fleet(workers: Workers) -> None:
    api = workers.api
    await workers.claimed("email", worker="w1")
    await api.call("POST", POLL, json={"handler_name": "sms", "worker_id": "w1", "queue_name": "q"})
    await api.call("POST", POLL, json={"handler_name": "email", "worker_id": "w2"})
    reply = await api.call("GET", "/api/v1/workers")
    assert reply.status == 200
    assert [w["worker_id"] for w in reply.body] == ["w2", "w1"]
    w1 = reply.body[1]
    assert (w1["handlers"], w1["queues"], w1["in_flight"], w1["alive"]) == (
        ["email", "sms"],
        ["q"],
        1,
        True,
    )
    assert w1["last_seen_at"].endswith("Z") and w1["version"] is None
    await asyncio.sleep(1.1)
    assert (await api.call("GET", "/api/v1/workers?alive_within_secs=1")).body == []
    stale = await api.call("GET", "/api/v1/workers?alive_within_secs=1&include_stale=true")
    assert [(w["worker_id"], w["alive"]) for w in stale.body] == [("w2", False), ("w1", False)]
    await api.expect_error(400, "GET", "/api/v1/workers?alive_within_secs=0", "alive_within_secs")
    await api.expect_error(400, "GET", "/api/v1/workers?include_stale=maybe", "include_stale")


async def test_server_shutdown_releases_long_polls(workers: Workers) -> None:
    body = {"handler_name": "email", "worker_id": "w", "wait_ms": 10_000}
    poll = asyncio.create_task(workers.api.call("POST", POLL, json=body))
    await asyncio.sleep(0.1)
    workers.service.shutdown()
    reply = await asyncio.wait_for(poll, 2)
    assert (reply.status, reply.body) == (200, [])
