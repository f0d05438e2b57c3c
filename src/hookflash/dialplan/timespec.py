"""Asterisk time specifications: ``times,weekdays,mdays,months[,timezone]``.

Used by timed ``include =>``, ``GotoIfTime``, ``ExecIfTime`` and ``IFTIME``. Each field is
``*`` or a list joined with ``&`` of single values or ``start-end`` ranges that may wrap
(``fri-mon``, ``22:00-06:00``). Times are minutes; the end minute of a range is
included (``9:00-17:00`` is true at 17:00:59), as Asterisk's range check does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


class TimeSpecError(ValueError):
    pass


def _ranges(field: str, parse: "callable", size: int, base: int) -> frozenset[int]:  # type: ignore[valid-type]
    field = field.strip()
    if not field or field == "*":
        return frozenset(range(base, base + size))
    result: set[int] = set()
    for part in field.split("&"):
        start_s, dash, end_s = part.partition("-")
        start = parse(start_s.strip())
        end = parse(end_s.strip()) if dash else start
        value = start
        for _ in range(size):
            result.add(value)
            if value == end:
                break
            value = base + (value - base + 1) % size
    return frozenset(result)


def _name_parser(names: list[str], base: int, what: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        low = text.lower()[:3]
        if low in names:
            return names.index(low) + base
        if text.isdigit() and base <= int(text) < base + len(names):
            return int(text)
        raise TimeSpecError(f"invalid {what} '{text}'; expected one of {', '.join(names)}")
    return parse


def _mday(text: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 31:
        return int(text)
    raise TimeSpecError(f"invalid day of month '{text}'; expected 1-31")


def _minute(text: str) -> int:
    hh, colon, mm = text.partition(":")
    try:
        hours, minutes = int(hh), int(mm) if colon else 0
    except ValueError:
        raise TimeSpecError(f"invalid time '{text}'; expected hh:mm") from None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise TimeSpecError(f"invalid time '{text}'; expected hh:mm between 00:00 and 23:59")
    return hours * 60 + minutes


@dataclass(frozen=True)
class TimeSpec:
    minutes: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    mdays: frozenset[int]
    months: frozenset[int]  # 1 = January
    tz: ZoneInfo | None
    text: str

    def matches(self, when: float | dt.datetime | None = None) -> bool:
        if when is None or isinstance(when, (int, float)):
            moment = dt.datetime.fromtimestamp(when if when is not None else dt.datetime.now().timestamp(),
                                               self.tz)
        else:
            moment = when.astimezone(self.tz) if self.tz else when
        weekday = (moment.weekday() + 1) % 7
        return (moment.hour * 60 + moment.minute in self.minutes
                and weekday in self.weekdays
                and moment.day in self.mdays
                and moment.month in self.months)


def parse_timespec(text: str, sep: str = ",") -> TimeSpec:
    """Parse ``times,weekdays,mdays,months[,tz]``; missing fields mean ``*``."""
    fields = [f.strip() for f in text.split(sep)]
    if len(fields) > 5:
        raise TimeSpecError(f"too many fields in '{text}'; expected times,weekdays,mdays,months[,timezone]")
    fields += ["*"] * (4 - len(fields))
    tz = None
    if len(fields) == 5 and fields[4]:
        try:
            tz = ZoneInfo(fields[4])
        except (ZoneInfoNotFoundError, ValueError):
            raise TimeSpecError(f"unknown time zone '{fields[4]}'; expected a zoneinfo name such as Europe/Paris") from None
    return TimeSpec(
        minutes=_ranges(fields[0], _minute, 1440, 0),
        weekdays=_ranges(fields[1], _name_parser(DAYS, 0, "weekday"), 7, 0),
        mdays=_ranges(fields[2], _mday, 31, 1),
        months=_ranges(fields[3], _name_parser(MONTHS, 1, "month"), 12, 1),
        tz=tz,
        text=text,
    )
