"""Duration parsing shared by every block field that holds one.

Orch8's wire format is integer milliseconds; a float is read as *seconds* for
backwards compatibility. Strings and negatives are refused so that a typo
("1s", -5) fails at sequence creation instead of firing at the wrong time.
"""

from __future__ import annotations

from orch8.domain.errors import ValidationError

# A century: longer than any campaign, far from datetime's year-9999 edge.
MAX_DURATION_MS = 100 * 366 * 86_400_000


def parse_duration_ms(value: object, *, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            "must be a duration in integer milliseconds (a float means seconds)", path=path
        )
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationError("must be a finite duration", path=path)
    if abs(value) > MAX_DURATION_MS:
        raise ValidationError("must be at most 100 years", path=path)
    millis = value if isinstance(value, int) else round(value * 1000)
    if millis < 0:
        raise ValidationError("must not be negative", path=path)
    if millis > MAX_DURATION_MS:
        raise ValidationError("must be at most 100 years", path=path)
    return millis
