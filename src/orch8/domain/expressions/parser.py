"""A recursive-descent parser for Orch8's expression language.

Precedence, loosest first (as in Orch8's `expression.rs`):

    c ? a : b          conditional (right-associative)
    ||                 left-associative
    &&                 left-associative
    == != < <= > >= in one comparison; comparisons do not chain
    + -                left-associative
    * /                left-associative
    ! -                prefix
    literal, path, f(args), (expr), [items]

Where Orch8 silently tolerates broken syntax (a missing `)`, `]` or `:`, a
token left over, an unterminated string) this parser refuses it with an
ExpressionError naming the character position, so that a sequence with a
malformed condition is refused when it is created rather than misbehaving at
run time. Calls of unknown functions are refused for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

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
    children,
)
from orch8.domain.expressions.errors import ExpressionError
from orch8.domain.expressions.functions import FUNCTIONS
from orch8.domain.expressions.lexer import Token, tokenize
from orch8.domain.expressions.values import WHITESPACE, format_float

MAX_DEPTH: Final = 64
COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})


def unwrap(text: str) -> tuple[str, int]:
    """The expression inside an optional `{{ }}` wrapper, and where it starts in `text`."""
    stripped = text.strip(WHITESPACE)
    offset = len(text) - len(text.lstrip(WHITESPACE))
    if len(stripped) >= 4 and stripped.startswith("{{") and stripped.endswith("}}"):
        return stripped[2:-2], offset + 2
    return stripped, offset


def parse(text: str) -> Expr:
    """Parse an expression; raises ExpressionError (and nothing else) when it is malformed.

    An empty expression is null, as in Orch8.
    """
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string")
    body, offset = unwrap(text)
    tokens = tokenize(body, offset=offset, source=text)
    parser = _Parser(tokens, text)
    if parser.peek.kind == "end":
        return Literal(None, parser.peek.position)
    expr = parser.expression()
    if parser.peek.kind != "end":
        raise parser.unexpected()
    return expr


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "string":
        return f"string {token.value!r}"
    if token.kind == "number" and isinstance(token.value, float):
        return f"number {format_float(token.value)}"
    if token.kind == "literal":
        return "'null'" if token.value is None else f"'{str(token.value).lower()}'"
    return f"'{token.value}'"


class _Parser:
    def __init__(self, tokens: list[Token], source: str) -> None:
        self.tokens = tokens
        self.source = source
        self.i = 0
        self.nesting = 0
        self.depths: dict[int, int] = {}

    # plumbing ----------------------------------------------------------------
    @property
    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def fail(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, position=position, expr=self.source)

    def unexpected(self, expected: str = "") -> ExpressionError:
        token = self.peek
        suffix = f", expected {expected}" if expected else ""
        return self.fail(f"unexpected {_describe(token)}{suffix}", token.position)

    def expect(self, kind: str, expected: str) -> Token:
        if self.peek.kind != kind:
            raise self.unexpected(expected)
        return self.advance()

    def enter(self, position: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.fail(f"expression is nested deeper than {MAX_DEPTH} levels", position)

    def leave(self) -> None:
        self.nesting -= 1

    def build(self, node: Expr) -> Expr:
        """Record the node's depth in the tree, refusing trees deeper than MAX_DEPTH."""
        depth = 1 + max((self.depths.get(id(child), 1) for child in children(node)), default=0)
        if depth > MAX_DEPTH:
            raise self.fail(f"expression is nested deeper than {MAX_DEPTH} levels", node.position)
        self.depths[id(node)] = depth
        return node

    # grammar -----------------------------------------------------------------
    def expression(self) -> Expr:
        self.enter(self.peek.position)
        condition = self.logical_or()
        if self.peek.kind == "?":
            mark = self.advance()
            then = self.expression()
            self.expect(":", "':' of the conditional")
            otherwise = self.expression()
            condition = self.build(Conditional(condition, then, otherwise, mark.position))
        self.leave()
        return condition

    def logical_or(self) -> Expr:
        return self.logical("||", self.logical_and)

    def logical_and(self) -> Expr:
        return self.logical("&&", self.comparison)

    def logical(self, op: str, operand: Callable[[], Expr]) -> Expr:
        first = operand()
        if self.peek.kind != op:
            return first
        position = self.peek.position
        operands = [first]
        while self.peek.kind == op:
            self.advance()
            operands.append(operand())
        return self.build(Logical(op, tuple(operands), position))

    def comparison(self) -> Expr:
        left = self.additive()
        if self.peek.kind not in COMPARISONS:
            return left
        op = self.advance()
        right = self.additive()
        if self.peek.kind in COMPARISONS:
            raise self.fail("comparisons do not chain; join them with && or ||", self.peek.position)
        return self.build(Compare(op.kind, left, right, op.position))

    def additive(self) -> Expr:
        return self.chain(("+", "-"), self.multiplicative)

    def multiplicative(self) -> Expr:
        return self.chain(("*", "/"), self.unary)

    def chain(self, ops: tuple[str, ...], operand: Callable[[], Expr]) -> Expr:
        first = operand()
        if self.peek.kind not in ops:
            return first
        position = self.peek.position
        rest: list[tuple[str, Expr]] = []
        while self.peek.kind in ops:
            op = self.advance().kind
            rest.append((op, operand()))
        return self.build(Arithmetic(first, tuple(rest), position))

    def unary(self) -> Expr:
        if self.peek.kind not in ("!", "-"):
            return self.primary()
        token = self.advance()
        self.enter(token.position)
        operand = self.unary()
        self.leave()
        return self.build(Unary(token.kind, operand, token.position))

    def primary(self) -> Expr:
        token = self.peek
        if token.kind in ("string", "number", "literal"):
            self.advance()
            return Literal(token.value, token.position)
        if token.kind == "word":
            self.advance()
            word = str(token.value)
            if self.peek.kind == "(":
                return self.call(word, token.position)
            return Path(tuple(word.split(".")), token.position)
        if token.kind == "(":
            self.advance()
            inner = self.expression()
            self.expect(")", "')'")
            return inner
        if token.kind == "[":
            self.advance()
            items = self.items("]")
            return self.build(Array(items, token.position))
        raise self.unexpected("a value")

    def call(self, name: str, position: int) -> Expr:
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function '{name}'", position)
        self.advance()  # (
        args = self.items(")")
        return self.build(Call(name, args, position))

    def items(self, closing: str) -> tuple[Expr, ...]:
        """Comma-separated expressions up to `closing` (a trailing comma is allowed)."""
        found: list[Expr] = []
        while self.peek.kind != closing:
            found.append(self.expression())
            if self.peek.kind == ",":
                self.advance()
            elif self.peek.kind != closing:
                raise self.unexpected(f"',' or '{closing}'")
        self.advance()
        return tuple(found)
