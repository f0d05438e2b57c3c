"""Calendar backend benchmark: iCalendar parse + expansion, and CalDAV refreshes.

    .venv/bin/python bench/calendar_backends.py [--events N] [--recurring N] [--caldav-events N]

Prints:
1. for a generated calendar of N events of which R recurring (daily, weekly with
   EXDATE, monthly; TZID Europe/Berlin with a VTIMEZONE, plus alarms), the time to
   parse it, and to expand it over a 1-day and a 30-day window, with the number of
   occurrences and the peak Python memory (tracemalloc) of parse + 30-day expansion;
2. the same for 10,000 events (2,000 recurring);
3. against a real Radicale started here (free loopback port, temp dir): a full
   CalDAV refresh (PROPFIND sync-token + calendar-query) of M events, a sync-collection
   refresh with no change and with one changed event, their times and bytes received.
Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib's calendar module, which the libraries below import:
# keep its own directory off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import httpx

from hookflash.calendar import ics
from hookflash.calendar.caldav import CalDavBackend
from hookflash.calendar.event import BackendSettings
from tests.integration.calendar_servers import USERS, Radicale

BERLIN_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def make_calendar(n: int, recurring: int, now: datetime, seed: int = 1) -> str:
    rnd = random.Random(seed)
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hookflash bench//EN", BERLIN_VTIMEZONE.strip()]
    for i in range(n):
        local = (now + timedelta(days=rnd.randint(-300, 60), minutes=15 * rnd.randint(0, 60))).astimezone(
            ZoneInfo("Europe/Berlin"))
        lines = ["BEGIN:VEVENT", f"UID:bench-{i}@hookflash", "DTSTAMP:20250101T000000Z",
                 f"DTSTART;TZID=Europe/Berlin:{local:%Y%m%dT%H%M00}",
                 f"DTEND;TZID=Europe/Berlin:{local + timedelta(minutes=30 * rnd.randint(1, 4)):%Y%m%dT%H%M00}",
                 f"SUMMARY:Meeting {i}", f"LOCATION:Room {i % 40}",
                 "DESCRIPTION:Agenda: numbers\\, plans\\, questions.",
                 "ORGANIZER:mailto:boss@example.com", "ATTENDEE:mailto:a@example.com",
                 "ATTENDEE:mailto:b@example.com", "CATEGORIES:Work"]
        if i < recurring:
            kind = i % 3
            if kind == 0:
                lines.append("RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR")
            elif kind == 1:
                lines.append("RRULE:FREQ=WEEKLY")
                lines.append(f"EXDATE;TZID=Europe/Berlin:{local + timedelta(weeks=2):%Y%m%dT%H%M00}")
            else:
                lines.append("RRULE:FREQ=MONTHLY;COUNT=24")
        if i % 2 == 0:
            lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", "TRIGGER:-PT10M", "END:VALARM"]
        lines.append("END:VEVENT")
        out += lines
    out.append("END:VCALENDAR")
    return "\r\n".join(out) + "\r\n"


def bench_ics(n: int, recurring: int) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    text = make_calendar(n, recurring, now)
    print(f"calendar: {n} events, {recurring} recurring, {len(text) / 1e6:.2f} MB")
    began = time.perf_counter()
    parsed = ics.parse(text, "bench")
    parse_s = time.perf_counter() - began
    print(f"  parse:                 {parse_s * 1000:8.1f} ms")
    for label, days in (("1-day", 1), ("30-day", 30)):
        began = time.perf_counter()
        events = ics.expand(parsed, now, now + timedelta(days=days), calendar="bench", zone=ZoneInfo("Europe/Berlin"))
        print(f"  expand {label:7s} window: {(time.perf_counter() - began) * 1000:8.1f} ms, {len(events)} occurrences")
    tracemalloc.start()
    ics.expand(ics.parse(text, "bench"), now, now + timedelta(days=30), calendar="bench")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  peak memory, parse + 30-day expansion: {peak / 1e6:.1f} MB")


async def bench_caldav(n: int) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp, Radicale(Path(tmp)) as srv:
        url = srv.make_calendar("bench")
        # One PUT of a whole VCALENDAR per event, the way clients store them.
        text = make_calendar(n, n // 10, now)
        body = text.split("BEGIN:VEVENT")
        header = body[0].replace("\r\nEND:VCALENDAR", "")
        began = time.perf_counter()
        async with httpx.AsyncClient(auth=("alice", USERS["alice"]), timeout=30) as client:
            sem = asyncio.Semaphore(8)

            async def put(i: int, chunk: str) -> None:
                ev = "BEGIN:VEVENT" + chunk.replace("END:VCALENDAR\r\n", "")
                async with sem:
                    r = await client.put(f"{url}bench-{i}.ics", content=(header + ev + "END:VCALENDAR\r\n").encode(),
                                         headers={"Content-Type": "text/calendar"})
                    r.raise_for_status()

            await asyncio.gather(*(put(i, chunk) for i, chunk in enumerate(body[1:])))
        print(f"caldav (Radicale): stored {n} events in {time.perf_counter() - began:.1f} s")
        backend = CalDavBackend(BackendSettings("bench", url, "alice", USERS["alice"]))
        try:
            for label in ("full refresh", "sync, no change", "sync, one change"):
                if label == "sync, one change":
                    srv.put(url, "bench-0.ics", header + "BEGIN:VEVENT\r\nUID:bench-0@hookflash\r\n"
                            "DTSTAMP:20250101T000000Z\r\n"
                            f"DTSTART:{now + timedelta(hours=2):%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\n"
                            "SUMMARY:changed\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
                before = backend.bytes_fetched
                began = time.perf_counter()
                events = await backend.fetch(now, now + timedelta(days=1))
                took = time.perf_counter() - began
                print(f"  {label:17s}: {took * 1000:8.1f} ms, {backend.bytes_fetched - before:9d} bytes, "
                      f"{len(events)} occurrences in 1 day ({backend.last_refresh})")
        finally:
            await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--recurring", type=int, default=100)
    parser.add_argument("--caldav-events", type=int, default=1000)
    args = parser.parse_args()
    bench_ics(args.events, args.recurring)
    bench_ics(10_000, 2_000)
    asyncio.run(bench_caldav(args.caldav_events))


if __name__ == "__main__":
    main()
