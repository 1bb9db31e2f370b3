"""The syntax of `{{ }}` templates: finding them in a string and splitting their bodies.

Orch8's scanning rules, kept exactly: a string that starts with `{{`, ends
with `}}` and has no unquoted `{{` inside is one whole template; otherwise each
`{{` is closed by the next `}}` outside single or double quotes (so that
`replace('{{name}}', ...)` works), and a `{{` that is never closed is text.
A body splits on `|` outside parentheses; each segment is a filter (see
`template_filters`) or an operand: a path, `json(path)`/`len(path)`, or a literal.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Final

from attrs import frozen

from orch8.domain.expressions.values import WHITESPACE
from orch8.domain.template_filters import Filter, compile_filter, is_filter, is_quoted

TEMPLATE_FUNCTIONS: Final = frozenset({"json", "len"})
_CALL: Final = re.compile(r"([A-Za-z0-9_]+)\((.*)\)", re.DOTALL)


@frozen
class Operand:
    """A non-filter segment: a path, `fn(path)`, or (when its root is unknown) a literal."""

    text: str
    root: str  # the first word of the path (inside the call, if any)
    path: tuple[str, ...]
    function: str | None = None

    @property
    def literal(self) -> Any:
        return self.text[1:-1] if is_quoted(self.text) else self.text


Segment = Operand | Filter


def parse_operand(text: str) -> Operand:
    call = _CALL.fullmatch(text)
    if call is not None:
        inner = call.group(2).strip(WHITESPACE)
        return Operand(text, inner.split(".")[0], tuple(inner.split(".")), call.group(1))
    # Orch8 reads the root through the outermost parentheses even when the text
    # is not a well-formed call.
    opened, closed = text.find("("), text.rfind(")")
    inner = text[opened + 1 : closed].strip(WHITESPACE) if 0 <= opened < closed else text
    return Operand(text, inner.split(".")[0], tuple(text.split(".")))


def split_pipes(text: str) -> list[str]:
    """Split on `|` outside parentheses (quotes are not considered, as in Orch8)."""
    parts: list[str] = []
    depth = start = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "|" and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


@lru_cache(maxsize=4096)
def compile_template(inner: str) -> tuple[Segment, ...]:
    """The segments of one `{{ }}` body; TemplateError for a malformed filter."""
    segments: list[Segment] = []
    for raw in split_pipes(inner):
        text = raw.strip(WHITESPACE)
        segments.append(compile_filter(text) if is_filter(text) else parse_operand(text))
    return tuple(segments)


class _Closings:
    """Where the `}}` closing a template opened at each position is (quote-aware).

    Orch8 rescans the rest of the string for every `{{`, which is quadratic; a
    string with many openings gets a right-to-left table instead (linear).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.table: tuple[array[int], array[int], array[int]] | None = None
        if text.count("{{") > 32:
            self.table = self._build(text)

    @staticmethod
    def _build(text: str) -> tuple[array[int], array[int], array[int]]:
        size = len(text) + 1
        plain, single, double = (array("q", [-1]) * size for _ in range(3))
        for index in range(len(text) - 2, -1, -1):
            char = text[index]
            if char == "}" and text[index + 1] == "}":
                plain[index] = index
            elif char == "'":
                plain[index] = single[index + 1]
            elif char == '"':
                plain[index] = double[index + 1]
            else:
                plain[index] = plain[index + 1]
            single[index] = plain[index + 1] if char == "'" else single[index + 1]
            double[index] = plain[index + 1] if char == '"' else double[index + 1]
        return plain, single, double

    def find(self, start: int) -> int:
        """The index of the closing `}}` for a body starting at `start`; -1 if none."""
        if self.table is not None:
            return self.table[0][start] if start < len(self.text) else -1
        text, quote = self.text, ""
        for index in range(start, len(text) - 1):
            char = text[index]
            if quote:
                if char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "}" and text[index + 1] == "}":
                return index
        return -1


def spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(opening, body start, closing) of each `{{`, closing -1 when it is unclosed."""
    closings = _Closings(text)
    position = 0
    while (opened := text.find("{{", position)) >= 0:
        close = closings.find(opened + 2)
        yield opened, opened + 2, close
        position = opened + 2 if close < 0 else close + 2


def is_single(inner: str) -> bool:
    """No unquoted `{{` inside: the whole string is one template."""
    quote = ""
    for index in range(len(inner) - 1):
        char = inner[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{" and inner[index + 1] == "{":
            return False
    return True


def template_bodies(text: str) -> tuple[bool, list[str]]:
    """(whole, bodies): whether `text` is exactly one template, and each `{{ }}` body."""
    if text.startswith("{{") and text.endswith("}}"):
        inner = text[2:-2].strip(WHITESPACE)
        if is_single(inner):
            return True, [inner]
    bodies = [text[body:close].strip(WHITESPACE) for _, body, close in spans(text) if close >= 0]
    return False, bodies
