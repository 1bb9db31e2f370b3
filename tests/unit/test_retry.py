"""`retry_nodes`: a failed instance, retried, re-runs its failure and nothing it finished."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from attrs import evolve

from orch8.domain.evaluator import (
    Complete,
    Fail,
    Outcome,
    Snapshot,
    advance,
    step_failed,
    step_succeeded,
)
from orch8.domain.retry import fresh, retry_nodes
from orch8.domain.sequence import Sequence
from orch8.domain.tree import Node, NodeState
from tests.unit.sim import T0, sequence

N = NodeState


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", **extra}


class Steps:
    """Step outcomes by call: the listed blocks fail their first `times` calls."""

    def __init__(self, *failing: str, times: int = 1) -> None:
        self.failing = set(failing)
        self.times = times
        self.calls: Counter[str] = Counter()

    def __call__(self, block_id: str) -> bool:
        self.calls[block_id] += 1
        return block_id not in self.failing or self.calls[block_id] > self.times


def run(
    seq: Sequence, snap: Snapshot, ok: Callable[[str], bool]
) -> tuple[Outcome, Snapshot, list[str]]:
    """Play the engine, one step at a time (the first ready one), until the end."""
    now, runs = T0, []
    for _ in range(1000):
        adv = advance(seq, snap, now, instance_id="i-1")
        snap = adv.snapshot
        if adv.outcome is not None:
            return adv.outcome, snap, runs
        if adv.run:
            todo = adv.run[0]
            runs.append(todo.block.id)
            now += timedelta(milliseconds=5)
            if ok(todo.block.id):
                snap = step_succeeded(snap, todo.block, todo.attempt, now)
            else:
                snap = step_failed(snap, todo.block, todo.attempt, "down", retryable=True, now=now)
        else:
            assert adv.wake_at is not None, "stuck"
            now = adv.wake_at
    raise AssertionError("did not end")


def fail_then_retry(seq: Sequence, steps: Steps) -> tuple[Snapshot, Outcome, list[str]]:
    """Run until the instance fails, retry, run again: (failed snapshot, outcome, re-runs)."""
    outcome, failed, _ = run(seq, Snapshot(), steps)
    assert isinstance(outcome, Fail), outcome
    updates = retry_nodes(seq, failed.nodes)
    retried = evolve(failed, nodes={**failed.nodes, **{n.block_id: n for n in updates}})
    outcome, _, runs = run(seq, retried, steps)
    return failed, outcome, runs


def test_a_sequence_reruns_the_failed_step_and_what_follows() -> None:
    seq = sequence([step("a"), step("b"), step("c")])
    _, outcome, runs = fail_then_retry(seq, Steps("b"))
    assert isinstance(outcome, Complete)
    assert runs == ["b", "c"]


def test_a_failed_step_starts_over_with_fresh_attempts() -> None:
    retry = {"max_attempts": 2, "initial_backoff": 10}
    seq = sequence([step("a", retry=retry)])
    failed, outcome, runs = fail_then_retry(seq, Steps("a", times=2))
    assert failed.nodes["a"].attempts == 2
    assert isinstance(outcome, Complete)
    assert runs == ["a"]
    [update] = retry_nodes(seq, failed.nodes)
    assert update == Node("a", "step")


def test_a_parallel_reruns_its_failed_and_cancelled_branches() -> None:
    blocks = [
        {"type": "parallel", "id": "p", "branches": [[step("a1"), step("a2")], [step("b")]]},
        step("after"),
    ]
    seq = sequence(blocks)
    failed, outcome, runs = fail_then_retry(seq, Steps("a1"))
    assert failed.nodes["b"].state is N.CANCELLED
    assert isinstance(outcome, Complete)
    assert sorted(runs) == ["a1", "a2", "after", "b"]


def test_a_parallel_keeps_its_finished_branch() -> None:
    seq = sequence(
        [{"type": "parallel", "id": "p", "branches": [[step("a")], [step("b1"), step("b2")]]}]
    )
    _, outcome, runs = fail_then_retry(seq, Steps("b2"))
    assert isinstance(outcome, Complete)
    assert runs == ["b2"]


def test_a_loop_resumes_at_the_iteration_that_failed() -> None:
    loop = {
        "type": "loop",
        "id": "l",
        "condition": "true",
        "max_iterations": 3,
        "body": [step("x")],
    }
    seq = sequence([loop])
    calls = {"n": 0}

    def second_call_fails(block_id: str) -> bool:
        calls["n"] += 1
        return calls["n"] != 2

    outcome, failed, _ = run(seq, Snapshot(), second_call_fails)
    assert isinstance(outcome, Fail)
    assert failed.nodes["l"].iteration == 1
    updates = {n.block_id: n for n in retry_nodes(seq, failed.nodes)}
    assert updates["l"].state is N.RUNNING
    assert updates["l"].iteration == 1
    retried = evolve(failed, nodes={**failed.nodes, **updates})
    outcome, _, runs = run(seq, retried, second_call_fails)
    assert isinstance(outcome, Complete)
    assert runs == ["x", "x"]  # iterations 2 and 3, not the whole loop again


def _try_catch(*, finally_: bool = True) -> Sequence:
    block: dict[str, Any] = {
        "type": "try_catch",
        "id": "tc",
        "try_block": [step("t")],
        "catch_block": [step("c")],
    }
    if finally_:
        block["finally_block"] = [step("f")]
    return sequence([block, step("after")])


def test_a_try_catch_whose_catch_failed_resumes_at_try() -> None:
    failed, outcome, runs = fail_then_retry(_try_catch(), Steps("t", "c"))
    assert failed.nodes["f"].state is N.COMPLETED
    assert isinstance(outcome, Complete)
    assert runs == ["t", "f", "after"]  # finally runs again after the new try


def test_a_try_catch_without_finally_resumes_at_try() -> None:
    _, outcome, runs = fail_then_retry(_try_catch(finally_=False), Steps("t", "c"))
    assert isinstance(outcome, Complete)
    assert runs == ["t", "after"]


def test_a_try_catch_whose_finally_failed_reruns_only_finally() -> None:
    _, outcome, runs = fail_then_retry(_try_catch(), Steps("t", "f"))
    assert isinstance(outcome, Complete)
    assert runs == ["f", "after"]  # the caught failure of `t` stays handled


def test_a_failed_saga_runs_again_whole() -> None:
    saga = {
        "type": "saga",
        "id": "s",
        "steps": [
            {"id": "one", "action": step("s1"), "compensation": step("u1")},
            {"id": "two", "action": step("s2"), "compensation": step("u2")},
        ],
    }
    seq = sequence([saga])
    failed, outcome, runs = fail_then_retry(seq, Steps("s2"))
    assert failed.nodes["u1"].state is N.COMPLETED  # s1 was undone
    assert isinstance(outcome, Complete)
    assert runs == ["s1", "s2"]


def test_a_won_race_and_a_taken_route_are_left_alone() -> None:
    race = {"type": "race", "id": "r", "branches": [[step("fast")], [step("slow1"), step("slow2")]]}
    router = {
        "type": "router",
        "id": "rt",
        "routes": [{"condition": "true", "blocks": [step("chosen")]}],
        "default": [step("other")],
    }
    seq = sequence([race, router])
    failed, outcome, runs = fail_then_retry(seq, Steps("chosen"))
    assert failed.nodes["slow1"].state is N.CANCELLED
    assert isinstance(outcome, Complete)
    assert runs == ["chosen"]
    updates = {n.block_id for n in retry_nodes(seq, failed.nodes)}
    assert updates == {"rt", "chosen"}


def test_nothing_to_undo_changes_nothing() -> None:
    seq = sequence([step("a"), step("b")])
    nodes = {
        "a": Node("a", "step", state=N.COMPLETED, attempts=1),
        "b": Node("b", "step", state=N.RUNNING, attempts=1),
    }
    assert retry_nodes(seq, nodes) == ()
    assert retry_nodes(seq, {}) == ()


def test_a_failed_sub_sequence_starts_a_new_child() -> None:
    seq = sequence([{"type": "sub_sequence", "id": "child", "sequence_name": "kid"}])
    node = Node("child", "sub_sequence", state=N.FAILED, attempts=0, ref="old-child", error="x")
    assert retry_nodes(seq, {"child": node}) == (fresh(node),)
    assert fresh(node).ref is None
