"""The cron schedule wire format (Orch8's `CronSchedule`, plus the overlap fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orch8.application.use_cases.cron import DEFAULT_NAMESPACE, CronChanges, NewCron
from orch8.codec.fields import boolean, json_object, obj, string
from orch8.codec.times import format_time
from orch8.domain.cron import CronSchedule, OverlapPolicy, overlap_policy
from orch8.domain.errors import ValidationError


def _required_text(data: Mapping[str, Any], key: str) -> str:
    value = string(data, key, "", required=True)
    if not value or not value.strip():
        raise ValidationError("must not be empty", path=key)
    return value


def _policy(data: Mapping[str, Any]) -> OverlapPolicy | None:
    raw = data.get("overlap_policy")
    return None if raw is None else overlap_policy(raw)


def new_cron_from_json(value: object) -> NewCron:
    data = obj(value, "body")
    return NewCron(
        sequence_id=_required_text(data, "sequence_id"),
        cron_expr=_required_text(data, "cron_expr"),
        tenant_id=string(data, "tenant_id", "") or None,
        namespace=string(data, "namespace", "") or DEFAULT_NAMESPACE,
        timezone=string(data, "timezone", "") or "UTC",
        metadata=dict(json_object(data, "metadata", "") or {}),
        enabled=boolean(data, "enabled", "", True),
        overlap_policy=_policy(data) or OverlapPolicy.ALLOW,
    )


def cron_changes_from_json(value: object) -> CronChanges:
    data = obj(value, "body")
    enabled = data.get("enabled")
    return CronChanges(
        cron_expr=string(data, "cron_expr", ""),
        timezone=string(data, "timezone", ""),
        enabled=None if enabled is None else boolean(data, "enabled", "", True),
        metadata=json_object(data, "metadata", ""),
        overlap_policy=_policy(data),
    )


def cron_to_json(s: CronSchedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "tenant_id": s.tenant_id,
        "namespace": s.namespace,
        "sequence_id": s.sequence_id,
        "cron_expr": s.cron_expr,
        "timezone": s.timezone,
        "enabled": s.enabled,
        "metadata": dict(s.metadata),
        "overlap_policy": s.overlap_policy.value,
        "skipped_fires": s.skipped_fires,
        "last_skipped_at": format_time(s.last_skipped_at),
        "last_triggered_at": format_time(s.last_triggered_at),
        "next_fire_at": format_time(s.next_fire_at),
        "created_at": format_time(s.created_at),
        "updated_at": format_time(s.updated_at),
    }
