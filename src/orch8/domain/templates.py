"""Orch8's `{{ }}` templates in step params: `{{ path | fallback | filter(...) }}`.

Rendering walks a params tree (objects, arrays, strings). A string that is
exactly one `{{ ... }}` yields the value itself, keeping its JSON type; in any
other string each `{{ ... }}` is replaced by its text (strings raw, anything
else, null included, as compact JSON). A `{{` without a closing `}}` is kept
as written. Inside the braces, segments split on `|` (outside parentheses):

- the first segment must start with a root (`context.data`, `data`, `config`,
  `outputs.<id>`, `steps.<id>`, `input`, `instance_id`, `runtime`, `state`,
  or a loop binding in the scope), or be `json(path)` / `len(path)` of one;
  anything else is a TemplateError (`unknown template root`), which fails the step;
- until the first filter, segments form a fallback chain: the first path whose
  value is not null wins; a segment that is not a path is a literal (a quoted
  `'USD'` without its quotes, any other text as written) and ends the chain;
- then the filters run in order (see `template_filters`); other segments
  after a filter are ignored, as in Orch8.

A missing path is null. Output of a filter or a rendered string is capped at
4 MiB. Templates are compiled once per distinct text (pure, cached).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from orch8.domain.errors import ValidationError
from orch8.domain.expressions import ALL_OUTPUTS
from orch8.domain.expressions.values import WHITESPACE, is_array, json_text, text_of, utf8_len
from orch8.domain.scope import CONTEXT_SECTIONS, MISSING, ROOTS, Scope
from orch8.domain.template_filters import (
    MAX_OUTPUT_BYTES,
    Filter,
    TemplateError,
    apply_filter,
    is_quoted,
)
from orch8.domain.template_syntax import (
    TEMPLATE_FUNCTIONS,
    Operand,
    Segment,
    compile_template,
    is_single,
    parse_operand,
    spans,
    template_bodies,
)

__all__ = ["TemplateError", "check", "referenced_outputs", "render"]

MAX_NESTING: Final = 128  # serde_json's own recursion limit: Orch8 never sees deeper params


# Rendering -------------------------------------------------------------------
def render(value: Any, scope: Scope) -> Any:
    """Resolve every template in a params tree; TemplateError when one cannot be."""
    return _render(value, scope, 0)


def _render(value: Any, scope: Scope, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise TemplateError(f"params nest deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        return _render_string(value, scope) if "{{" in value else value
    if isinstance(value, Mapping):
        return {key: _render(item, scope, depth + 1) for key, item in value.items()}
    if is_array(value):
        return [_render(item, scope, depth + 1) for item in value]
    return value


def _render_string(text: str, scope: Scope) -> Any:
    if text.startswith("{{") and text.endswith("}}"):
        inner = text[2:-2].strip(WHITESPACE)
        if is_single(inner):
            return evaluate_template(inner, scope)
    out: list[str] = []
    size = position = 0
    for opened, body, close in spans(text):
        out.append(text[position:opened])
        if close < 0:
            out.append("{{")
            position = body
            continue
        piece = text_of(evaluate_template(text[body:close].strip(WHITESPACE), scope))
        out.append(piece)
        size += utf8_len(piece) + utf8_len(text[position:opened])
        if size > MAX_OUTPUT_BYTES:
            raise TemplateError("rendered string exceeds 4 MiB")
        position = close + 2
    out.append(text[position:])
    return "".join(out)


def evaluate_template(inner: str, scope: Scope) -> Any:
    """The value of one `{{ }}` body."""
    segments = compile_template(inner)
    first = segments[0]
    if not isinstance(first, Operand) or not scope.is_root(first.root):
        raise TemplateError(f"unknown template root: {first.text}")
    result: Any = None
    start = len(segments)
    for index, segment in enumerate(segments):
        if isinstance(segment, Filter):
            start = index
            break
        if scope.is_root(segment.root):
            found = _resolve(segment, scope)
            if found is not MISSING and found is not None:
                result, start = found, index + 1
                break
        else:
            result, start = segment.literal, index + 1
            break
    for segment in segments[start:]:
        if isinstance(segment, Filter):
            result = apply_filter(segment, result, lambda raw: _replacement(raw, scope))
    return result


def _resolve(operand: Operand, scope: Scope) -> Any:
    """An operand's value: MISSING when its path leads nowhere."""
    path = operand.path
    if path[0] == "context" and (len(path) < 2 or path[1] not in CONTEXT_SECTIONS):
        section = path[1] if len(path) > 1 else ""
        raise TemplateError(f"unknown context section: {section}")
    if operand.function is None:
        return scope.lookup(path)
    if operand.function not in TEMPLATE_FUNCTIONS:
        raise TemplateError(f"unknown template function: {operand.function}")
    found = scope.lookup(path)
    value = None if found is MISSING else found
    if operand.function == "json":
        return json_text(value)
    if is_array(value) or isinstance(value, Mapping):
        return len(value)
    return utf8_len(value) if isinstance(value, str) else 0


def _replacement(raw: str, scope: Scope) -> str:
    """`replace`'s second argument: a quoted literal, a path, or bare text."""
    if is_quoted(raw):
        return raw[1:-1]
    operand = parse_operand(raw)
    if not scope.is_root(operand.root):
        return raw
    found = _resolve(operand, scope)
    return "" if found is MISSING else text_of(found)


# Static analysis -------------------------------------------------------------
def _strings(value: Any, where: str, depth: int = 0) -> Iterable[tuple[str, str]]:
    if depth > MAX_NESTING:
        raise TemplateError(f"params nest deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        if "{{" in value:
            yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}", depth + 1)
    elif is_array(value):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]", depth + 1)


def _operands(segments: tuple[Segment, ...]) -> Iterable[Operand]:
    for segment in segments:
        if isinstance(segment, Operand):
            yield segment
        elif segment.name == "replace" and not is_quoted(segment.replacement):
            yield parse_operand(segment.replacement)


def referenced_outputs(value: Any) -> frozenset[str]:
    """Block ids read through `outputs.<id>`/`steps.<id>` anywhere in a params tree."""
    found: set[str] = set()
    try:
        for _, text in _strings(value, ""):
            for body in template_bodies(text)[1]:
                try:
                    segments = compile_template(body)
                except TemplateError:
                    continue
                for operand in _operands(segments):
                    if operand.root in ("outputs", "steps"):
                        found.add(operand.path[1] if len(operand.path) > 1 else ALL_OUTPUTS)
    except TemplateError:
        pass
    return frozenset(found)


def check(value: Any, *, where: str, local_names: Iterable[str] = ()) -> None:
    """Refuse, at publish time, templates that would fail every time they render.

    `local_names` are the loop bindings in force where the params sit (they are
    valid roots). An unclosed `{{` is not an error: it renders as written.
    """
    roots = ROOTS | frozenset(local_names)
    try:
        strings = list(_strings(value, where))
    except TemplateError as exc:
        raise ValidationError(exc.message, path=where) from None
    for path, text in strings:
        for body in template_bodies(text)[1]:
            try:
                _check_body(body, roots)
            except TemplateError as exc:
                raise ValidationError(f"{exc.message} in {text!r}", path=path) from None


def _check_body(body: str, roots: frozenset[str]) -> None:
    segments = compile_template(body)
    first = segments[0]
    if not isinstance(first, Operand) or first.root not in roots:
        raise TemplateError(f"unknown template root: {first.text or '(empty)'}")
    for operand in _operands(segments):
        if operand.root not in roots:
            continue
        path = operand.path
        if path[0] == "context" and (len(path) < 2 or path[1] not in CONTEXT_SECTIONS):
            raise TemplateError(f"unknown context section: {path[1] if len(path) > 1 else ''}")
        if operand.function is not None and operand.function not in TEMPLATE_FUNCTIONS:
            raise TemplateError(f"unknown template function: {operand.function}")
