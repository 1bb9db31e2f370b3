"""Every block type has a wire name, an evaluator driver, a reader and a writer.

A block type added to the DSL but forgotten somewhere must fail loudly: tables
keyed by block type refuse at import to miss one (`every_block`), mypy proves
each `match` over blocks exhaustive (`assert_never`), and these tests check the
tables against the block classes the DSL module defines.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from orch8.codec.block_json import WRITERS, block_to_json
from orch8.codec.blocks import READERS, read_block
from orch8.domain import sequence
from orch8.domain.evaluator.driver import TREE
from orch8.domain.evaluator.tree import Tree
from orch8.domain.sequence import (
    BLOCK_CLASSES,
    BLOCK_TYPES,
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    ForEachBlock,
    LoopBlock,
    ParallelBlock,
    RaceBlock,
    Route,
    RouterBlock,
    SagaBlock,
    SagaStep,
    StepBlock,
    SubSequenceBlock,
    TryCatchBlock,
    Variant,
    child_lists,
    every_block,
)

_STEP = StepBlock(id="inner", handler="noop")

# One small block of each type; `every_block` makes this test cover a new type too.
EXAMPLES: dict[type[Any], Block] = every_block(
    {
        StepBlock: StepBlock(id="s", handler="noop"),
        ParallelBlock: ParallelBlock(id="p", branches=((_STEP,),)),
        RaceBlock: RaceBlock(id="r", branches=((_STEP,),)),
        LoopBlock: LoopBlock(id="l", condition="x < 3", body=(_STEP,)),
        ForEachBlock: ForEachBlock(id="f", collection="items", body=(_STEP,)),
        RouterBlock: RouterBlock(id="ro", routes=(Route("a == 1", (_STEP,)),)),
        TryCatchBlock: TryCatchBlock(id="t", try_block=(_STEP,)),
        SubSequenceBlock: SubSequenceBlock(id="sub", sequence_name="child"),
        AbSplitBlock: AbSplitBlock(
            id="ab", variants=(Variant("a", 1, (_STEP,)), Variant("b", 1, ()))
        ),
        CancellationScopeBlock: CancellationScopeBlock(id="c", blocks=(_STEP,)),
        SagaBlock: SagaBlock(id="sg", steps=(SagaStep(id="one", action=_STEP),)),
    },
    "test example",
)


def test_the_block_union_names_every_block_class_the_dsl_defines() -> None:
    defined = {
        value
        for name, value in vars(sequence).items()
        if name.endswith("Block") and isinstance(value, type) and attrs.has(value)
    }
    assert set(BLOCK_CLASSES) == defined


@pytest.mark.parametrize("cls", BLOCK_CLASSES, ids=lambda cls: cls.__name__)
def test_every_block_type_has_a_name_a_driver_a_reader_and_a_writer(cls: type[Any]) -> None:
    assert cls in BLOCK_TYPES
    assert cls in TREE.drivers
    assert cls in READERS
    assert cls in WRITERS


def test_wire_names_are_distinct() -> None:
    assert len(set(BLOCK_TYPES.values())) == len(BLOCK_CLASSES)


@pytest.mark.parametrize("cls", BLOCK_CLASSES, ids=lambda cls: cls.__name__)
def test_each_block_type_round_trips_under_its_own_name(cls: type[Any]) -> None:
    block = EXAMPLES[cls]
    wire = block_to_json(block)
    assert wire["type"] == BLOCK_TYPES[cls]
    assert read_block(wire, "block") == block
    child_lists(block)  # answers for every type


def test_a_table_missing_a_block_type_is_refused() -> None:
    table = {cls: name for cls, name in BLOCK_TYPES.items() if cls is not SagaBlock}
    with pytest.raises(TypeError, match="SagaBlock"):
        every_block(table, "test")


def test_a_table_keyed_by_something_else_is_refused() -> None:
    with pytest.raises(TypeError, match="Route"):
        every_block({**BLOCK_TYPES, Route: "route"}, "test")


def test_the_evaluator_refuses_a_driver_table_missing_a_block_type() -> None:
    drivers = {cls: drive for cls, drive in TREE.drivers.items() if cls is not StepBlock}
    with pytest.raises(TypeError, match="StepBlock"):
        Tree(drivers)


def test_writing_something_that_is_not_a_block_fails() -> None:
    with pytest.raises(KeyError):
        block_to_json(Route("a == 1", ()))  # type: ignore[arg-type]
