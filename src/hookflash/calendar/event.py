"""The calendar event model shared by every backend and by res_calendar.

A backend turns what its server returns into a list of :class:`CalendarEvent`, one per
*occurrence*: a weekly meeting inside the fetch window is several events, each with its
own start, end and alarm, sharing a ``uid`` and told apart by ``recurrence_id``.
:attr:`CalendarEvent.key` is what res_calendar uses to merge refreshes and to remember
which occurrences already rang.

Times are aware UTC ``datetime`` values (a backend converts TZID, floating and all-day
times); the dialplan sees them as epoch seconds, as Asterisk shows them.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol


class BusyState(enum.IntEnum):
    """Asterisk's busystate numbers: 0 free, 1 tentative, 2 busy."""

    FREE = 0
    TENTATIVE = 1
    BUSY = 2


@dataclass
class CalendarEvent:
    uid: str
    start: datetime
    end: datetime
    summary: str = ""
    description: str = ""
    organizer: str = ""
    location: str = ""
    categories: str = ""
    priority: int = 0
    busy_state: BusyState = BusyState.BUSY
    alarm: datetime | None = None  # when the first alarm of this occurrence fires
    attendees: list[str] = field(default_factory=list)
    recurrence_id: str = ""  # the occurrence's RECURRENCE-ID (UTC, iCalendar form) or ""
    all_day: bool = False
    calendar: str = ""  # the calendar's name, filled in by res_calendar

    @property
    def key(self) -> tuple[str, str]:
        """Identity of one occurrence across refreshes, reloads and restarts."""
        return (self.uid, self.recurrence_id or _ical_utc(self.start))

    @property
    def start_epoch(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_epoch(self) -> int:
        return int(self.end.timestamp())

    def covers(self, when: datetime) -> bool:
        return self.start <= when <= self.end


class Backend(Protocol):
    """What res_calendar needs from a calendar type (ical, caldav, ews, exchange)."""

    type_name: str  # "ical", "caldav", "ews", "exchange"
    description: str  # for "calendar show types"
    can_write: bool

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        """Occurrences overlapping [start, end]; raise CalendarError on failure."""
        ...

    async def write(self, event: CalendarEvent) -> None:
        """Store one event; raise CalendarError unless the server stored it (2xx)."""
        ...

    async def close(self) -> None:
        ...


class CalendarError(Exception):
    """A backend failed: the text names the calendar, the URL and what went wrong."""


def _ical_utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class BackendSettings:
    """One calendar.conf section as a backend sees it."""

    name: str  # the section name: the calendar's name
    url: str
    user: str = ""
    secret: str = ""
    options: dict[str, str] = field(default_factory=dict)  # every option, lower-case names
    filename: str = "calendar.conf"
    lineno: int = 0  # the section's line, for errors


class BackendFactory(Protocol):
    def __call__(self, settings: BackendSettings) -> Backend: ...


class CalendarTypes(dict):  # type: ignore[type-arg]
    """The type registry: a dict that tells ``listeners(type_name, added)`` when a
    backend module adds (``types[t] = ...``) or removes (``del``/``pop``) its type, so
    res_calendar starts the calendars of a backend loaded after it."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[str, bool], None]] = []

    def _tell(self, key: str, added: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(key, added)
            except Exception:
                logging.getLogger("hookflash.calendar").exception("calendar type listener failed")

    def __setitem__(self, key: str, value: tuple[str, BackendFactory]) -> None:
        super().__setitem__(key, value)
        self._tell(key, True)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._tell(key, False)

    def pop(self, key: str, *default: object) -> object:  # type: ignore[override]
        present = key in self
        value = super().pop(key, *default)
        if present:
            self._tell(key, False)
        return value


def calendar_types(pbx: object) -> dict[str, tuple[str, BackendFactory]]:
    """type name -> (description, factory); each res_calendar_* module adds its own
    entry on load and removes it on unload; res_calendar looks types up here."""
    types = getattr(pbx, "calendar_types", None)
    if types is None:
        types = CalendarTypes()
        setattr(pbx, "calendar_types", types)
    return types
