"""Each composite block, and its documented edges, through the pure evaluator."""

from __future__ import annotations

from typing import Any

from orch8.domain.evaluator import Complete, Fail
from orch8.domain.evaluator.choices import pick_variant
from orch8.domain.sequence import Variant
from orch8.domain.tree import NodeState
from tests.unit.sim import sequence, simulate


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", **extra}


def failing(*ids: str):
    return lambda block, _attempt: "permanent" if block in ids else "ok"


def test_parallel_runs_every_branch_and_completes() -> None:
    seq = sequence(
        [
            {"type": "parallel", "id": "p", "branches": [[step("a"), step("b")], [step("c")], []]},
            step("after"),
        ]
    )
    r = simulate(seq)
    assert isinstance(r.outcome, Complete)
    assert sorted(b for b, _ in r.runs) == ["a", "after", "b", "c"]
    assert r.runs[-1] == ("after", 1)


def test_parallel_branches_are_in_flight_together() -> None:
    seq = sequence(
        [{"type": "parallel", "id": "p", "branches": [[step("a")], [step("b")], [step("c")]]}]
    )
    from orch8.domain.evaluator import Snapshot, advance
    from tests.unit.sim import T0

    adv = advance(seq, Snapshot(), T0, instance_id="i")
    assert sorted(r.block.id for r in adv.run) == ["a", "b", "c"]


def test_parallel_fails_when_a_branch_fails_and_cancels_the_rest() -> None:
    seq = sequence(
        [
            {"type": "parallel", "id": "p", "branches": [[step("a"), step("a2")], [step("b")]]},
            step("after"),
        ]
    )
    r = simulate(seq, outcomes=failing("b"), pick=lambda steps: len(steps) - 1)
    assert isinstance(r.outcome, Fail)
    assert r.outcome.block_id == "b"
    assert r.state("p") is NodeState.FAILED
    assert ("after", 1) not in r.runs
    assert r.state("a") is NodeState.CANCELLED


def test_race_first_to_resolve_cancels_the_losers() -> None:
    seq = sequence(
        [{"type": "race", "id": "r", "branches": [[step("slow1"), step("slow2")], [step("fast")]]}]
    )
    r = simulate(seq, pick=lambda steps: len(steps) - 1)  # the last started finishes first
    assert isinstance(r.outcome, Complete)
    assert r.outputs["r"] == {"winner": 1}
    assert r.state("slow1") is NodeState.CANCELLED
    assert ("slow2", 1) not in r.runs


def test_race_first_to_resolve_fails_on_the_first_failure() -> None:
    seq = sequence([{"type": "race", "id": "r", "branches": [[step("a")], [step("b")]]}])
    r = simulate(seq, outcomes=failing("a"))
    assert isinstance(r.outcome, Fail)


def test_race_first_to_succeed_ignores_failures_until_one_wins() -> None:
    seq = sequence(
        [
            {
                "type": "race",
                "id": "r",
                "semantics": "first_to_succeed",
                "branches": [[step("a")], [step("b")]],
            }
        ]
    )
    r = simulate(seq, outcomes=failing("a"))
    assert isinstance(r.outcome, Complete)
    assert r.outputs["r"] == {"winner": 1}


def test_race_where_every_branch_fails_fails() -> None:
    seq = sequence(
        [
            {
                "type": "race",
                "id": "r",
                "semantics": "first_to_succeed",
                "branches": [[step("a")], [step("b")]],
            }
        ]
    )
    r = simulate(seq, outcomes=failing("a", "b"))
    assert isinstance(r.outcome, Fail)
    assert "every branch" in r.outcome.error


def test_race_with_an_empty_branch_completes_at_once() -> None:
    seq = sequence([{"type": "race", "id": "r", "branches": [[step("a")], []]}])
    r = simulate(seq)
    assert isinstance(r.outcome, Complete)
    assert r.runs == []


def test_loop_runs_while_the_condition_holds_and_stops_at_max_iterations() -> None:
    seq = sequence(
        [{"type": "loop", "id": "l", "condition": "true", "max_iterations": 4, "body": [step("b")]}]
    )
    r = simulate(seq)
    assert isinstance(r.outcome, Complete)
    assert r.runs == [("b", 1)] * 4
    assert r.outputs["l"] == {"_iterations": 4}


def test_loop_with_a_false_condition_never_runs_its_body() -> None:
    seq = sequence([{"type": "loop", "id": "l", "condition": "go == true", "body": [step("b")]}])
    r = simulate(seq, data={"go": False})
    assert isinstance(r.outcome, Complete)
    assert r.runs == []


def test_loop_break_on_is_checked_after_each_round() -> None:
    seq = sequence(
        [
            {
                "type": "loop",
                "id": "l",
                "condition": "true",
                "break_on": "outputs.b.block == 'b'",
                "body": [step("b")],
            }
        ]
    )
    r = simulate(seq)
    assert r.runs == [("b", 1)]


def test_loop_body_failure_fails_unless_continue_on_error() -> None:
    body = [step("b")]
    r = simulate(
        sequence(
            [{"type": "loop", "id": "l", "condition": "true", "max_iterations": 3, "body": body}]
        ),
        outcomes=failing("b"),
    )
    assert isinstance(r.outcome, Fail)
    r = simulate(
        sequence(
            [
                {
                    "type": "loop",
                    "id": "l",
                    "condition": "true",
                    "max_iterations": 3,
                    "continue_on_error": True,
                    "body": body,
                }
            ]
        ),
        outcomes=failing("b"),
    )
    assert isinstance(r.outcome, Complete)
    assert len(r.runs) == 3


def test_for_each_binds_each_item_in_turn_and_removes_it_after() -> None:
    seq = sequence(
        [
            {
                "type": "for_each",
                "id": "f",
                "collection": "items",
                "item_var": "it",
                "body": [step("b")],
            }
        ]
    )
    r = simulate(seq, data={"items": [1, 2, 3]})
    assert isinstance(r.outcome, Complete)
    assert len(r.runs) == 3
    assert "it" not in r.snapshot.context.data
    assert r.outputs["f"] == {"_index": 3, "_total": 3, "_item_var": "it"}


def test_for_each_over_a_thousand_items() -> None:
    seq = sequence([{"type": "for_each", "id": "f", "collection": "items", "body": [step("b")]}])
    r = simulate(seq, data={"items": list(range(1000))})
    assert isinstance(r.outcome, Complete)
    assert len(r.runs) == 1000


def test_for_each_over_nothing_completes_at_once() -> None:
    seq = sequence([{"type": "for_each", "id": "f", "collection": "missing", "body": [step("b")]}])
    assert simulate(seq).runs == []


def test_router_takes_the_first_true_route_else_default() -> None:
    blocks = [
        {
            "type": "router",
            "id": "r",
            "routes": [
                {"condition": "plan == 'pro'", "blocks": [step("pro")]},
                {"condition": "plan == 'free'", "blocks": [step("free")]},
            ],
            "default": [step("other")],
        }
    ]
    assert simulate(sequence(blocks), data={"plan": "free"}).runs == [("free", 1)]
    assert simulate(sequence(blocks), data={"plan": "x"}).runs == [("other", 1)]
    no_default = [{**blocks[0], "default": None}]
    assert simulate(sequence(no_default), data={"plan": "x"}).runs == []


def test_try_catch_runs_catch_with_the_error_then_finally() -> None:
    seq = sequence(
        [
            {
                "type": "try_catch",
                "id": "t",
                "try_block": [step("boom")],
                "catch_block": [step("handle")],
                "finally_block": [step("fin")],
            }
        ]
    )
    r = simulate(seq, outcomes=failing("boom"))
    assert isinstance(r.outcome, Complete)
    assert [b for b, _ in r.runs] == ["boom", "handle", "fin"]
    error = r.snapshot.context.data["_error"]
    assert error["failed_blocks"] == ["boom"]
    assert error["source"] == "try_catch"


def test_try_catch_with_an_empty_catch_swallows_the_error() -> None:
    seq = sequence([{"type": "try_catch", "id": "t", "try_block": [step("boom")]}])
    assert isinstance(simulate(seq, outcomes=failing("boom")).outcome, Complete)


def test_a_failing_catch_or_finally_fails_the_block() -> None:
    catch_fails = sequence(
        [
            {
                "type": "try_catch",
                "id": "t",
                "try_block": [step("boom")],
                "catch_block": [step("c")],
                "finally_block": [step("f")],
            }
        ]
    )
    r = simulate(catch_fails, outcomes=failing("boom", "c"))
    assert isinstance(r.outcome, Fail)
    assert [b for b, _ in r.runs] == ["boom", "c", "f"]
    finally_fails = sequence(
        [{"type": "try_catch", "id": "t", "try_block": [step("ok")], "finally_block": [step("f")]}]
    )
    assert isinstance(simulate(finally_fails, outcomes=failing("f")).outcome, Fail)


def test_saga_compensates_completed_steps_in_reverse() -> None:
    seq = sequence(
        [
            {
                "type": "saga",
                "id": "s",
                "steps": [
                    {"id": "one", "action": step("a1"), "compensation": step("c1")},
                    {"id": "two", "action": step("a2"), "compensation": step("c2")},
                    {"id": "three", "action": step("a3"), "compensation": step("c3")},
                ],
            }
        ]
    )
    r = simulate(seq, outcomes=failing("a3", "c2"))
    assert isinstance(r.outcome, Fail)
    assert [b for b, _ in r.runs] == ["a1", "a2", "a3", "c2", "c1"]


def test_ab_split_is_deterministic_per_instance() -> None:
    variants = (Variant("a", 1, ()), Variant("b", 1, ()))
    picks = {pick_variant(f"i{n}", "x", variants) for n in range(50)}
    assert picks == {0, 1}
    assert all(
        pick_variant("same", "x", variants) == pick_variant("same", "x", variants) for _ in range(5)
    )
    seq = sequence(
        [
            {
                "type": "ab_split",
                "id": "x",
                "variants": [
                    {"name": "a", "weight": 1, "blocks": [step("va")]},
                    {"name": "b", "weight": 1, "blocks": [step("vb")]},
                ],
            }
        ]
    )
    r = simulate(seq)
    index = pick_variant("i-1", "x", variants)
    assert r.outputs["x"] == {"variant": "ab"[index], "variant_index": index}
    assert r.runs == [("v" + "ab"[index], 1)]


def test_when_false_skips_the_step() -> None:
    seq = sequence([step("a", when="go"), step("b")])
    r = simulate(seq, data={"go": False})
    assert r.runs == [("b", 1)]
    assert r.state("a") is NodeState.SKIPPED


def test_nested_four_levels_deep() -> None:
    inner = {
        "type": "loop",
        "id": "l",
        "condition": "true",
        "max_iterations": 2,
        "body": [step("leaf")],
    }
    level3 = {"type": "try_catch", "id": "t", "try_block": [inner]}
    level2 = {"type": "router", "id": "r", "routes": [{"condition": "true", "blocks": [level3]}]}
    level1 = {"type": "parallel", "id": "p", "branches": [[level2], [step("side")]]}
    r = simulate(sequence([level1]))
    assert isinstance(r.outcome, Complete)
    assert sorted(b for b, _ in r.runs) == ["leaf", "leaf", "side"]
