"""Schemathesis hooks for the API conformance run (loaded through `schemathesis.toml`).

Two rules of the server that JSON Schema cannot state for free-form JSON (context data,
metadata, params, outputs, payloads): every integer, at any depth, is a signed 64-bit
one, and every string is valid Unicode (no unpaired surrogate). The document says so in
words; generated bodies breaking them are left out instead of reported. And long-polls
are bounded so the run stays short.
"""

from __future__ import annotations

from typing import Any

import schemathesis

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A long-poll waits up to wait_ms for a task; the run needs no long waits.
MAX_WAIT_MS = 50


def storable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


@schemathesis.hook
def filter_body(ctx: Any, body: Any) -> bool:
    return storable(body)


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("wait_ms"), int | float):
        body["wait_ms"] = min(body["wait_ms"], MAX_WAIT_MS)
