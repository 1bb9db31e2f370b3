"""Every composite block, run over HTTP by a real `orch8 serve` on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post, wait_for_states


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("composites")
    with ServerProcess(f"sqlite://{tmp / 'c.db'}", log_path=tmp / "server.log") as running:
        yield running


def step(block_id: str, handler: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": handler, **extra}


def sleep(block_id: str, ms: int) -> dict[str, Any]:
    return step(block_id, "sleep", params={"duration_ms": ms})


def fail(block_id: str) -> dict[str, Any]:
    return step(block_id, "fail", params={"message": f"{block_id} failed", "retryable": False})


async def run(
    server: ServerProcess, blocks: list[dict[str, Any]], data: dict[str, Any] | None = None
) -> tuple[str, list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as s:
        name = f"seq-{id(blocks)}-{len(str(blocks))}"
        seq = await post(
            s, f"{server.url}/sequences", {"tenant_id": "t", "name": name, "blocks": blocks}
        )
        body = {"sequence_id": seq["id"], "tenant_id": "t", "context": {"data": data or {}}}
        iid = (await post(s, f"{server.url}/instances", body))["id"]
        states = await wait_for_states(s, server.url, [iid], {"completed", "failed"}, within=60)
        outputs = await get(s, f"{server.url}/instances/{iid}/outputs")
        instance = await get(s, f"{server.url}/instances/{iid}")
        tree = {
            n["block_id"]: n["state"] for n in await get(s, f"{server.url}/instances/{iid}/tree")
        }
        return states[iid], outputs, instance, tree


def ran(outputs: list[dict[str, Any]]) -> list[str]:
    return [o["block_id"] for o in outputs if o["output_ref"] is None]


async def test_parallel(server: ServerProcess) -> None:
    state, outputs, _, tree = await run(
        server,
        [
            {"type": "parallel", "id": "p", "branches": [[sleep("a", 300)], [sleep("b", 300)], []]},
            step("after"),
        ],
    )
    assert state == "completed"
    assert set(ran(outputs)) == {"a", "b", "after"}
    a, b = (next(o for o in outputs if o["block_id"] == x) for x in "ab")
    # the branches ran side by side: both finished within one sleep of each other
    assert abs(_ms(a["created_at"]) - _ms(b["created_at"])) < 250
    assert tree["p"] == "completed"


def _ms(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp() * 1000


async def test_race_cancels_the_slow_branch(server: ServerProcess) -> None:
    state, outputs, _, tree = await run(
        server,
        [
            {
                "type": "race",
                "id": "r",
                "branches": [[sleep("slow", 3000), step("never")], [sleep("fast", 50)]],
            },
        ],
    )
    assert state == "completed"
    assert "never" not in ran(outputs)
    assert next(o for o in outputs if o["block_id"] == "r")["output"] == {"winner": 1}
    assert tree["slow"] == "cancelled"


async def test_race_where_every_branch_fails(server: ServerProcess) -> None:
    state, _, _, _ = await run(
        server,
        [
            {
                "type": "race",
                "id": "r",
                "semantics": "first_to_succeed",
                "branches": [[fail("a")], [fail("b")]],
            }
        ],
    )
    assert state == "failed"


async def test_loop_hits_max_iterations(server: ServerProcess) -> None:
    state, outputs, _, _ = await run(
        server,
        [
            {
                "type": "loop",
                "id": "l",
                "condition": "true",
                "max_iterations": 5,
                "body": [step("b")],
            }
        ],
    )
    assert state == "completed"
    assert ran(outputs).count("b") == 5
    assert next(o for o in outputs if o["block_id"] == "l")["output"] == {"_iterations": 5}


async def test_for_each_over_a_thousand_items(server: ServerProcess) -> None:
    state, outputs, instance, _ = await run(
        server,
        [
            {
                "type": "for_each",
                "id": "f",
                "collection": "items",
                "body": [step("b", "log", params={"message": "{{ data.item }}"})],
            }
        ],
        data={"items": list(range(1000))},
    )
    assert state == "completed"
    messages = [o["output"]["message"] for o in outputs if o["block_id"] == "b"]
    assert messages == list(range(1000))
    assert "item" not in instance["context"]["data"]


async def test_router_takes_the_matching_route(server: ServerProcess) -> None:
    blocks = [
        {
            "type": "router",
            "id": "r",
            "routes": [{"condition": "plan == 'pro'", "blocks": [step("pro")]}],
            "default": [step("basic")],
        }
    ]
    state, outputs, _, tree = await run(server, blocks, data={"plan": "pro"})
    assert (state, ran(outputs)) == ("completed", ["pro"])
    assert tree["basic"] == "skipped"


async def test_try_catch_with_finally(server: ServerProcess) -> None:
    state, outputs, instance, _ = await run(
        server,
        [
            {
                "type": "try_catch",
                "id": "t",
                "try_block": [fail("boom")],
                "catch_block": [step("handled")],
                "finally_block": [step("cleanup")],
            }
        ],
    )
    assert state == "completed"
    assert ran(outputs) == ["handled", "cleanup"]
    assert instance["context"]["data"]["_error"]["failed_blocks"] == ["boom"]


async def test_a_failing_finally_and_a_failing_catch(server: ServerProcess) -> None:
    state, _, _, _ = await run(
        server,
        [{"type": "try_catch", "id": "t", "try_block": [step("ok")], "finally_block": [fail("f")]}],
    )
    assert state == "failed"
    state, outputs, _, _ = await run(
        server,
        [
            {
                "type": "try_catch",
                "id": "t",
                "try_block": [fail("boom")],
                "catch_block": [fail("c")],
                "finally_block": [step("fin")],
            }
        ],
    )
    assert state == "failed"
    assert ran(outputs) == ["fin"]


async def test_saga_compensates_in_reverse(server: ServerProcess) -> None:
    state, outputs, _, _ = await run(
        server,
        [
            {
                "type": "saga",
                "id": "s",
                "steps": [
                    {"id": "one", "action": step("a1"), "compensation": step("undo1")},
                    {"id": "two", "action": step("a2"), "compensation": step("undo2")},
                    {"id": "three", "action": fail("a3")},
                ],
            }
        ],
    )
    assert state == "failed"
    assert ran(outputs) == ["a1", "a2", "undo2", "undo1"]


async def test_ab_split_picks_one_variant_deterministically(server: ServerProcess) -> None:
    blocks = [
        {
            "type": "ab_split",
            "id": "x",
            "variants": [
                {"name": "control", "weight": 50, "blocks": [step("c")]},
                {"name": "treatment", "weight": 50, "blocks": [step("t")]},
            ],
        }
    ]
    state, outputs, _, _ = await run(server, blocks)
    chosen = next(o for o in outputs if o["block_id"] == "x")["output"]
    assert state == "completed"
    assert ran(outputs)[-1] == ("c" if chosen["variant"] == "control" else "t")


async def test_sub_sequence_runs_a_child_and_takes_its_outputs(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        await post(
            s,
            f"{server.url}/sequences",
            {
                "tenant_id": "t",
                "name": "child-flow",
                "blocks": [step("hello", "log", params={"message": "{{ data.who }}"})],
            },
        )
    state, outputs, _, _ = await run(
        server,
        [
            {
                "type": "sub_sequence",
                "id": "sub",
                "sequence_name": "child-flow",
                "input": {"who": "{{ data.name }}"},
            },
            step("after"),
        ],
        data={"name": "ada"},
    )
    assert state == "completed"
    child = next(o for o in outputs if o["block_id"] == "sub")["output"]
    assert child == [{"block_id": "hello", "output": {"message": "ada", "level": "info"}}]


async def test_sub_sequence_of_an_unknown_name_fails(server: ServerProcess) -> None:
    state, _, _, _ = await run(
        server, [{"type": "sub_sequence", "id": "sub", "sequence_name": "nope"}]
    )
    assert state == "failed"


async def test_nested_four_levels_with_when_guards(server: ServerProcess) -> None:
    inner = {
        "type": "loop",
        "id": "l",
        "condition": "true",
        "max_iterations": 2,
        "body": [step("leaf"), step("skip", when="false")],
    }
    blocks = [
        {
            "type": "parallel",
            "id": "p",
            "branches": [
                [
                    {
                        "type": "router",
                        "id": "r",
                        "routes": [
                            {
                                "condition": "true",
                                "blocks": [
                                    {
                                        "type": "try_catch",
                                        "id": "t",
                                        "try_block": [
                                            {
                                                "type": "cancellation_scope",
                                                "id": "cs",
                                                "blocks": [inner],
                                            }
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
                [step("side")],
            ],
        }
    ]
    state, outputs, _, _ = await run(server, blocks)
    assert state == "completed"
    steps = sorted(o["block_id"] for o in outputs if o["block_id"] in {"leaf", "side", "skip"})
    assert steps == ["leaf", "leaf", "side"]


async def test_templates_read_data_and_earlier_outputs(server: ServerProcess) -> None:
    state, outputs, _, _ = await run(
        server,
        [
            step("first", "log", params={"message": "hi {{ data.name | 'nobody' }}"}),
            step("second", "log", params={"message": "{{ outputs.first.message }}!"}),
        ],
        data={"name": "ada"},
    )
    assert state == "completed"
    assert [o["output"]["message"] for o in outputs] == ["hi ada", "hi ada!"]
