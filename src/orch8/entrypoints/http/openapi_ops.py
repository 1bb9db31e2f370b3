"""Builders for OpenAPI operations and the small JSON Schema shapes they share.

Every resource module describes its paths with these (`OPENAPI_PATHS`), so an
operation always has the same keys in the same form: `op(...)` with responses
from `returns`, `returns_error`, `no_content` and `errors`, parameters by component name
or from `query`, and a request body by component name or inline schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Where product routes are served (and, deprecated, at the root).
API_PREFIX = "/api/v1"

Json = dict[str, Any]
# path -> method -> operation, as in the document's `paths`
Paths = dict[str, dict[str, Json]]

# The error responses every resource refers to, by component name.
ERROR_STATUS = {
    "BadRequest": "400",
    "Unauthorized": "401",
    "Forbidden": "403",
    "NotFound": "404",
    "Conflict": "409",
    "PayloadTooLarge": "413",
}

STR: Json = {"type": "string"}
NONEMPTY: Json = {"type": "string", "minLength": 1}
# Text the server refuses when empty or blank (names, ids, keys).
TEXT: Json = {"type": "string", "minLength": 1, "pattern": "\\S"}
BOOL: Json = {"type": "boolean"}
INT: Json = {"type": "integer"}
OBJ: Json = {"type": "object", "additionalProperties": True}
TIME: Json = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC ('Z')"}


# Orch8's `limit` is an unsigned 32-bit integer, clamped to the largest page.
LIMIT_MAX = 2**32 - 1


def page_size(default: int) -> Json:
    """The schema of a list route's `limit`."""
    return {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": default}


def ref(name: str) -> Json:
    """A schema of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def array_of(items: Json) -> Json:
    return {"type": "array", "items": items}


def object_schema(required: Iterable[str], **props: Json) -> Json:
    """An object with these properties, `required` naming the ones always present."""
    return {"type": "object", "required": list(required), "properties": props}


def query(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    """An inline query parameter (shared ones are components: pass their name to `op`)."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def path_param(name: str, description: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


def returns(schema: Json, description: str) -> Json:
    """A JSON answer of this schema."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def returns_error(description: str) -> Json:
    """A JSON `{"error"}` answer, described for this one operation."""
    return returns(ref("Error"), description)


def no_content(description: str = "Done; no body") -> Json:
    return {"204": {"description": description}}


def errors(*names: str) -> Json:
    """Responses for these error components (`"NotFound"`, ...), keyed by status."""
    return {ERROR_STATUS[n]: {"$ref": f"#/components/responses/{n}"} for n in names}


def op(
    op_id: str,
    summary: str,
    tag: str,
    responses: Json,
    *,
    params: Iterable[str | Json] = (),
    body: str | Json | None = None,
) -> Json:
    """One operation. `params`: component names or inline parameters; `body`: the
    request body's schema, by component name or inline."""
    operation: Json = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    parameters = [
        {"$ref": f"#/components/parameters/{p}"} if isinstance(p, str) else p for p in params
    ]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        schema = ref(body) if isinstance(body, str) else body
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return operation
