"""Properties over generated trees of every block type and generated handler outcomes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.domain.evaluator import Complete, Fail
from orch8.domain.sequence import StepBlock, walk
from tests.strategies import any_blocks
from tests.unit.sim import sequence, simulate

DATA = {"x": 0, "items": [1, 2], "a": 1}
OUTCOME = st.sampled_from(["ok", "ok", "retryable", "permanent"])


@st.composite
def scenarios(draw: st.DrawFn):
    blocks = tuple(draw(any_blocks(max_leaves=8)))
    seq = sequence(blocks)
    steps = [b.id for b, _ in walk(seq.blocks) if isinstance(b, StepBlock)]
    table = {(s, a): draw(OUTCOME) for s in steps for a in range(1, 6)}
    order = draw(st.lists(st.integers(0, 7), min_size=1, max_size=20))
    return seq, table, order


def run(scenario, **kwargs):
    seq, table, order = scenario
    counter = iter(range(1_000_000))
    position = {b.id: i for i, (b, _) in enumerate(walk(seq.blocks))}

    def pick(steps):
        if order is None:  # by place in the tree: the same choice whatever the start order
            return min(range(len(steps)), key=lambda i: position[steps[i].block.id])
        return order[next(counter) % len(order)]

    return simulate(
        seq, data=DATA, outcomes=lambda b, a: table.get((b, a), "ok"), pick=pick, **kwargs
    )


EXAMPLES = settings(max_examples=120)


@EXAMPLES
@given(scenarios())
def test_any_tree_under_any_outcomes_and_order_reaches_an_end(scenario) -> None:
    result = run(scenario)  # the simulator asserts nothing starts below a finished block
    assert isinstance(result.outcome, Complete | Fail)


@EXAMPLES
@given(scenarios())
def test_evaluation_is_deterministic(scenario) -> None:
    first, second = run(scenario), run(scenario)
    assert first.outcome == second.outcome
    assert first.runs == second.runs
    assert first.snapshot == second.snapshot


@EXAMPLES
@given(scenarios(), st.integers(0, 30))
def test_resuming_after_a_crash_reaches_the_same_end(scenario, crash_at) -> None:
    seq, table, _ = scenario
    steady = (seq, table, None)  # completion order independent of the crash
    expected = run(steady)
    resumed = run(steady, crash_after=crash_at)
    assert resumed.outcome == expected.outcome
    assert {k: n.state for k, n in resumed.snapshot.nodes.items()} == {
        k: n.state for k, n in expected.snapshot.nodes.items()
    }
