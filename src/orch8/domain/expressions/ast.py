"""The expression tree the parser builds and the evaluator walks.

Left-associative chains of one precedence level (`a + b - c`, `a && b && c`)
are single nodes holding every operand, so the tree's depth is bounded by the
nesting of the source text, not by its length.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen


@frozen
class Literal:
    """A string, number (always a float, like Orch8's f64), boolean or null."""

    value: Any
    position: int = 0


@frozen
class Path:
    """A dotted path such as `context.data.items.0` or a bare word (`plan`)."""

    segments: tuple[str, ...]
    position: int = 0

    @property
    def text(self) -> str:
        return ".".join(self.segments)


@frozen
class Array:
    """An array literal `[a, b, c]`."""

    items: tuple[Expr, ...]
    position: int = 0


@frozen
class Unary:
    """`!x` (boolean negation of truthiness) or `-x` (numeric negation)."""

    op: str
    operand: Expr
    position: int = 0


@frozen
class Logical:
    """`a && b && ...` or `a || b || ...`; yields a boolean."""

    op: str
    operands: tuple[Expr, ...]
    position: int = 0


@frozen
class Compare:
    """One of `== != < <= > >= in` (comparisons do not chain)."""

    op: str
    left: Expr
    right: Expr
    position: int = 0


@frozen
class Arithmetic:
    """`first (op operand)*` where every op has the same precedence (`+ -` or `* /`)."""

    first: Expr
    rest: tuple[tuple[str, Expr], ...]
    position: int = 0


@frozen
class Call:
    """A call of a library function, `name(args...)`."""

    name: str
    args: tuple[Expr, ...]
    position: int = 0


@frozen
class Conditional:
    """`condition ? then : otherwise`."""

    condition: Expr
    then: Expr
    otherwise: Expr
    position: int = 0


Expr = Literal | Path | Array | Unary | Logical | Compare | Arithmetic | Call | Conditional


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node."""
    match expr:
        case Literal() | Path():
            return ()
        case Array(items=items):
            return items
        case Unary(operand=operand):
            return (operand,)
        case Logical(operands=operands):
            return operands
        case Compare(left=left, right=right):
            return (left, right)
        case Arithmetic(first=first, rest=rest):
            return (first, *(operand for _, operand in rest))
        case Call(args=args):
            return args
        case Conditional(condition=condition, then=then, otherwise=otherwise):
            return (condition, then, otherwise)
