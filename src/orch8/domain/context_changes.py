"""Merging a handler's (or a signal's) changes into an instance's context.

Handlers never mutate the context they are given: they return changes, and
the engine folds them in here, in the same write as the step's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve

from orch8.domain.context_keys import STATE_KEY
from orch8.domain.evaluator.snapshot import Snapshot

DELETE = object()
"""In `HandlerResult.state`, marks a key to remove from the instance's state."""


def apply_changes(
    snapshot: Snapshot, data: Mapping[str, Any] | None, state: Mapping[str, Any] | None
) -> Snapshot:
    """Merge `data` into context.data and `state` into the per-instance key-value
    state kept at context.runtime[STATE_KEY] (a DELETE value removes its key)."""
    if not data and not state:
        return snapshot
    ctx = snapshot.context
    if data:
        ctx = evolve(ctx, data={**ctx.data, **data})
    if state:
        current = dict(ctx.runtime.get(STATE_KEY) or {})
        for key, value in state.items():
            if value is DELETE:
                current.pop(key, None)
            else:
                current[key] = value
        ctx = evolve(ctx, runtime={**ctx.runtime, STATE_KEY: current})
    return evolve(snapshot, context=ctx)
