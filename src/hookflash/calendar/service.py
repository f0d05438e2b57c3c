"""The calendars at run time: each calendar's refresh loop and cache (merged by
occurrence), its reminder and busy-change timers, and the service holding them all.
Used by :mod:`hookflash.calendar.module` (res_calendar)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hookflash.calendar.config import CalendarConfig, timeframe_warning
from hookflash.calendar.event import (
    Backend,
    BusyState,
    CalendarError,
    CalendarEvent,
    calendar_types,
)
from hookflash.calendar.notify import place_notification
from hookflash.calendar.schedule import (
    Clock,
    Ledger,
    Scheduler,
    Timer,
    late_verdict,
    reminder_time,
)
from hookflash.conf import ConfigError
from hookflash.engine.devstate import DeviceState, device_states

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.calendar")

TYPE_MODULES = {"ical": "res_calendar_icalendar", "caldav": "res_calendar_caldav",
                "exchange": "res_calendar_exchange", "ews": "res_calendar_ews"}
FETCH_TIMEOUT = 120.0  # seconds one fetch may take before it counts as failed
MAX_EVENTS = 100_000  # per calendar; more is cut (and logged) to bound memory


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Calendar:
    """One calendar.conf section at run time."""

    def __init__(self, service: CalendarService, config: CalendarConfig, backend: Backend) -> None:
        self.service = service
        self.config = config
        self.backend = backend
        self.events: dict[tuple[str, str], CalendarEvent] = {}
        self.reminders: dict[tuple[str, str], tuple[float, Timer]] = {}
        self.transition: Timer | None = None
        self.busy = False
        self.pushed: DeviceState | None = None
        self.last_error = ""
        self.refreshed = 0.0  # clock time of the last good fetch
        self.fetches = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.warned_no_channel = False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def device(self) -> str:
        return f"Calendar:{self.name}"

    # ---------------------------------------------------------------- refresh
    def start(self) -> None:
        self.task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
            self.task = None
        self._cancel_all()
        device_states(self.service.pbx).changed(self.device, DeviceState.INVALID, cachable=False)
        try:
            await self.backend.close()
        except Exception:
            log.exception("Calendar %s: closing the backend failed", self.name)

    def refresh_now(self) -> None:
        self.wake.set()

    async def _loop(self) -> None:
        clock = self.service.clock
        while True:
            self.wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. merging hostile events: log, keep refreshing
                log.exception("Calendar %s: refresh failed", self.name)
            await clock.wait(self.config.refresh * 60.0, self.wake)

    async def refresh(self) -> bool:
        """Fetch once and merge; on failure keep what we have and log (once per new error)."""
        now = self.service.clock.time()
        start, end = _utc(now), _utc(now + self.config.timeframe * 60)
        try:
            events = await asyncio.wait_for(self.backend.fetch(start, end), FETCH_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            text = str(exc) if isinstance(exc, CalendarError) else f"{type(exc).__name__}: {exc}"
            if text != self.last_error:
                log.warning("Calendar %s: refresh failed, keeping the %d events fetched before: %s",
                            self.name, len(self.events), text)
            self.last_error = text
            return False
        if self.last_error:
            log.info("Calendar %s: refresh works again", self.name)
            self.last_error = ""
        self.fetches += 1
        self.refreshed = self.service.clock.time()
        self.merge(events)
        return True

    def merge(self, events: list[CalendarEvent]) -> None:
        """Replace the cache by occurrence key; reschedule only what changed."""
        if len(events) > MAX_EVENTS:
            log.warning("Calendar %s: %d events in the window, keeping the first %d", self.name,
                        len(events), MAX_EVENTS)
            events = events[:MAX_EVENTS]
        fresh: dict[tuple[str, str], CalendarEvent] = {}
        for event in events:
            if event.end < event.start:
                log.warning("Calendar %s: event %s ends before it starts; skipped", self.name, event.uid)
                continue
            if event.calendar != self.name:
                event = replace(event, calendar=self.name)
            fresh[event.key] = event
        for key in [k for k in self.reminders if k not in fresh]:
            self.reminders.pop(key)[1].cancel()
        self.events = fresh
        for key, event in fresh.items():
            self._schedule_reminder(event)
        self.update_busy()

    # ---------------------------------------------------------------- reminders
    def _schedule_reminder(self, event: CalendarEvent) -> None:
        due = reminder_time(event, self.config.autoreminder)
        old = self.reminders.get(event.key)
        if old is not None:
            if old[0] == due:
                return
            old[1].cancel()
            del self.reminders[event.key]
        if due is None:
            return
        service = self.service
        if service.ledger.seen(self.name, event.key):
            return
        key = event.key
        timer = service.scheduler.at(due, lambda: self._reminder_due(key), "notify",
                                     f"{self.name}:{event.uid}")
        self.reminders[event.key] = (due, timer)

    def _reminder_due(self, key: tuple[str, str]) -> None:
        self.reminders.pop(key, None)
        event = self.events.get(key)
        if event is None:
            return
        service = self.service
        now = service.clock.time()
        due = reminder_time(event, self.config.autoreminder) or now
        if now - due > 2.0 and late_verdict(due, event, now) == "skip":
            if service.ledger.record(self.name, event, "missed", now):
                log.warning("Calendar %s: reminder for '%s' (%s) was due %s but the event has already "
                            "started; not calling", self.name, event.summary, event.uid,
                            time.strftime("%F %T %z", time.localtime(due)))
            return
        if not self.config.channel:
            if service.ledger.record(self.name, event, "nochannel", now):
                log.warning("Channel should be in form Tech/Dest (was '') for notification on "
                            "calendar %s, event %s: set channel= in calendar.conf", self.name, event.uid)
            return
        if not service.ledger.record(self.name, event, "rung", now):
            return  # already rung (another alarm of the same occurrence, or before a restart)
        if now - due > 2.0:
            log.info("Calendar %s: reminder for %s is %d s late (missed while down or the event "
                     "moved); calling now", self.name, event.uid, int(now - due))
        service.pbx.spawn(self._notify(event))

    async def _notify(self, event: CalendarEvent) -> None:
        try:
            await place_notification(self.service.pbx, self.config, event)
        except Exception:
            log.exception("Calendar %s: notification call for %s failed", self.name, event.uid)

    def _cancel_all(self) -> None:
        for _, timer in self.reminders.values():
            timer.cancel()
        self.reminders.clear()
        if self.transition is not None:
            self.transition.cancel()
            self.transition = None

    # ---------------------------------------------------------------- busy state
    def busy_at(self, when: datetime) -> bool:
        return any(ev.busy_state >= BusyState.TENTATIVE and ev.covers(when) for ev in self.events.values())

    def update_busy(self) -> None:
        """Recompute busy now, push the device state if it changed, and set the timer for
        the next event start or end."""
        now = self.service.clock.time()
        self.busy = self.busy_at(_utc(now))
        state = DeviceState.BUSY if self.busy else DeviceState.NOT_INUSE
        if state != self.pushed:
            self.pushed = state
            device_states(self.service.pbx).changed(self.device, state)
        upcoming = [t for ev in self.events.values() if ev.busy_state >= BusyState.TENTATIVE
                    for t in (ev.start.timestamp(), ev.end.timestamp() + 1) if t > now]
        nxt = min(upcoming, default=None)
        if self.transition is not None:
            if nxt is not None and self.transition.when == nxt and not self.transition.cancelled:
                return
            self.transition.cancel()
            self.transition = None
        if nxt is not None:
            self.transition = self.service.scheduler.at(nxt, self._on_transition, "devstate", self.name)

    def _on_transition(self) -> None:
        self.transition = None
        self.update_busy()


class CalendarService:
    """Every calendar of calendar.conf, the shared scheduler and the reminder ledger."""

    def __init__(self, pbx: Pbx, clock: Clock) -> None:
        self.pbx = pbx
        self.clock = clock
        self.scheduler = Scheduler(clock)
        self.ledger = Ledger(pbx.dirs.astdbdir / "calendar-reminders.sqlite3")
        self.calendars: dict[str, Calendar] = {}  # lower name -> Calendar
        self.pending: dict[str, CalendarConfig] = {}  # lower name -> config waiting for its type
        self.queries: int = 0

    def get(self, name: str) -> Calendar | None:
        return self.calendars.get(name.strip().lower())

    async def apply(self, configs: list[CalendarConfig], *, reload: bool = False) -> None:
        wanted = {c.name.lower(): c for c in configs}
        for key in [k for k in self.calendars if k not in wanted]:
            await self.calendars.pop(key).stop()
        self.pending = {k: v for k, v in self.pending.items() if k in wanted}
        for key, cfg in wanted.items():
            warning = timeframe_warning(cfg)
            if warning:
                log.warning("%s", warning)
            if cfg.autoreminder and not cfg.channel:
                log.warning("%s:%d: calendar '%s' has autoreminder=%d but no channel: no reminder "
                            "will be dialled (Channel should be in form Tech/Dest)", cfg.filename,
                            cfg.lineno, cfg.name, cfg.autoreminder)
            current = self.calendars.get(key)
            if current is not None and current.config.backend_key() == cfg.backend_key() \
                    and not cfg.fetch_again_at_reload:
                current.config = cfg
                for event in current.events.values():  # autoreminder may have changed
                    current._schedule_reminder(event)
                current.refresh_now()
                continue
            if current is not None:
                await self.calendars.pop(key).stop()
            self._create(cfg)

    def _create(self, cfg: CalendarConfig) -> None:
        key = cfg.name.lower()
        entry = calendar_types(self.pbx).get(cfg.type)
        if entry is None:
            self.pending[key] = cfg
            log.debug("Calendar %s waits for type %s (%s)", cfg.name, cfg.type, TYPE_MODULES[cfg.type])
            return
        try:
            backend = entry[1](cfg.backend_settings())
        except (CalendarError, ConfigError, ValueError) as exc:
            log.error("Calendar %s (%s:%d): %s", cfg.name, cfg.filename, cfg.lineno, exc)
            return
        self.pending.pop(key, None)
        cal = Calendar(self, cfg, backend)
        self.calendars[key] = cal
        device_states(self.pbx).changed(cal.device, DeviceState.NOT_INUSE)
        cal.pushed = DeviceState.NOT_INUSE
        cal.start()

    def type_added(self, type_name: str) -> None:
        for cfg in [c for c in self.pending.values() if c.type == type_name]:
            self._create(cfg)

    async def type_removed(self, type_name: str) -> None:
        for key, cal in list(self.calendars.items()):
            if cal.config.type == type_name and self.calendars.get(key) is cal:
                del self.calendars[key]
                self.pending[key] = cal.config
                await cal.stop()

    def warn_pending(self) -> None:
        for cfg in self.pending.values():
            log.warning("Calendar %s (%s:%d): type '%s' is not loaded (load %s.so)", cfg.name,
                        cfg.filename, cfg.lineno, cfg.type, TYPE_MODULES[cfg.type])

    async def stop(self) -> None:
        for cal in list(self.calendars.values()):
            await cal.stop()
        self.calendars.clear()
        await self.scheduler.stop()
        self.ledger.close()

    # ---------------------------------------------------------------- device state
    def device_state(self, device: str) -> DeviceState:
        cal = self.get(device.partition(":")[2])
        if cal is None:
            return DeviceState.INVALID
        return DeviceState.BUSY if cal.busy_at(_utc(self.clock.time())) else DeviceState.NOT_INUSE
