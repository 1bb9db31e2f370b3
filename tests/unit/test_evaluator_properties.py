"""Property tests of the pure evaluator: any step sequence, any handler outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.domain.evaluator import (
    Complete,
    Fail,
    Snapshot,
    advance,
    step_failed,
    step_succeeded,
)
from orch8.domain.scheduling.backoff import backoff
from orch8.domain.sequence import Sequence
from orch8.domain.tree import NodeState
from tests.strategies import step_sequences

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OUTCOMES = st.sampled_from(["ok", "retryable", "permanent"])


def outcome_for(table: dict[tuple[str, int], str], block_id: str, attempt: int) -> str:
    return table.get((block_id, attempt), "ok")


def simulate(
    seq: Sequence,
    table: dict[tuple[str, int], str],
    *,
    crash_after: int | None = None,
) -> tuple[object, list[tuple[str, int, datetime]], Snapshot]:
    """Drive the evaluator like the engine does; a 'crash' throws away the in-flight
    attempt (the engine had not committed it) and resumes from the last commit."""
    now = T0
    snap = Snapshot()
    runs: list[tuple[str, int, datetime]] = []
    steps_done = 0
    for _ in range(10_000):
        adv = advance(seq, snap, now, instance_id="i-1")
        if adv.outcome is not None:
            return adv.outcome, runs, adv.snapshot
        if not adv.run:
            assert adv.wake_at is not None
            assert adv.wake_at > now
            snap = adv.snapshot
            now = adv.wake_at
            continue
        assert len(adv.run) == 1  # a plain list of steps runs one at a time
        decision = adv.run[0]
        if crash_after is not None and steps_done == crash_after:
            crash_after = None
            # nothing of this attempt was committed: resume from `snap`
            now += timedelta(seconds=1)
            continue
        runs.append((decision.block.id, decision.attempt, now))
        steps_done += 1
        result = outcome_for(table, decision.block.id, decision.attempt)
        now += timedelta(milliseconds=5)
        if result == "ok":
            snap = step_succeeded(adv.snapshot, decision.block, decision.attempt, now)
        else:
            snap = step_failed(
                adv.snapshot,
                decision.block,
                decision.attempt,
                result,
                retryable=result == "retryable",
                now=now,
            )
    raise AssertionError("evaluation did not terminate")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Sequence, dict[tuple[str, int], str]]:
    seq = draw(step_sequences())
    table = {}
    for block in seq.blocks:
        for attempt in range(1, 7):
            table[(block.id, attempt)] = draw(OUTCOMES)
    return seq, table


@settings(max_examples=200)
@given(scenarios())
def test_every_instance_terminates_within_its_attempt_budget(scenario) -> None:
    seq, table = scenario
    decision, runs, final = simulate(seq, table)
    budget = sum(b.retry.max_attempts if b.retry else 1 for b in seq.blocks)
    assert len(runs) <= budget
    assert isinstance(decision, Complete | Fail)
    if isinstance(decision, Complete):
        assert all(final.nodes[b.id].state is NodeState.COMPLETED for b in seq.blocks)
    else:
        assert final.nodes[decision.block_id].state is NodeState.FAILED


@settings(max_examples=200)
@given(scenarios())
def test_steps_run_in_order_and_nothing_runs_after_a_failure(scenario) -> None:
    seq, table = scenario
    decision, runs, _ = simulate(seq, table)
    order = [b.id for b in seq.blocks]
    indexes = [order.index(block_id) for block_id, _, _ in runs]
    assert indexes == sorted(indexes)
    if isinstance(decision, Fail):
        assert runs[-1][0] == decision.block_id


@settings(max_examples=200)
@given(scenarios())
def test_delays_and_backoff_are_honoured(scenario) -> None:
    seq, table = scenario
    _, runs, _ = simulate(seq, table)
    blocks = {b.id: b for b in seq.blocks}
    previous_end = T0
    for index, (block_id, attempt, at) in enumerate(runs):
        block = blocks[block_id]
        if attempt == 1 and block.delay is not None and not block.delay.jitter_ms:
            assert at >= previous_end + timedelta(milliseconds=block.delay.duration_ms)
        if attempt > 1:
            assert block.retry is not None
            failed_at = previous_end
            assert at >= failed_at + backoff(block.retry, attempt - 2)
            assert runs[index - 1][0] == block_id
        previous_end = at + timedelta(milliseconds=5)


@settings(max_examples=150)
@given(scenarios(), st.integers(0, 20))
def test_resuming_after_a_lost_attempt_reaches_the_same_end(scenario, crash_at) -> None:
    seq, table = scenario
    expected, runs, final = simulate(seq, table)
    got, runs2, final2 = simulate(seq, table, crash_after=crash_at)
    assert got == expected
    assert [(b, a) for b, a, _ in runs2] == [(b, a) for b, a, _ in runs]
    assert {k: n.state for k, n in final2.nodes.items()} == {
        k: n.state for k, n in final.nodes.items()
    }


@given(scenarios())
def test_evaluation_is_deterministic(scenario) -> None:
    seq, table = scenario
    assert simulate(seq, table) == simulate(seq, table)
