"""Hypothesis strategies shared by the domain and codec property tests."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from orch8.domain.sequence import (
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    DelaySpec,
    ForEachBlock,
    LoopBlock,
    ParallelBlock,
    RaceBlock,
    RaceSemantics,
    RetryPolicy,
    Route,
    RouterBlock,
    Sequence,
    StepBlock,
    TryCatchBlock,
    Variant,
)

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)

json_scalars = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)

retry_policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 5),
    initial_backoff_ms=st.integers(0, 1000),
    max_backoff_ms=st.integers(1000, 60_000),
    backoff_multiplier=st.floats(0.5, 4.0, allow_nan=False),
)

delays = st.builds(
    DelaySpec,
    duration_ms=st.integers(0, 86_400_000),
    business_days_only=st.booleans(),
    jitter_ms=st.integers(0, 60_000),
)


@st.composite
def step_blocks(draw: st.DrawFn, block_id: str | None = None) -> StepBlock:
    return StepBlock(
        id=block_id or draw(ids),
        handler=draw(st.sampled_from(["noop", "log", "work"])),
        params=draw(st.dictionaries(st.text(min_size=1, max_size=5), json_scalars, max_size=3)),
        delay=draw(st.none() | delays),
        retry=draw(st.none() | retry_policies),
        timeout_ms=draw(st.none() | st.integers(1, 60_000)),
        cancellable=draw(st.booleans()),
    )


def _unique_ids(blocks: list[Block]) -> bool:
    from orch8.domain.sequence import walk

    seen = [b.id for b, _ in walk(tuple(blocks))]
    return len(seen) == len(set(seen))


def any_blocks(max_leaves: int = 10) -> st.SearchStrategy[list[Block]]:
    """Nested block lists of every type (ids may repeat: filter with unique ids)."""

    def extend(children: st.SearchStrategy[list[Block]]) -> st.SearchStrategy[list[Block]]:
        non_empty = children.filter(bool)
        composite = st.one_of(
            st.builds(
                ParallelBlock,
                id=ids,
                branches=st.lists(non_empty.map(tuple), min_size=1, max_size=3).map(tuple),
            ),
            st.builds(
                RaceBlock,
                id=ids,
                branches=st.lists(non_empty.map(tuple), min_size=1, max_size=3).map(tuple),
                semantics=st.sampled_from(RaceSemantics),
            ),
            st.builds(
                LoopBlock,
                id=ids,
                condition=st.just("x < 3"),
                body=non_empty.map(tuple),
                max_iterations=st.integers(1, 3),
            ),
            st.builds(
                ForEachBlock,
                id=ids,
                collection=st.just("items"),
                body=non_empty.map(tuple),
                max_iterations=st.integers(1, 3),
            ),
            st.builds(
                RouterBlock,
                id=ids,
                routes=st.lists(
                    st.builds(Route, condition=st.just("a == 1"), blocks=non_empty.map(tuple)),
                    min_size=1,
                    max_size=2,
                ).map(tuple),
                default=st.none() | children.map(tuple),
            ),
            st.builds(
                TryCatchBlock,
                id=ids,
                try_block=non_empty.map(tuple),
                catch_block=children.map(tuple),
                finally_block=st.none() | children.map(tuple),
            ),
            st.builds(
                AbSplitBlock,
                id=ids,
                variants=st.tuples(
                    st.builds(
                        Variant,
                        name=st.just("a"),
                        weight=st.integers(1, 5),
                        blocks=children.map(tuple),
                    ),
                    st.builds(
                        Variant,
                        name=st.just("b"),
                        weight=st.integers(1, 5),
                        blocks=children.map(tuple),
                    ),
                ),
            ),
            st.builds(CancellationScopeBlock, id=ids, blocks=non_empty.map(tuple)),
        )
        return st.lists(st.one_of(step_blocks(), composite), min_size=1, max_size=3)

    return st.recursive(
        st.lists(step_blocks(), min_size=1, max_size=3), extend, max_leaves=max_leaves
    ).filter(_unique_ids)


@st.composite
def step_sequences(draw: st.DrawFn, max_steps: int = 6) -> Sequence:
    count = draw(st.integers(1, max_steps))
    blocks = tuple(draw(step_blocks(block_id=f"s{i}")) for i in range(count))
    return Sequence(
        id="seq",
        tenant_id="t",
        namespace="default",
        name="n",
        version=1,
        blocks=blocks,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
