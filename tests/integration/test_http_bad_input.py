"""Malformed requests: each is a 4xx with a JSON `error` naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", "params": {}, **extra}


def seq(blocks: Any) -> dict[str, Any]:
    return {"tenant_id": "acme", "name": "bad", "blocks": blocks}


def chain(depth: int) -> list[dict[str, Any]]:
    block = step(f"b{depth}")
    for level in range(depth - 1, 0, -1):
        block = {"type": "cancellation_scope", "id": f"b{level}", "blocks": [block]}
    return [block]


@pytest.mark.parametrize("path", ["/api/v1/sequences", "/api/v1/instances", "/sequences"])
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "malformed JSON"),
        ('{"name": "x",}', "malformed JSON"),
        ("", "empty"),
        ('{"name": NaN}', "NaN"),
        ("[1, 2]", "body: must be a JSON object"),
        ('"text"', "body: must be a JSON object"),
        ("null", "body: must be a JSON object"),
        ("\xff\xfe", "malformed JSON"),
    ],
)
async def test_body_that_is_not_a_json_object(api, path, raw, fragment):
    await api.expect_error(400, "POST", path, fragment, data=raw.encode("latin-1"))


async def test_absurdly_deep_json_is_refused(api):
    raw = "[" * 100_000 + "]" * 100_000
    await api.expect_error(400, "POST", "/api/v1/sequences", "nesting", data=raw)
    deep: Any = 1
    for _ in range(600):
        deep = {"d": deep}
    await api.expect_error(400, "POST", "/api/v1/sequences", "nesting", json=deep)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"tenant_id": "acme", "name": "\\ud800", "blocks": []}', "name"),
        ('{"tenant_id": "acme", "name": "x", "input_schema": {"\\udfff": 1}}', "input_schema"),
    ],
)
async def test_lone_surrogates_are_refused(api, raw, fragment):
    await api.expect_error(400, "POST", "/api/v1/sequences", fragment, "surrogate", data=raw)


async def test_integer_beyond_64_bits_is_refused(api):
    await api.expect_error(
        400,
        "POST",
        "/api/v1/sequences",
        "version",
        json={**seq([step("a")]), "version": 2**70},
    )


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"tenant_id": "acme", "name": "x"}, ["blocks: is required"]),
        ({"tenant_id": "acme", "blocks": [step("a")]}, ["name"]),
        (seq([]), ["blocks", "at least one"]),
        (seq({"a": 1}), ["blocks"]),
        (seq([step("a"), step("a")]), ["block 'a'.id: duplicate block id 'a'"]),
        (seq([{"type": "bogus", "id": "a"}]), ["block 'a'.type", "bogus"]),
        (seq([{"id": "a", "handler": "noop"}]), ["block 'a'.type"]),
        (seq([step("")]), ["id"]),
        (seq([step("a", delay={"duration": -5})]), ["block 'a'.delay.duration", "negative"]),
        (seq([step("a", timeout=-1)]), ["block 'a'.timeout", "negative"]),
        (seq([step("a", timeout="5s")]), ["block 'a'.timeout", "milliseconds"]),
        (seq([step("a", delay={"duration": "1500"})]), ["block 'a'.delay.duration"]),
        (
            seq([step("a", retry={"max_attempts": 0, "initial_backoff": 1, "max_backoff": 2})]),
            ["block 'a'.retry.max_attempts"],
        ),
        (seq(chain(65)), ["nesting", "64"]),
        ({**seq([step("a")]), "version": 0}, ["version"]),
        ({**seq([step("a")]), "version": "one"}, ["version"]),
        ({**seq([step("a")]), "created_at": "yesterday"}, ["created_at"]),
        ({**seq([step("a")]), "created_at": "9999-12-31T23:59:59-01:00"}, ["created_at"]),
        (seq([step("a", delay={"duration": 1e300})]), ["block 'a'.delay.duration", "100 years"]),
        (seq([step("a", timeout=10**15)]), ["block 'a'.timeout", "100 years"]),
        ({**seq([step("a")]), "tenant_id": 7}, ["tenant_id"]),
    ],
)
async def test_bad_sequence_definitions(api, body, fragments):
    await api.expect_error(400, "POST", "/api/v1/sequences", *fragments, json=body)


async def test_tenant_is_required_somewhere(api):
    await api.expect_error(
        400, "POST", "/api/v1/sequences", "tenant_id", json={"name": "x", "blocks": [step("a")]}
    )


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"priority": 7}, "priority"),
        ({"priority": True}, "priority"),
        ({"next_fire_at": "not-a-date"}, "next_fire_at"),
        ({"next_fire_at": "2024-01-15T10:00:00"}, "next_fire_at"),
        ({"next_fire_at": 1700000000}, "next_fire_at"),
        ({"metadata": [1]}, "metadata"),
        ({"context": {"data": 5}}, "context.data"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"sequence_id": None}, "sequence_id"),
        ({"sequence_id": 12}, "sequence_id"),
        ({"timezone": "Not/AZone"}, "timezone"),
        ({"next_fire_at": "9999-12-31T23:59:59-01:00"}, "next_fire_at"),
        ({"next_fire_at": "0001-01-01T00:00:00+01:00"}, "next_fire_at"),
    ],
)
async def test_bad_instance_requests(api, extra, fragment):
    seq_id = await api.create_sequence()
    body = {"sequence_id": seq_id, **extra}
    await api.expect_error(400, "POST", "/api/v1/instances", fragment, json=body)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=ten", "limit"),
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
        ("state=sleeping", "state"),
        ("state=running,bogus", "state"),
    ],
)
async def test_bad_instance_list_parameters(api, query, fragment):
    await api.expect_error(400, "GET", f"/api/v1/instances?{query}", fragment)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/v1/sequences?limit=x", "limit"),
        ("/api/v1/sequences?offset=-2", "offset"),
        ("/api/v1/sequences/by-name?tenant_id=acme", "name"),
        ("/api/v1/sequences/by-name?name=x", "tenant_id"),
        ("/api/v1/sequences/by-name?tenant_id=acme&name=x&version=v2", "version"),
        ("/api/v1/sequences/by-name?tenant_id=acme&name=x&version=0", "version"),
        ("/api/v1/sequences/versions?tenant_id=acme", "name"),
    ],
)
async def test_bad_sequence_query_parameters(api, path, fragment):
    await api.expect_error(400, "GET", path, fragment)


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        (step("a", when="x == "), "block 'a'.when"),
        (
            {"type": "loop", "id": "l", "condition": "(1 + ", "body": [step("b")]},
            "block 'l'.condition",
        ),
        (
            {
                "type": "router",
                "id": "r",
                "routes": [{"condition": "'open", "blocks": [step("b")]}],
            },
            "block 'r'.routes[0].condition",
        ),
        (step("a", params={"to": "{{ nowhere.x }}"}), "block 'a'.params"),
        (
            {"type": "for_each", "id": "f", "collection": "items[", "body": [step("b")]},
            "block 'f'.collection",
        ),
    ],
)
async def test_malformed_expressions_and_templates_are_refused_at_creation(api, block, fragment):
    await api.expect_error(400, "POST", "/api/v1/sequences", fragment, json=seq([block]))
