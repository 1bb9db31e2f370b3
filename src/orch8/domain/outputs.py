"""Block outputs: the append-only record of what each step produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import frozen

ERROR_REF = "__error__"


@frozen
class BlockOutput:
    """`output_ref` is None for a result and ERROR_REF for a failed attempt."""

    id: str
    instance_id: str
    block_id: str
    output: Any
    attempt: int
    created_at: datetime
    output_size: int = 0
    output_ref: str | None = None
