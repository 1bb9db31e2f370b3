"""RFC 3339 parsing and chrono-compatible `strftime`, without the platform's C library.

`format_date` must print what Orch8 (chrono) prints on every machine, so the
format specifiers are implemented here rather than borrowed from `time.strftime`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_MONTHS: Final = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS: Final = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class DateFormatError(ValueError):
    """A format string chrono would refuse."""


def parse_rfc3339(text: str) -> datetime | None:
    """chrono's `DateTime::parse_from_rfc3339`; None when the text is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    second = 59 if second == 60 else second  # chrono accepts a leap second; read it as :59
    if zulu:
        tz = UTC
    else:
        minutes = int(off_h) * 60 + int(off_m)
        if int(off_m) > 59 or minutes >= 24 * 60:
            return None
        tz = timezone(timedelta(minutes=-minutes if sign == "-" else minutes))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def to_rfc3339(moment: datetime) -> str:
    """chrono's `to_rfc3339` of a UTC instant (fraction digits 0, 3, 6 as needed)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    base = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment:%H:%M:%S}"
    micro = moment.microsecond
    if micro == 0:
        fraction = ""
    elif micro % 1000 == 0:
        fraction = f".{micro // 1000:03d}"
    else:
        fraction = f".{micro:06d}"
    return f"{base}{fraction}+00:00"


def _offset(moment: datetime, colons: int) -> str:
    delta = moment.utcoffset() or timedelta(0)
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hours, minutes, seconds = total // 3600, total % 3600 // 60, total % 60
    if colons == 0:
        return f"{sign}{hours:02d}{minutes:02d}"
    if colons == 1:
        return f"{sign}{hours:02d}:{minutes:02d}"
    if colons == 2:
        return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{sign}{hours:02d}"


def _hour12(moment: datetime) -> int:
    return (moment.hour + 11) % 12 + 1


def _nanos(moment: datetime) -> int:
    return moment.microsecond * 1000


def _auto_fraction(moment: datetime) -> str:
    nanos = _nanos(moment)
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}"
    return f".{nanos:09d}"


def _week_number(moment: datetime, first_weekday_sunday: bool) -> int:
    yday = moment.timetuple().tm_yday - 1
    weekday = (moment.weekday() + 1) % 7 if first_weekday_sunday else moment.weekday()
    return (yday + 7 - weekday) // 7


# Numeric specifiers: (value, width, default padding character).
_NUMERIC: Final[dict[str, Callable[[datetime], tuple[int, int, str]]]] = {
    "Y": lambda m: (m.year, 4, "0"),
    "C": lambda m: (m.year // 100, 2, "0"),
    "y": lambda m: (m.year % 100, 2, "0"),
    "m": lambda m: (m.month, 2, "0"),
    "d": lambda m: (m.day, 2, "0"),
    "e": lambda m: (m.day, 2, " "),
    "H": lambda m: (m.hour, 2, "0"),
    "k": lambda m: (m.hour, 2, " "),
    "I": lambda m: (_hour12(m), 2, "0"),
    "l": lambda m: (_hour12(m), 2, " "),
    "M": lambda m: (m.minute, 2, "0"),
    "S": lambda m: (m.second, 2, "0"),
    "j": lambda m: (m.timetuple().tm_yday, 3, "0"),
    "u": lambda m: (m.isoweekday(), 1, "0"),
    "w": lambda m: (m.isoweekday() % 7, 1, "0"),
    "U": lambda m: (_week_number(m, True), 2, "0"),
    "W": lambda m: (_week_number(m, False), 2, "0"),
    "G": lambda m: (m.isocalendar()[0], 4, "0"),
    "g": lambda m: (m.isocalendar()[0] % 100, 2, "0"),
    "V": lambda m: (m.isocalendar()[1], 2, "0"),
}

_TEXT: Final[dict[str, Callable[[datetime], str]]] = {
    "b": lambda m: _MONTHS[m.month - 1][:3],
    "h": lambda m: _MONTHS[m.month - 1][:3],
    "B": lambda m: _MONTHS[m.month - 1],
    "a": lambda m: _DAYS[m.weekday()][:3],
    "A": lambda m: _DAYS[m.weekday()],
    "p": lambda m: "AM" if m.hour < 12 else "PM",
    "P": lambda m: "am" if m.hour < 12 else "pm",
    "f": lambda m: f"{_nanos(m):09d}",
    "z": lambda m: _offset(m, 0),
    "Z": lambda m: _offset(m, 1),
    "s": lambda m: str(int(m.timestamp())),
    "t": lambda m: "\t",
    "n": lambda m: "\n",
    "%": lambda m: "%",
}

_COMPOSITE: Final = {
    "D": "%m/%d/%y",
    "x": "%m/%d/%y",
    "F": "%Y-%m-%d",
    "v": "%e-%b-%Y",
    "R": "%H:%M",
    "T": "%H:%M:%S",
    "X": "%H:%M:%S",
    "r": "%I:%M:%S %p",
    "c": "%a %b %e %H:%M:%S %Y",
}


def strftime(moment: datetime, fmt: str) -> str:
    """Format like chrono's `DateTime::format`; DateFormatError for an unknown specifier."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        i = _specifier(moment, fmt, i + 1, out)
    return "".join(out)


def _specifier(moment: datetime, fmt: str, i: int, out: list[str]) -> int:
    pad: str | None = None
    if i < len(fmt) and fmt[i] in "-_0":
        pad = fmt[i]
        i += 1
    if i >= len(fmt):
        raise DateFormatError("incomplete format specifier at the end")
    spec = fmt[i]
    if spec in _NUMERIC:
        value, width, default = _NUMERIC[spec](moment)
        fill = {"-": "", "_": " ", "0": "0"}.get(pad or "", default)
        digits = str(abs(value))
        if fill:
            digits = digits.rjust(width, fill)
        out.append(("-" if value < 0 else "") + digits)
        return i + 1
    if pad is not None:
        raise DateFormatError(f"padding modifier on %{spec}")
    if spec in _TEXT:
        out.append(_TEXT[spec](moment))
        return i + 1
    if spec in _COMPOSITE:
        out.append(strftime(moment, _COMPOSITE[spec]))
        return i + 1
    return _long_specifier(moment, fmt, i, out)


def _long_specifier(moment: datetime, fmt: str, i: int, out: list[str]) -> int:
    rest = fmt[i:]
    nanos = _nanos(moment)
    for prefix, text in (
        (".3f", f".{nanos // 1_000_000:03d}"),
        (".6f", f".{nanos // 1000:06d}"),
        (".9f", f".{nanos:09d}"),
        (".f", _auto_fraction(moment)),
        ("3f", f"{nanos // 1_000_000:03d}"),
        ("6f", f"{nanos // 1000:06d}"),
        ("9f", f"{nanos:09d}"),
        (":::z", _offset(moment, 3)),
        ("::z", _offset(moment, 2)),
        (":z", _offset(moment, 1)),
    ):
        if rest.startswith(prefix):
            out.append(text)
            return i + len(prefix)
    raise DateFormatError(f"unknown format specifier %{rest[:1]}")
