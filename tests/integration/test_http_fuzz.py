"""Random JSON at the create routes: any answer but a 500 is acceptable.

Schemathesis-free: hypothesis draws arbitrary JSON values, and JSON objects
shaped like the real requests (real field names, random values), so the
parsers are exercised past their first check.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "x\udfff", "nul\x00", "2024-01-15T10:00:00Z", "9999-12-31"])
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "id",
    "tenant_id",
    "namespace",
    "name",
    "version",
    "blocks",
    "created_at",
    "input_schema",
    "on_failure",
    "sequence_id",
    "priority",
    "timezone",
    "metadata",
    "context",
    "next_fire_at",
    "max_concurrency",
]
BLOCK = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["step", "parallel", "loop", "router", "bogus"]),
        "id": st.text(max_size=3),
    },
    optional={
        "handler": JSON,
        "branches": JSON,
        "body": JSON,
        "delay": JSON,
        "retry": JSON,
        "timeout": JSON,
    },
)
SHAPED = st.dictionaries(st.sampled_from(FIELDS), JSON | st.lists(BLOCK, max_size=3), max_size=6)
BODIES = JSON | SHAPED


# The app fixture is shared by the examples on purpose: each body is one more request.
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
async def test_random_bodies_never_cause_a_500(api, body: Any):
    for path in ("/api/v1/sequences", "/api/v1/instances"):
        reply = await api.call("POST", path, json=body)  # Api.call asserts != 500
        assert reply.status in (200, 201, 400, 403, 404, 409, 413), reply
