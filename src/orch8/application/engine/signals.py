"""Reading an instance's pending signals into what the runner must do."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from attrs import define, field

from orch8.domain.evaluator import Snapshot
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import NodeState

_log = logging.getLogger("orch8.engine")

CANCEL_KEY = "cancel_requested"


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


def _value(payload: Any) -> Any:
    return payload.get("value") if isinstance(payload, Mapping) else payload
