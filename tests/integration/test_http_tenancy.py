"""Tenant isolation over HTTP, per resource type: another tenant's sequences, instances,
worker tasks, cron schedules and rate limits are absent (404), never readable or
writable; a write naming another tenant is 403.

Each test runs twice: with tenant API keys (the server has a root key) and with the
`x-tenant-id` header (no root key), the two ways a caller names its tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from attrs import frozen

from orch8.application.ports.storage import SnapshotWrite
from orch8.bootstrap.settings import Settings
from orch8.domain.instance import InstanceState
from orch8.domain.tasks import WorkerTask
from tests.contract.builders import make_instance, make_sequence, new_id, now
from tests.integration.conftest import Api, MakeApi, step

ROOT_KEY = "root-key-for-tenancy-tests"
V1 = "/api/v1"


@frozen
class Tenants:
    """An API and how each tenant (and the root) authenticates to it."""

    api: Api
    as_: Callable[[str | None], dict[str, str]]

    async def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        return await self.api.call(method, V1 + path, **self.as_(who), **kwargs)

    async def absent(self, who: str, method: str, path: str, **kwargs: Any) -> None:
        await self.api.expect_error(404, method, V1 + path, **self.as_(who), **kwargs)

    async def created(self, who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.call(who, "POST", path, json=body)
        assert reply.status == 201, reply.body
        created: dict[str, Any] = reply.body
        return created


@pytest.fixture(params=["key", "header"])
async def tenants(request: pytest.FixtureRequest, make_api: MakeApi) -> Tenants:
    if request.param == "header":
        api = await make_api()
        return Tenants(api, lambda who: {} if who is None else {"tenant": who})
    api = await make_api(settings=Settings(run_migrations=False, api_key=ROOT_KEY))
    secrets: dict[str | None, str] = {None: ROOT_KEY}
    for tenant in ("acme", "globex"):
        reply = await api.call("POST", "/api-keys", json={"tenant_id": tenant}, key=ROOT_KEY)
        secrets[tenant] = reply.body["secret"]
    return Tenants(api, lambda who: {"key": secrets[who]})


async def sequence(t: Tenants, who: str, name: str = "welcome") -> str:
    seq: str = (await t.created(who, "/sequences", {"name": name, "blocks": [step("a")]}))["id"]
    return seq


async def test_sequences(tenants: Tenants) -> None:
    t = tenants
    seq = await sequence(t, "acme")
    assert (await t.call("acme", "GET", f"/sequences/{seq}")).status == 200
    await t.absent("globex", "GET", f"/sequences/{seq}")
    await t.absent("globex", "POST", f"/sequences/{seq}/deprecate")
    await t.absent("globex", "DELETE", f"/sequences/{seq}")
    await t.absent("globex", "GET", "/sequences/by-name?tenant_id=acme&name=welcome")
    versions = await t.call("globex", "GET", "/sequences/versions?tenant_id=acme&name=welcome")
    assert versions.body == []
    listed = await t.call("globex", "GET", "/sequences?tenant_id=acme")
    assert listed.body["items"] == []
    body = {"tenant_id": "acme", "name": "x", "blocks": [step("a")]}
    await t.api.expect_error(403, "POST", f"{V1}/sequences", "acme", json=body, **t.as_("globex"))
    mine = await t.call("acme", "GET", "/sequences")
    assert [s["id"] for s in mine.body["items"]] == [seq]
    assert (await t.call("acme", "GET", f"/sequences/{seq}")).body["deprecated"] is False


async def test_instances(tenants: Tenants) -> None:
    t = tenants
    seq = await sequence(t, "acme")
    inst = (await t.created("acme", "/instances", {"sequence_id": seq}))["id"]
    # Another tenant cannot start, read, signal or change it.
    await t.absent("globex", "POST", "/instances", json={"sequence_id": seq})
    batch = {"instances": [{"sequence_id": seq}]}
    await t.absent("globex", "POST", "/instances/batch", json=batch)
    for path in ("", "/outputs", "/tree"):
        await t.absent("globex", "GET", f"/instances/{inst}{path}")
    headers = {"x-api-key" if k == "key" else "x-tenant-id": v for k, v in t.as_("globex").items()}
    async with t.api.client.get(f"{V1}/instances/{inst}/stream", headers=headers) as resp:
        # As Orch8 streams it: the stream opens and says the instance is not found.
        assert 'data: {"error":"instance not found"}' in await resp.text()
    await t.absent("globex", "POST", f"/instances/{inst}/signals", json={"signal_type": "pause"})
    await t.absent("globex", "PATCH", f"/instances/{inst}/state", json={"state": "paused"})
    await t.absent("globex", "PATCH", f"/instances/{inst}/context", json={"context": {}})
    await t.absent("globex", "POST", f"/instances/{inst}/retry")
    for path in ("/instances?tenant_id=acme", "/instances/dlq?tenant_id=acme", "/approvals"):
        body = (await t.call("globex", "GET", path)).body
        assert (body["items"] if isinstance(body, dict) else body) == [], path
    bulk = {"filter": {"sequence_id": seq}, "state": "paused"}
    assert (await t.call("globex", "PATCH", "/instances/bulk/state", json=bulk)).body == {
        "count": 0
    }
    shift = {"filter": {"tenant_id": "acme"}, "offset_secs": 60}
    await t.api.expect_error(
        403, "PATCH", f"{V1}/instances/bulk/reschedule", json=shift, **t.as_("globex")
    )
    got = await t.call("acme", "GET", f"/instances/{inst}")
    assert (got.body["tenant_id"], got.body["state"]) == ("acme", "scheduled")
    assert [i["id"] for i in (await t.call("acme", "GET", "/instances")).body["items"]] == [inst]


async def task(t: Tenants, tenant: str, handler: str = "email") -> str:
    """A worker task as the engine writes it: with the snapshot that parks its step."""
    storage = t.api.storage
    seq = make_sequence(new_id("seq"), tenant_id=tenant)
    await storage.sequences.create(seq)
    inst = make_instance(seq, state=InstanceState.RUNNING)
    await storage.instances.create([inst])
    created = WorkerTask(
        id=new_id("task"),
        instance_id=inst.id,
        tenant_id=tenant,
        block_id="charge",
        handler_name=handler,
        attempt=1,
        created_at=now(),
        params={},
        context={"data": {}, "config": {}},
    )
    write = SnapshotWrite(
        instance_id=inst.id,
        expected_state=InstanceState.RUNNING,
        state=InstanceState.WAITING,
        next_fire_at=None,
        updated_at=now(),
        tasks=(created,),
    )
    await storage.snapshots.commit(write)
    return created.id


async def test_worker_tasks(tenants: Tenants) -> None:
    t = tenants
    acme = await task(t, "acme")
    globex = await task(t, "globex")
    # globex's worker polls first, asking for every task of the handler: it gets its own only.
    poll = {"handler_name": "email", "worker_id": "g1", "limit": 10}
    polled = await t.call("globex", "POST", "/workers/tasks/poll", json=poll)
    assert [x["id"] for x in polled.body] == [globex]
    queue = {**poll, "queue_name": "default"}
    assert (await t.call("globex", "POST", "/workers/tasks/poll/queue", json=queue)).body == []
    report = {"worker_id": "g1"}
    await t.absent("globex", "POST", f"/workers/tasks/{acme}/heartbeat", json=report)
    await t.absent(
        "globex", "POST", f"/workers/tasks/{acme}/complete", json={**report, "output": {}}
    )
    fail = {**report, "message": "no", "retryable": False}
    await t.absent("globex", "POST", f"/workers/tasks/{acme}/fail", json=fail)
    listed = await t.call("globex", "GET", "/workers/tasks?tenant_id=acme")
    assert [x["id"] for x in listed.body] == [globex]
    stats = (await t.call("globex", "GET", "/workers/tasks/stats")).body
    assert stats["by_state"] == {"claimed": 1}
    # acme's task is untouched, and acme's worker claims it.
    polled = await t.call("acme", "POST", "/workers/tasks/poll", json={**poll, "worker_id": "a1"})
    assert [x["id"] for x in polled.body] == [acme]
    done = await t.call(
        "acme", "POST", f"/workers/tasks/{acme}/complete", json={"worker_id": "a1", "output": {}}
    )
    assert done.status == 200, done.body
    # Neither can touch the other's claimed task.
    await t.absent(
        "acme", "POST", f"/workers/tasks/{globex}/complete", json={**report, "output": {}}
    )


async def test_cron_schedules(tenants: Tenants) -> None:
    t = tenants
    seq = await sequence(t, "acme")
    schedule = await t.created("acme", "/cron", {"sequence_id": seq, "cron_expr": "*/5 * * * *"})
    sid = schedule["id"]
    assert (await t.call("acme", "GET", f"/cron/{sid}")).body["tenant_id"] == "acme"
    for method, path, body in (
        ("GET", f"/cron/{sid}", None),
        ("GET", f"/cron/{sid}/next-fires", None),
        ("PUT", f"/cron/{sid}", {"enabled": False}),
        ("DELETE", f"/cron/{sid}", None),
    ):
        kwargs = {} if body is None else {"json": body}
        await t.absent("globex", method, path, **kwargs)
    assert (await t.call("globex", "GET", "/cron?tenant_id=acme")).body == []
    # Scheduling another tenant's sequence is as absent as reading it.
    await t.absent("globex", "POST", "/cron", json={"sequence_id": seq, "cron_expr": "* * * * *"})
    got = await t.call("acme", "GET", f"/cron/{sid}")
    assert got.body["enabled"] is True
    assert [c["id"] for c in (await t.call("acme", "GET", "/cron")).body] == [sid]


async def test_rate_limits(tenants: Tenants) -> None:
    t = tenants
    limit = {"key": "smtp", "max_count": 5, "window_seconds": 1}
    await t.created("acme", "/rate-limits", limit)
    for method, body in (
        ("GET", None),
        ("PUT", {"max_count": 50, "window_seconds": 1}),
        ("DELETE", None),
    ):
        kwargs = {} if body is None else {"json": body}
        await t.absent("globex", method, "/rate-limits/smtp?tenant_id=acme", **kwargs)
        await t.absent("globex", method, "/rate-limits/smtp", **kwargs)
    assert (await t.call("globex", "GET", "/rate-limits?tenant_id=acme")).body["items"] == []
    await t.api.expect_error(
        403,
        "POST",
        f"{V1}/rate-limits",
        json={**limit, "tenant_id": "acme"},
        **t.as_("globex"),
    )
    # globex may have a limit of the same key: its own.
    await t.created("globex", "/rate-limits", {**limit, "max_count": 1})
    got = await t.call("acme", "GET", "/rate-limits/smtp")
    assert (got.body["tenant_id"], got.body["max_count"]) == ("acme", 5)
    everyone = await t.call(None, "GET", "/rate-limits")
    assert sorted(x["tenant_id"] for x in everyone.body["items"]) == ["acme", "globex"]
