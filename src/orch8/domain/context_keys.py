"""The keys the engine keeps in `ExecutionContext.runtime`.

Handlers, templates, signals and the runner all read or write these entries;
spelled once here, a rename cannot leave one reader looking at a stale key.
"""

from __future__ import annotations

from typing import Final

STATE_KEY: Final = "state"
"""The per-instance key-value state (`set_state`, `{{ state.key }}`)."""

CANCEL_KEY: Final = "cancel_requested"
"""Set once a cancel signal is taken in, so a resumed run keeps cancelling."""
