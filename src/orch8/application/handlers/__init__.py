"""Handlers that run inside the engine process, behind one registry."""

from orch8.application.handlers.builtin import BUILTIN_HANDLERS
from orch8.application.handlers.registry import HandlerRegistry

__all__ = ["BUILTIN_HANDLERS", "HandlerRegistry"]
