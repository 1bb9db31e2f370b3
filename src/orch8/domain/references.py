"""Which block outputs a sequence reads (`outputs.<id>` / `steps.<id>`).

The engine loads just these when it resumes an instance, so the cost of a
resume depends on the definition, never on how many steps have run.
"""

from __future__ import annotations

from typing import assert_never

from orch8.domain.errors import DomainError
from orch8.domain.expressions import parse
from orch8.domain.expressions import referenced_outputs as expression_refs
from orch8.domain.sequence import (
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    ForEachBlock,
    LoopBlock,
    ParallelBlock,
    RaceBlock,
    RouterBlock,
    SagaBlock,
    Sequence,
    StepBlock,
    SubSequenceBlock,
    TryCatchBlock,
    walk,
)
from orch8.domain.templates import referenced_outputs as template_refs


def _expression(text: str | None) -> frozenset[str]:
    if text is None:
        return frozenset()
    try:
        return expression_refs(parse(text))
    except DomainError:
        return frozenset()


def _block_refs(block: Block) -> frozenset[str]:
    match block:
        case StepBlock():
            return template_refs(dict(block.params)) | _expression(block.when)
        case LoopBlock():
            return _expression(block.condition) | _expression(block.break_on)
        case ForEachBlock():
            return _expression(block.collection)
        case RouterBlock():
            refs: frozenset[str] = frozenset()
            for route in block.routes:
                refs |= _expression(route.condition)
            return refs
        case SubSequenceBlock():
            return template_refs(dict(block.input))
        case (
            ParallelBlock()
            | RaceBlock()
            | TryCatchBlock()
            | AbSplitBlock()
            | CancellationScopeBlock()
            | SagaBlock()
        ):
            return frozenset()  # no expression or template of their own
        case _:
            assert_never(block)


def referenced_outputs(sequence: Sequence) -> frozenset[str]:
    refs: frozenset[str] = frozenset()
    for tree in (sequence.blocks, sequence.on_failure or (), sequence.on_cancel or ()):
        for block, _depth in walk(tree):
            refs |= _block_refs(block)
    return refs
