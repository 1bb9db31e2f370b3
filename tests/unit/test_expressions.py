"""The expression language: grammar, Orch8's value semantics, the function library."""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.domain.errors import ValidationError
from orch8.domain.expressions import (
    ALL_OUTPUTS,
    FUNCTIONS,
    MAX_ARRAY_ITEMS,
    MAX_DEPTH,
    ExpressionError,
    check,
    evaluate,
    parse,
    referenced_outputs,
    truthy,
)
from orch8.domain.expressions.values import format_float, json_text
from orch8.domain.scope import Scope

NOW = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
SCOPE = Scope(
    data={
        "user": {"name": "Alice", "age": 30},
        "count": 5,
        "active": True,
        "plan": "pro",
        "items": [10, 20, 30],
        "tags": ["vip", "new"],
        "nums": [5, 2, 8, 1, 9],
        "words": ["a", "b", "a", "c", "b"],
        "obj": {"b": 2, "a": 1},
        "input": {"question": "Will X?", "price": 0.65},
        "nothing": None,
        "three": "3",
        "empty": "",
        "zero": 0,
        "msg": "hello world",
    },
    config={"limit": 100},
    runtime={"attempt": 3},
    outputs={"step_1": {"result": "ok", "count": 42}, "s": {"a": None, "b": 10}},
    state={"color": "blue"},
    instance_id="inst-42",
    now=NOW,
    seed="seed-1",
    locals={"item": {"id": 7}},
)


def ev(text: str, scope: Scope = SCOPE, *, strict: bool = True) -> Any:
    return evaluate(parse(text), scope, strict=strict)


# Paths -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("context.data.user.name", "Alice"),
        ("data.user.name", "Alice"),
        ("user.name", "Alice"),  # a bare word is a path into context.data
        ("count", 5),
        ("context.config.limit", 100),
        ("config.limit", 100),
        ("outputs.step_1.count", 42),
        ("steps.step_1.result", "ok"),
        ("input.question", "Will X?"),
        ("instance_id", "inst-42"),
        ("runtime.attempt", 3),
        ("runtime.instance_id", "inst-42"),
        ("state.color", "blue"),
        ("item.id", 7),  # a loop binding, before context.data
        ("items.1", 20),
        ("outputs.step_1", {"result": "ok", "count": 42}),
    ],
)
def test_paths_resolve_against_every_root(text: str, expected: Any) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "context.data.nonexistent",
        "nonexistent",
        "items.5",
        "items.x",
        "items.-1",
        "count.nested",
        "user.name.first",
        "context.unknown.field",
        "context",
        "outputs.missing.x",
        "state.missing",
        "runtime.missing",
        "nothing",
        "nothing.deeper",
    ],
)
def test_missing_paths_are_null(text: str) -> None:
    assert ev(text) is None


def test_instance_id_ignores_further_segments_like_orch8() -> None:
    assert ev("instance_id.whatever") == "inst-42"


def test_scope_resolve_is_the_same_lookup() -> None:
    assert SCOPE.resolve("items.2") == 30
    assert SCOPE.resolve("items.+1") == 20  # Rust's usize parse takes a leading +
    assert SCOPE.resolve("input.price") == 0.65
    assert SCOPE.resolve("nope.nope") is None


# Literals ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("3.14", 3.14),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("-7", -7.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("'hello'", "hello"),
        ('"hello"', "hello"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\nb\tc'", "a\nb\tc"),
        (r"'\u00e9\ud83d\ude00'", "é😀"),
        (r"'C:\path'", "C:\\path"),  # an unknown escape keeps its backslash, as in Orch8
        ("[1, 'two', true, null]", [1.0, "two", True, None]),
        ("[]", []),
        ("[1, 2, ]", [1.0, 2.0]),
        ("", None),
        ("   ", None),
        ("{{ count }}", 5),
        ("  {{count > 3}} ", True),
    ],
)
def test_literals(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_number_literals_are_floats_like_orch8s_f64() -> None:
    assert isinstance(ev("42"), float)
    assert json_text(ev("[1, 2]")) == "[1.0,2.0]"


# Operators ---------------------------------------------------------------------
PRECEDENCE = [
    ("2 + 3 * 4", 14.0),
    ("(2 + 3) * 4", 20.0),
    ("10 - 4 - 3", 3.0),  # left-associative
    ("64 / 4 / 2", 8.0),
    ("2 * 3 + 4 * 5", 26.0),
    ("-2 * 3", -6.0),
    ("- -2", 2.0),
    ("!false && false", False),  # ! binds tighter than &&
    ("!(false && false)", True),
    ("true || false && false", True),  # && binds tighter than ||
    ("(true || false) && false", False),
    ("1 + 2 == 3", True),  # arithmetic before comparison
    ("1 < 2 == true", None),  # comparisons do not chain: a parse error (see below)
    ("1 == 1 && 2 == 2", True),  # comparison before &&
    ("false && true || true", True),
    ("true ? 1 : 2 + 10", 1.0),  # the conditional is loosest
    ("false ? 1 : 2 + 10", 12.0),
    ("1 > 2 || 3 > 2 ? 'a' : 'b'", "a"),
    ("false ? 1 : false ? 2 : 3", 3.0),  # right-associative
    ("true ? false ? 1 : 2 : 3", 2.0),
    ("2 in [1, 2] && true", True),
    ("!null", True),
    ("!!count", True),
    ("-count + 1", -4.0),
    ("((((1))))", 1.0),
]


@pytest.mark.parametrize(("text", "expected"), [p for p in PRECEDENCE if p[1] is not None])
def test_operator_precedence(text: str, expected: Any) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("count == 5", True),
        ("count != 5", False),
        ("count > 3", True),
        ("count >= 5", True),
        ("count < 3", False),
        ("count <= 5", True),
        ("plan == 'pro'", True),
        ("plan == pro", False),  # `pro` is a path into context.data (null), not a string
        ("'abc' > 'aaa'", True),
        ("'abc' < 'abd'", True),
        ("'B' < 'a'", True),  # by code point
        ("'10' < '9'", True),  # strings compare as strings
        ("10 < 9", False),
        ("5 == 5.0", True),
        ("three == 3", False),  # a numeric string is not a number for ==
        ("three > 2", False),  # nor for ordering: mixed types are unordered
        ("42 > 'hello'", False),
        ("42 < 'hello'", False),
        ("true > false", False),
        ("true == 1", False),
        ("null == null", True),
        ("null != null", False),
        ("nothing == null", True),
        ("nonexistent == null", True),
        ("null < 1", False),
        ("[1, 2] == [1, 2]", True),
        ("items == [10, 20, 30]", True),  # numbers compare as f64 at any depth
        ("obj == obj", True),
        ("[1] == [1, 2]", False),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'strong' in ['strong', 'moderate']", True),
        ("'weak' in ['strong', 'moderate']", False),
        ("5 in [1, 2, 3, 5, 8]", True),
        ("'x' in []", False),
        ("20 in items", True),
        ("'20' in items", False),
        ("'vip' in tags", True),
        ("'world' in msg", True),  # a substring
        ("'xyz' in msg", False),
        ("1 in msg", False),
        ("'a' in obj", True),  # a key
        ("'z' in obj", False),
        ("1 in obj", False),
        ("1 in 1", False),
        ("null in [null]", True),
        ("'x' in nothing", False),
    ],
)
def test_in(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 + 4", 7.0),
        ("'hello' + ' world'", "hello world"),
        ("'1' + '2'", "12"),  # two strings concatenate
        ("three + 2", 5.0),  # a numeric string coerces otherwise
        ("'3.5' + 2", 5.5),
        ("'10' - '3'", 7.0),
        ("true + 1", 2.0),
        ("false + 1", 1.0),
        ("'hello' + 5", None),
        ("null + 1", None),
        ("nonexistent + 1", None),
        ("outputs.s.a - outputs.s.b", None),
        ("(outputs.s.a - outputs.s.b) * 100", None),
        ("obj - 1", None),
        ("items * 2", None),
        ("10 / 4", 2.5),
        ("10 / 3", 10 / 3),
        ("-'7.5'", -7.5),
        ("-'abc'", None),
        ("-null", None),
        ("-obj", None),
        ("1e308 * 10", None),  # not finite: null, as serde_json makes it
        ("'inf' + 0", None),
        ("' 3' + 0", None),  # Rust's parse refuses surrounding blanks
        ("'1_000' + 0", None),
    ],
)
def test_arithmetic(text: str, expected: Any) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize("text", ["10 / 0", "10 / 0.0", "0 / 0", "count / zero", "1 / '0'"])
def test_division_by_zero_is_null_in_both_modes(text: str) -> None:
    assert ev(text, strict=False) is None
    assert ev(text, strict=True) is None


def test_logical_operators_yield_booleans_by_truthiness() -> None:
    assert ev("count && plan") is True
    assert ev("count || nothing") is True
    assert ev("nothing || empty") is False
    assert ev("'a' && 0") is False


def test_logical_operators_short_circuit() -> None:
    scope = Scope(data={}, seed="s")  # no clock: now() would fail in strict mode
    assert ev("true || now()", scope) is True
    assert ev("false && now()", scope) is False
    assert ev("false ? now() : 1", scope) == 1.0
    with pytest.raises(ExpressionError):
        ev("false || now()", scope)


# Truthiness --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (-1, True),
        (0.5, True),
        ("", False),
        (" ", True),
        ("false", True),
        ([], False),
        ([0], True),
        ((), False),
        ({}, True),  # every object is true, even an empty one
        ({"a": 1}, True),
    ],
)
def test_truthy_follows_orch8(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


# Functions ---------------------------------------------------------------------
FUNCTION_CASES = [
    ("abs(5)", 5.0),
    ("abs(-5)", 5.0),
    ("abs(3 - 10)", 7.0),
    ("abs('-2')", 2.0),
    ("abs(null)", None),
    ("len(items)", 3),
    ("len('hello')", 5),
    ("len('héllo')", 6),  # UTF-8 bytes, as Rust's str::len
    ("len(obj)", 2),
    ("len(5)", 0),
    ("len(nothing)", 0),
    ("json(obj)", '{"a":1,"b":2}'),  # keys sorted, as serde_json's map
    ("json([1, 'a', null])", '[1.0,"a",null]'),
    ("json(nothing)", "null"),
    ("keys(obj)", ["a", "b"]),
    ("keys(items)", []),
    ("values(obj)", [1, 2]),
    ("values(5)", []),
    ("contains(tags, 'vip')", True),
    ("contains(tags, 'old')", False),
    ("contains(msg, 'world')", True),
    ("contains(msg, 1)", False),
    ("contains(5, 5)", False),
    ("starts_with(msg, 'hello')", True),
    ("starts_with(msg, 'world')", False),
    ("starts_with(5, '')", True),
    ("ends_with(msg, 'world')", True),
    ("ends_with(msg, 'hello')", False),
    ("sum(nums)", 25.0),
    ("sum([])", 0.0),
    ("sum(['1', true, 'x', null, 2])", 4.0),
    ("sum(5)", None),
    ("avg([10, 20, 30])", 20.0),
    ("avg([])", None),
    ("avg(['x'])", None),
    ("avg(obj)", None),
    ("min(nums)", 1.0),
    ("max(nums)", 9.0),
    ("min([])", None),
    ("max('abc')", None),
    ("first(words)", "a"),
    ("last(words)", "b"),
    ("first([])", None),
    ("last(5)", None),
    ("slice(items, 1, 3)", [20, 30]),
    ("slice(items, 1)", [20, 30]),
    ("slice(items, -5, 99)", [10, 20, 30]),
    ("slice(items, 2, 1)", []),
    ("slice('abc', 1)", None),
    ("sort(nums)", [1, 2, 5, 8, 9]),
    ("sort(nums, 'desc')", [9, 8, 5, 2, 1]),
    ("sort(['b', 'c', 'a'])", ["a", "b", "c"]),
    ("sort(5)", None),
    ("unique(words)", ["a", "b", "c"]),
    ("unique([1, 1.0, '1', true, 1])", [1.0, "1", True]),
    ("unique(5)", None),
    ("count(words, 'a')", 2),
    ("count(items, 10)", 1),
    ("count(5, 5)", 0),
    ("change_pct(100, 150)", 50.0),
    ("change_pct(200, 100)", -50.0),
    ("change_pct(0, 100)", None),
    ("change_pct('x', 100)", None),
    ("clamp(5, 0, 10)", 5.0),
    ("clamp(-5, 0, 10)", 0.0),
    ("clamp(15, 0, 10)", 10.0),
    ("clamp('x', 0, 10)", "x"),  # a non-number comes back unchanged
    ("format_date('2026-01-15T10:30:00+00:00', '%Y-%m-%d')", "2026-01-15"),
    ("format_date('2026-01-15T10:30:00+00:00')", "2026-01-15"),
    (
        "format_date('2026-01-15T10:30:05.25+02:00', '%d/%m/%y %H:%M:%S%.f %:z')",
        "15/01/26 10:30:05.250 +02:00",
    ),
    ("format_date('not a date', '%Y')", None),
    ("format_date('2026-02-30T10:30:00Z', '%Y')", None),
    ("day_of_week('2026-01-15T10:00:00+00:00')", 3),  # Thursday, 0 = Monday
    ("day_of_week('2026-01-18T23:30:00-05:00')", 6),  # the date in its own offset
    ("day_of_week('nope')", None),
    ("now()", "2026-01-15T10:30:00+00:00"),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTION_CASES)
def test_functions(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_every_function_has_a_case() -> None:
    covered = {text.split("(")[0] for text, _ in FUNCTION_CASES}
    covered |= {"uuid", "random"}  # tested below
    assert covered == set(FUNCTIONS)


def test_now_prints_rfc3339_utc_like_chrono() -> None:
    at = datetime(2026, 3, 1, 8, 0, 5, 123000, tzinfo=timezone(timedelta(hours=2)))
    assert ev("now()", Scope(data={}, now=at)) == "2026-03-01T06:00:05.123+00:00"
    at = at.replace(microsecond=123456)
    assert ev("now()", Scope(data={}, now=at)) == "2026-03-01T06:00:05.123456+00:00"


def test_now_without_a_clock_fails_strictly_and_is_null_leniently() -> None:
    scope = Scope(data={})
    with pytest.raises(ExpressionError, match="clock"):
        ev("now()", scope, strict=True)
    assert ev("now()", scope, strict=False) is None
    assert ev("now() == null", scope, strict=False) is True


def test_uuid_is_a_deterministic_v4_uuid() -> None:
    first = ev("uuid()")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )
    assert ev("uuid()") == first
    pair = ev("[uuid(), uuid()]")
    assert pair[0] != pair[1]
    assert ev("uuid()", Scope(data={}, seed="other")) != first
    assert ev("uuid() + ''") != first  # another expression draws another stream


def test_random_is_deterministic_and_in_range() -> None:
    values = ev("[random(1, 10), random(1, 10), random(1, 10), random(), random(5, 5)]")
    assert values == ev("[random(1, 10), random(1, 10), random(1, 10), random(), random(5, 5)]")
    assert all(isinstance(v, int) and 1 <= v < 10 for v in values[:3])
    assert 0 <= values[3] < 100
    assert values[4] == 5  # max <= min gives min
    assert ev("random(10, 1)") == 10
    assert ev("random(-3.7, -1)") in (-3, -2)  # `as i64` truncates toward zero


def test_functions_ignore_extra_arguments_and_read_missing_ones_as_null() -> None:
    assert ev("abs(-1, 2, 3)") == 1.0
    assert ev("abs()") is None
    assert ev("len()") == 0
    assert ev("contains(tags)") is False


def test_format_date_specifiers_match_chrono() -> None:
    scope = Scope(data={"t": "2026-07-04T09:05:03.000042-07:30"})
    fmt = (
        "%a %A %b %B %h %C %y %e %-d %_m %j %I %l %p %P %k %u %w %.3f %.6f %3f "
        "%z %:z %D %F %T %R %%"
    )
    assert ev(f"format_date(t, '{fmt}')", scope) == (
        "Sat Saturday Jul July Jul 20 26  4 4  7 185 09  9 AM am  9 6 6 .000 .000042 000 "
        "-0730 -07:30 07/04/26 2026-07-04 09:05:03 09:05 %"
    )
    assert ev("format_date(t, '%U %W %V %G %s')", scope) == "26 26 27 2026 1783182903"
    assert ev("format_date(t, '%c')", scope) == "Sat Jul  4 09:05:03 2026"


@pytest.mark.parametrize("fmt", ["%Q", "%", "%-a", "abc %"])
def test_a_bad_date_format_is_an_evaluation_error(fmt: str) -> None:
    text = f"format_date('2026-01-15T10:30:00Z', '{fmt}')"
    with pytest.raises(ExpressionError, match="format_date"):
        ev(text, strict=True)
    assert ev(text, strict=False) is None


def test_clamp_with_min_above_max_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="clamp"):
        ev("clamp(5, 10, 0)")
    assert ev("clamp(5, 10, 0)", strict=False) is None


def test_array_functions_are_capped() -> None:
    scope = Scope(
        data={"big": list(range(MAX_ARRAY_ITEMS + 1)), "ok": list(range(MAX_ARRAY_ITEMS))}
    )
    assert ev("sum(ok)", scope) == float(sum(range(MAX_ARRAY_ITEMS)))
    for fn in ("sum", "avg", "min", "max", "sort", "unique", "slice", "contains", "count"):
        with pytest.raises(ExpressionError, match="at most"):
            ev(f"{fn}(big, 1)", scope)
        assert ev(f"{fn}(big, 1)", scope, strict=False) is None
    assert ev("len(big)", scope) == MAX_ARRAY_ITEMS + 1  # not an array walk
    assert ev("unique(ok) == ok", scope) is True  # linear, not quadratic


def test_string_concatenation_is_capped() -> None:
    scope = Scope(data={"s": "x" * (3 * 1024 * 1024)})
    with pytest.raises(ExpressionError, match="4 MiB"):
        ev("s + s", scope)
    assert ev("s + s", scope, strict=False) is None
    assert len(ev("s + 'y'", scope)) == 3 * 1024 * 1024 + 1


# Malformed expressions ---------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("5 5", 2, "unexpected number"),
        ("(1 + 2", 6, "expected ')'"),
        ("[1, 2", 5, "expected ',' or ']'"),
        ("f(", 0, "unknown function 'f'"),
        ("abs(1", 5, "expected ',' or ')'"),
        ("count >", 7, "unexpected end of expression"),
        ("true ? 1", 8, "expected ':'"),
        ("1 < 2 < 3", 6, "comparisons do not chain"),
        ("a == b == c", 7, "comparisons do not chain"),
        ("plan = 'pro'", 5, "unexpected character '='"),
        ("a & b", 2, "unexpected character '&'"),
        ("a | b", 2, "unexpected character '|'"),
        ("a and b", 2, "unexpected 'and'"),  # Orch8 has no word operators
        ("'open", 0, "unterminated string"),
        ('x == "open', 5, "unterminated string"),
        ("1.2.3", 3, "unexpected character '.'"),
        ("1e999", 0, "out of range"),
        ("héllo", 1, "unexpected character 'é'"),
        ("nope(1)", 0, "unknown function 'nope'"),
        ("math.abs(1)", 0, "unknown function 'math.abs'"),
        ("()", 1, "unexpected ')'"),
        (",", 0, "unexpected ','"),
        ("in", 0, "unexpected 'in'"),
        ("  {{ 1 +  }}", 10, "unexpected end"),
        ("{{ a }} && {{ b }}", 5, "unexpected character '}'"),
    ],
)
def test_malformed_expressions_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position == position
    assert message in caught.value.message
    assert f"position {position}" in str(caught.value)
    assert text in str(caught.value)


def test_depth_limit() -> None:
    parse("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1))
    with pytest.raises(ExpressionError, match="nested deeper than 64"):
        parse("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("!" * 100 + "true")
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("[" * 10_000)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse(" ".join(["true ?"] * 80) + " 1" + " : 2" * 80)


def test_long_flat_chains_are_not_deep() -> None:
    text = " + ".join(["1"] * 5000)
    assert ev(text) == 5000.0
    assert ev(" && ".join(["true"] * 5000)) is True


def test_check_turns_parse_errors_into_validation_errors() -> None:
    check("count > 3 && plan == 'pro'", where="blocks.r1.routes[0].condition")
    with pytest.raises(ValidationError) as caught:
        check("count >", where="blocks.r1.routes[0].condition")
    assert caught.value.path == "blocks.r1.routes[0].condition"
    assert "position 7" in caught.value.message


def test_referenced_outputs() -> None:
    expr = parse("outputs.a.x > 1 && steps.b == 2 || len(outputs.c.items) > 0 ? d : outputs.e")
    assert referenced_outputs(expr) == {"a", "b", "c", "e"}
    assert referenced_outputs(parse("json(outputs)")) == {ALL_OUTPUTS}
    assert referenced_outputs(parse("context.data.outputs.x + count")) == frozenset()


def test_json_text_prints_floats_as_serde_json_does() -> None:
    cases = [
        (5.0, "5.0"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e16, "1e16"),
        (1e15, "1000000000000000.0"),
        (123456789012345680.0, "1.2345678901234568e17"),
        (1e-5, "0.00001"),
        (1e-6, "1e-6"),
        (1.5e-7, "1.5e-7"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1e300, "1e300"),
        (float("inf"), "null"),
    ]
    for number, text in cases:
        assert format_float(number) == text, number
    assert json_text({"b": [1, 2.0, "x\n"], "a": None, "é": True}) == (
        '{"a":null,"b":[1,2.0,"x\\n"],"é":true}'
    )


# Properties --------------------------------------------------------------------
TOKENS = st.sampled_from(
    [
        "(", ")", "[", "]", ",", "?", ":", "!", "-", "+", "*", "/", "==", "!=", "<", "<=",
        ">", ">=", "&&", "||", "in", "true", "false", "null", "1", "2.5", "1e3", "'s'",
        '"t"', "count", "data.items.0", "outputs.s.b", "len", "abs", "now", "uuid",
        "random", "sort", "format_date", "{{", "}}", " ", "'", "\\", "=", "&", "|", ".",
    ]
)  # fmt: skip


@settings(max_examples=300)
@given(st.text())
def test_parse_raises_only_expression_errors_on_any_text(text: str) -> None:
    try:
        expr = parse(text)
    except ExpressionError:
        return
    evaluate(expr, SCOPE)


@settings(max_examples=400)
@given(st.lists(TOKENS, max_size=40))
def test_parse_and_evaluate_only_raise_expression_errors_on_token_soup(tokens: list[str]) -> None:
    try:
        expr = parse(" ".join(tokens))
    except ExpressionError:
        return
    evaluate(expr, SCOPE)  # lenient evaluation never raises
    with contextlib.suppress(ExpressionError):
        evaluate(expr, SCOPE, strict=True)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)


@settings(max_examples=300)
@given(json_scalars)
def test_json_literals_round_trip(value: Any) -> None:
    result = ev(json.dumps(value))
    assert result == value
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert isinstance(result, float)
    else:
        assert type(result) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, result) == math.copysign(1, value)


@given(
    st.text(max_size=20), st.sampled_from(["uuid()", "random(0, 1000000)", "[uuid(), random()]"])
)
def test_same_scope_same_seed_same_result(seed: str, text: str) -> None:
    scope = Scope(data={}, seed=seed, now=NOW)
    expr = parse(text)
    assert evaluate(expr, scope) == evaluate(parse(text), Scope(data={}, seed=seed, now=NOW))
