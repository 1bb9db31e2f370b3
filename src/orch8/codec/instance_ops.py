"""The bodies of the instance operations (Orch8's `instances/{lifecycle,bulk}.rs`).

`{"instances": [...]}` for a batch, `{"state", "next_fire_at"?}` and
`{"context"}` for one instance, `{"filter", "state"}` and `{"filter",
"offset_secs"}` for the bulk moves; each refusal names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import frozen

from orch8.application.commands import NewInstance
from orch8.application.ports.storage import InstanceFilter
from orch8.application.use_cases.instance_ops import MAX_BATCH
from orch8.codec.fields import array, integer, obj, req, string
from orch8.codec.times import format_time, parse_time
from orch8.codec.wire import context_from_json, new_instance_from_json, state_from_json
from orch8.domain.context import ExecutionContext
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState


@frozen
class StateChange:
    """`PATCH /instances/{id}/state`."""

    state: InstanceState
    next_fire_at: datetime | None = None


@frozen
class BulkStateChange:
    """`PATCH /instances/bulk/state`."""

    filter: InstanceFilter
    state: InstanceState


@frozen
class BulkReschedule:
    """`PATCH /instances/bulk/reschedule`: shift by `offset_secs` (negative: earlier)."""

    filter: InstanceFilter
    offset_secs: int


def batch_from_json(value: object, *, max_items: int = MAX_BATCH) -> list[NewInstance]:
    """The batch's requests; more than `max_items` is refused before any is read."""
    body = obj(value, "body")
    items = array(body, "instances", "", required=True)
    if len(items) > max_items:
        raise ValidationError(f"batch size must not exceed {max_items:,}", path="instances")
    return [new_instance_from_json(item, f"instances[{i}]") for i, item in enumerate(items)]


def state_change_from_json(value: object) -> StateChange:
    body = obj(value, "body")
    state = state_from_json(req(body, "state", ""), "state")
    fire = body.get("next_fire_at")
    return StateChange(state, None if fire is None else parse_time(fire, "next_fire_at"))


def context_change_from_json(value: object) -> ExecutionContext:
    """The whole new context (a full replacement)."""
    return context_from_json(req(obj(value, "body"), "context", ""), "context")


def bulk_state_from_json(value: object) -> BulkStateChange:
    body = obj(value, "body")
    flt = _bulk_filter(body)
    return BulkStateChange(flt, state_from_json(req(body, "state", ""), "state"))


def bulk_reschedule_from_json(value: object) -> BulkReschedule:
    body = obj(value, "body")
    flt = _bulk_filter(body)
    offset = integer(body, "offset_secs", "", required=True)
    assert offset is not None
    return BulkReschedule(flt, offset)


def _bulk_filter(body: Mapping[str, Any]) -> InstanceFilter:
    data = obj(req(body, "filter", ""), "filter")
    states = array(data, "states", "filter")
    return InstanceFilter(
        tenant_id=string(data, "tenant_id", "filter"),
        namespace=string(data, "namespace", "filter"),
        sequence_id=string(data, "sequence_id", "filter"),
        states=tuple(
            dict.fromkeys(state_from_json(s, f"filter.states[{i}]") for i, s in enumerate(states))
        ),
    )


def state_reply_to_json(inst: Instance) -> dict[str, Any]:
    """The answer to a state change or a retry: `{"id", "state", "next_fire_at"}`."""
    return {
        "id": inst.id,
        "state": inst.state.value,
        "next_fire_at": format_time(inst.next_fire_at),
    }
