"""The data built-ins: transform, assert and the per-instance key-value state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from orch8.application.handlers import BUILTIN_HANDLERS
from orch8.application.handlers.data import DATA_HANDLERS
from orch8.application.ports.handlers import DELETE, HandlerResult, StepCall, StepFailed
from orch8.domain.context import ExecutionContext
from orch8.domain.context_changes import apply_changes
from orch8.domain.evaluator.snapshot import Snapshot

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_call(
    handler: str,
    params: Mapping[str, Any],
    *,
    data: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
) -> StepCall:
    runtime: dict[str, Any] = {} if state is None else {"state": dict(state)}
    return StepCall(
        instance_id="inst-1",
        tenant_id="acme",
        block_id="b1",
        handler=handler,
        params=params,
        context=ExecutionContext(data=data or {}, config=config or {}, runtime=runtime),
        attempt=1,
        now=NOW,
    )


async def run(handler: str, params: Mapping[str, Any], **context: Any) -> Any:
    return await DATA_HANDLERS[handler](make_call(handler, params, **context))


async def fails(handler: str, params: Mapping[str, Any], **context: Any) -> StepFailed:
    with pytest.raises(StepFailed) as info:
        await run(handler, params, **context)
    return info.value


def test_data_handlers_are_registered_as_builtins() -> None:
    for name in ("transform", "assert", "set_state", "get_state", "delete_state", "merge_state"):
        assert BUILTIN_HANDLERS[name] is DATA_HANDLERS[name]
    for name in ("noop", "log", "sleep", "fail"):
        assert name in BUILTIN_HANDLERS


# transform --------------------------------------------------------------------
async def test_now_reads_the_engines_clock_from_the_call() -> None:
    call = attrs.evolve(
        make_call("transform", {"expression": "now()"}), now=datetime(2026, 3, 1, 6, tzinfo=UTC)
    )
    result = await DATA_HANDLERS["transform"](call)
    assert isinstance(result, HandlerResult)
    assert result.output == {"result": "2026-03-01T06:00:00+00:00"}


async def test_transform_evaluates_an_expression_into_a_target() -> None:
    result = await run(
        "transform", {"expression": "price * qty", "target": "total"}, data={"price": 2.5, "qty": 4}
    )
    assert isinstance(result, HandlerResult)
    assert result.output == {"result": 10.0}
    assert result.data == {"total": 10.0}
    assert result.state is None


async def test_transform_expression_reads_config_state_and_quoted_strings() -> None:
    result = await run(
        "transform",
        {"expression": 'config.tier == "gold" ? state.bonus + 1 : 0', "target": "bonus"},
        config={"tier": "gold"},
        state={"bonus": 41},
    )
    assert result.output == {"result": 42}


async def test_transform_non_string_expression_is_taken_as_the_value() -> None:
    built = {"name": "Ada", "tags": ["a", "b"]}
    result = await run("transform", {"expression": built, "target": "profile"})
    assert result.output == {"result": built}
    assert result.data == {"profile": built}


async def test_transform_object_result_without_target_merges_into_data() -> None:
    result = await run("transform", {"expression": {"a": 1, "b": None}})
    assert result.data == {"a": 1, "b": None}


async def test_transform_scalar_result_without_target_only_outputs() -> None:
    result = await run("transform", {"expression": "1 + 1"})
    assert result.output == {"result": 2}
    assert result.data is None


async def test_transform_without_expression_passes_params_through_like_orch8() -> None:
    params = {"full_name": "Ada Lovelace", "n": 3, "items": [1, 2]}
    result = await run("transform", params)
    assert result.output == params
    assert result.data == params


async def test_transform_pass_through_with_target_nests_the_params() -> None:
    result = await run("transform", {"city": "Paris", "target": "address"})
    assert result.output == {"city": "Paris"}
    assert result.data == {"address": {"city": "Paris"}}


async def test_transform_dotted_target_keeps_sibling_keys() -> None:
    data = {"user": {"name": "Ada", "address": {"city": "Paris", "zip": "75001"}}, "x": 1}
    result = await run(
        "transform", {"expression": "'Lyon'", "target": "user.address.city"}, data=data
    )
    assert result.data == {"user": {"name": "Ada", "address": {"city": "Lyon", "zip": "75001"}}}
    assert data["user"]["address"]["city"] == "Paris"  # the snapshot is not mutated


async def test_transform_dotted_target_creates_missing_objects() -> None:
    result = await run("transform", {"expression": "true", "target": "a.b.c"})
    assert result.data == {"a": {"b": {"c": True}}}


async def test_transform_result_lands_in_context_data_through_the_engine_merge() -> None:
    call = make_call(
        "transform",
        {"expression": "stats.n + 1", "target": "stats.n"},
        data={"stats": {"n": 1, "k": 2}, "other": True},
    )
    result = await DATA_HANDLERS["transform"](call)
    snapshot = apply_changes(Snapshot(call.context, {}), result.data, result.state)
    assert snapshot.context.data == {"stats": {"n": 2, "k": 2}, "other": True}


async def test_transform_missing_path_is_null_not_an_error() -> None:
    result = await run("transform", {"expression": "nope.deeper", "target": "x"})
    assert result.output == {"result": None}


async def test_transform_malformed_expression_fails_for_good() -> None:
    error = await fails("transform", {"expression": "1 +", "target": "x"})
    assert not error.retryable
    assert error.message.startswith("transform: invalid `expression`")


@pytest.mark.parametrize("target", ["", ".a", "a..b", "a.", 7, ["a"]])
async def test_transform_bad_target_fails_for_good(target: Any) -> None:
    error = await fails("transform", {"expression": "1", "target": target})
    assert not error.retryable
    assert "`target`" in error.message


async def test_transform_cannot_write_below_a_scalar() -> None:
    error = await fails("transform", {"expression": "1", "target": "a.b"}, data={"a": "text"})
    assert not error.retryable
    assert "cannot write below `a`" in error.message


# assert -----------------------------------------------------------------------
async def test_assert_passes_on_a_true_condition() -> None:
    output = await run(
        "assert", {"condition": "score >= 10 && plan == 'pro'"}, data={"score": 12, "plan": "pro"}
    )
    assert output == {"condition": "score >= 10 && plan == 'pro'", "passed": True}


async def test_assert_fails_permanently_with_the_message() -> None:
    error = await fails(
        "assert", {"condition": "score >= 10", "message": "score too low"}, data={"score": 3}
    )
    assert not error.retryable
    assert error.message == "assert: score too low (condition: score >= 10)"


async def test_assert_default_message() -> None:
    error = await fails("assert", {"condition": "false"})
    assert error.message == "assert: assertion failed (condition: false)"


async def test_assert_missing_path_is_false() -> None:
    error = await fails("assert", {"condition": "missing.flag"})
    assert not error.retryable


async def test_assert_reads_state() -> None:
    output = await run("assert", {"condition": "state.count == 2"}, state={"count": 2})
    assert output["passed"] is True


@pytest.mark.parametrize(("condition", "passed"), [(True, True), (False, False)])
async def test_assert_accepts_a_rendered_boolean(condition: bool, passed: bool) -> None:
    if passed:
        assert (await run("assert", {"condition": condition}))["passed"] is True
    else:
        assert not (await fails("assert", {"condition": condition})).retryable


@pytest.mark.parametrize("params", [{}, {"condition": ""}, {"condition": None}, {"condition": 3}])
async def test_assert_without_a_condition_fails_for_good(params: dict[str, Any]) -> None:
    error = await fails("assert", params)
    assert not error.retryable
    assert error.message == "assert: `condition` (string) is required"


async def test_assert_malformed_condition_fails_for_good() -> None:
    error = await fails("assert", {"condition": "a == == b"})
    assert not error.retryable
    assert error.message.startswith("assert: invalid `condition`")


async def test_assert_non_string_message_is_shown_as_json() -> None:
    error = await fails("assert", {"condition": "false", "message": {"code": 7}})
    assert error.message == 'assert: {"code": 7} (condition: false)'


# key-value state ----------------------------------------------------------------
async def test_set_state_stores_any_json_value() -> None:
    result = await run("set_state", {"key": "counter", "value": {"n": 1}})
    assert result.output == {"key": "counter", "value": {"n": 1}}
    assert result.state == {"counter": {"n": 1}}
    assert result.data is None


async def test_set_state_null_value_is_a_value() -> None:
    result = await run("set_state", {"key": "k", "value": None})
    assert result.state == {"k": None}


@pytest.mark.parametrize("handler", ["set_state", "get_state", "delete_state"])
@pytest.mark.parametrize("params", [{}, {"key": ""}, {"key": 5}, {"key": None}])
async def test_state_handlers_need_a_string_key(handler: str, params: dict[str, Any]) -> None:
    error = await fails(handler, {**params, "value": 1})
    assert not error.retryable
    assert error.message == f"{handler}: `key` (string) is required"


async def test_set_state_needs_a_value() -> None:
    error = await fails("set_state", {"key": "k"})
    assert not error.retryable
    assert error.message == "set_state: `value` is required"


async def test_get_state_reads_the_instance_state() -> None:
    output = await run("get_state", {"key": "color"}, state={"color": "blue"})
    assert output == {"key": "color", "value": "blue"}


async def test_get_state_missing_key_is_null() -> None:
    assert await run("get_state", {"key": "nope"}) == {"key": "nope", "value": None}
    assert await run("get_state", {"key": "nope"}, state={"other": 1}) == {
        "key": "nope",
        "value": None,
    }


async def test_delete_state_marks_the_key_for_removal() -> None:
    result = await run("delete_state", {"key": "temp"}, state={"temp": True})
    assert result.output == {"key": "temp", "deleted": True}
    assert result.state == {"temp": DELETE}


async def test_merge_state_stores_every_pair() -> None:
    result = await run("merge_state", {"values": {"color": "red", "count": 42}})
    assert result.output == {"merged_keys": ["color", "count"]}
    assert result.state == {"color": "red", "count": 42}


async def test_merge_state_accepts_orch8_docs_data_param() -> None:
    result = await run("merge_state", {"data": {"a": 1}})
    assert result.state == {"a": 1}


@pytest.mark.parametrize("params", [{}, {"values": [1]}, {"values": "x"}, {"values": {"": 1}}])
async def test_merge_state_bad_values_fail_for_good(params: dict[str, Any]) -> None:
    error = await fails("merge_state", params)
    assert not error.retryable
    assert error.message.startswith("merge_state: `values`")


async def test_state_round_trip_through_the_engine_merge() -> None:
    snapshot = Snapshot(ExecutionContext(), {})
    for handler, params in [
        ("set_state", {"key": "a", "value": 1}),
        ("merge_state", {"values": {"b": 2, "c": 3}}),
        ("delete_state", {"key": "b"}),
    ]:
        call = StepCall("i", "t", "b", handler, params, snapshot.context, 1, NOW)
        result = await DATA_HANDLERS[handler](call)
        snapshot = apply_changes(snapshot, result.data, result.state)
    assert snapshot.context.runtime["state"] == {"a": 1, "c": 3}
    call = StepCall("i", "t", "b", "get_state", {"key": "c"}, snapshot.context, 1, NOW)
    assert await DATA_HANDLERS["get_state"](call) == {"key": "c", "value": 3}
