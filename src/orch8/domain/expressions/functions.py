"""The expression function library, with Orch8's argument handling.

Missing arguments read as null and extra ones are ignored, as in Orch8. A
function that cannot give a meaningful answer returns null (`avg([])`,
`change_pct(0, x)`); genuine failures (an array beyond the size cap, `now()`
without a clock, a bad date format) raise `Fault`, which strict evaluation
turns into an ExpressionError and lenient evaluation into null.

Time and randomness come from the caller: `now()` reads the scope's clock and
`uuid()`/`random()` draw from a deterministic stream seeded by the scope.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from orch8.domain.expressions.dates import DateFormatError, parse_rfc3339, strftime, to_rfc3339
from orch8.domain.expressions.values import (
    eq_key,
    finite_or_none,
    is_array,
    json_cmp,
    json_eq,
    json_text,
    to_f64,
    utf8_len,
)

MAX_ARRAY_ITEMS: Final = 100_000
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1


class Fault(Exception):
    """An evaluation failure (not a null-valued result)."""


class Environment(Protocol):
    """What a function may ask of the evaluation that calls it."""

    @property
    def now(self) -> datetime | None: ...

    def entropy(self, purpose: str) -> bytes:
        """The next 32 deterministic bytes of this evaluation's stream."""
        ...


Function = Callable[[list[Any], Environment], Any]


def _arg(args: list[Any], index: int) -> Any:
    return args[index] if index < len(args) else None


def _array(value: Any, name: str) -> list[Any] | tuple[Any, ...] | None:
    if not is_array(value):
        return None
    if len(value) > MAX_ARRAY_ITEMS:
        raise Fault(f"{name}() takes at most {MAX_ARRAY_ITEMS} elements")
    return value


def _str_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _as_i64(number: float) -> int:
    """Rust's saturating `f64 as i64`."""
    if number != number:
        return 0
    if number >= 2.0**63:
        return _I64_MAX
    if number <= -(2.0**63):
        return _I64_MIN
    return int(number)


def _sum(numbers: list[float]) -> float:
    """Left-to-right f64 addition, as Rust's `Iterator::sum` (no compensation)."""
    total = 0.0
    for number in numbers:
        total += number
    return total


def _numbers(values: list[Any] | tuple[Any, ...]) -> list[float]:
    return [n for n in (to_f64(v) for v in values) if n is not None]


def fn_abs(args: list[Any], env: Environment) -> Any:
    number = to_f64(_arg(args, 0))
    return None if number is None else abs(number)


def fn_len(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    if is_array(value) or isinstance(value, Mapping):
        return len(value)
    if isinstance(value, str):
        return utf8_len(value)
    return 0


def fn_json(args: list[Any], env: Environment) -> Any:
    return json_text(_arg(args, 0))


def fn_now(args: list[Any], env: Environment) -> Any:
    if env.now is None:
        raise Fault("now() needs a clock and none was given")
    return to_rfc3339(env.now)


def fn_uuid(args: list[Any], env: Environment) -> Any:
    raw = bytearray(env.entropy("uuid")[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def fn_random(args: list[Any], env: Environment) -> Any:
    low_arg, high_arg = to_f64(_arg(args, 0)), to_f64(_arg(args, 1))
    low = _as_i64(0.0 if low_arg is None else low_arg)
    high = _as_i64(100.0 if high_arg is None else high_arg)
    if high <= low:
        return low
    draw = int.from_bytes(env.entropy("random")[:8], "big")
    return draw % (high - low) + low


def fn_format_date(args: list[Any], env: Environment) -> Any:
    moment = parse_rfc3339(_str_or_empty(_arg(args, 0)))
    fmt = _arg(args, 1)
    if moment is None:
        return None
    try:
        return strftime(moment, fmt if isinstance(fmt, str) else "%Y-%m-%d")
    except DateFormatError as exc:
        raise Fault(f"format_date(): {exc}") from None


def fn_day_of_week(args: list[Any], env: Environment) -> Any:
    moment = parse_rfc3339(_str_or_empty(_arg(args, 0)))
    return None if moment is None else moment.weekday()


def fn_keys(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    if not isinstance(value, Mapping):
        return []
    if len(value) > MAX_ARRAY_ITEMS:
        raise Fault(f"keys() takes at most {MAX_ARRAY_ITEMS} entries")
    return sorted(str(k) for k in value)


def fn_values(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    if not isinstance(value, Mapping):
        return []
    if len(value) > MAX_ARRAY_ITEMS:
        raise Fault(f"values() takes at most {MAX_ARRAY_ITEMS} entries")
    return [value[k] for k in sorted(value, key=str)]


def fn_contains(args: list[Any], env: Environment) -> Any:
    haystack, needle = _arg(args, 0), _arg(args, 1)
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    items = _array(haystack, "contains")
    return items is not None and any(json_eq(item, needle) for item in items)


def fn_starts_with(args: list[Any], env: Environment) -> Any:
    return _str_or_empty(_arg(args, 0)).startswith(_str_or_empty(_arg(args, 1)))


def fn_ends_with(args: list[Any], env: Environment) -> Any:
    return _str_or_empty(_arg(args, 0)).endswith(_str_or_empty(_arg(args, 1)))


def fn_sum(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "sum")
    return None if items is None else finite_or_none(_sum(_numbers(items)))


def fn_avg(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "avg")
    if items is None:
        return None
    numbers = _numbers(items)
    return finite_or_none(_sum(numbers) / len(numbers)) if numbers else None


def fn_min(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "min")
    numbers = [] if items is None else _numbers(items)
    return min(numbers) if numbers else None


def fn_max(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "max")
    numbers = [] if items is None else _numbers(items)
    return max(numbers) if numbers else None


def fn_first(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    return value[0] if is_array(value) and value else None


def fn_last(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    return value[-1] if is_array(value) and value else None


def fn_slice(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "slice")
    if items is None:
        return None
    start_arg, end_arg = to_f64(_arg(args, 1)), to_f64(_arg(args, 2))
    start = min(max(_as_i64(start_arg or 0.0), 0), len(items))
    end = len(items) if end_arg is None else min(max(_as_i64(end_arg), 0), len(items))
    return list(items[start:end])


def _compare(left: Any, right: Any) -> int:
    return json_cmp(left, right) or 0


def fn_sort(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "sort")
    if items is None:
        return None
    descending = _arg(args, 1) == "desc"
    if descending:
        key = functools.cmp_to_key(lambda a, b: -_compare(a, b))
    else:
        key = functools.cmp_to_key(_compare)
    return sorted(items, key=key)


def fn_unique(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "unique")
    if items is None:
        return None
    seen: set[object] = set()
    kept: list[Any] = []
    for item in items:
        key = eq_key(item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def fn_count(args: list[Any], env: Environment) -> Any:
    items = _array(_arg(args, 0), "count")
    needle = _arg(args, 1)
    return 0 if items is None else sum(1 for item in items if json_eq(item, needle))


def fn_change_pct(args: list[Any], env: Environment) -> Any:
    old, new = to_f64(_arg(args, 0)), to_f64(_arg(args, 1))
    if old is None or new is None or old == 0:
        return None
    return finite_or_none((new - old) / old * 100.0)


def fn_clamp(args: list[Any], env: Environment) -> Any:
    value = _arg(args, 0)
    number, low, high = to_f64(value), to_f64(_arg(args, 1)), to_f64(_arg(args, 2))
    if number is None or low is None or high is None:
        return value
    if low > high:
        raise Fault("clamp() needs min <= max")
    return min(max(number, low), high)


FUNCTIONS: Final[Mapping[str, Function]] = {
    "abs": fn_abs,
    "len": fn_len,
    "json": fn_json,
    "now": fn_now,
    "uuid": fn_uuid,
    "random": fn_random,
    "format_date": fn_format_date,
    "day_of_week": fn_day_of_week,
    "keys": fn_keys,
    "values": fn_values,
    "contains": fn_contains,
    "starts_with": fn_starts_with,
    "ends_with": fn_ends_with,
    "sum": fn_sum,
    "avg": fn_avg,
    "min": fn_min,
    "max": fn_max,
    "first": fn_first,
    "last": fn_last,
    "slice": fn_slice,
    "sort": fn_sort,
    "unique": fn_unique,
    "count": fn_count,
    "change_pct": fn_change_pct,
    "clamp": fn_clamp,
}
