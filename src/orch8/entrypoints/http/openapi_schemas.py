"""Reusable OpenAPI components: the wire shapes of `orch8.codec.wire`, as JSON Schema.

Kept apart from the path table so each file stays readable; the shapes here
must follow the codec (field names, PascalCase priority, RFC 3339 'Z' times).
"""

from __future__ import annotations

from typing import Any

from orch8.domain.instance import InstanceState, Priority
from orch8.domain.sequence import BLOCK_TYPES
from orch8.domain.tree import NodeState


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC ('Z')"}
_OBJ = {"type": "object", "additionalProperties": True}
_BLOCKS = {"type": "array", "items": ref("Block")}


def _object(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


SCHEMAS: dict[str, Any] = {
    "Error": _object(["error"], error={"type": "string", "description": "names the field"}),
    "Status": _object(["status"], status=_STR),
    "Created": _object(["id"], id=_STR),
    "InstanceCreated": _object(["id", "deduplicated"], id=_STR, deduplicated={"type": "boolean"}),
    "Priority": {
        "description": "PascalCase on output; case-insensitive names or 0-3 accepted on input",
        "anyOf": [
            {"type": "string", "enum": [p.wire_name for p in Priority]},
            {"type": "integer", "minimum": 0, "maximum": 3},
        ],
    },
    "InstanceState": {"type": "string", "enum": [s.value for s in InstanceState]},
    "Block": {
        "type": "object",
        "description": "A block of the sequence DSL, tagged by `type`; ids are unique.",
        "required": ["type", "id"],
        "properties": {
            "type": {"type": "string", "enum": sorted(BLOCK_TYPES.values())},
            "id": {"type": "string", "minLength": 1},
        },
        "additionalProperties": True,
    },
    "NewSequence": {
        **_object(
            ["name", "blocks"],
            id=_STR,
            tenant_id=_STR,
            namespace={"type": "string", "default": "default"},
            name=_STR,
            version={"type": "integer", "minimum": 1},
            deprecated={"type": "boolean", "default": False},
            blocks=_BLOCKS,
            input_schema=_OBJ,
            on_failure=_BLOCKS,
            on_cancel=_BLOCKS,
            created_at=_TIME,
        ),
        "description": "tenant_id may come from the x-tenant-id header instead.",
    },
    "SequenceDefinition": _object(
        ["id", "tenant_id", "namespace", "name", "version", "deprecated", "blocks", "created_at"],
        id=_STR,
        tenant_id=_STR,
        namespace=_STR,
        name=_STR,
        version={"type": "integer"},
        deprecated={"type": "boolean"},
        status=_STR,
        blocks=_BLOCKS,
        input_schema=_nullable(_OBJ),
        on_failure=_nullable(_BLOCKS),
        on_cancel=_nullable(_BLOCKS),
        created_at=_TIME,
    ),
    "ExecutionContext": _object(
        [],
        data=_OBJ,
        config=_OBJ,
        audit={"type": "array", "items": _OBJ},
        runtime=_OBJ,
    ),
    "NewInstance": _object(
        ["sequence_id"],
        sequence_id=_STR,
        tenant_id=_STR,
        namespace={"type": "string", "default": "default"},
        priority=ref("Priority"),
        timezone={"type": "string", "default": "UTC"},
        metadata=_OBJ,
        context=ref("ExecutionContext"),
        next_fire_at=_TIME,
        concurrency_key=_STR,
        max_concurrency={"type": "integer", "minimum": 1},
        idempotency_key=_STR,
    ),
    "TaskInstance": _object(
        ["id", "sequence_id", "tenant_id", "namespace", "state", "priority", "timezone"],
        id=_STR,
        sequence_id=_STR,
        tenant_id=_STR,
        namespace=_STR,
        state=ref("InstanceState"),
        next_fire_at=_nullable(_TIME),
        priority={"type": "string", "enum": [p.wire_name for p in Priority]},
        timezone=_STR,
        metadata=_OBJ,
        context=ref("ExecutionContext"),
        concurrency_key=_nullable(_STR),
        max_concurrency=_nullable({"type": "integer"}),
        idempotency_key=_nullable(_STR),
        parent_instance_id=_nullable(_STR),
        created_at=_TIME,
        updated_at=_TIME,
    ),
    "BlockOutput": _object(
        ["id", "instance_id", "block_id", "output", "attempt", "created_at"],
        id=_STR,
        instance_id=_STR,
        block_id=_STR,
        output={},
        output_ref=_nullable(_STR),
        output_size={"type": "integer"},
        attempt={"type": "integer"},
        created_at=_TIME,
    ),
    "ExecutionNode": _object(
        ["id", "instance_id", "block_id", "block_type", "state"],
        id={"type": "string", "format": "uuid", "description": "uuid5 of (instance, block)"},
        instance_id=_STR,
        block_id=_STR,
        parent_id=_nullable({"type": "string", "format": "uuid"}),
        block_type={"type": "string", "enum": sorted(BLOCK_TYPES.values())},
        branch_index=_nullable({"type": "integer"}),
        state={"type": "string", "enum": [s.value for s in NodeState]},
        started_at=_nullable(_TIME),
        completed_at=_nullable(_TIME),
    ),
    "SequencePage": _object(
        ["items", "has_more"],
        items={"type": "array", "items": ref("SequenceDefinition")},
        has_more={"type": "boolean"},
    ),
    "InstancePage": _object(
        ["items", "has_more"],
        items={"type": "array", "items": ref("TaskInstance")},
        has_more={"type": "boolean"},
    ),
}

# Instance operations (entrypoints/http/instance_ops.py).
_STATES = {"type": "array", "items": ref("InstanceState")}
SCHEMAS.update(
    {
        "BatchCreate": _object(
            ["instances"],
            instances={"type": "array", "items": ref("NewInstance"), "maxItems": 10_000},
        ),
        "Count": _object(["count"], count={"type": "integer", "minimum": 0}),
        "UpdateState": _object(["state"], state=ref("InstanceState"), next_fire_at=_TIME),
        "UpdateContext": _object(["context"], context=ref("ExecutionContext")),
        "StateChanged": _object(
            ["id", "state"], id=_STR, state=ref("InstanceState"), next_fire_at=_nullable(_TIME)
        ),
        "ContextReplaced": _object(["id"], id=_STR),
        "BulkFilter": {
            **_object([], tenant_id=_STR, namespace=_STR, sequence_id=_STR, states=_STATES),
            "description": "tenant_id is required unless the x-tenant-id header is sent.",
        },
        "BulkState": _object(
            ["filter", "state"], filter=ref("BulkFilter"), state=ref("InstanceState")
        ),
        "BulkReschedule": _object(
            ["filter", "offset_secs"],
            filter=ref("BulkFilter"),
            offset_secs={"type": "integer", "description": "seconds; negative = earlier"},
        ),
    }
)


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> Any:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


PARAMETERS: dict[str, Any] = {
    "Id": {"name": "id", "in": "path", "required": True, "schema": _STR},
    "TenantId": _query("tenant_id", _STR, "Tenant; defaults to the x-tenant-id header"),
    "Namespace": _query("namespace", _STR, "Namespace"),
    "Name": _query("name", _STR, "Sequence name", required=True),
    "Version": _query("version", {"type": "integer", "minimum": 1}, "Version (latest if absent)"),
    "Offset": _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip"),
    "SequenceLimit": _query(
        "limit", {"type": "integer", "minimum": 1, "default": 200}, "Page size (clamped to 1000)"
    ),
    "InstanceLimit": _query(
        "limit", {"type": "integer", "minimum": 1, "default": 100}, "Page size (clamped to 1000)"
    ),
    "SequenceId": _query("sequence_id", _STR, "Filter by sequence"),
    "State": _query("state", _STR, "Comma-separated instance states"),
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


RESPONSES: dict[str, Any] = {
    "BadRequest": _error("Malformed request; `error` names the field"),
    "Forbidden": _error("Body tenant contradicts the x-tenant-id header"),
    "NotFound": _error("No such object (or another tenant's)"),
    "Conflict": _error("Clashes with stored state"),
    "PayloadTooLarge": _error("Request body too large"),
}

COMPONENTS: dict[str, Any] = {
    "schemas": SCHEMAS,
    "parameters": PARAMETERS,
    "responses": RESPONSES,
}
