"""Built-in handlers that talk to instances: `send_signal` and `human_review`."""

from __future__ import annotations

from typing import Any

from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.handlers import StepCall, StepFailed
from orch8.application.use_cases.signals import SignalService
from orch8.domain.errors import DomainError
from orch8.domain.signals import SignalKind

_PLAIN = {k.value: k for k in SignalKind if k is not SignalKind.CUSTOM}


class SendSignalHandler:
    """`send_signal`: a step signals another instance of its own tenant.

    params: `instance_id`, `signal_type` ("pause" | "resume" | "cancel" |
    "update_context" | {"custom": name}), `payload`. Output: `{"signal_id"}`.
    """

    def __init__(self, signals: SignalService) -> None:
        self._signals = signals

    async def __call__(self, call: StepCall) -> dict[str, Any]:
        target = call.params.get("instance_id")
        if not isinstance(target, str) or not target:
            raise StepFailed("params.instance_id must be an instance id", retryable=False)
        kind, name = _signal_type(call.params.get("signal_type"))
        try:
            signal = await self._signals.send(
                target, kind, call.params.get("payload"), name=name, caller=call.tenant_id
            )
        except (NotFound, InstanceTerminal, DomainError) as exc:
            raise StepFailed(f"send_signal: {exc}", retryable=False) from None
        return {"signal_id": signal.id}


def _signal_type(raw: object) -> tuple[SignalKind, str | None]:
    if isinstance(raw, str) and raw in _PLAIN:
        return _PLAIN[raw], None
    if isinstance(raw, dict) and isinstance(raw.get("custom"), str) and raw["custom"]:
        return SignalKind.CUSTOM, raw["custom"]
    raise StepFailed(
        'params.signal_type must be "pause", "resume", "cancel", "update_context" '
        'or {"custom": "<name>"}',
        retryable=False,
    )


async def human_review(call: StepCall) -> dict[str, Any]:
    """`human_review`: records a review request — what to review, for whom, how — as
    the step's output. Put `wait_for_input` on the same step to wait for the answer."""
    return {
        "review_requested": True,
        "review_data": call.params.get("review_data"),
        "instructions": call.params.get("instructions"),
        "reviewer": call.params.get("reviewer"),
        "notify_url": call.params.get("notify_url"),
        "instance_id": call.instance_id,
        "block_id": call.block_id,
    }
