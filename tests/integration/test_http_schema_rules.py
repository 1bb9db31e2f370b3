"""Rules the OpenAPI document states, found by the Schemathesis run and kept here as
fast regressions: each case was a 500, an undocumented answer, or a request the
document calls valid that the server refused (or the reverse)."""

from __future__ import annotations

from typing import Any

import pytest

from orch8.entrypoints.http.openapi import document
from tests.integration.conftest import Api


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/api/v1/instances/batch", "POST"), ("/api/v1/sequences/by-name", "GET")],
)
async def test_405_allows_only_the_methods_of_the_matching_path(
    api: Api, path: str, allowed: str
) -> None:
    reply = await api.call("OPTIONS", path)
    assert reply.status == 405
    assert reply.headers["Allow"] == allowed


async def test_a_query_parameter_given_twice_is_400(api: Api) -> None:
    await api.expect_error(400, "GET", "/api/v1/instances?limit=1&limit=2", "limit")


@pytest.mark.parametrize("query", ["alive_within_secs=", "include_stale=", "alive_within_secs=1_0"])
async def test_blank_or_odd_integers_and_flags_are_400(api: Api, query: str) -> None:
    name = query.split("=")[0]
    await api.expect_error(400, "GET", f"/api/v1/workers?{query}", name)


async def test_query_values_are_taken_as_sent(api: Api) -> None:
    body = {"tenant_id": "\u0085t", "key": "k", "max_count": 1, "window_seconds": 1}
    assert (await api.call("POST", "/api/v1/rate-limits", json=body)).status == 201
    reply = await api.call("GET", "/api/v1/rate-limits/k?tenant_id=%C2%85t")
    assert reply.status == 200, reply.body


async def test_an_integer_field_takes_a_number_without_fraction(api: Api) -> None:
    seq = await api.create_sequence()
    body: dict[str, Any] = {"sequence_id": seq, "max_concurrency": 2.0, "priority": 3.0}
    reply = await api.call("POST", "/api/v1/instances", json=body)
    assert reply.status == 201, reply.body
    inst = (await api.call("GET", f"/api/v1/instances/{reply.body['id']}")).body
    assert (inst["max_concurrency"], inst["priority"]) == (2, "Critical")
    body["max_concurrency"] = 1e30
    await api.expect_error(400, "POST", "/api/v1/instances", "max_concurrency", json=body)


async def test_optional_body_fields_may_be_null(api: Api) -> None:
    seq = await api.create_sequence()
    body = {"sequence_id": seq, "priority": None, "context": None, "timezone": None}
    assert (await api.call("POST", "/api/v1/instances", json=body)).status == 201


def test_the_document_states_integer_ranges_and_nullable_optionals() -> None:
    doc = document()
    new_instance = doc["components"]["schemas"]["NewInstance"]["properties"]
    assert {"type": "null"} in new_instance["priority"]["anyOf"]
    concurrency = new_instance["max_concurrency"]["anyOf"][0]
    assert (concurrency["minimum"], concurrency["maximum"]) == (1, 2**63 - 1)
    stream = doc["paths"]["/api/v1/instances/{id}/stream"]["get"]["responses"]["200"]
    event = stream["content"]["text/event-stream"]["schema"]
    assert event["properties"]["event"]["enum"] == ["state", "output", "done", "error"]
