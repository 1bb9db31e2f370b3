"""Orch8's expression language: conditions for `when`, routers, loops and friends.

    parse(text) -> Expr              ExpressionError on malformed text (and only that)
    evaluate(expr, scope, strict=)   the value; see `evaluate` for what strict changes
    truthy(value)                    null/false/0/""/[] are false, objects are true
    referenced_outputs(expr)         the block ids read through `outputs.`/`steps.`
    check(text, where=)              parse or raise ValidationError(path=where)

A bare word is a path into `context.data` (so `plan == "pro"` needs the
quotes); see `orch8.domain.scope` for the roots and `parser` for the grammar.
Parsing is pure and may be cached by the caller.
"""

from __future__ import annotations

from typing import Final

from orch8.domain.errors import ValidationError
from orch8.domain.expressions.ast import Expr, Path, children
from orch8.domain.expressions.errors import ExpressionError
from orch8.domain.expressions.evaluate import evaluate
from orch8.domain.expressions.functions import FUNCTIONS, MAX_ARRAY_ITEMS
from orch8.domain.expressions.parser import MAX_DEPTH, parse
from orch8.domain.expressions.values import truthy

# Reported by `referenced_outputs` when an expression reads the whole outputs map.
ALL_OUTPUTS: Final = "*"

__all__ = [
    "ALL_OUTPUTS",
    "FUNCTIONS",
    "MAX_ARRAY_ITEMS",
    "MAX_DEPTH",
    "Expr",
    "ExpressionError",
    "check",
    "evaluate",
    "parse",
    "referenced_outputs",
    "truthy",
]


def referenced_outputs(expr: Expr) -> frozenset[str]:
    """Block ids whose outputs the expression reads (`outputs.<id>` or `steps.<id>`).

    A bare `outputs`/`steps` (the whole map) is reported as ALL_OUTPUTS.
    """
    found: set[str] = set()
    pending = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, Path) and node.segments[0] in ("outputs", "steps"):
            found.add(node.segments[1] if len(node.segments) > 1 else ALL_OUTPUTS)
        pending.extend(children(node))
    return frozenset(found)


def check(text: str, *, where: str) -> None:
    """Refuse a malformed expression at publish time, naming where it sits."""
    try:
        parse(text)
    except ExpressionError as exc:
        raise ValidationError(f"invalid expression: {exc}", path=where) from None
