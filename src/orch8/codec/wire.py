"""The REST wire format: domain objects to JSON and request bodies to commands.

Field names and shapes follow Orch8's API so its clients work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orch8.application.commands import NewInstance, NewSequence
from orch8.codec.block_json import blocks_to_json
from orch8.codec.blocks import read_blocks
from orch8.codec.fields import array, boolean, integer, json_object, obj, string
from orch8.codec.times import format_time, parse_time
from orch8.domain.context import ExecutionContext
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Block, Sequence
from orch8.domain.tree import Node

DEFAULT_NAMESPACE = "default"


def context_to_json(ctx: ExecutionContext) -> dict[str, Any]:
    return {
        "data": dict(ctx.data),
        "config": dict(ctx.config),
        "audit": list(ctx.audit),
        "runtime": dict(ctx.runtime),
    }


def context_from_json(value: object, path: str = "context") -> ExecutionContext:
    if value is None:
        return ExecutionContext()
    data = obj(value, path)
    audit = array(data, "audit", path)
    return ExecutionContext(
        data=dict(json_object(data, "data", path) or {}),
        config=dict(json_object(data, "config", path) or {}),
        audit=tuple(obj(a, f"{path}.audit[{i}]") for i, a in enumerate(audit)),
        runtime=dict(json_object(data, "runtime", path) or {}),
    )


def sequence_to_json(seq: Sequence) -> dict[str, Any]:
    return {
        "id": seq.id,
        "tenant_id": seq.tenant_id,
        "namespace": seq.namespace,
        "name": seq.name,
        "version": seq.version,
        "deprecated": seq.deprecated,
        "status": "production",
        "blocks": blocks_to_json(seq.blocks),
        "input_schema": None if seq.input_schema is None else dict(seq.input_schema),
        "on_failure": None if seq.on_failure is None else blocks_to_json(seq.on_failure),
        "on_cancel": None if seq.on_cancel is None else blocks_to_json(seq.on_cancel),
        "created_at": format_time(seq.created_at),
    }


def _optional_blocks(data: Mapping[str, Any], key: str) -> tuple[Block, ...] | None:
    value = data.get(key)
    return None if value is None else read_blocks(value, key)


def new_sequence_from_json(value: object) -> NewSequence:
    data = obj(value, "body")
    name = string(data, "name", "", required=True)
    assert name is not None
    if not name.strip():
        raise ValidationError("must not be empty", path="name")
    if "blocks" not in data or data["blocks"] is None:
        raise ValidationError("is required", path="blocks")
    created = data.get("created_at")
    return NewSequence(
        id=string(data, "id", ""),
        tenant_id=string(data, "tenant_id", ""),
        namespace=string(data, "namespace", "") or DEFAULT_NAMESPACE,
        name=name,
        version=integer(data, "version", ""),
        created_at=None if created is None else parse_time(created, "created_at"),
        deprecated=boolean(data, "deprecated", "", False),
        blocks=read_blocks(data["blocks"], "blocks"),
        input_schema=json_object(data, "input_schema", ""),
        on_failure=_optional_blocks(data, "on_failure"),
        on_cancel=_optional_blocks(data, "on_cancel"),
    )


def sequence_from_stored(row: Mapping[str, Any]) -> Sequence:
    """A stored sequence: the adapter hands the definition JSON plus its columns."""
    definition = row["definition"]
    return Sequence(
        id=row["id"],
        tenant_id=row["tenant_id"],
        namespace=row["namespace"],
        name=row["name"],
        version=row["version"],
        deprecated=bool(row["deprecated"]),
        created_at=row["created_at"],
        blocks=read_blocks(definition["blocks"], "blocks"),
        input_schema=definition.get("input_schema"),
        on_failure=_optional_blocks(definition, "on_failure"),
        on_cancel=_optional_blocks(definition, "on_cancel"),
    )


def sequence_definition(seq: Sequence) -> dict[str, Any]:
    """The JSON a storage adapter keeps in its `definition` column."""
    full = sequence_to_json(seq)
    return {k: full[k] for k in ("blocks", "input_schema", "on_failure", "on_cancel")}


def priority_to_json(p: Priority) -> str:
    return p.wire_name


def priority_from_json(value: object, path: str = "priority") -> Priority:
    if isinstance(value, bool):
        raise ValidationError("must be Low, Normal, High or Critical", path=path)
    if isinstance(value, float) and value.is_integer() and 0 <= value <= 3:
        value = int(value)
    if isinstance(value, int):
        if 0 <= value <= 3:
            return Priority(value)
    elif isinstance(value, str):
        try:
            return Priority[value.upper()]
        except KeyError:
            pass
    raise ValidationError("must be Low, Normal, High or Critical (or 0-3)", path=path)


def state_from_json(value: object, path: str = "state") -> InstanceState:
    try:
        return InstanceState(str(value))
    except ValueError:
        names = ", ".join(s.value for s in InstanceState)
        raise ValidationError(f"must be one of {names}", path=path) from None


def instance_to_json(inst: Instance) -> dict[str, Any]:
    return {
        "id": inst.id,
        "sequence_id": inst.sequence_id,
        "tenant_id": inst.tenant_id,
        "namespace": inst.namespace,
        "state": inst.state.value,
        "next_fire_at": format_time(inst.next_fire_at),
        "priority": priority_to_json(inst.priority),
        "timezone": inst.timezone,
        "metadata": dict(inst.metadata),
        "context": context_to_json(inst.context),
        "concurrency_key": inst.concurrency_key,
        "max_concurrency": inst.max_concurrency,
        "idempotency_key": inst.idempotency_key,
        "parent_instance_id": inst.parent_instance_id,
        "created_at": format_time(inst.created_at),
        "updated_at": format_time(inst.updated_at),
    }


def _timezone(name: str | None, path: str) -> str:
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown timezone '{name}'", path=path) from None
    return name


def new_instance_from_json(value: object, path: str = "body") -> NewInstance:
    data = obj(value, path)
    prefix = "" if path == "body" else path
    seq_id = string(data, "sequence_id", prefix, required=True)
    assert seq_id is not None
    fire = data.get("next_fire_at")
    max_conc = integer(data, "max_concurrency", prefix)
    if max_conc is not None and max_conc <= 0:
        raise ValidationError("must be positive", path=f"{prefix}.max_concurrency".lstrip("."))
    ctx_path = f"{prefix}.context".lstrip(".")
    return NewInstance(
        sequence_id=seq_id,
        tenant_id=string(data, "tenant_id", prefix),
        namespace=string(data, "namespace", prefix) or DEFAULT_NAMESPACE,
        priority=priority_from_json(data["priority"], f"{prefix}.priority".lstrip("."))
        if data.get("priority") is not None
        else Priority.NORMAL,
        timezone=_timezone(string(data, "timezone", prefix), f"{prefix}.timezone".lstrip(".")),
        metadata=dict(json_object(data, "metadata", prefix) or {}),
        context=context_from_json(data.get("context"), ctx_path),
        next_fire_at=None
        if fire is None
        else parse_time(fire, f"{prefix}.next_fire_at".lstrip(".")),
        concurrency_key=string(data, "concurrency_key", prefix),
        max_concurrency=max_conc,
        idempotency_key=string(data, "idempotency_key", prefix),
    )


def output_to_json(out: BlockOutput) -> dict[str, Any]:
    return {
        "id": out.id,
        "instance_id": out.instance_id,
        "block_id": out.block_id,
        "output": out.output,
        "output_ref": out.output_ref,
        "output_size": out.output_size,
        "attempt": out.attempt,
        "created_at": format_time(out.created_at),
    }


def node_to_json(node: Node, *, node_id: str, instance_id: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "instance_id": instance_id,
        "block_id": node.block_id,
        "parent_id": node.parent_id,
        "block_type": node.block_type,
        "branch_index": node.branch_index,
        "state": node.state.value,
        "started_at": format_time(node.started_at),
        "completed_at": format_time(node.completed_at),
    }
