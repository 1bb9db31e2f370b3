"""Templates in step params: roots, fallbacks, filters, type preservation, checks."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.domain.errors import ValidationError
from orch8.domain.expressions import ALL_OUTPUTS
from orch8.domain.scope import Scope
from orch8.domain.templates import TemplateError, check, referenced_outputs, render

SCOPE = Scope(
    data={
        "user": {"name": "Alice", "age": 30},
        "n": 7,
        "ratio": 2.5,
        "flag": True,
        "maybe": None,
        "empty": "",
        "obj": {"y": 2, "x": 1},
        "items": ["a", "b", "c"],
        "mixed": ["a", 1, None, {"k": "v"}],
        "csv": "a,b,c",
        "spaced": "  hello \t",
        "delta": -5.3,
        "price": 3.14159,
        "q": "hello world&foo=bar/ü",
        "token": "aGVsbG8=",
        "body": "Hello World, this is a long string",
        "input": {"question": "Will X?"},
        "greeting": "héllo 日本語 🦀",
    },
    config={"api_key": "sk_123"},
    runtime={"attempt": 3},
    outputs={
        "step_1": {"result": "ok", "count": 42, "items": [1, 2, 3]},
        "prompts": {"tpl": "Q: {{question}} P: {{price}}"},
        "market": {"q": "Will X happen?", "p": "0.65"},
    },
    state={"color": "blue", "user": {"score": 7}},
    instance_id="inst-42",
    locals={"item": {"id": 9, "name": "widget"}},
)


def r(value: Any, scope: Scope = SCOPE) -> Any:
    return render(value, scope)


# Roots and paths ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{context.data.user.name}}", "Alice"),
        ("{{ context.data.user.name }}", "Alice"),
        ("{{ data.user.name }}", "Alice"),
        ("{{ context.config.api_key }}", "sk_123"),
        ("{{ config.api_key }}", "sk_123"),
        ("{{ outputs.step_1.count }}", 42),
        ("{{ steps.step_1.result }}", "ok"),
        ("{{ input.question }}", "Will X?"),
        ("{{ instance_id }}", "inst-42"),
        ("{{ runtime.attempt }}", 3),
        ("{{ runtime.instance_id }}", "inst-42"),
        ("{{ state.color }}", "blue"),
        ("{{ state.user.score }}", 7),
        ("{{ state }}", {"color": "blue", "user": {"score": 7}}),
        ("{{ item.name }}", "widget"),  # a loop binding in the scope
        ("{{ data.items.1 }}", "b"),
        ("{{ data.items.9 }}", None),
        ("{{ data.nonexistent }}", None),
        ("{{ outputs.missing.x }}", None),
        ("{{ state.missing }}", None),
        ("{{ data.greeting }}", "héllo 日本語 🦀"),
    ],
)
def test_roots(template: str, expected: Any) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ foo.bar }}", "unknown template root: foo.bar"),
        ("{{ something_random.x }}", "unknown template root"),
        ("{{ user.name }}", "unknown template root: user.name"),  # bare words are not roots here
        ("{{ 'literal' }}", "unknown template root"),
        ("{{ 5 }}", "unknown template root"),
        ("{{}}", "unknown template root"),
        ("{{ upper }}", "unknown template root"),
        ("{{ context.bogus.x }}", "unknown context section: bogus"),
        ("{{ context }}", "unknown context section"),
        ("{{ foo(outputs.step_1) }}", "unknown template function: foo"),
        ("Hello {{ nope }}!", "unknown template root: nope"),
    ],
)
def test_unknown_roots_are_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(")):
        r(template)


# Type preservation and inline text -----------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ data.n }}", 7),
        ("{{ data.ratio }}", 2.5),
        ("{{ data.flag }}", True),
        ("{{ data.maybe }}", None),
        ("{{ data.obj }}", {"y": 2, "x": 1}),
        ("{{ data.items }}", ["a", "b", "c"]),
        ("  {{ data.n }}", "  7"),  # not exactly one template: text
        ("{{ data.n }} ", "7 "),
        ("count={{ data.n }}", "count=7"),
        ("{{ data.n }}{{ data.ratio }}", "72.5"),
        ("{{ data.user.name }} {{ data.user.age }}", "Alice 30"),
        ("obj={{ data.obj }}", 'obj={"x":1,"y":2}'),  # compact JSON, keys sorted
        ("list={{ data.mixed }}", 'list=["a",1,null,{"k":"v"}]'),
        ("missing={{ data.nope }}", "missing=null"),
        ("flag={{ data.flag }}", "flag=true"),
        ("plain string", "plain string"),
        ("before {{ unclosed", "before {{ unclosed"),
        ("{{ data.n }} and {{", "7 and {{"),
        ("a {{ b", "a {{ b"),
        ("}} {{ data.n }} }}", "}} 7 }}"),
        ("{{ data.n }}}", None),  # Orch8 reads it as one template of the path `data.n }`
    ],
)
def test_whole_templates_keep_their_type_and_mixed_strings_stringify(
    template: str, expected: Any
) -> None:
    result = r(template)
    assert result == expected
    assert type(result) is type(expected)


def test_nested_params_are_rendered_recursively() -> None:
    params = {
        "greeting": "Hi {{ data.user.name }}",
        "key": "{{ config.api_key }}",
        "count": "{{ outputs.step_1.count }}",
        "list": ["literal", "{{ data.user.name }}", 1, {"deep": ["{{ data.flag }}"]}],
        "untouched": {"n": 5, "f": 1.5, "b": False, "z": None},
    }
    assert r(params) == {
        "greeting": "Hi Alice",
        "key": "sk_123",
        "count": 42,
        "list": ["literal", "Alice", 1, {"deep": [True]}],
        "untouched": {"n": 5, "f": 1.5, "b": False, "z": None},
    }
    assert r(("{{ data.n }}",)) == [7]
    for scalar in (42, 2.5, True, None):
        assert r(scalar) == scalar


def test_params_nested_too_deep_are_refused() -> None:
    value: Any = "x"
    for _ in range(200):
        value = [value]
    with pytest.raises(TemplateError, match="nest deeper"):
        r(value)


# Fallback chains -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ data.nonexistent | fallback_value }}", "fallback_value"),
        ("{{ data.user.name | default_name }}", "Alice"),
        ("{{ data.maybe | fallback }}", "fallback"),  # null falls through like missing
        ("{{ data.a | data.b | literal_c }}", "literal_c"),
        ("{{ data.nope | data.user.name | literal_c }}", "Alice"),
        ("{{ data.nope | 'USD' }}", "USD"),  # quoted literal, without its quotes
        ('{{ data.nope | "EUR" }}', "EUR"),
        ("{{ data.nope | 0 }}", "0"),  # other literals are text, as in Orch8
        ("{{ data.nope | foo.bar }}", "foo.bar"),  # not a root: a literal
        ("{{ outputs.missing_step.x | default }}", "default"),
        ("{{ data.nope | data.nope2 }}", None),
        ("{{ data.empty | 'x' }}", ""),  # only null falls through, not ""
        ("{{ data.n | 'x' }}", 7),
        ("Hello {{ data.missing | stranger }}!", "Hello stranger!"),
        ("{{ data.nope | item.id }}", 9),
    ],
)
def test_fallback_chains(template: str, expected: Any) -> None:
    assert r(template) == expected


# Filters --------------------------------------------------------------------------
FILTER_CASES = [
    ("{{ data.user.name | upper }}", "ALICE"),
    ("{{ data.n | upper }}", ""),  # a non-string reads as ""
    ("{{ data.user.name | lower }}", "alice"),
    ("{{ data.spaced | trim }}", "hello"),
    ("{{ data.delta | abs }}", 5.3),
    ("{{ data.user.name | abs }}", 0.0),
    ("{{ data.q | url_encode }}", "hello%20world%26foo%3Dbar%2F%C3%BC"),
    ("{{ data.user.name | base64 }}", "QWxpY2U="),
    ("{{ data.token | base64_decode }}", "hello"),
    ("{{ data.maybe | default('USD') }}", "USD"),
    ("{{ data.nope | default('fallback') }}", "fallback"),
    ("{{ data.empty | default('Anonymous') }}", "Anonymous"),
    ("{{ data.user.name | default('USD') }}", "Alice"),
    ("{{ data.nope | default(5) }}", 5.0),
    ("{{ data.nope | default(true) }}", True),
    ("{{ data.nope | default(null) }}", None),
    ("{{ data.nope | default(bare) }}", "bare"),
    ("{{ data.body | truncate(5, '...') }}", "Hello..."),
    ("{{ data.body | truncate(5) }}", "Hello"),
    ("{{ data.user.name | truncate(10, '...') }}", "Alice"),
    ("{{ data.greeting | truncate(3, '…') }}", "hél…"),  # characters, not bytes
    ("{{ data.items | join(', ') }}", "a, b, c"),
    ("{{ data.mixed | join('|') }}", 'a|1|null|{"k":"v"}'),
    ("{{ data.n | join(',') }}", ""),
    ("{{ data.csv | split(',') }}", ["a", "b", "c"]),
    ("{{ data.user.name | split('') }}", ["", "A", "l", "i", "c", "e", ""]),
    ("{{ data.n | split(',') }}", [""]),
    (
        "{{ data.user.name | hash('sha256') }}",
        hashlib.sha256(b"Alice").hexdigest(),
    ),
    ("{{ data.user.name | hash('md5') }}", hashlib.md5(b"Alice").hexdigest()),
    ("{{ data.price | round(2) }}", 3.14),
    ("{{ data.price | round(0) }}", 3.0),
    ("{{ data.ratio | round(0) }}", 3.0),  # half away from zero, as Rust
    ("{{ data.delta | round(0) }}", -5.0),
    ("{{ data.user.name | round(2) }}", 0.0),
    ("{{ data.user.name | replace('A', 'E') }}", "Elice"),
    ("{{ data.user.name | replace('x', 'y') }}", "Alice"),
    ("{{ data.n | replace('7', 'seven') }}", "seven"),  # a non-string reads as its JSON
    (
        "{{ steps.prompts.tpl | replace('{{question}}', steps.market.q) }}",
        "Q: Will X happen? P: {{price}}",
    ),
    (
        "{{ steps.prompts.tpl | replace('{{question}}', steps.market.q)"
        " | replace('{{price}}', steps.market.p) }}",
        "Q: Will X happen? P: 0.65",
    ),
    ("{{ data.user.name | replace('A', data.nope) }}", "lice"),  # a missing path is ""
    ("{{ data.user.name | replace('A', data.maybe) }}", "nulllice"),  # a null is "null"
    ("{{ data.user.name | replace('A', bare, word) }}", "bare, wordlice"),
    ("{{ data.user.name | lower | upper | truncate(3) }}", "ALI"),
    ("{{ data.nope | default('x') | upper }}", "X"),
    ("{{ data.nope | upper | fallback }}", ""),  # segments after a filter are ignored
    ("{{ json(data.obj) }}", '{"x":1,"y":2}'),
    ("{{ json(outputs.step_1.items) }}", "[1,2,3]"),
    ("{{ json(outputs.missing) }}", "null"),
    ("{{ len(outputs.step_1.items) }}", 3),
    ("{{ len(data.obj) }}", 2),
    ("{{ len(data.user.name) }}", 5),
    ("{{ len(outputs.missing) }}", 0),
    ("Found {{ len(outputs.step_1.items) }} items", "Found 3 items"),
    ("{{ data.nope | len(data.items) }}", 3),
]


@pytest.mark.parametrize(("template", "expected"), FILTER_CASES)
def test_filters_and_functions(template: str, expected: Any) -> None:
    result = r(template)
    assert result == expected
    assert type(result) is type(expected)


def test_every_filter_has_a_case() -> None:
    from orch8.domain.template_filters import ARG_FILTERS, NO_ARG_FILTERS

    used = {
        segment.strip().split("(")[0]
        for template, _ in FILTER_CASES
        for segment in template.strip("{} ").split("|")[1:]
    }
    assert set(NO_ARG_FILTERS) | set(ARG_FILTERS) <= used


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ data.n | truncate(x) }}", "truncate() requires length"),
        ("{{ data.n | truncate(-1) }}", "truncate() requires length"),
        ("{{ data.n | round(1.5) }}", "round() requires integer arg"),
        ("{{ data.n | hash('crc32') }}", "unsupported hash algorithm: crc32"),
        ("{{ data.n | replace('x') }}", "replace() requires two arguments"),
        ("{{ data.n | truncate(3 }}", "unknown pipe filter"),
        ("{{ data.q | base64_decode }}", "base64_decode"),
        ("{{ data.user.name | base64_decode }}", "base64_decode"),
    ],
)
def test_bad_filters_are_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        r(template)


def test_outputs_are_capped_at_4_mib() -> None:
    big = "x" * (3 * 1024 * 1024 + 3)
    scope = Scope(data={"big": big, "parts": [big, big], "small": "ab" * 1000})
    with pytest.raises(TemplateError, match="4 MiB"):
        r("{{ data.big | replace('x', 'yy') }}", scope)
    with pytest.raises(TemplateError, match="4 MiB"):
        r("{{ data.small | replace('', data.big) }}", scope)
    with pytest.raises(TemplateError, match="4 MiB"):
        r("{{ data.parts | join('') }}", scope)
    with pytest.raises(TemplateError, match="4 MiB"):
        r("{{ data.big | base64 }}", scope)
    with pytest.raises(TemplateError, match="4 MiB"):
        r("{{ data.big }}{{ data.big }}", scope)
    assert r("{{ data.big }}", scope) is big  # a value passed through is not copied
    assert len(r("{{ data.big | upper }}", scope)) == len(big)


def test_many_unclosed_openings_render_in_linear_time() -> None:
    text = "'{{" * 20_000 + "x"
    assert r(text) == text
    text = "{{" * 50_000 + " data.n }}"
    with pytest.raises(TemplateError, match="unknown template root"):
        r(text)
    assert r("{{x" * 50_000) == "{{x" * 50_000


def test_a_closing_brace_inside_quotes_does_not_close() -> None:
    assert r("[{{ data.user.name | replace('}}', 'x') }}]") == "[Alice]"


# Static checks --------------------------------------------------------------------
def test_check_accepts_valid_params() -> None:
    check(
        {
            "url": "https://api.example.com/{{ context.data.user.name | url_encode }}",
            "n": "{{ outputs.step_1.count | default(0) }}",
            "deep": [{"x": "{{ data.a | data.b | 'c' | upper | truncate(3, '…') }}"}],
            "text": "no templates, or an unclosed {{ brace",
            "num": 5,
        },
        where="blocks.s1.params",
    )


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        ({"url": "{{ foo.bar }}"}, "blocks.s1.params.url", "unknown template root: foo.bar"),
        ({"a": ["ok", "{{ data.x | truncate(z) }}"]}, "blocks.s1.params.a[1]", "truncate()"),
        ({"a": {"b": "x {{ }} y"}}, "blocks.s1.params.a.b", "unknown template root"),
        ("{{ context.nope.x }}", "blocks.s1.params", "unknown context section: nope"),
        ({"a": "{{ data.x | json(context.nope) }}"}, "blocks.s1.params.a", "context section"),
        ({"a": "{{ lenx(data.x) }}"}, "blocks.s1.params.a", "unknown template function"),
        ({"a": "{{ data.x | hash('nope') }}"}, "blocks.s1.params.a", "hash algorithm"),
        ({"a": "{{ data.x | round(1 }}"}, "blocks.s1.params.a", "unknown pipe filter"),
        ({"a": "{{ item.name }}"}, "blocks.s1.params.a", "unknown template root: item.name"),
    ],
)
def test_check_names_where_a_template_is_broken(params: Any, path: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check(params, where="blocks.s1.params")
    assert caught.value.path == path
    assert message in caught.value.message


def test_check_accepts_loop_bindings_it_is_told_about() -> None:
    check({"a": "{{ item.name }}"}, where="p", local_names=["item"])


def test_referenced_outputs() -> None:
    params = {
        "a": "{{ outputs.a.x }} and {{ steps.b | replace('x', outputs.c.d) }}",
        "b": ["{{ json(outputs.e) }}", "{{ data.x | outputs.f.y }}"],
        "c": "{{ outputs }}",
        "d": "{{ data.outputs.z }} {{ broken | truncate(x) }}",
        "e": "outputs.g (not a template)",
    }
    assert referenced_outputs(params) == {"a", "b", "c", "e", "f", ALL_OUTPUTS}
    assert referenced_outputs({"x": 1}) == frozenset()


# Properties -----------------------------------------------------------------------
TEMPLATE_PIECES = st.sampled_from(
    [
        "{{", "}}", "{", "}", "|", "(", ")", "'", '"', ",", ".", " ", "data", "outputs",
        "steps", "context", "config", "input", "instance_id", "runtime", "state", "item",
        "user", "name", "items", "0", "x", "upper", "lower", "trim", "abs", "url_encode",
        "base64", "base64_decode", "replace(", "default(", "truncate(", "join(", "split(",
        "hash(", "round(", "json(", "len(", "'sha256'", "2", "-1", "4294967295", "1e400",
        "'x'", "'{{'", "'}}'", "null", "true",
    ]
)  # fmt: skip
template_strings = st.lists(TEMPLATE_PIECES, max_size=20).map("".join) | st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | template_strings,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(json_values)
def test_render_raises_only_template_errors(value: Any) -> None:
    with contextlib.suppress(TemplateError):
        render(value, SCOPE)
    referenced_outputs(value)
    with contextlib.suppress(ValidationError):
        check(value, where="p")


@settings(max_examples=200)
@given(json_values)
def test_what_check_accepts_renders_without_error(value: Any) -> None:
    try:
        check(value, where="p", local_names=["item"])
    except ValidationError:
        return
    render(value, SCOPE)


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8).filter(lambda s: "{{" not in s),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@given(plain_values)
def test_values_without_templates_render_unchanged(value: Any) -> None:
    assert render(value, SCOPE) == value


@settings(max_examples=200)
@given(st.text(alphabet="{}'\"a ", max_size=40))
def test_the_linear_closing_table_agrees_with_orch8s_scan(text: str) -> None:
    from orch8.domain.template_syntax import _Closings

    scanning, table = _Closings(text), _Closings(text)
    scanning.table, table.table = None, table._build(text)
    for start in range(len(text) + 1):
        assert scanning.find(start) == table.find(start)
