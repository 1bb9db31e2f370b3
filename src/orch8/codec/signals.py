"""The signal wire format: `{"signal_type": "pause" | {"custom": "name"}, "payload": ...}`,
and the steps waiting for a person's choice as `GET /approvals` lists them."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from orch8.application.use_cases.signals import Approval
from orch8.codec.fields import obj
from orch8.codec.times import format_time
from orch8.domain.errors import ValidationError
from orch8.domain.signals import Signal, SignalKind

_PLAIN = {k.value: k for k in SignalKind if k is not SignalKind.CUSTOM}


@frozen
class SignalRequest:
    kind: SignalKind
    payload: Any
    name: str | None = None


def signal_request_from_json(value: object) -> SignalRequest:
    data = obj(value, "body")
    raw = data.get("signal_type")
    payload = data.get("payload")
    if isinstance(raw, str):
        if raw in _PLAIN:
            return SignalRequest(_PLAIN[raw], payload)
        if raw.startswith("custom:") and len(raw) > len("custom:"):
            return SignalRequest(SignalKind.CUSTOM, payload, raw[len("custom:") :])
    if isinstance(raw, dict) and set(raw) == {"custom"}:
        name = raw["custom"]
        if isinstance(name, str) and name:
            return SignalRequest(SignalKind.CUSTOM, payload, name)
    raise ValidationError(
        'must be "pause", "resume", "cancel", "update_context" or {"custom": "<name>"}',
        path="signal_type",
    )


def signal_type_to_json(signal: Signal) -> Any:
    return {"custom": signal.name} if signal.kind is SignalKind.CUSTOM else signal.kind.value


def approval_to_json(a: Approval) -> dict[str, Any]:
    return {
        "instance_id": a.instance_id,
        "tenant_id": a.tenant_id,
        "namespace": a.namespace,
        "sequence_id": a.sequence_id,
        "sequence_name": a.sequence_name,
        "block_id": a.block_id,
        "prompt": a.prompt,
        "choices": a.choices,
        "store_as": a.store_as,
        "timeout_seconds": None if a.timeout_ms is None else a.timeout_ms // 1000,
        "escalation_handler": a.escalation_handler,
        "waiting_since": format_time(a.waiting_since),
        "metadata": a.metadata,
    }
