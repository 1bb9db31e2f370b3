"""The one error type the expression language raises."""

from __future__ import annotations

from orch8.domain.errors import DomainError


class ExpressionError(DomainError):
    """A malformed expression (or, in strict evaluation, a failed one).

    `position` is the 0-based character offset in `expr` where the problem is.
    """

    def __init__(self, message: str, *, position: int = 0, expr: str = "") -> None:
        self.message = message
        self.position = position
        self.expr = expr
        where = f' in "{expr}"' if expr else ""
        super().__init__(f"expression error at position {position}: {message}{where}")
