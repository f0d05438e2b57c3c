"""Timers for res_calendar: an injectable clock, one scheduler for every calendar, the
durable ledger of reminders already handled, and the rules for when a reminder rings.

Rules (see docs/calendar.md):

* An occurrence has a reminder only if the calendar has ``autoreminder`` (start minus
  that many minutes; it overrides the event's alarm) or the occurrence has an alarm.
  No alarm and no autoreminder: never rings (Asterisk rings those at once: a bug).
* Each occurrence (:attr:`CalendarEvent.key`, per calendar) rings at most once: the
  ledger row is written *before* dialling, so refreshes, reloads, restarts and several
  alarms due in the same second never ring it twice.
* A reminder found past due (first seen late: hookflash was down, or a refresh brought
  an event moved closer) rings at once if the event has not started yet; once the event
  has started it is logged and skipped. Either way the ledger records it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hookflash.calendar.event import CalendarEvent

log = logging.getLogger("hookflash.calendar")

LEDGER_KEEP_DAYS = 400  # rows older than this (by event start) are forgotten


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after ``seconds`` or as soon as ``wake`` is set."""
        ...


class SystemClock:
    """The wall clock. Waits are cut at a minute so a clock step is noticed."""

    def time(self) -> float:
        return time.time()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(wake.wait(), max(0.0, min(seconds, 60.0)))
        except TimeoutError:
            pass


def reminder_time(event: CalendarEvent, autoreminder: int) -> float | None:
    """When this occurrence's reminder is due (epoch seconds), or None for no reminder."""
    if autoreminder > 0:
        return event.start.timestamp() - 60 * autoreminder
    if event.alarm is not None:
        return event.alarm.timestamp()
    return None


def late_verdict(due: float, event: CalendarEvent, now: float) -> str:
    """``"ring"`` or ``"skip"`` for a reminder whose time has come (``due <= now``)."""
    return "ring" if now < event.start.timestamp() else "skip"


@dataclass(order=True)
class Timer:
    when: float
    seq: int
    callback: Callable[[], Any] = field(compare=False)
    name: str = field(compare=False, default="")
    data: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """One task running every calendar timer in time order on the injected clock
    (Asterisk's single scheduler thread). Callbacks must not block; they may spawn."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.heap: list[Timer] = []
        self._seq = itertools.count()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.total = 0
        self.high_water = 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    def at(self, when: float, callback: Callable[[], Any], name: str = "", data: str = "") -> Timer:
        timer = Timer(when, next(self._seq), callback, name, data)
        heapq.heappush(self.heap, timer)
        self.total += 1
        self.high_water = max(self.high_water, len(self.heap))
        self.wake.set()
        return timer

    def pending(self) -> list[Timer]:
        return sorted(t for t in self.heap if not t.cancelled)

    async def _run(self) -> None:
        while True:
            while self.heap and self.heap[0].cancelled:
                heapq.heappop(self.heap)
            now = self.clock.time()
            if self.heap and self.heap[0].when <= now:
                timer = heapq.heappop(self.heap)
                try:
                    timer.callback()
                except Exception:
                    log.exception("Calendar timer %s (%s) failed", timer.name, timer.data)
                continue
            self.wake.clear()
            delay = self.heap[0].when - now if self.heap else 3600.0
            await self.clock.wait(delay, self.wake)


class Ledger:
    """Occurrences whose reminder was handled (rung, or skipped as too late), in SQLite
    (``<astdbdir>/calendar-reminders.sqlite3``): survives restarts."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Used on the event loop: a short lock timeout (another process holding the file
        # must not stall calls for SQLite's default 5 s) and WAL with synchronous=NORMAL,
        # so a record is one append to the WAL without an fsync (it survives a crash of
        # hookflash; only a power cut can lose the last few, which then ring again).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                  timeout=0.2)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS reminders(calendar TEXT, uid TEXT, instance TEXT, "
                        "outcome TEXT, start REAL, handled REAL, PRIMARY KEY(calendar, uid, instance))")

    def seen(self, calendar: str, key: tuple[str, str]) -> bool:
        row = self.db.execute("SELECT 1 FROM reminders WHERE calendar = ? AND uid = ? AND instance = ?",
                              (calendar, key[0], key[1])).fetchone()
        return row is not None

    def record(self, calendar: str, event: CalendarEvent, outcome: str, now: float) -> bool:
        """Mark the occurrence handled; False if it already was (someone else got there)."""
        cur = self.db.execute("INSERT OR IGNORE INTO reminders VALUES (?, ?, ?, ?, ?, ?)",
                              (calendar, event.key[0], event.key[1], outcome, event.start.timestamp(), now))
        return cur.rowcount == 1

    def prune(self, now: float) -> int:
        return self.db.execute("DELETE FROM reminders WHERE start < ?",
                               (now - LEDGER_KEEP_DAYS * 86400,)).rowcount

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in self.db.execute(
            "SELECT calendar, uid, instance, outcome FROM reminders ORDER BY handled")]

    def close(self) -> None:
        self.db.close()


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
