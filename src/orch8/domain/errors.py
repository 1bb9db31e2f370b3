"""Errors the domain raises; the edges translate them into status codes."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error that means "the request makes no sense", never "we broke"."""


class ValidationError(DomainError):
    """A definition or request is malformed.

    `path` names where (a block id and field, or a request field) so that the
    user can find the offending spot in a large sequence without guessing.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidTransition(DomainError):
    """An instance was asked to move between two states the lifecycle forbids."""

    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"invalid state transition from {current} to {target}")
