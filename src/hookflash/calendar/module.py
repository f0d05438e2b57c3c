"""res_calendar: calendars from calendar.conf, their refresh loops, busy state, reminder
calls, the CALENDAR_* dialplan functions and the ``calendar`` console commands.

Each calendar fetches ``[now, now + timeframe]`` from its backend every ``refresh``
minutes in its own asyncio task (a dead or slow server only delays that calendar: the
last good events and busy state stay). A fetch replaces the cache by *occurrence*
(:attr:`CalendarEvent.key`), not by UID as Asterisk does (its merge pairs the instances
of a recurring event arbitrarily). Reminder and busy-change timers run on one
:class:`~hookflash.calendar.schedule.Scheduler` over an injectable clock (``pbx.clock``
when set, else the wall clock). Device state ``Calendar:<name>`` is pushed at each
event's start and end. See docs/calendar.md for every choice against Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hookflash.calendar.config import parse_calendar_conf
from hookflash.calendar.event import BusyState, CalendarEvent, calendar_types
from hookflash.calendar.notify import channel_event
from hookflash.calendar.schedule import Clock, SystemClock
from hookflash.calendar.service import Calendar, CalendarService
from hookflash.conf import ConfigError
from hookflash.engine.devstate import device_states
from hookflash.engine.modules import Module
from hookflash.engine.registry import CliArgs, CliCommand, Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.calendar")

WRITE_TIMEOUT = 60.0
WRITE_FIELDS = ("summary", "description", "organizer", "location", "categories", "priority",
                "uid", "start", "end", "busystate")



def event_field(event: CalendarEvent, name: str) -> str:
    """A field as CALENDAR_EVENT()/CALENDAR_QUERY_RESULT() show it ("" if unknown)."""
    name = name.strip().lower()
    if name == "start":
        return str(event.start_epoch)
    if name == "end":
        return str(event.end_epoch)
    if name == "busystate":
        return str(int(event.busy_state))
    if name == "priority":
        return str(event.priority)
    if name == "attendees":
        return ",".join(event.attendees)
    if name in ("summary", "description", "organizer", "location", "categories", "calendar", "uid"):
        return str(getattr(event, name))
    return ""


def _atoi(text: str) -> int:
    """C's atoi: leading white space, sign and digits; anything else stops (0 if none)."""
    text = text.strip()
    sign, i = 1, 0
    if text[:1] in "+-" and text:
        sign, i = (-1 if text[0] == "-" else 1), 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    return sign * int(text[i:j]) if j > i else 0


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------------- the module
class CalendarModule(Module):
    description = "Asterisk Calendar integration"
    support = "extended"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.service: CalendarService | None = None
        self._types_listener: Any = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await self._ensure_devstate()
        configs, errors = parse_calendar_conf(self.pbx.read_config("calendar.conf"))
        for error in errors:
            log.error("%s", error)
        clock: Clock = getattr(self.pbx, "clock", None) or SystemClock()
        service = self.service = CalendarService(self.pbx, clock)
        service.ledger.prune(clock.time())
        service.scheduler.start()
        device_states(self.pbx).add_provider("Calendar:", service.device_state)
        types = calendar_types(self.pbx)
        listeners = getattr(types, "listeners", None)
        if listeners is not None:
            self._types_listener = self._on_types
            listeners.append(self._types_listener)
        await service.apply(configs)
        if service.pending:
            loop = asyncio.get_running_loop()
            loop.call_later(5.0, service.warn_pending)

    async def _ensure_devstate(self) -> None:
        """Device state is part of the core in Asterisk; load func_devstate if nobody did."""
        modules = self.pbx.modules
        if "func_devstate" in modules.loaded:
            return
        if "func_devstate" not in modules.known:
            modules.register_known("func_devstate", "hookflash.engine.devstate:DevStateModule")
        try:
            await modules.load("func_devstate")
        except Exception as exc:
            log.warning("Could not load func_devstate: %s", exc)

    def _on_types(self, type_name: str, added: bool) -> None:
        if self.service is None:
            return
        if added:
            self.service.type_added(type_name)
        else:
            self.pbx.spawn(self.service.type_removed(type_name))

    async def stop(self) -> None:
        types = calendar_types(self.pbx)
        listeners = getattr(types, "listeners", None)
        if listeners is not None and self._types_listener in listeners:
            listeners.remove(self._types_listener)
        device_states(self.pbx).remove_provider("Calendar:")
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def reload(self) -> str | None:
        try:
            conf = self.pbx.read_config("calendar.conf")
        except ConfigError as exc:
            return str(exc)
        configs, errors = parse_calendar_conf(conf)
        if errors:
            return "; ".join(str(e) for e in errors)
        if self.service is not None:
            await self.service.apply(configs, reload=True)
        return None

    # ---------------------------------------------------------------- functions
    def _calendar(self, name: str, func: str) -> Calendar | None:
        cal = self.service.get(name) if self.service is not None else None
        if cal is None:
            log.warning("%s: Could not find calendar '%s'", func, name.strip())
        return cal

    def _busy(self, chan: Channel | None, args: str) -> str:
        if not args.strip():
            log.warning("CALENDAR_BUSY requires an argument")
            return ""
        cal = self._calendar(args, "CALENDAR_BUSY")
        if cal is None:
            return ""
        assert self.service is not None
        return "1" if cal.busy_at(_utc(self.service.clock.time())) else "0"

    def _event(self, chan: Channel | None, args: str) -> str:
        if chan is None:
            log.warning("CALENDAR_EVENT needs a channel")
            return ""
        event = channel_event(chan)
        if event is None:
            log.warning("No event notification datastore found on %s (CALENDAR_EVENT works on "
                        "calendar notification calls only)", chan.name)
            return ""
        return event_field(event, args)

    def _query(self, chan: Channel | None, args: str) -> str:
        from hookflash.dialplan.args import split_args
        if chan is None:
            log.warning("CALENDAR_QUERY needs a channel")
            return ""
        parts = split_args(args)
        if not parts[0].strip():
            log.warning("CALENDAR_QUERY requires a calendar: CALENDAR_QUERY(calendar[,start[,end]])")
            return ""
        cal = self._calendar(parts[0], "CALENDAR_QUERY")
        if cal is None:
            return ""
        start = _atoi(parts[1]) if len(parts) > 1 and parts[1].strip() else -(2 ** 31)
        end = _atoi(parts[2]) if len(parts) > 2 and parts[2].strip() else 2 ** 31 - 1
        found = query_events(cal.events.values(), start, end)
        query_id = uuid.uuid4().hex
        chan.datastores.setdefault("calendar_query", {})[query_id] = found
        return query_id

    def _query_result(self, chan: Channel | None, args: str) -> str:
        from hookflash.dialplan.args import split_args
        parts = split_args(args)
        if chan is None or len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            log.warning("CALENDAR_QUERY_RESULT requires id and field: CALENDAR_QUERY_RESULT(id,field[,entry])")
            return ""
        found = chan.datastores.get("calendar_query", {}).get(parts[0].strip())
        if found is None:
            log.warning("Unable to find query '%s' on %s", parts[0].strip(), chan.name)
            return ""
        field = parts[1].strip().lower()
        if field == "getnum":
            return str(len(found))
        entry = _atoi(parts[2]) if len(parts) > 2 and parts[2].strip() else 1
        if entry < 1 or entry > len(found):
            return ""
        return event_field(found[entry - 1], field)

    def _write(self, chan: Channel | None, args: str, value: str) -> asyncio.Task[None] | None:
        if chan is None:
            log.warning("CALENDAR_WRITE needs a channel")
            return None
        chan.set_var("CALENDAR_SUCCESS", "0")
        return self.pbx.spawn(self._write_event(chan, args, value))

    async def _write_event(self, chan: Channel, args: str, value: str) -> None:
        from hookflash.dialplan.args import split_args
        fields = [f.strip().lower() for f in split_args(args)]
        values = split_args(value)
        if len(fields) < 2 or not fields[0]:
            log.warning("CALENDAR_WRITE requires a calendar and at least one field on %s", chan.name)
            return
        name, fields = fields[0], fields[1:]
        if len(fields) != len(values):
            log.warning("CALENDAR_WRITE: %d fields but %d values on %s", len(fields), len(values),
                        chan.name)
            return
        cal = self._calendar(name, "CALENDAR_WRITE")
        if cal is None:
            return
        if not getattr(cal.backend, "can_write", False):
            log.warning("CALENDAR_WRITE: calendar %s (type %s) cannot be written to", cal.name,
                        cal.config.type)
            return
        now = int(time.time())
        data: dict[str, Any] = {"start": 0, "end": 0}
        for field, val in zip(fields, values):
            if field in ("start", "end", "priority", "busystate"):
                data[field] = _atoi(val)
            elif field in WRITE_FIELDS:
                data[field] = val
            else:
                log.warning("Unknown calendar event field '%s'", field)
        busy = data.get("busystate", 0)
        event = CalendarEvent(
            uid=str(data.get("uid") or uuid.uuid4()),
            start=_utc(data["start"] or now), end=_utc(data["end"] or now),
            summary=data.get("summary", ""), description=data.get("description", ""),
            organizer=data.get("organizer", ""), location=data.get("location", ""),
            categories=data.get("categories", ""), priority=data.get("priority", 0),
            busy_state=BusyState(busy) if busy in (0, 1, 2) else BusyState.BUSY, calendar=cal.name)
        try:
            await asyncio.wait_for(cal.backend.write(event), WRITE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("CALENDAR_WRITE to %s failed on %s: %s", cal.name, chan.name, exc)
            return
        chan.set_var("CALENDAR_SUCCESS", "1")

    def functions(self) -> list[Function]:
        return [
            Function("CALENDAR_BUSY", self._busy, None, "Determine if the calendar is marked busy at this time.",
                     "CALENDAR_BUSY(calendar)",
                     "1 while a busy or tentative event of the calendar covers the current time, else 0."),
            Function("CALENDAR_EVENT", self._event, None, "Get calendar event notification data from a "
                     "notification call.", "CALENDAR_EVENT(field)",
                     "Fields: summary, description, organizer, location, categories, priority, calendar, "
                     "uid, start, end (epoch seconds), busystate (0 free, 1 tentative, 2 busy), attendees."),
            Function("CALENDAR_QUERY", self._query, None, "Query a calendar server and store the data on "
                     "a channel", "CALENDAR_QUERY(calendar[,start[,end]])",
                     "Returns an id for CALENDAR_QUERY_RESULT; start/end in epoch seconds; only the "
                     "cached events (the current timeframe) are searched."),
            Function("CALENDAR_QUERY_RESULT", self._query_result, None, "Retrieve data from a "
                     "previously run CALENDAR_QUERY() call", "CALENDAR_QUERY_RESULT(id,field[,entry])",
                     "field getnum gives the number of events; entry is 1-based (default 1)."),
            Function("CALENDAR_WRITE", None, self._write, "Write an event to a calendar",  # type: ignore[arg-type]
                     "CALENDAR_WRITE(calendar,field[,...])=value[,...]",
                     "Fields: summary, description, organizer, location, categories, priority, uid, "
                     "start, end, busystate. Sets CALENDAR_SUCCESS to 1 when the server stored it."),
        ]

    # ---------------------------------------------------------------- console
    def _show_calendars(self, args: CliArgs) -> str:
        fmt = "{:<20.20s} {:<10.10s} {:<6.6s}"
        lines = [fmt.format("Calendar", "Type", "Status"), fmt.format("--------", "----", "------")]
        if self.service is not None:
            now = _utc(self.service.clock.time())
            for cal in sorted(self.service.calendars.values(), key=lambda c: c.name.lower()):
                lines.append(fmt.format(cal.name, cal.config.type, "busy" if cal.busy_at(now) else "free"))
        return "\n".join(lines) + "\n"

    def _show_calendar(self, args: CliArgs) -> str:
        if not args.argv:
            return "Usage: calendar show calendar <calendar name>\n"
        cal = self.service.get(args.argv[0]) if self.service is not None else None
        if cal is None:
            return ""
        c = cal.config
        out = []
        for label, val in (("Name", c.name), ("Notify channel", c.channel), ("Notify context", c.context),
                           ("Notify extension", c.extension), ("Notify application", c.app),
                           ("Notify appdata", c.appdata)):
            out.append(f"{label:<18.18s} : {val:<20.20s}")
        out.append(f"{'Refresh time':<17.17s} : {c.refresh}")
        out.append(f"{'Timeframe':<17.17s} : {c.timeframe}")
        if c.autoreminder:
            out.append(f"{'Autoreminder':<17.17s} : {c.autoreminder} minutes before event")
        else:
            out.append(f"{'Autoreminder':<17.17s} : None")
        out += ["Events", "------"]
        for ev in sorted(cal.events.values(), key=lambda e: (e.start, e.uid)):
            for label, val in (("Summary", ev.summary), ("Description", ev.description),
                               ("Organizer", ev.organizer), ("Location", ev.location),
                               ("Categories", ev.categories)):
                out.append(f"{label:<12.12s}: {val:<40.60s}")
            out.append(f"{'Priority':<12.12s}: {ev.priority}")
            out.append(f"{'UID':<12.12s}: {ev.uid:<40.60s}")
            out.append(f"{'Start':<12.12s}: {_localtime(ev.start):<40.60s}")
            out.append(f"{'End':<12.12s}: {_localtime(ev.end):<40.60s}")
            out.append(f"{'Alarm':<12.12s}: {_localtime(ev.alarm):<40.60s}")
            out.append(f"{'Busy State':<12.12s}: {_busy_text(ev.busy_state):<40.60s}")
            out.append("")
        return "\n".join(out) + "\n"

    def _show_types(self, args: CliArgs) -> str:
        fmt = "{:<10.10s} {:<30.30s}"
        lines = [fmt.format("Type", "Description")]
        for name, (description, _) in sorted(calendar_types(self.pbx).items()):
            lines.append(fmt.format(name, description))
        return "\n".join(lines) + "\n"

    def _dump_sched(self, args: CliArgs) -> str:
        """Asterisk writes ast_sched_dump() to the debug log only; hookflash prints it on
        the console too (and still logs it at debug)."""
        if self.service is None:
            return "res_calendar is not running\n"
        sched = self.service.scheduler
        pending = sched.pending()
        now = self.service.clock.time()
        lines = [f"Asterisk Schedule Dump ({len(pending)} in Q, {sched.total} Total, "
                 f"{sched.high_water} high-water)",
                 "=============================================================",
                 "|ID    Callback          Data              Time  (sec:ms)   |",
                 "+-----+-----------------+-----------------+-----------------+"]
        for timer in pending:
            delta = timer.when - now
            sec = int(delta)
            ms = int(abs(delta - sec) * 1000)
            lines.append(f"|{timer.seq:04d} | {timer.name:<15.15s} | {timer.data:<15.15s} | "
                         f"{sec:06d} : {ms:06d} |")
        lines.append("=============================================================")
        for line in lines:
            log.debug("%s", line)
        return "\n".join(lines) + "\n"

    def _complete(self, pbx: Pbx, words: list[str], word: str) -> list[str]:
        if self.service is None:
            return []
        return sorted(c.name for c in self.service.calendars.values()
                      if c.name.lower().startswith(word.lower()))

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("calendar", "show", "calendars"), self._show_calendars, "Display information "
                       "about all calendars", "Usage: calendar show calendars\n       Lists all "
                       "registered calendars."),
            CliCommand(("calendar", "show", "calendar"), self._show_calendar, "Display information "
                       "about a calendar", "Usage: calendar show calendar <calendar name>\n       "
                       "Displays information about a calendar", self._complete),
            CliCommand(("calendar", "show", "types"), self._show_types, "Show all calendar types loaded",
                       "Usage: calendar show types\n       Lists all registered calendars types."),
            CliCommand(("calendar", "dump", "sched"), self._dump_sched, "Dump calendar sched context",
                       "Usage: calendar dump sched\n       Dump the calendar sched context"),
        ]


def query_events(events: Any, start: int, end: int) -> list[CalendarEvent]:
    """CALENDAR_QUERY's match and order: events overlapping [start, end]; a point query
    (start == end) by closeness of start, then of end, then uid; otherwise by start,
    longer first, then uid."""
    found = [ev for ev in events if not (start > ev.end_epoch or end < ev.start_epoch)]
    if start == end:
        found.sort(key=lambda ev: (abs(ev.start_epoch - start), abs(ev.end_epoch - end), ev.uid))
    else:
        found.sort(key=lambda ev: (ev.start_epoch, -(ev.end_epoch - ev.start_epoch), ev.uid))
    return found


def _localtime(when: datetime | None) -> str:
    if when is None or when.timestamp() == 0:
        return ""
    return time.strftime("%F %r %z", time.localtime(when.timestamp()))


def _busy_text(state: int) -> str:
    return {0: "Free", 1: "Busy (Tentative)", 2: "Busy"}.get(int(state), "Unknown (Busy)")
