"""Which block outputs a sequence reads (`outputs.<id>` / `steps.<id>`).

The engine loads just these when it resumes an instance, so the cost of a
resume depends on the definition, never on how many steps have run.
"""

from __future__ import annotations

from orch8.domain.errors import DomainError
from orch8.domain.expressions import parse
from orch8.domain.expressions import referenced_outputs as expression_refs
from orch8.domain.sequence import (
    Block,
    Sequence,
    expressions_of,
    templates_of,
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
    refs: frozenset[str] = frozenset()
    for _, text in expressions_of(block):
        refs |= _expression(text)
    for _, value in templates_of(block):
        refs |= template_refs(dict(value))
    return refs


def referenced_outputs(sequence: Sequence) -> frozenset[str]:
    refs: frozenset[str] = frozenset()
    for tree in (sequence.blocks, sequence.on_failure or (), sequence.on_cancel or ()):
        for block, _depth in walk(tree):
            refs |= _block_refs(block)
    return refs
