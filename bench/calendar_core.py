"""res_calendar core benchmark: reminder latency and the cost of the busy/query functions.

    .venv/bin/python bench/calendar_core.py [--reminders N] [--cached N] [--calls N]

Prints:
1. reminder latency: N events whose alarms fall due within two seconds (wall clock),
   each dialling ``SIP/phone`` (a UDP socket in this process standing in for the phone,
   which never answers); the time from each alarm to the INVITE reaching the phone
   (median, 95th percentile, max), with another calendar holding ``--cached`` events
   and a Local-channel call loop running as background load;
2. CALENDAR_BUSY and CALENDAR_QUERY (+ CALENDAR_QUERY_RESULT getnum) calls per second
   through ``${...}`` substitution, against a calendar of ``--cached`` events.
The calendar server is an in-memory backend (backends are benched in bench/calendar_backends.py).
Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/calendar_backends.py
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse
import asyncio
import socket
import statistics
import tempfile
import textwrap
import time
from datetime import UTC, datetime

from hookflash.calendar.event import (
    BackendSettings,
    BusyState,
    CalendarEvent,
    calendar_types,
)
from hookflash.dialplan.subst import substitute
from hookflash.engine.pbx import Pbx

EVENTS: dict[str, list[CalendarEvent]] = {}


class MemoryBackend:
    type_name = "caldav"
    description = "in-memory"
    can_write = True

    def __init__(self, settings: BackendSettings) -> None:
        self.url = settings.url

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        return list(EVENTS.get(self.url, []))

    async def write(self, event: CalendarEvent) -> None:
        pass

    async def close(self) -> None:
        pass


class Phone(asyncio.DatagramProtocol):
    """Notes when each INVITE arrives; answers nothing (the reminder times out)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"INVITE "):
            for line in data.split(b"\r\n"):
                if line.lower().startswith((b"call-id:", b"i:")):
                    self.arrivals.setdefault(line.split(b":", 1)[1].strip().decode(), time.time())


def free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cached_events(n: int, now: float) -> list[CalendarEvent]:
    out = []
    for i in range(n):
        start = now - 1800 + (i * 7) % 7200
        out.append(CalendarEvent(uid=f"cached-{i}@bench", start=datetime.fromtimestamp(start, UTC),
                                 end=datetime.fromtimestamp(start + 900, UTC), summary=f"Event {i}",
                                 busy_state=BusyState.BUSY if i % 3 else BusyState.FREE))
    return out


async def bench(reminders: int, cached: int, calls: int) -> None:
    phone = Phone()
    loop = asyncio.get_running_loop()
    phone_port = free_udp()
    transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", phone_port))
    now = time.time()
    first_alarm = now + 3.0
    alarms = [first_alarm + 2.0 * i / max(1, reminders - 1) for i in range(reminders)]
    EVENTS["mem://remind"] = [
        CalendarEvent(uid=f"r{i}@bench", start=datetime.fromtimestamp(a + 600, UTC),
                      end=datetime.fromtimestamp(a + 1200, UTC),
                      alarm=datetime.fromtimestamp(a, UTC)) for i, a in enumerate(alarms)]
    EVENTS["mem://big"] = cached_events(cached, now)
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "etc"
        etc.mkdir()
        (etc / "modules.conf").write_text("[modules]\nautoload=no\nload => res_calendar\nload => chan_sip\n"
                                          "load => func_logic\nload => app_verbose\n")
        (etc / "sip.conf").write_text(f"[general]\nbindaddr=127.0.0.1\nbindport={free_udp()}\n"
                                      f"[phone]\ntype=peer\nhost=127.0.0.1\nport={phone_port}\n")
        rtp = free_udp() & ~1
        (etc / "rtp.conf").write_text(f"[general]\nrtpstart={rtp}\nrtpend={rtp + 4 * reminders + 40}\n")
        (etc / "extensions.conf").write_text(textwrap.dedent("""
            [load]
            exten => s,1,Set(I=0)
             same => n,While($[${I} < 200])
             same => n,Set(I=$[${I} + 1])
             same => n,Set(B=${CALENDAR_BUSY(big)})
             same => n,EndWhile()
            """))
        (etc / "calendar.conf").write_text(
            "[remind]\ntype=caldav\nurl=mem://remind\nchannel=SIP/phone\nwaittime=2\ntimeframe=60\n"
            "[big]\ntype=caldav\nurl=mem://big\ntimeframe=120\n")
        pbx = Pbx(etc, state_dir=Path(tmp) / "var", verbose=0)
        calendar_types(pbx)["caldav"] = ("in-memory", MemoryBackend)
        await pbx.start()
        try:
            await asyncio.sleep(0.5)
            stop_load = asyncio.Event()

            async def load() -> None:  # background calls while the reminders fall due
                from tests.helpers import call
                while not stop_load.is_set():
                    await call(pbx, "s@load")

            loader = asyncio.ensure_future(load())
            await asyncio.sleep(max(0.0, alarms[-1] - time.time()) + 1.5)
            stop_load.set()
            await loader
            arrivals = sorted(phone.arrivals.values())
            lat = [(t - a) * 1000 for t, a in zip(arrivals, alarms)]
            print(f"1. reminder latency, {reminders} alarms over 2 s, {cached} cached events, busy-loop "
                  f"calls as load: {len(arrivals)} INVITEs; alarm -> INVITE median "
                  f"{statistics.median(lat):.1f} ms, p95 {sorted(lat)[int(0.95 * (len(lat) - 1))]:.1f} ms, "
                  f"max {max(lat):.1f} ms")
            chan = pbx.new_channel("Bench/functions")
            for label, text in (("CALENDAR_BUSY(big)", "${CALENDAR_BUSY(big)}"),
                                ("CALENDAR_QUERY(big,now,now+600) + getnum",
                                 f"${{CALENDAR_QUERY_RESULT(${{CALENDAR_QUERY(big,{int(now)},{int(now) + 600})}},getnum)}}")):
                substitute(text, chan, pbx)
                chan.datastores.clear()
                t0 = time.perf_counter()
                for i in range(calls):
                    value = substitute(text, chan, pbx)
                    if i % 100 == 0:
                        chan.datastores.clear()
                elapsed = time.perf_counter() - t0
                print(f"2. {label} with {cached} cached events: {calls / elapsed:,.0f} calls/s "
                      f"({elapsed / calls * 1e6:.1f} us each; last value {value})")
            await chan.hangup()
        finally:
            await pbx.stop()
            transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=50)
    parser.add_argument("--cached", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(bench(args.reminders, args.cached, args.calls))


if __name__ == "__main__":
    main()
