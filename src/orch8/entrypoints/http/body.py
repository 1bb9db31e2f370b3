"""Reading a JSON request body into plain Python values, safely.

The wire codec turns values into commands and names the offending field; this
module only guarantees it is handed sane JSON: well-formed, standard (no NaN or
Infinity, which Python's parser would otherwise accept), not nested deeper than
any real sequence needs (deep nesting would exhaust the stack in a later
recursive step), with integers a 64-bit storage column can hold, and with
strings that are valid Unicode (a JSON escape like "\ud800" decodes to a lone
surrogate that no database driver can encode). Each refusal is a 400 naming
the place in the body.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from orch8.domain.errors import ValidationError

# 64 nested blocks of the deepest shape (router -> routes[] -> route -> blocks[])
# take about 256 levels; params may nest further inside a step.
MAX_JSON_DEPTH = 512
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _reject_constant(name: str) -> Any:
    raise ValidationError(f"{name} is not valid JSON", path="body")


async def read_json(request: web.Request) -> Any:
    """The parsed body; raises ValidationError (400) or HTTPRequestEntityTooLarge (413)."""
    raw = await request.read()
    if not raw.strip():
        raise ValidationError("request body is empty; expected a JSON object", path="body")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValidationError(f"nesting exceeds {MAX_JSON_DEPTH} levels", path="body") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValidationError(f"malformed JSON: {exc}", path="body") from None
    check_json(value)
    return value


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_json(value: Any) -> None:
    """Enforce the depth and integer-range limits, iteratively (no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            raise ValidationError(f"nesting exceeds {MAX_JSON_DEPTH} levels", path=path or "body")
        if isinstance(item, dict):
            for key in item:
                _check_text(key, path)
            stack.extend((v, _child(path, k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, _child(path, i), depth + 1) for i, v in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ValidationError("integer out of the 64-bit range", path=path or "body")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            "contains an unpaired surrogate escape (invalid Unicode)", path=path or "body"
        ) from None
