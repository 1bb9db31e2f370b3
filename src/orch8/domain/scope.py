"""What an expression or a template can read: one instance's state at one moment.

Path roots (Orch8's, plus `state` and the engine's loop bindings):

- `context.data.*`, `data.*`          the instance's `context.data`
- `context.config.*`, `config.*`      `context.config`
- `outputs.<block_id>.*`, `steps.*`   the latest output of a block
- `input.*`                           `context.data.input.*`
- `instance_id`                       the instance id (further segments ignored, as in Orch8)
- `runtime.*`                         `context.runtime` (with `instance_id` filled in)
- `state.*`                           the instance's key-value state
- any other first word                a loop/for_each binding of that name if there is one,
                                      else a path into `context.data` (`plan` = `context.data.plan`)

Segments are split on `.`; a segment made of digits indexes an array
(`items.0.name`). A missing key, an index past the end or a step through a
scalar reads as null. `resolve` never fails: deciding that an unknown root is
an error is the template language's business (see `orch8.domain.templates`),
because in expressions an unknown first word is a path into `context.data`.
Time and randomness come in here too: `now` for `now()` and `seed` for the
deterministic `uuid()`/`random()` streams.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from attrs import field, frozen

ROOTS: Final = frozenset(
    {"context", "data", "config", "outputs", "steps", "input", "instance_id", "runtime", "state"}
)
CONTEXT_SECTIONS: Final = frozenset({"data", "config"})
_INDEX: Final = re.compile(r"\+?[0-9]+")


class Missing:
    """The marker for "no such key", distinct from a JSON null that is present."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = Missing()


def navigate(value: Any, segments: Sequence[str]) -> Any:
    """Walk object keys and array indices; MISSING as soon as a step fails."""
    current = value
    for segment in segments:
        if isinstance(current, Mapping):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list | tuple):
            if _INDEX.fullmatch(segment) is None:
                return MISSING
            index = int(segment)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


@frozen
class Scope:
    data: Mapping[str, Any]
    config: Mapping[str, Any] = field(factory=dict)
    runtime: Mapping[str, Any] = field(factory=dict)
    outputs: Mapping[str, Any] = field(factory=dict)
    state: Mapping[str, Any] = field(factory=dict)
    instance_id: str = ""
    now: datetime | None = None
    seed: str = ""
    locals: Mapping[str, Any] = field(factory=dict)

    def resolve(self, path: str) -> Any:
        """The value at a dotted path, None when there is none."""
        return self.resolve_segments(path.split("."))

    def resolve_segments(self, segments: Sequence[str]) -> Any:
        found = self.lookup(segments)
        return None if found is MISSING else found

    def lookup(self, segments: Sequence[str]) -> Any:
        """Like `resolve_segments` but MISSING (not None) when the path leads nowhere."""
        if not segments:
            return MISSING
        root, rest = segments[0], segments[1:]
        match root:
            case "context":
                section = rest[0] if rest else ""
                if section == "data":
                    return navigate(self.data, rest[1:])
                if section == "config":
                    return navigate(self.config, rest[1:])
                return MISSING
            case "data":
                return navigate(self.data, rest)
            case "config":
                return navigate(self.config, rest)
            case "outputs" | "steps":
                return navigate(self.outputs, rest)
            case "input":
                return navigate(self.data, ["input", *rest])
            case "instance_id":
                return self.instance_id
            case "runtime":
                return navigate(self.runtime_view(), rest)
            case "state":
                return navigate(self.state, rest)
        if root in self.locals:
            return navigate(self.locals, segments)
        return navigate(self.data, segments)

    def runtime_view(self) -> Mapping[str, Any]:
        if self.instance_id and "instance_id" not in self.runtime:
            return {**self.runtime, "instance_id": self.instance_id}
        return self.runtime

    def is_root(self, word: str) -> bool:
        """Whether a template may start a path with `word` (a root or a binding)."""
        return word in ROOTS or word in self.locals
