"""iCalendar (RFC 5545) in, occurrences out; and the VEVENT writer for CALENDAR_WRITE.

Every backend that receives iCalendar text (``ical``, ``caldav``) goes through here:

1. :func:`parse` turns bytes into ``VCALENDAR`` components (``icalendar``), refusing
   what is not iCalendar at all with a :class:`CalendarError` that names the calendar.
2. :func:`expand` turns those components into one :class:`CalendarEvent` per occurrence
   inside a window, expanding RRULE/RDATE/EXDATE and applying RECURRENCE-ID overrides
   (``recurring-ical-events``). Each UID is expanded on its own, so one bad VEVENT is
   skipped with a warning naming the calendar, the UID and what is wrong, and the
   rest of the calendar still counts.
3. :func:`to_ical` writes one event as a complete ``VCALENDAR`` for a CalDAV PUT.

Interpretation rules (RFC 5545 section references beside the code):

* times with a TZID use that zone (VTIMEZONE or the IANA database), ``Z`` times are UTC,
  floating times and all-day dates are read in the *server's* zone (``zone``);
* ``STATUS:CANCELLED`` drops the occurrence (it never rings and never marks busy);
  ``TRANSP:TRANSPARENT`` is FREE, ``STATUS:TENTATIVE`` is TENTATIVE, else BUSY;
* the alarm of an occurrence is the earliest of its VALARM triggers, relative to the
  start, to the end (``RELATED=END``) or absolute (see :func:`_alarm`).

This module opens no sockets and reads no clock: ``now`` and the window are passed in.
Parsing and expansion are CPU work; backends run them in a worker thread.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]
import x_wr_timezone  # type: ignore[import-untyped]

from hookflash.calendar.event import BusyState, CalendarError, CalendarEvent

log = logging.getLogger("hookflash.calendar.ics")



@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or huge calendar finite in memory and time."""

    max_bytes: int = 32 * 1024 * 1024  # one iCalendar document
    max_events: int = 100_000  # occurrences returned for one calendar and window
    max_per_series: int = 5_000  # occurrences of one UID inside the window
    max_rrule_steps: int = 200_000  # estimated RRULE iterations from DTSTART to the window end
    max_text: int = 16 * 1024  # summary, location, organizer, ... (characters)
    max_description: int = 64 * 1024


DEFAULT_LIMITS = Limits()

# Properties whose damage makes an occurrence's time unknowable: such a VEVENT is skipped.
_ESSENTIAL = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID", "UID"}


# --------------------------------------------------------------------------- zones
def local_zone() -> tzinfo:
    """The machine's zone with its DST rules (not just today's offset)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        text = Path("/etc/timezone").read_text().strip()
        if text:
            return ZoneInfo(text)
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone_named(name: str) -> tzinfo:
    """``timezone = Europe/Berlin`` (hookflash extension); raises ValueError."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone '{name}' (expected an IANA name like Europe/Berlin)") from exc


# --------------------------------------------------------------------------- parse
def parse(data: bytes | str, calendar: str, limits: Limits = DEFAULT_LIMITS) -> list[icalendar.Component]:
    """The VCALENDAR components of an iCalendar document; CalendarError if it is none."""
    if len(data) > limits.max_bytes:
        raise CalendarError(f"calendar '{calendar}': iCalendar data of {len(data)} bytes "
                            f"exceeds the limit of {limits.max_bytes} bytes")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    if "\x00" in text:
        raise CalendarError(f"calendar '{calendar}': not iCalendar data (binary content)")
    if not text.lstrip("\ufeff \t\r\n").upper().startswith("BEGIN:VCALENDAR"):
        head = _short(text.lstrip()[:40])
        raise CalendarError(f"calendar '{calendar}': not iCalendar data (does not start with "
                            f"BEGIN:VCALENDAR but with '{head}')")
    try:
        components = icalendar.Calendar.from_ical(text, multiple=True)
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise CalendarError(f"calendar '{calendar}': malformed iCalendar data: {_short(str(exc))}") from None
    calendars: list[icalendar.Component] = [c for c in components if getattr(c, "name", "") == "VCALENDAR"]
    if not calendars:
        raise CalendarError(f"calendar '{calendar}': malformed iCalendar data (no complete VCALENDAR)")
    return calendars


# --------------------------------------------------------------------------- expand
def expand(calendars: Iterable[icalendar.Component], start: datetime, end: datetime, *,
           calendar: str, zone: tzinfo | None = None,
           limits: Limits = DEFAULT_LIMITS) -> list[CalendarEvent]:
    """Occurrences overlapping [start, end] of every VEVENT in ``calendars``, sorted by start."""
    zone = zone or local_zone()
    out: list[CalendarEvent] = []
    seen: set[tuple[str, str]] = set()
    for vcal in calendars:
        try:
            vcal = x_wr_timezone.to_standard(vcal)
        except Exception as exc:  # noqa: BLE001 - hostile X-WR-TIMEZONE
            log.warning("calendar '%s': X-WR-TIMEZONE ignored: %s", calendar, _short(str(exc)))
        for uid, group in _groups(vcal, calendar).items():
            try:
                events = _expand_uid(uid, group, start, end, zone, calendar, limits)
            except _Skip as exc:
                log.warning("calendar '%s': event '%s' skipped: %s", calendar, _short(uid), exc)
                continue
            except Exception as exc:  # noqa: BLE001 - any library failure on hostile input
                log.warning("calendar '%s': event '%s' skipped: %s: %s", calendar, _short(uid),
                            type(exc).__name__, _short(str(exc)))
                continue
            for ev in events:
                if ev.key in seen:
                    continue
                seen.add(ev.key)
                out.append(ev)
                if len(out) >= limits.max_events:
                    log.warning("calendar '%s': more than %d occurrences in the window; the rest "
                                "are ignored", calendar, limits.max_events)
                    out.sort(key=lambda e: (e.start, e.uid))
                    return out
    out.sort(key=lambda e: (e.start, e.uid))
    return out


def occurrences(data: bytes | str, start: datetime, end: datetime, *, calendar: str,
                zone: tzinfo | None = None, limits: Limits = DEFAULT_LIMITS) -> list[CalendarEvent]:
    """:func:`parse` then :func:`expand`."""
    return expand(parse(data, calendar, limits), start, end, calendar=calendar, zone=zone, limits=limits)


class _Skip(Exception):
    """This VEVENT (UID) cannot be used; the text says why."""


def _groups(vcal: icalendar.Component, calendar: str) -> dict[str, list[icalendar.Component]]:
    groups: dict[str, list[icalendar.Component]] = {}
    for index, comp in enumerate(vcal.subcomponents):
        if comp.name != "VEVENT":
            continue
        uid = str(comp.get("UID", "") or "")
        if not uid:
            # RFC 5545 3.8.4.7 makes UID required; a stable stand-in keeps the event usable.
            uid = f"no-uid-{index}@{calendar}"
            comp["UID"] = uid
        groups.setdefault(uid, []).append(comp)
    return groups


def _expand_uid(uid: str, group: list[icalendar.Component], start: datetime, end: datetime,
                zone: tzinfo, calendar: str, limits: Limits) -> list[CalendarEvent]:
    for comp in group:
        for prop, why in getattr(comp, "errors", ()):
            if prop.upper() in _ESSENTIAL:
                raise _Skip(f"bad {prop}: {_short(str(why))}")
        if "DTSTART" not in comp:
            raise _Skip("no DTSTART")
        _check_rrule_cost(comp, end, zone, limits)
    recurring = len(group) > 1 or any("RRULE" in c or "RDATE" in c or "RECURRENCE-ID" in c for c in group)
    if not recurring:
        return _single(uid, group[0], start, end, zone, limits)
    sub = icalendar.Calendar()
    for comp in group:
        sub.add_component(comp)
    query = recurring_ical_events.CalendarQuery(sub, components=("VEVENT",))
    # The library compares floating times with the window's wall clock: give it the window
    # in the server's zone, a day wider on each side, and filter exactly after conversion.
    span_start = (start.astimezone(zone) - timedelta(days=1)).replace(tzinfo=None)
    span_end = (end.astimezone(zone) + timedelta(days=1)).replace(tzinfo=None)
    events: list[CalendarEvent] = []
    absolute: list[CalendarEvent] = []
    for series in query.series:
        count = 0
        for occ in series.between(span_start, span_end):
            occ_start = _as_utc(occ.start, zone)
            occ_end = _as_utc(occ.end, zone) if occ.end is not None else occ_start
            if max(occ_end, occ_start) < start or occ_start > end:
                continue
            comp = occ.as_component(False)
            made = _event(uid, comp, occ.start, occ.end, zone, recurring, limits)
            if made is None:
                continue
            ev, absolute_alarm = made
            if ev.end < start or ev.start > end:
                continue
            count += 1
            if count > limits.max_per_series:
                log.warning("calendar '%s': event '%s' has more than %d occurrences in the window; "
                            "the rest are ignored", calendar, _short(uid), limits.max_per_series)
                break
            events.append(ev)
            if absolute_alarm and recurring:
                absolute.append(ev)
    _absolute_alarms_once(absolute, start)
    return events


def _dt(comp: icalendar.Component, name: str) -> Any:
    """The date/time/duration value of a property (typed loosely: icalendar's union is wide)."""
    prop: Any = comp[name]
    return prop.dt


def _single(uid: str, comp: icalendar.Component, start: datetime, end: datetime, zone: tzinfo,
            limits: Limits) -> list[CalendarEvent]:
    """A VEVENT without recurrence: no expansion needed (RFC 5545 3.6.1 for its end)."""
    raw_start: Any = _dt(comp, "DTSTART")
    raw_end: Any
    if "DTEND" in comp:
        raw_end = _dt(comp, "DTEND")
    elif "DURATION" in comp:
        raw_end = raw_start + _dt(comp, "DURATION")
    elif isinstance(raw_start, datetime):
        raw_end = raw_start
    else:
        raw_end = raw_start + timedelta(days=1)
    if max(_as_utc(raw_end, zone), _as_utc(raw_start, zone)) < start or _as_utc(raw_start, zone) > end:
        return []
    made = _event(uid, comp, raw_start, raw_end, zone, False, limits)
    return [made[0]] if made is not None else []


_FREQ_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400,
                 "WEEKLY": 7 * 86400, "MONTHLY": 31 * 86400, "YEARLY": 366 * 86400}
_DAY_PARTS = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
_TIME_PARTS = (("BYHOUR", 3600), ("BYMINUTE", 60), ("BYSECOND", 1))


def _check_rrule_cost(comp: icalendar.Component, end: datetime, zone: tzinfo, limits: Limits) -> None:
    """Refuse an RRULE whose expansion up to the window end would take too long.

    dateutil iterates every period from DTSTART, so ``FREQ=SECONDLY`` starting in 1970
    (or ``FREQ=MINUTELY;BYSECOND=0,1,...,59``) would stall a refresh for hours.
    """
    rules = comp.get("RRULE")
    if rules is None:
        return
    dtstart = _as_utc(_dt(comp, "DTSTART"), zone)
    for rule in rules if isinstance(rules, list) else [rules]:
        freq = str((rule.get("FREQ") or [""])[0]).upper()
        if freq not in _FREQ_SECONDS:
            raise _Skip(f"RRULE without a valid FREQ ({_short(freq) or 'none'})")
        try:
            interval = max(1, int((rule.get("INTERVAL") or [1])[0]))
        except (TypeError, ValueError):
            raise _Skip("RRULE with a bad INTERVAL") from None
        stop = end
        until = (rule.get("UNTIL") or [None])[0]
        if isinstance(until, (date, datetime)):
            stop = min(stop, _as_utc(until, zone))
        period = _FREQ_SECONDS[freq] * interval
        steps = max(0.0, (stop - dtstart).total_seconds()) / period + 1
        per_step = 1
        if _FREQ_SECONDS[freq] > 86400 and any(rule.get(p) for p in _DAY_PARTS):
            per_step *= _FREQ_SECONDS[freq] // 86400
        for part, unit in _TIME_PARTS:
            if rule.get(part) and unit < _FREQ_SECONDS[freq]:
                per_step *= len(rule[part])
        if steps * per_step > limits.max_rrule_steps:
            raise _Skip(f"RRULE too costly to expand (FREQ={freq} from "
                        f"{dtstart:%Y-%m-%d} needs about {int(steps * per_step)} steps; "
                        f"limit {limits.max_rrule_steps})")


def _event(uid: str, comp: icalendar.Component, raw_start: Any, raw_end: Any, zone: tzinfo,
           recurring: bool, limits: Limits) -> tuple[CalendarEvent, bool] | None:
    status = str(comp.get("STATUS", "")).upper()
    if status == "CANCELLED":  # RFC 5545 3.8.1.11
        return None
    start = _as_utc(raw_start, zone)
    end = _as_utc(raw_end, zone) if raw_end is not None else start
    end = max(end, start)
    all_day = isinstance(raw_start, date) and not isinstance(raw_start, datetime)
    if str(comp.get("TRANSP", "")).upper() == "TRANSPARENT":  # RFC 5545 3.8.2.7
        busy = BusyState.FREE
    elif status == "TENTATIVE":
        busy = BusyState.TENTATIVE
    else:
        busy = BusyState.BUSY
    rid = ""
    if recurring:
        rid_prop = comp.get("RECURRENCE-ID")
        rid_value = rid_prop.dt if rid_prop is not None else raw_start
        rid = _as_utc(rid_value, zone).strftime("%Y%m%dT%H%M%SZ")
    alarm, absolute = _alarm(comp, start, end, zone)
    return CalendarEvent(
        uid=_clean(uid, limits.max_text),
        start=start,
        end=end,
        summary=_text(comp, "SUMMARY", limits.max_text),
        description=_text(comp, "DESCRIPTION", limits.max_description),
        organizer=_text(comp, "ORGANIZER", limits.max_text),
        location=_text(comp, "LOCATION", limits.max_text),
        categories=_categories(comp, limits.max_text),
        priority=_priority(comp),
        busy_state=busy,
        alarm=alarm,
        attendees=_attendees(comp, limits.max_text),
        recurrence_id=rid,
        all_day=all_day,
    ), absolute


def _alarm(comp: icalendar.Component, start: datetime, end: datetime,
           zone: tzinfo) -> tuple[datetime | None, bool]:
    """The earliest VALARM trigger (RFC 5545 3.8.6.3) of this occurrence, and whether
    it is an absolute one."""
    best: datetime | None = None
    best_absolute = False
    for valarm in comp.subcomponents:
        if valarm.name != "VALARM":
            continue
        trigger = valarm.get("TRIGGER")
        if trigger is None:
            continue
        value = getattr(trigger, "dt", None)
        if isinstance(value, timedelta):
            related = str(trigger.params.get("RELATED", "START")).upper()
            when, absolute = (end if related == "END" else start) + value, False
        elif isinstance(value, (datetime, date)):
            when, absolute = _as_utc(value, zone), True
        else:
            continue
        if best is None or when < best:
            best, best_absolute = when, absolute
    return best, best_absolute


def _absolute_alarms_once(events: list[CalendarEvent], window_start: datetime) -> None:
    """An absolute trigger names one moment: in a recurring series it belongs to the first
    occurrence starting at or after it, not to every occurrence (which would ring the
    same second many times). When that moment is before the window, the occurrences
    before the window are unknown here, so no occurrence keeps it."""
    by_alarm: dict[datetime, list[CalendarEvent]] = {}
    for ev in events:
        assert ev.alarm is not None
        by_alarm.setdefault(ev.alarm, []).append(ev)
    for alarm, group in by_alarm.items():
        group.sort(key=lambda e: e.start)
        owner = None
        if alarm >= window_start:
            owner = next((e for e in group if e.start >= alarm), None)
        for ev in group:
            if ev is not owner:
                ev.alarm = None


def _as_utc(value: Any, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating (RFC 5545 3.3.5 form 1): the server's zone
            value = value.replace(tzinfo=zone)
        utc: datetime = value.astimezone(UTC)
        return utc
    if isinstance(value, date):  # all-day: midnight in the server's zone
        return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)
    raise _Skip(f"not a date or time: {_short(repr(value))}")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(value: str, limit: int) -> str:
    return _CONTROL.sub("", value)[:limit]


def _text(comp: icalendar.Component, name: str, limit: int) -> str:
    value = comp.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return _clean(str(value), limit)


def _categories(comp: icalendar.Component, limit: int) -> str:
    value = comp.get("CATEGORIES")
    if value is None:
        return ""
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        cats = getattr(item, "cats", None)
        if cats is None:
            names.extend(s.strip() for s in str(item).split(","))
        else:
            names.extend(str(c) for c in cats)
    return _clean(",".join(n for n in names if n), limit)


def _priority(comp: icalendar.Component) -> int:
    value = comp.get("PRIORITY")
    try:
        number = int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
    return number if 0 <= number <= 9 else 0  # RFC 5545 3.8.1.9


def _attendees(comp: icalendar.Component, limit: int) -> list[str]:
    value = comp.get("ATTENDEE")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_clean(str(a), limit) for a in items[:1000] if str(a)]


def _short(text: str, limit: int = 120) -> str:
    text = _CONTROL.sub("?", text.replace("\r", "\\r").replace("\n", "\\n"))
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- write
def new_uid() -> str:
    return str(uuid.uuid4())


def to_ical(event: CalendarEvent, now: datetime, prodid: str = "-//hookflash//res_calendar//EN") -> str:
    """One event as a VCALENDAR for a CalDAV PUT (what CALENDAR_WRITE stores).

    DTSTAMP, DTSTART and DTEND in UTC; only non-empty properties; PRIORITY only if
    above 0; STATUS CONFIRMED (busy) or TENTATIVE; a FREE event is TRANSP:TRANSPARENT
    so that it reads back as free (Asterisk writes nothing for it).
    """
    cal = icalendar.Calendar()
    cal.add("PRODID", prodid)
    cal.add("VERSION", "2.0")
    vevent = icalendar.Event()
    vevent.add("DTSTAMP", now.astimezone(UTC))
    vevent.add("UID", event.uid or new_uid())
    vevent.add("DTSTART", event.start.astimezone(UTC))
    vevent.add("DTEND", max(event.end, event.start).astimezone(UTC))
    for name, value in (("SUMMARY", event.summary), ("DESCRIPTION", event.description),
                        ("LOCATION", event.location)):
        value = _clean(value, DEFAULT_LIMITS.max_description)
        if value:
            vevent.add(name, value)
    organizer = _clean(event.organizer, DEFAULT_LIMITS.max_text)
    if organizer:
        vevent.add("ORGANIZER", organizer if ":" in organizer else f"mailto:{organizer}")
    cats = [c.strip() for c in _clean(event.categories, DEFAULT_LIMITS.max_text).split(",") if c.strip()]
    if cats:
        vevent.add("CATEGORIES", cats)
    if 0 < event.priority <= 9:
        vevent.add("PRIORITY", event.priority)
    if event.busy_state == BusyState.BUSY:
        vevent.add("STATUS", "CONFIRMED")
    elif event.busy_state == BusyState.TENTATIVE:
        vevent.add("STATUS", "TENTATIVE")
    else:
        vevent.add("TRANSP", "TRANSPARENT")
    for attendee in event.attendees:
        attendee = _clean(attendee, DEFAULT_LIMITS.max_text)
        if attendee:
            vevent.add("ATTENDEE", attendee if ":" in attendee else f"mailto:{attendee}")
    cal.add_component(vevent)
    text: str = cal.to_ical().decode("utf-8")
    return text


def zone_from(conf: Any) -> tzinfo:
    """The ``timezone`` option of a calendar.conf section (hookflash extension): the zone
    for floating times and all-day dates; default the machine's zone (as Asterisk)."""
    name = str(conf.options.get("timezone", "")).strip()
    if not name:
        return local_zone()
    try:
        return zone_named(name)
    except ValueError as exc:
        line = f" line {conf.lineno}" if conf.lineno else ""
        raise CalendarError(f"{conf.filename}{line}: [{conf.name}] timezone = {name}: {exc}") from None
