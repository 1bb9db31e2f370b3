"""Name → handler lookup. Names not found here will become external-worker tasks."""

from __future__ import annotations

from collections.abc import Mapping

from orch8.application.ports.handlers import StepHandler


class HandlerRegistry:
    def __init__(self, handlers: Mapping[str, StepHandler] | None = None) -> None:
        self._handlers: dict[str, StepHandler] = dict(handlers or {})

    def register(self, name: str, handler: StepHandler) -> None:
        self._handlers[name] = handler

    def get(self, name: str) -> StepHandler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)
