"""JSON value semantics shared by expressions and templates.

Orch8 works on `serde_json::Value`; these helpers give Python's JSON values
(None, bool, int, float, str, lists, mappings) the same behaviour: truthiness,
equality and ordering, number coercion, and the compact text
form `serde_json` prints (keys sorted, floats in Rust's shortest form).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from orch8.domain.scope import Missing

# Unicode White_Space, which Rust's `str::trim` strips (Python's `strip()` also
# strips \x1c-\x1f, which Rust keeps).
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Rust's `str::parse::<f64>` grammar (no surrounding blanks, no `_`, no hex).
_RUST_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def truthy(value: Any) -> bool:
    """Orch8's `is_truthy`: null, false, 0, "" and [] are false; every object is true."""
    if value is None or isinstance(value, Missing):
        return False
    if isinstance(value, bool):
        return value
    if is_number(value):
        return bool(value != 0)
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    return True


def parse_rust_float(text: str) -> float | None:
    """`text.parse::<f64>()`: None when Rust would refuse the text."""
    if _RUST_FLOAT.fullmatch(text) is None:
        return None
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def as_float(value: Any) -> float | None:
    """A JSON number as an f64 (`Number::as_f64`): None for anything else."""
    if not is_number(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def to_f64(value: Any) -> float | None:
    """Orch8's numeric coercion: numbers, numeric strings and booleans, finite only."""
    number: float | None
    if isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif is_number(value):
        number = as_float(value)
    elif isinstance(value, str):
        number = parse_rust_float(value)
    else:
        return None
    if number is None or not math.isfinite(number):
        return None
    return number


def finite_or_none(number: float) -> float | None:
    """`json!(f64)`: a non-finite float becomes null."""
    return number if math.isfinite(number) else None


def json_eq(left: Any, right: Any) -> bool:
    """Equality of JSON values; numbers compare as f64 at every depth."""
    if is_number(left) and is_number(right):
        return as_float(left) == as_float(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if is_array(left) and is_array(right):
        return len(left) == len(right) and all(
            json_eq(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        if len(left) != len(right):
            return False
        return all(key in right and json_eq(value, right[key]) for key, value in left.items())
    return False


def json_cmp(left: Any, right: Any) -> int | None:
    """Ordering: numbers as f64, strings lexicographically, anything else unordered."""
    if is_number(left) and is_number(right):
        a, b = as_float(left), as_float(right)
        if a is None or b is None or a != a or b != b:
            return None
        return (a > b) - (a < b)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None


def eq_key(value: Any) -> object:
    """A hashable key such that json_eq(a, b) implies eq_key(a) == eq_key(b)."""
    if isinstance(value, bool):
        return ("b", value)
    if is_number(value):
        return ("n", as_float(value))
    if value is None:
        return ("z",)
    if isinstance(value, str):
        return ("s", value)
    if is_array(value):
        return ("a", tuple(eq_key(item) for item in value))
    if isinstance(value, Mapping):
        return ("o", frozenset((str(k), eq_key(v)) for k, v in value.items()))
    return ("?", id(value))


def utf8_len(text: str) -> int:
    """Rust's `str::len`: the length in UTF-8 bytes."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def format_float(number: float) -> str:
    """An f64 as serde_json prints it (the `ryu` crate's shortest form)."""
    if not math.isfinite(number):
        return "null"
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    sign = "-" if number < 0 else ""
    mantissa, _, exp_text = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    length = len(digits)
    k = point - length  # value = digits * 10^k
    if k >= 0 and point <= 16:
        body = digits + "0" * k + ".0"
    elif 0 < point <= 16:
        body = digits[:point] + "." + digits[point:]
    elif -5 < point <= 0:
        body = "0." + "0" * (-point) + digits
    elif length == 1:
        body = f"{digits}e{point - 1}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{point - 1}"
    return sign + body


def json_text(value: Any) -> str:
    """Compact JSON text, as `serde_json::Value::to_string` writes it."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, Missing):
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif is_array(value):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, key in enumerate(sorted(str(k) for k in value)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value.get(key), out)
        out.append("}")
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


def text_of(value: Any) -> str:
    """How a value is spliced into text: strings raw, everything else as JSON."""
    return value if isinstance(value, str) else json_text(value)
