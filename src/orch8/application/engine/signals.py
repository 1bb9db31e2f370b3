"""Reading an instance's pending signals into what the runner must do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from attrs import define, evolve, field

from orch8.application.engine.bell import SignalBell
from orch8.application.ports.storage import SignalInbox
from orch8.domain.context_changes import apply_changes
from orch8.domain.context_keys import CANCEL_KEY
from orch8.domain.evaluator import Snapshot
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import NodeState

_log = logging.getLogger("orch8.engine")

# How often a running instance looks for signals sent through another process.
SIGNAL_POLL_S = 1.0


@define
class SignalState:
    """What the runner has learned from signals and not yet written."""

    pause: bool = False
    cancel: bool = False
    data: dict[str, Any] = field(factory=dict)
    inputs: dict[str, Any] = field(factory=dict)  # block id -> chosen value
    input_signal: dict[str, str] = field(factory=dict)  # block id -> signal id
    delivered: list[str] = field(factory=list)
    seen: set[str] = field(factory=set)


def absorb(state: SignalState, signals: list[Signal], snapshot: Snapshot) -> None:
    """Fold signals, in order, into `state`. Each is marked delivered once acted on;
    a human input for a block not yet at its gate stays pending until it is."""
    for signal in signals:
        if signal.id in state.seen:
            continue
        block = signal.human_input_block
        if block is not None:
            node = snapshot.nodes.get(block)
            if node is None or node.state is not NodeState.WAITING:
                continue  # the gate is not reached yet: keep it for later
            state.seen.add(signal.id)
            state.inputs[block] = _value(signal.payload)
            state.input_signal[block] = signal.id
            continue
        state.seen.add(signal.id)
        state.delivered.append(signal.id)
        match signal.kind:
            case SignalKind.PAUSE:
                state.pause = True
            case SignalKind.RESUME:
                state.pause = False
            case SignalKind.CANCEL:
                state.cancel = True
            case SignalKind.UPDATE_CONTEXT:
                data = signal.payload.get("data") if isinstance(signal.payload, Mapping) else None
                if isinstance(data, Mapping):
                    state.data.update(data)
                else:
                    _log.warning(
                        "signal %s: update_context without a data object; ignored", signal.id
                    )
            case _:
                _log.info("custom signal %s (%s) delivered", signal.id, signal.name)


def take_in(state: SignalState, signals: list[Signal], snapshot: Snapshot) -> Snapshot:
    """`absorb` the signals, and carry into the snapshot what they change there: an
    update_context's data, and the cancel request (kept in the context, so a run
    that resumes after a crash still cancels)."""
    absorb(state, signals, snapshot)
    if state.data:
        snapshot = apply_changes(snapshot, state.data, None)
        state.data = {}
    if state.cancel and not snapshot.context.runtime.get(CANCEL_KEY):
        ctx = snapshot.context
        snapshot = evolve(snapshot, context=evolve(ctx, runtime={**ctx.runtime, CANCEL_KEY: True}))
    return snapshot


def _value(payload: Any) -> Any:
    return payload.get("value") if isinstance(payload, Mapping) else payload


class Inbox:
    """One run's reading of its instance's inbox: at start, when this process was told
    of a signal (the bell), and at least every SIGNAL_POLL_S while running (a
    signal sent through another process)."""

    def __init__(
        self, store: SignalInbox, bell: SignalBell, instance_id: str, cancel: bool
    ) -> None:
        self.state = SignalState(cancel=cancel)
        self._store = store
        self._bell = bell
        self._instance_id = instance_id
        self._checked_at = 0.0

    def due(self) -> bool:
        """Whether to read the inbox now: the bell rang for the instance, or the last
        read is SIGNAL_POLL_S old. Synchronous, so that the runner asks it between
        steps without creating a coroutine when nothing is due."""
        if self._bell.take(self._instance_id):
            return True
        return asyncio.get_running_loop().time() - self._checked_at >= SIGNAL_POLL_S

    async def read(self, snapshot: Snapshot) -> tuple[Snapshot, list[str]] | None:
        """Read the inbox: the snapshot with what new signals change there, and the ids
        of the signals acted on (to mark delivered in the next write); None when
        nothing changed that needs a new evaluation."""
        self._checked_at = asyncio.get_running_loop().time()
        pending = await self._store.pending(self._instance_id)
        if not pending:
            return None
        state = self.state
        before = (len(state.inputs), state.cancel)
        snapshot = take_in(state, pending, snapshot)
        delivered, state.delivered = state.delivered, []
        if not delivered and before == (len(state.inputs), state.cancel):
            return None
        return snapshot, delivered

    async def wait(self) -> None:
        """Return when the bell rings for the instance, or after SIGNAL_POLL_S."""
        await self._bell.wait(self._instance_id, SIGNAL_POLL_S)
