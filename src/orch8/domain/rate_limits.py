"""Rate limits: at most `max_count` uses of a key in any window of `window_seconds`.

An exact sliding log of *reservations*, not Orch8's fixed window (which admits
up to twice the limit across a window boundary). Every use asks for a place and
is given an instant, `at`: now when the window has room, else the earliest
instant at which it will have room, after every place already given out. The
place is recorded at once, so a deferred use is not refused again when it comes
back: it is deferred to the moment it *will* be admitted, and each waiting use
is woken once, never polled.

The log is kept spaced by `window + grace`: any `max_count + 1` consecutive
reservations span at least that. A use must start within `grace` after its
instant (between `at` and `deadline`); one that comes back later has lost its
place, which is given back (it was never used), and gets a new one. So
wherever within that margin each use starts, no half-open interval of `window`
ever holds more than `max_count` *starts*: what the provider behind the key
sees, not just the log.
The grace is a twentieth of the window, at most 25 ms: the limit's own rate
is kept to within 2.5 % for windows of a second and more.

Places are handed out in order (a new one is never before the newest), which
is what makes each decision depend on two entries of the log only: the newest,
and the `max_count`-th newest, whose instant plus the spacing is when the
window next has room. Instants recorded later than `now` (reservations, or
another process's clock running a little ahead) therefore only ever make the
limit stricter. Storage keeps admissions for `KEPT_WINDOWS` windows behind
`now`; anything older can no longer matter and is pruned.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from attrs import field, frozen

from orch8.domain.errors import ValidationError

MAX_KEY_LENGTH = 255
MAX_COUNT = 2**31 - 1
MIN_WINDOW_SECONDS = 1e-6  # one microsecond, the resolution of stored instants
MAX_WINDOW_SECONDS = 366 * 24 * 3600.0  # a year: the longest window a limit may span
KEPT_WINDOWS = 2
GRACE_FRACTION = 20
MAX_GRACE = timedelta(milliseconds=25)
_MICROSECOND = timedelta(microseconds=1)


def _text(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("must be a non-empty string", path=name)
        if len(value) > MAX_KEY_LENGTH:
            raise ValidationError(f"must be at most {MAX_KEY_LENGTH} characters", path=name)
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationError("must not contain control characters", path=name)

    return check


def _max_count(_inst: object, _attr: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("must be an integer", path="max_count")
    if value <= 0:
        raise ValidationError("must be positive", path="max_count")
    if value > MAX_COUNT:
        raise ValidationError(f"must be at most {MAX_COUNT}", path="max_count")


def _seconds(value: Any) -> Any:
    """Whole numbers become floats; anything else is left for the validator."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return value


def _window(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, float) or math.isnan(value):
        raise ValidationError("must be a number of seconds", path="window_seconds")
    if value <= 0:
        raise ValidationError("must be positive", path="window_seconds")
    if not MIN_WINDOW_SECONDS <= value <= MAX_WINDOW_SECONDS:
        raise ValidationError(
            f"must be between {MIN_WINDOW_SECONDS} and {MAX_WINDOW_SECONDS:.0f}",
            path="window_seconds",
        )


def _instant(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError("must be a timezone-aware datetime", path=name)

    return check


@frozen
class RateLimit:
    """The limit on one key of one tenant (every field is checked on construction;
    a bad one raises ValidationError naming it)."""

    tenant_id: str = field(validator=_text("tenant_id"))
    key: str = field(validator=_text("key"))
    max_count: int = field(validator=_max_count)
    window_seconds: float = field(converter=_seconds, validator=_window)
    created_at: datetime = field(validator=_instant("created_at"))
    updated_at: datetime = field(validator=_instant("updated_at"))

    @property
    def window(self) -> timedelta:
        """The window, to the microsecond (every backend computes with this value)."""
        return max(timedelta(seconds=self.window_seconds), _MICROSECOND)

    @property
    def window_us(self) -> int:
        return self.window // _MICROSECOND

    @property
    def grace(self) -> timedelta:
        """How late after its reserved instant a use may still start."""
        return min(self.window // GRACE_FRACTION, MAX_GRACE)

    @property
    def spacing(self) -> timedelta:
        """What any `max_count + 1` consecutive reservations span, at least."""
        return self.window + self.grace

    def keep(self, held: datetime | None, now: datetime) -> Admission | None:
        """The place `held` (given to this use earlier) while the use can still start
        in it (`now` at most `grace` after it); None when there is none to keep.
        Past that it was never used, and storage gives it back (removes one entry
        of that instant from the log) before reserving a new one."""
        if held is not None and now <= held + self.grace:
            return Admission(at=held, deadline=held + self.grace, fresh=False)
        return None

    def reserve(
        self, now: datetime, *, newest: datetime | None, full_from: datetime | None
    ) -> Admission:
        """A new place for a use asking at `now`: after `newest` (the latest instant in
        the log) and at least `spacing` after `full_from` (the `max_count`-th newest;
        None while the log holds fewer)."""
        at = now
        if newest is not None and newest > at:
            at = newest
        if full_from is not None and full_from + self.spacing > at:
            at = full_from + self.spacing
        return Admission(at=at, deadline=at + self.grace)

    def prune_before(self, now: datetime) -> datetime:
        """Admissions at or before this instant can no longer affect a decision."""
        return now - KEPT_WINDOWS * self.window


@frozen
class Admission:
    """A place under a limit: the use starts no earlier than `at` and no later than
    `deadline`. `fresh` places are new and must be recorded in the log; a kept
    (held) one already is."""

    at: datetime
    deadline: datetime
    fresh: bool = True

    def lapsed(self, now: datetime) -> bool:
        return now > self.deadline
