"""The cron REST resource: CRUD, next-fires, tenancy and every bad input, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orch8.adapters.cron import CroniterCalendar
from orch8.codec.times import parse_time
from orch8.entrypoints.http.app import create_app
from tests.integration.conftest import Api, api_deps, make_storage

V1 = "/api/v1"
SCHEDULE_KEYS = {
    "id",
    "tenant_id",
    "namespace",
    "sequence_id",
    "cron_expr",
    "timezone",
    "enabled",
    "metadata",
    "overlap_policy",
    "skipped_fires",
    "last_skipped_at",
    "last_triggered_at",
    "next_fire_at",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    storage = make_storage(tmp_path / "db")
    await storage.migrate()
    deps = api_deps(storage)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Api(client, storage)
    finally:
        await client.close()
        await storage.close()


async def create(api: Api, seq_id: str, **fields: Any) -> dict[str, Any]:
    body = {"tenant_id": "acme", "sequence_id": seq_id, "cron_expr": "*/5 * * * *", **fields}
    reply = await api.call("POST", f"{V1}/cron", json=body)
    assert reply.status == 201, reply.body
    created: dict[str, Any] = reply.body
    return created


async def fetch(api: Api, schedule_id: str, tenant: str | None = None) -> dict[str, Any]:
    reply = await api.call("GET", f"{V1}/cron/{schedule_id}", tenant=tenant)
    assert reply.status == 200, reply.body
    found: dict[str, Any] = reply.body
    return found


async def test_create_answers_id_and_next_fire(api: Api) -> None:
    seq_id = await api.create_sequence()
    before = datetime.now().astimezone()
    created = await create(api, seq_id, cron_expr="* * * * * *")
    assert set(created) == {"id", "next_fire_at"}
    assert created["next_fire_at"].endswith("Z")
    fire = parse_time(created["next_fire_at"], "next_fire_at")
    assert before < fire <= datetime.now().astimezone() + timedelta(seconds=1)


async def test_get_answers_the_whole_schedule(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(
        api,
        seq_id,
        cron_expr="0 0 9 * * MON-FRI *",
        timezone="America/New_York",
        metadata={"type": "daily-report"},
        overlap_policy="buffer_one",
    )
    body = await fetch(api, created["id"])
    assert set(body) == SCHEDULE_KEYS
    assert body == {
        **body,
        "id": created["id"],
        "tenant_id": "acme",
        "namespace": "default",
        "sequence_id": seq_id,
        "cron_expr": "0 0 9 * * MON-FRI *",
        "timezone": "America/New_York",
        "enabled": True,
        "metadata": {"type": "daily-report"},
        "overlap_policy": "buffer_one",
        "skipped_fires": 0,
        "last_skipped_at": None,
        "last_triggered_at": None,
        "next_fire_at": created["next_fire_at"],
    }
    fire = parse_time(body["next_fire_at"], "t")
    assert fire.minute == 0 and fire.second == 0 and fire.weekday() < 5


async def test_defaults(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    body = await fetch(api, created["id"])
    assert body["timezone"] == "UTC"
    assert body["enabled"] is True
    assert body["metadata"] == {}
    assert body["overlap_policy"] == "allow"


async def test_tenant_from_the_header(api: Api) -> None:
    seq_id = await api.create_sequence(tenant="acme")
    body = {"sequence_id": seq_id, "cron_expr": "* * * * *"}
    reply = await api.call("POST", f"{V1}/cron", json=body, tenant="acme")
    assert reply.status == 201, reply.body
    assert (await fetch(api, reply.body["id"]))["tenant_id"] == "acme"


async def test_list_is_an_array_scoped_by_tenant(api: Api) -> None:
    acme_seq = await api.create_sequence(tenant="acme")
    other_seq = await api.create_sequence(tenant="other")
    a1 = await create(api, acme_seq)
    a2 = await create(api, acme_seq, cron_expr="0 * * * *")
    b = await create(api, other_seq, tenant_id="other")
    everything = await api.call("GET", f"{V1}/cron")
    assert [s["id"] for s in everything.body] == [a1["id"], a2["id"], b["id"]]
    acme = await api.call("GET", f"{V1}/cron?tenant_id=acme")
    assert [s["id"] for s in acme.body] == [a1["id"], a2["id"]]
    assert all(set(s) == SCHEDULE_KEYS for s in acme.body)
    by_header = await api.call("GET", f"{V1}/cron", tenant="other")
    assert [s["id"] for s in by_header.body] == [b["id"]]
    crossed = await api.call("GET", f"{V1}/cron?tenant_id=acme", tenant="other")
    assert crossed.status == 200 and crossed.body == []


async def test_update_changes_fields_and_recomputes_the_next_fire(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id, cron_expr="0 0 1 1 *")  # once a year
    reply = await api.call(
        "PUT",
        f"{V1}/cron/{created['id']}",
        json={
            "cron_expr": "* * * * * *",
            "timezone": "Europe/Berlin",
            "metadata": {"v": 2},
            "overlap_policy": "skip",
            "enabled": False,
        },
    )
    assert reply.status == 200, reply.body
    body = reply.body
    assert set(body) == SCHEDULE_KEYS
    assert body["cron_expr"] == "* * * * * *"
    assert body["timezone"] == "Europe/Berlin"
    assert body["metadata"] == {"v": 2}
    assert body["overlap_policy"] == "skip"
    assert body["enabled"] is False
    fire = parse_time(body["next_fire_at"], "t")
    assert fire <= datetime.now().astimezone() + timedelta(seconds=2)
    assert body == await fetch(api, created["id"])


async def test_update_with_no_fields_changes_nothing_but_updated_at(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    before = await fetch(api, created["id"])
    reply = await api.call("PUT", f"{V1}/cron/{created['id']}", json={"metadata": None})
    assert reply.status == 200, reply.body
    assert {**reply.body, "updated_at": None} == {**before, "updated_at": None}


async def test_delete(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    reply = await api.call("DELETE", f"{V1}/cron/{created['id']}")
    assert reply.status == 204 and reply.body is None
    await api.expect_error(404, "GET", f"{V1}/cron/{created['id']}", created["id"])
    await api.expect_error(404, "DELETE", f"{V1}/cron/{created['id']}")


async def test_next_fires(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id, cron_expr="30 2 * * *", timezone="America/New_York")
    reply = await api.call("GET", f"{V1}/cron/{created['id']}/next-fires")
    assert reply.status == 200, reply.body
    assert set(reply.body) == {"id", "timezone", "next_fires"}
    assert reply.body["id"] == created["id"]
    assert reply.body["timezone"] == "America/New_York"
    fires = [parse_time(t, "t") for t in reply.body["next_fires"]]
    assert len(fires) == 5
    assert all(t.endswith("Z") for t in reply.body["next_fires"])
    # the same instants croniter-backed arithmetic gives (DST-correct, UTC)
    expected = CroniterCalendar().next_fires(
        "30 2 * * *", "America/New_York", fires[0] - timedelta(microseconds=1), 5
    )
    assert fires == expected
    assert reply.body["next_fires"][0] == created["next_fire_at"]
    many = await api.call("GET", f"{V1}/cron/{created['id']}/next-fires?n=50")
    assert len(many.body["next_fires"]) == 50
    one = await api.call("GET", f"/cron/{created['id']}/next-fires?n=1")  # the bare mount too
    assert one.status == 200 and len(one.body["next_fires"]) == 1


async def test_unknown_and_foreign_ids_are_404(api: Api) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    sid = created["id"]
    for method, path, body in [
        ("GET", "/cron/nope", None),
        ("PUT", "/cron/nope", {"enabled": False}),
        ("DELETE", "/cron/nope", None),
        ("GET", "/cron/nope/next-fires", None),
    ]:
        kwargs = {} if body is None else {"json": body}
        await api.expect_error(404, method, V1 + path, "nope", **kwargs)
    for method, path, body in [
        ("GET", f"/cron/{sid}", None),
        ("PUT", f"/cron/{sid}", {"enabled": False}),
        ("DELETE", f"/cron/{sid}", None),
        ("GET", f"/cron/{sid}/next-fires", None),
    ]:
        kwargs = {} if body is None else {"json": body}
        await api.expect_error(404, method, V1 + path, sid, tenant="other", **kwargs)
    assert (await fetch(api, sid, tenant="acme"))["enabled"] is True  # untouched


async def test_unknown_or_foreign_sequence_is_404(api: Api) -> None:
    seq_id = await api.create_sequence(tenant="acme")
    body = {"sequence_id": "nope", "cron_expr": "* * * * *", "tenant_id": "acme"}
    await api.expect_error(404, "POST", f"{V1}/cron", "nope", json=body)
    body = {"sequence_id": seq_id, "cron_expr": "* * * * *"}
    await api.expect_error(404, "POST", f"{V1}/cron", seq_id, json=body, tenant="other")
    body = {**body, "tenant_id": "other"}
    await api.expect_error(404, "POST", f"{V1}/cron", seq_id, json=body)


async def test_a_body_tenant_contradicting_the_header_is_403(api: Api) -> None:
    seq_id = await api.create_sequence(tenant="acme")
    body = {"sequence_id": seq_id, "cron_expr": "* * * * *", "tenant_id": "acme"}
    await api.expect_error(403, "POST", f"{V1}/cron", "tenant_id", json=body, tenant="other")


BAD_CREATES = [
    ({"cron_expr": "not a cron"}, "cron_expr"),
    ({"cron_expr": "61 * * * *"}, "cron_expr"),
    ({"cron_expr": "* * * *"}, "cron_expr"),
    ({"cron_expr": "0 99 * * * * *"}, "cron_expr"),
    ({"cron_expr": "0 0 30 2 *"}, "cron_expr"),
    ({"cron_expr": "0 0 0 1 1 * 2020"}, "cron_expr"),
    ({"cron_expr": ""}, "cron_expr"),
    ({"cron_expr": 5}, "cron_expr"),
    ({"cron_expr": None}, "cron_expr"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": 3}, "timezone"),
    ({"overlap_policy": "queue_all"}, "overlap_policy"),
    ({"overlap_policy": 1}, "overlap_policy"),
    ({"enabled": "yes"}, "enabled"),
    ({"metadata": [1]}, "metadata"),
    ({"sequence_id": None}, "sequence_id"),
    ({"sequence_id": ""}, "sequence_id"),
    ({"namespace": "elsewhere"}, "namespace"),
]


@pytest.mark.parametrize(("fields", "name"), BAD_CREATES, ids=[f"{n}={f}" for f, n in BAD_CREATES])
async def test_bad_create_is_400_naming_the_field(
    api: Api, fields: dict[str, Any], name: str
) -> None:
    seq_id = await api.create_sequence()
    body = {"tenant_id": "acme", "sequence_id": seq_id, "cron_expr": "* * * * *", **fields}
    await api.expect_error(400, "POST", f"{V1}/cron", name, json=body)
    assert (await api.call("GET", f"{V1}/cron")).body == []


BAD_UPDATES = [
    ({"cron_expr": "every tuesday"}, "cron_expr"),
    ({"cron_expr": ""}, "cron_expr"),
    ({"timezone": "Atlantis/Capital"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"overlap_policy": "later"}, "overlap_policy"),
    ({"enabled": 1}, "enabled"),
    ({"metadata": "x"}, "metadata"),
]


@pytest.mark.parametrize(("fields", "name"), BAD_UPDATES, ids=[f"{n}={f}" for f, n in BAD_UPDATES])
async def test_bad_update_is_400_naming_the_field(
    api: Api, fields: dict[str, Any], name: str
) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    before = await fetch(api, created["id"])
    await api.expect_error(400, "PUT", f"{V1}/cron/{created['id']}", name, json=fields)
    assert await fetch(api, created["id"]) == before


@pytest.mark.parametrize("n", ["0", "51", "-1", "abc", "1.5"])
async def test_next_fires_n_out_of_range_is_400(api: Api, n: str) -> None:
    seq_id = await api.create_sequence()
    created = await create(api, seq_id)
    await api.expect_error(400, "GET", f"{V1}/cron/{created['id']}/next-fires?n={n}", "n")


@pytest.mark.parametrize("raw", ["", "[]", "{", '"x"'])
async def test_bad_bodies_are_400(api: Api, raw: str) -> None:
    await api.expect_error(400, "POST", f"{V1}/cron", "body", data=raw)
