"""Instance routes: wire shapes, filters, paging, outputs, tree and tenant scoping."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.instance import InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.tree import Node, NodeState

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
INSTANCE_FIELDS = {
    "id",
    "sequence_id",
    "tenant_id",
    "namespace",
    "state",
    "next_fire_at",
    "priority",
    "timezone",
    "metadata",
    "context",
    "concurrency_key",
    "max_concurrency",
    "idempotency_key",
    "parent_instance_id",
    "created_at",
    "updated_at",
}


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", "params": {}, **extra}


async def test_create_and_get_full_wire_shape(api):
    seq_id = await api.create_sequence()
    body = {
        "sequence_id": seq_id,
        "tenant_id": "acme",
        "namespace": "default",
        "priority": "high",
        "timezone": "America/New_York",
        "metadata": {"campaign": "spring"},
        "context": {"data": {"email": "j@acme.com"}, "config": {"sender": "me"}},
        "next_fire_at": "2030-01-15T16:00:00+02:00",
        "concurrency_key": "contact:j",
        "max_concurrency": 1,
        "idempotency_key": "welcome:j",
    }
    created = await api.call("POST", "/api/v1/instances", json=body)
    assert created.status == 201
    assert set(created.body) == {"id", "deduplicated"}
    assert created.body["deduplicated"] is False

    got = await api.call("GET", f"/api/v1/instances/{created.body['id']}")
    assert got.status == 200
    inst = got.body
    assert set(inst) == INSTANCE_FIELDS
    assert inst["id"] == created.body["id"]
    assert inst["sequence_id"] == seq_id
    assert inst["tenant_id"] == "acme"
    assert inst["state"] == "scheduled"
    assert inst["priority"] == "High"
    assert inst["timezone"] == "America/New_York"
    assert inst["next_fire_at"] == "2030-01-15T14:00:00Z"
    assert inst["metadata"] == {"campaign": "spring"}
    assert inst["context"] == {
        "data": {"email": "j@acme.com"},
        "config": {"sender": "me"},
        "audit": [],
        "runtime": {},
    }
    assert (inst["concurrency_key"], inst["max_concurrency"]) == ("contact:j", 1)
    assert inst["idempotency_key"] == "welcome:j"
    assert inst["parent_instance_id"] is None
    assert RFC3339_Z.match(inst["created_at"]), inst["created_at"]
    assert RFC3339_Z.match(inst["updated_at"]), inst["updated_at"]


async def test_defaults_and_priority_spellings(api):
    seq_id = await api.create_sequence()
    plain = await api.call("GET", f"/instances/{await api.create_instance(seq_id)}")
    assert plain.body["priority"] == "Normal"
    assert plain.body["timezone"] == "UTC"
    assert plain.body["namespace"] == "default"
    assert plain.body["tenant_id"] == "acme"
    assert RFC3339_Z.match(plain.body["next_fire_at"])
    for given, wire in [("Low", "Low"), ("CRITICAL", "Critical"), (2, "High"), (0, "Low")]:
        inst_id = await api.create_instance(seq_id, priority=given)
        got = await api.call("GET", f"/api/v1/instances/{inst_id}")
        assert got.body["priority"] == wire


async def test_list_filters_and_pages(api):
    seq_a = await api.create_sequence("a")
    seq_b = await api.create_sequence("b")
    a_ids = {await api.create_instance(seq_a) for _ in range(3)}
    b_id = await api.create_instance(seq_b)

    everything = await api.call("GET", "/api/v1/instances")
    assert set(everything.body) == {"items", "has_more"}
    assert {i["id"] for i in everything.body["items"]} == a_ids | {b_id}
    assert everything.body["has_more"] is False

    first = await api.call("GET", f"/api/v1/instances?sequence_id={seq_a}&limit=2")
    assert (len(first.body["items"]), first.body["has_more"]) == (2, True)
    rest = await api.call("GET", f"/api/v1/instances?sequence_id={seq_a}&limit=2&offset=2")
    assert (len(rest.body["items"]), rest.body["has_more"]) == (1, False)
    assert {i["id"] for i in first.body["items"] + rest.body["items"]} == a_ids

    exact = await api.call("GET", f"/api/v1/instances?sequence_id={seq_a}&limit=3")
    assert (len(exact.body["items"]), exact.body["has_more"]) == (3, False)

    by_state = await api.call("GET", "/api/v1/instances?state=scheduled,running")
    assert len(by_state.body["items"]) == 4
    none = await api.call("GET", "/api/v1/instances?state=completed,failed")
    assert none.body == {"items": [], "has_more": False}
    scoped = await api.call("GET", "/api/v1/instances?tenant_id=acme&namespace=default")
    assert len(scoped.body["items"]) == 4
    other_ns = await api.call("GET", "/api/v1/instances?namespace=elsewhere")
    assert other_ns.body["items"] == []


async def test_outputs_is_a_plain_array(api):
    seq_id = await api.create_sequence(blocks=[step("a"), step("b")])
    inst_id = await api.create_instance(seq_id)
    empty = await api.call("GET", f"/api/v1/instances/{inst_id}/outputs")
    assert (empty.status, empty.body) == (200, [])

    at = datetime(2024, 1, 15, 14, 0, 3, tzinfo=UTC)
    out = BlockOutput(
        id=str(uuid.uuid4()),
        instance_id=inst_id,
        block_id="a",
        output={"email_id": "msg-1"},
        attempt=0,
        created_at=at,
        output_size=19,
    )
    await api.storage.snapshots.commit(
        SnapshotWrite(
            instance_id=inst_id,
            expected_state=InstanceState.SCHEDULED,
            state=InstanceState.SCHEDULED,
            next_fire_at=at,
            updated_at=at,
            nodes=(Node("a", "step", NodeState.COMPLETED, started_at=at, completed_at=at),),
            outputs=(out,),
        )
    )
    reply = await api.call("GET", f"/instances/{inst_id}/outputs")
    assert reply.body == [
        {
            "id": out.id,
            "instance_id": inst_id,
            "block_id": "a",
            "output": {"email_id": "msg-1"},
            "output_ref": None,
            "output_size": 19,
            "attempt": 0,
            "created_at": "2024-01-15T14:00:03Z",
        }
    ]
    tree = await api.call("GET", f"/api/v1/instances/{inst_id}/tree")
    a, b = tree.body
    assert (a["state"], a["started_at"], a["completed_at"]) == (
        "completed",
        "2024-01-15T14:00:03Z",
        "2024-01-15T14:00:03Z",
    )
    assert (b["state"], b["started_at"]) == ("pending", None)


async def test_tree_is_a_plain_array_with_stable_node_ids(api):
    blocks = [
        step("first"),
        {
            "type": "parallel",
            "id": "fan",
            "branches": [[step("left")], [step("right"), step("right2")]],
        },
    ]
    seq_id = await api.create_sequence(blocks=blocks)
    inst_id = await api.create_instance(seq_id)
    reply = await api.call("GET", f"/api/v1/instances/{inst_id}/tree")
    assert reply.status == 200
    nodes = {n["block_id"]: n for n in reply.body}
    assert list(nodes) == ["first", "fan", "left", "right", "right2"]
    for node in reply.body:
        assert set(node) == {
            "id",
            "instance_id",
            "block_id",
            "parent_id",
            "block_type",
            "branch_index",
            "state",
            "started_at",
            "completed_at",
        }
        assert uuid.UUID(node["id"])
        assert node["instance_id"] == inst_id
        assert node["state"] == "pending"
    assert len({n["id"] for n in reply.body}) == 5
    assert nodes["first"]["parent_id"] is None
    assert nodes["fan"]["block_type"] == "parallel"
    assert nodes["left"]["parent_id"] == nodes["fan"]["id"]
    assert (nodes["left"]["branch_index"], nodes["right2"]["branch_index"]) == (0, 1)
    assert nodes["right2"]["parent_id"] == nodes["fan"]["id"]

    again = await api.call("GET", f"/instances/{inst_id}/tree")
    assert again.body == reply.body
    other = await api.call("GET", f"/api/v1/instances/{await api.create_instance(seq_id)}/tree")
    assert {n["id"] for n in other.body}.isdisjoint(n["id"] for n in reply.body)


async def test_unknown_instance_is_404(api):
    for suffix in ("", "/outputs", "/tree"):
        await api.expect_error(404, "GET", f"/api/v1/instances/missing{suffix}", "missing")


async def test_unknown_sequence_on_create_is_404(api):
    await api.expect_error(404, "POST", "/api/v1/instances", "nope", json={"sequence_id": "nope"})


async def test_another_tenants_instance_is_invisible(api):
    seq_id = await api.create_sequence(tenant="acme")
    inst_id = await api.create_instance(seq_id)
    other_seq = await api.create_sequence(tenant="globex")
    other_inst = await api.create_instance(other_seq)
    for suffix in ("", "/outputs", "/tree"):
        await api.expect_error(404, "GET", f"/api/v1/instances/{inst_id}{suffix}", tenant="globex")
        mine = await api.call("GET", f"/api/v1/instances/{inst_id}{suffix}", tenant="acme")
        assert mine.status == 200
    listed = await api.call("GET", "/api/v1/instances", tenant="globex")
    assert [i["id"] for i in listed.body["items"]] == [other_inst]
    asked = await api.call("GET", "/api/v1/instances?tenant_id=acme", tenant="globex")
    assert asked.body == {"items": [], "has_more": False}
    # Starting another tenant's sequence looks exactly like an unknown one.
    await api.expect_error(
        404, "POST", "/api/v1/instances", json={"sequence_id": seq_id}, tenant="globex"
    )


async def test_body_tenant_contradicting_header_is_403(api):
    seq_id = await api.create_sequence(tenant="acme")
    await api.expect_error(
        403,
        "POST",
        "/api/v1/instances",
        "tenant_id",
        json={"sequence_id": seq_id, "tenant_id": "acme"},
        tenant="globex",
    )
    inst_id = await api.create_instance(seq_id, header="acme", tenant_id="acme")
    assert (await api.call("GET", f"/instances/{inst_id}", tenant="acme")).status == 200
