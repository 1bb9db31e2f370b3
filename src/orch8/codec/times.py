"""RFC 3339 timestamps, the way Orch8 writes them (UTC, 'Z')."""

from __future__ import annotations

from datetime import UTC, datetime

from orch8.domain.errors import ValidationError


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError("must be an RFC 3339 timestamp string", path=path)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError("must be an RFC 3339 timestamp", path=path) from None
    if parsed.tzinfo is None:
        raise ValidationError("must include a timezone offset (e.g. 'Z')", path=path)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError("is out of range", path=path) from None
