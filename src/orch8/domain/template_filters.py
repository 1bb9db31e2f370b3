"""The pipe filters of Orch8's templates (`{{ path | upper | truncate(10, '…') }}`).

Each filter is compiled once from its text (so a bad argument is found when a
sequence is checked) and applied to the value flowing through the pipe, with
Orch8's coercions: the string filters read a non-string as "" (`replace`
reads it as its JSON text), `abs`/`round` read a non-number as 0, `join`
reads a non-array as []. No filter may produce a string over 4 MiB.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any, Final

from attrs import frozen

from orch8.domain.errors import DomainError
from orch8.domain.expressions.values import (
    WHITESPACE,
    as_float,
    finite_or_none,
    is_array,
    parse_rust_float,
    text_of,
    utf8_len,
)

MAX_OUTPUT_BYTES: Final = 4 * 1024 * 1024
NO_ARG_FILTERS: Final = frozenset(
    {"upper", "lower", "trim", "abs", "url_encode", "base64", "base64_decode"}
)
ARG_FILTERS: Final = ("replace", "default", "truncate", "join", "split", "hash", "round")
HASHES: Final = frozenset({"sha256", "sha384", "sha512", "sha1", "md5"})
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
)
_USIZE_MAX: Final = 2**64 - 1
_U32_MAX: Final = 2**32 - 1


class TemplateError(DomainError):
    """A template that cannot be rendered: unknown root, bad filter, oversized output."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def unquote(text: str) -> str:
    """Strip one pair of matching quotes (no escapes inside template arguments)."""
    text = text.strip(WHITESPACE)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def is_quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""


def literal_value(text: str) -> Any:
    """A `default(...)` argument: a quoted string, a number, true/false/null, else the text."""
    text = text.strip(WHITESPACE)
    if is_quoted(text):
        return text[1:-1]
    number = parse_rust_float(text)
    if number is not None:
        return finite_or_none(number)
    return {"true": True, "false": False, "null": None}.get(text, text)


def split_arguments(text: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    quote = ""
    start = 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _unsigned(text: str, limit: int) -> int | None:
    text = text.strip(WHITESPACE)
    digits = text[1:] if text.startswith("+") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(digits)
    return value if value <= limit else None


def is_filter(segment: str) -> bool:
    return segment in NO_ARG_FILTERS or any(segment.startswith(f"{n}(") for n in ARG_FILTERS)


@frozen
class Filter:
    name: str
    text: str
    args: tuple[Any, ...] = ()

    @property
    def replacement(self) -> str:
        """For `replace`: the raw second argument (a quoted literal, a path or bare text)."""
        return str(self.args[1])


def compile_filter(segment: str) -> Filter:
    """Compile one pipe segment that `is_filter`; TemplateError when it is malformed."""
    if segment in NO_ARG_FILTERS:
        return Filter(segment, segment)
    name, _, rest = segment.partition("(")
    if not rest.endswith(")"):
        raise TemplateError(f"unknown pipe filter: {segment}")
    inner = rest[:-1]
    if name == "replace":
        parts = split_arguments(inner)
        if len(parts) < 2:
            raise TemplateError(f"replace() requires two arguments: {inner}")
        search, replacement = parts[0], ",".join(parts[1:])
        return Filter(name, segment, (unquote(search), replacement.strip(WHITESPACE)))
    if name == "default":
        return Filter(name, segment, (literal_value(inner),))
    if name == "truncate":
        parts = split_arguments(inner)
        length = _unsigned(parts[0], _USIZE_MAX)
        if length is None:
            raise TemplateError("truncate() requires length")
        suffix = unquote(parts[1]) if len(parts) > 1 else ""
        return Filter(name, segment, (length, suffix))
    if name in ("join", "split"):
        return Filter(name, segment, (unquote(inner),))
    if name == "hash":
        algorithm = unquote(inner)
        if algorithm not in HASHES:
            raise TemplateError(f"unsupported hash algorithm: {algorithm}")
        return Filter(name, segment, (algorithm,))
    decimals = _unsigned(inner, _U32_MAX)
    if decimals is None:
        raise TemplateError("round() requires integer arg")
    return Filter(name, segment, (decimals,))


def _capped(text: str, what: str) -> str:
    if len(text) > MAX_OUTPUT_BYTES // 4 and utf8_len(text) > MAX_OUTPUT_BYTES:
        raise TemplateError(f"{what} output exceeds 4 MiB")
    return text


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def url_encode(text: str) -> str:
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}"
        for byte in text.encode("utf-8", "surrogatepass")
    )


def _round(value: Any, decimals: int) -> Any:
    """`(n * 10^d).round() / 10^d` with Rust's half-away-from-zero and `d as i32`."""
    number = as_float(value)
    number = 0.0 if number is None else number
    exponent = decimals if decimals < 2**31 else decimals - 2**32
    try:
        factor = 10.0**exponent
    except OverflowError:
        factor = float("inf")
    scaled = number * factor
    if scaled == scaled and abs(scaled) != float("inf"):
        whole = float(int(abs(scaled)))
        rounded = whole + 1.0 if abs(scaled) - whole >= 0.5 else whole
        scaled = rounded if scaled >= 0 else -rounded
    if factor == 0:
        return None
    return finite_or_none(scaled / factor)


def _replace(text: str, search: str, replacement: str) -> str:
    count = len(text) + 1 if search == "" else text.count(search)
    growth = count * (utf8_len(replacement) - utf8_len(search))
    if utf8_len(text) + growth > MAX_OUTPUT_BYTES:
        raise TemplateError("replace output exceeds 4 MiB")
    return text.replace(search, replacement)


def _join(value: Any, separator: str) -> str:
    pieces = [text_of(item) for item in value] if is_array(value) else []
    size = sum(utf8_len(p) for p in pieces) + utf8_len(separator) * max(len(pieces) - 1, 0)
    if size > MAX_OUTPUT_BYTES:
        raise TemplateError("join output exceeds 4 MiB")
    return separator.join(pieces)


def _split(text: str, separator: str) -> list[str]:
    if separator == "":
        return ["", *text, ""]
    return text.split(separator)


def _base64_decode(text: str) -> str:
    try:
        raw = base64.b64decode(text.encode("utf-8", "surrogatepass"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TemplateError(f"base64_decode: {exc}") from None
    return raw.decode("utf-8", "replace")


def _hash(text: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def apply_filter(spec: Filter, value: Any, replacement: Callable[[str], str]) -> Any:
    """Apply a compiled filter; `replacement` resolves `replace`'s second argument."""
    name, args = spec.name, spec.args
    result: Any
    if name == "replace":
        result = _replace(text_of(value), str(args[0]), replacement(spec.replacement))
    elif name == "upper":
        result = _string(value).upper()
    elif name == "lower":
        result = _string(value).lower()
    elif name == "trim":
        result = _string(value).strip(WHITESPACE)
    elif name == "abs":
        number = as_float(value)
        result = abs(number) if number is not None else 0.0
    elif name == "url_encode":
        result = url_encode(_string(value))
    elif name == "base64":
        result = base64.b64encode(_string(value).encode("utf-8", "surrogatepass")).decode()
    elif name == "base64_decode":
        result = _base64_decode(_string(value))
    elif name == "default":
        result = args[0] if value is None or value == "" else value
    elif name == "truncate":
        text, length = _string(value), int(args[0])
        result = text[:length] + str(args[1]) if len(text) > length else text
    elif name == "join":
        result = _join(value, str(args[0]))
    elif name == "split":
        result = _split(_string(value), str(args[0]))
    elif name == "hash":
        result = _hash(_string(value), str(args[0]))
    else:
        result = _round(value, int(args[0]))
    return _capped(result, name) if isinstance(result, str) else result
