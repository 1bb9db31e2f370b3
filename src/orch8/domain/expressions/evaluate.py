"""Evaluation of a parsed expression against a Scope, with Orch8's value rules.

Operators follow Orch8's `expression.rs`: `+` concatenates two strings and
otherwise adds numbers (numeric strings and booleans coerce); `- * /` need two
numbers; a non-numeric operand or a division by zero gives null; a non-finite
result is null; `&&`/`||`/`!` give booleans by truthiness; `== !=` compare
JSON values (numbers as f64); `< <= > >=` order numbers and strings and are
false for anything else.

Those null results are the language's semantics, not errors, in both modes.
What counts as an error (strict mode raises, lenient mode reads null in its
place) is a failure a function reports: the array cap, `now()` without a
clock, a bad `format_date` format, `clamp` with min > max, and a string
concatenation over 4 MiB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from orch8.domain.expressions.ast import (
    Arithmetic,
    Array,
    Call,
    Compare,
    Conditional,
    Expr,
    Literal,
    Logical,
    Path,
    Unary,
)
from orch8.domain.expressions.errors import ExpressionError
from orch8.domain.expressions.functions import FUNCTIONS, Fault
from orch8.domain.expressions.values import (
    finite_or_none,
    is_array,
    json_cmp,
    json_eq,
    to_f64,
    truthy,
    utf8_len,
)
from orch8.domain.scope import Scope

MAX_STRING_BYTES: Final = 4 * 1024 * 1024


def evaluate(expr: Expr, scope: Scope, *, strict: bool = False) -> Any:
    """The value of `expr` in `scope`.

    Lenient (the default): a failing function reads as null. Strict: it raises
    ExpressionError naming the position of the call.
    """
    return _Evaluation(expr, scope, strict).value(expr)


class _Evaluation:
    def __init__(self, root: Expr, scope: Scope, strict: bool) -> None:
        self.root = root
        self.scope = scope
        self.strict = strict
        self.draws = 0
        self._stream_key: bytes | None = None

    # Environment for functions ---------------------------------------------
    @property
    def now(self) -> datetime | None:
        return self.scope.now

    def entropy(self, purpose: str) -> bytes:
        """Deterministic bytes: sha256(seed, the expression, purpose, draw number)."""
        if self._stream_key is None:
            self._stream_key = hashlib.sha256(
                f"{self.scope.seed}\x00{self.root!r}".encode("utf-8", "surrogatepass")
            ).digest()
        self.draws += 1
        message = self._stream_key + f"\x00{purpose}\x00{self.draws}".encode()
        return hashlib.sha256(message).digest()

    # Evaluation ------------------------------------------------------------
    def fault(self, message: str, position: int) -> Any:
        if self.strict:
            raise ExpressionError(message, position=position)
        return None

    def value(self, expr: Expr) -> Any:
        match expr:
            case Literal(value=value):
                return value
            case Path(segments=segments):
                return self.scope.resolve_segments(segments)
            case Array(items=items):
                return [self.value(item) for item in items]
            case Unary(op=op, operand=operand):
                return self.unary(op, self.value(operand))
            case Logical(op=op, operands=operands):
                want = op == "||"
                return any(truthy(self.value(o)) == want for o in operands) == want
            case Compare(op=op, left=left, right=right):
                return compare(op, self.value(left), self.value(right))
            case Arithmetic(first=first, rest=rest, position=position):
                result = self.value(first)
                for op, operand in rest:
                    result = self.arithmetic(op, result, self.value(operand), position)
                return result
            case Call(name=name, args=args, position=position):
                values = [self.value(arg) for arg in args]
                try:
                    return FUNCTIONS[name](values, self)
                except Fault as exc:
                    return self.fault(str(exc), position)
                except (TypeError, ValueError, ArithmeticError) as exc:  # unexpected data
                    return self.fault(f"{name}() failed: {exc}", position)
            case Conditional(condition=condition, then=then, otherwise=otherwise):
                return self.value(then if truthy(self.value(condition)) else otherwise)

    @staticmethod
    def unary(op: str, operand: Any) -> Any:
        if op == "!":
            return not truthy(operand)
        number = to_f64(operand)
        return None if number is None else -number

    def arithmetic(self, op: str, left: Any, right: Any, position: int) -> Any:
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            if utf8_len(left) + utf8_len(right) > MAX_STRING_BYTES:
                return self.fault("string concatenation exceeds 4 MiB", position)
            return left + right
        a, b = to_f64(left), to_f64(right)
        if a is None or b is None:
            return None
        if op == "+":
            return finite_or_none(a + b)
        if op == "-":
            return finite_or_none(a - b)
        if op == "*":
            return finite_or_none(a * b)
        return None if b == 0 else finite_or_none(a / b)


def compare(op: str, left: Any, right: Any) -> bool:
    """The comparison operators, `in` included."""
    if op == "==":
        return json_eq(left, right)
    if op == "!=":
        return not json_eq(left, right)
    if op == "in":
        return contains(right, left)
    order = json_cmp(left, right)
    if order is None:
        return False
    if op == "<":
        return order < 0
    if op == "<=":
        return order <= 0
    if op == ">":
        return order > 0
    return order >= 0


def contains(container: Any, needle: Any) -> bool:
    """`needle in container`: an element of an array, a substring, or an object key."""
    if is_array(container):
        return any(json_eq(item, needle) for item in container)
    if isinstance(container, str):
        return isinstance(needle, str) and needle in container
    if isinstance(container, Mapping):
        return isinstance(needle, str) and needle in container
    return False
