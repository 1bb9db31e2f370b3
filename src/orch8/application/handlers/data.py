"""Built-in handlers that work on the instance's data: `transform`, `assert` and the
per-instance key-value state (`set_state`, `get_state`, `delete_state`, `merge_state`).

Names, params and outputs follow Orch8's `handlers/builtin.rs`. Params arrive
template-rendered. Expressions (`transform.expression`, `assert.condition`) are
evaluated leniently, as Orch8 does, against the instance's `context.data`,
`config`, `runtime` and `state`; a handler sees no block outputs, so bring one in
with a template (`"{{ outputs.check.status }} == 200"`). A malformed expression or
a bad param fails the step for good with a message naming the handler and param.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orch8.application.ports.handlers import (
    DELETE,
    HandlerResult,
    StepCall,
    StepFailed,
    StepHandler,
)
from orch8.domain.context_keys import STATE_KEY
from orch8.domain.expressions import ExpressionError, evaluate, parse, truthy
from orch8.domain.scope import Scope


def _bad(handler: str, message: str) -> StepFailed:
    return StepFailed(f"{handler}: {message}", retryable=False)


def _scope(call: StepCall) -> Scope:
    context = call.context
    return Scope(
        data=context.data,
        config=context.config,
        runtime=context.runtime,
        state=_state(call),
        instance_id=call.instance_id,
        now=_now(call),
        seed=call.instance_id,
    )


def _now(call: StepCall) -> datetime:
    """The instant `now()` reads: the engine's clock, as the call carries it."""
    return call.now


def _state(call: StepCall) -> Mapping[str, Any]:
    state = call.context.runtime.get(STATE_KEY)
    return state if isinstance(state, Mapping) else {}


def _evaluate(handler: str, param: str, text: str, call: StepCall) -> Any:
    try:
        return evaluate(parse(text), _scope(call))
    except ExpressionError as exc:
        raise _bad(handler, f"invalid `{param}`: {exc}") from None


def _key(handler: str, params: Mapping[str, Any]) -> str:
    key = params.get("key")
    if not isinstance(key, str) or not key:
        raise _bad(handler, "`key` (string) is required")
    return key


# transform ------------------------------------------------------------------
async def transform(call: StepCall) -> HandlerResult:
    """Build a value and write it into `context.data`.

    With `expression`: a string is evaluated as an expression (any other JSON value,
    e.g. an object built from templates, is taken as it is); the output is
    `{"result": value}` (Orch8's API table). Without it, the value is the params
    themselves (minus `target`) and is also the output (Orch8's handler code).
    With `target` (a dotted path into `context.data`) the value is written there;
    without it an object value is merged into `context.data` key by key.
    """
    params = call.params
    if "expression" in params:
        expression = params["expression"]
        value = (
            _evaluate("transform", "expression", expression, call)
            if isinstance(expression, str)
            else expression
        )
        output: Any = {"result": value}
    else:
        value = {k: v for k, v in params.items() if k != "target"}
        output = value
    target = params.get("target")
    if target is not None:
        data: Mapping[str, Any] | None = _write_path(call.context.data, target, value)
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        data = None
    return HandlerResult(output, data=data)


def _write_path(data: Mapping[str, Any], target: Any, value: Any) -> dict[str, Any]:
    """The top-level `context.data` entry to merge so that `target` holds `value`.

    The engine merges data shallowly, so a nested target rebuilds its top-level
    object with the other keys kept.
    """
    if not isinstance(target, str) or not target or any(not s for s in target.split(".")):
        raise _bad("transform", f"`target` must be a dotted path like 'a.b', got {target!r}")
    segments = target.split(".")
    root = segments[0]
    if len(segments) == 1:
        return {root: value}
    built = _copy_object(data.get(root), root)
    node = built
    for depth, segment in enumerate(segments[1:-1], start=1):
        child = _copy_object(node.get(segment), ".".join(segments[: depth + 1]))
        node[segment] = child
        node = child
    node[segments[-1]] = value
    return {root: built}


def _copy_object(existing: Any, where: str) -> dict[str, Any]:
    if existing is None:
        return {}
    if not isinstance(existing, Mapping):
        raise _bad(
            "transform",
            f"cannot write below `{where}`: it holds a {type(existing).__name__}, not an object",
        )
    return dict(existing)


# assert ---------------------------------------------------------------------
async def assert_(call: StepCall) -> dict[str, Any]:
    """Fail the step (never retried) with `message` when `condition` is false.

    `condition` is an expression string (Orch8); a boolean is accepted too, as a
    whole-string template like `"{{ data.ok }}"` renders to one.
    """
    params = call.params
    condition = params.get("condition")
    if isinstance(condition, bool):
        passed = condition
    elif isinstance(condition, str) and condition.strip():
        passed = truthy(_evaluate("assert", "condition", condition, call))
    else:
        raise _bad("assert", "`condition` (string) is required")
    if passed:
        return {"condition": condition, "passed": True}
    message = params.get("message")
    if message is None or message == "":
        text = "assertion failed"
    else:
        text = message if isinstance(message, str) else json.dumps(message)
    raise StepFailed(f"assert: {text} (condition: {condition})", retryable=False)


# key-value state --------------------------------------------------------------
async def set_state(call: StepCall) -> HandlerResult:
    """`key`, `value` → `{"key", "value"}`; readable later as `{{ state.<key> }}`."""
    key = _key("set_state", call.params)
    if "value" not in call.params:
        raise _bad("set_state", "`value` is required")
    value = call.params["value"]
    return HandlerResult({"key": key, "value": value}, state={key: value})


async def get_state(call: StepCall) -> dict[str, Any]:
    """`key` → `{"key", "value"}`, the value null when the key is not set."""
    key = _key("get_state", call.params)
    return {"key": key, "value": _state(call).get(key)}


async def delete_state(call: StepCall) -> HandlerResult:
    """`key` → `{"key", "deleted": true}` (also when the key was not set, as in Orch8)."""
    key = _key("delete_state", call.params)
    return HandlerResult({"key": key, "deleted": True}, state={key: DELETE})


async def merge_state(call: StepCall) -> HandlerResult:
    """`values` (an object; Orch8's API table calls it `data`, accepted too) →
    `{"merged_keys": [...]}`, every pair stored in one write."""
    params = call.params
    values = params.get("values", params.get("data"))
    if not isinstance(values, Mapping):
        raise _bad("merge_state", "`values` (object) is required")
    if any(not key for key in values):
        raise _bad("merge_state", "`values` has an empty key")
    return HandlerResult({"merged_keys": list(values)}, state=dict(values))


DATA_HANDLERS: dict[str, StepHandler] = {
    "transform": transform,
    "assert": assert_,
    "set_state": set_state,
    "get_state": get_state,
    "delete_state": delete_state,
    "merge_state": merge_state,
}
