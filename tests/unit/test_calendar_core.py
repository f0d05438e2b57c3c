"""res_calendar's core: calendar.conf, refresh and merge, reminders (ring once, moved,
deleted, restart, missed), busy state and device state, the CALENDAR_* functions and
the console layouts.

The calendar server is replaced by an in-memory backend registered as type ``caldav``
(the real backends are tested end to end in tests/integration/test_calendar_*.py); time
is a fake clock (``pbx.clock``), so alarms fire without waiting. Reminder calls dial
Local channels whose dialplan counts the rings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookflash.calendar.config import parse_calendar_conf
from hookflash.calendar.event import (
    BackendSettings,
    BusyState,
    CalendarError,
    CalendarEvent,
    calendar_types,
)
from hookflash.calendar.module import query_events
from hookflash.conf import parse_text
from hookflash.engine.devstate import DeviceState, device_states
from hookflash.engine.pbx import Pbx
from hookflash.engine.registry import CliArgs
from tests.helpers import call, write_config


def aio(fn):  # type: ignore[no-untyped-def]
    """Run an async test on a fresh event loop (the project uses no asyncio plugin)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self._tick = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        target = self.now + seconds
        while self.now < target and not wake.is_set():
            tick = self._tick
            waits = [asyncio.ensure_future(tick.wait()), asyncio.ensure_future(wake.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        old, self._tick = self._tick, asyncio.Event()
        old.set()
        await asyncio.sleep(0.05)


@dataclass
class Store:
    events: list[CalendarEvent] = field(default_factory=list)
    fail: str = ""
    refuse: bool = False
    written: list[CalendarEvent] = field(default_factory=list)
    fetches: int = 0


STORES: dict[str, Store] = {}


class MemoryBackend:
    type_name = "caldav"
    description = "CalDAV calendars"
    can_write = True

    def __init__(self, settings: BackendSettings) -> None:
        self.store = STORES.setdefault(settings.url, Store())

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        self.store.fetches += 1
        if self.store.fail:
            raise CalendarError(self.store.fail)
        return [CalendarEvent(**{**e.__dict__, "attendees": list(e.attendees)}) for e in self.store.events
                if e.end >= start and e.start <= end]

    async def write(self, event: CalendarEvent) -> None:
        if self.store.refuse:
            raise CalendarError("PUT answered 403 Forbidden")
        self.store.written.append(event)

    async def close(self) -> None:
        pass


def ev(uid: str, start: float, minutes: int = 30, alarm: float | None = None, **kw: object) -> CalendarEvent:
    return CalendarEvent(uid=uid, start=datetime.fromtimestamp(start, UTC),
                         end=datetime.fromtimestamp(start + minutes * 60, UTC),
                         alarm=datetime.fromtimestamp(alarm, UTC) if alarm is not None else None,
                         **kw)  # type: ignore[arg-type]


DIALPLAN = """
[phones]
exten => 100,1,Answer()
 same => n,Wait(0.2)
 same => n,Hangup()

[notify]
exten => s,1,Set(GLOBAL(RINGS)=$[0${RINGS} + 1])
 same => n,Set(GLOBAL(SUMMARY)=${CALENDAR_EVENT(summary)})
 same => n,Set(GLOBAL(WHO)=${CALLERID(name)})
 same => n,Hangup()

[test]
exten => busy,1,Set(B=${CALENDAR_BUSY(work)})
exten => 200,hint,Calendar:work
exten => ext,1,Set(S=${EXTENSION_STATE(200@test)})
 same => n,Set(D=${DEVICE_STATE(Calendar:work)})
"""

MODULES = """
[modules]
autoload=no
load => res_calendar
load => app_dial
load => func_logic
load => func_global
load => func_callerid
load => app_verbose
"""


def calendar_conf(url: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [work]
        type=caldav
        url={url}
        refresh=15
        timeframe=120
        channel=Local/100@phones
        context=notify
        extension=s
        waittime=5
        setvar=CALLERID(name)=${{CALENDAR_EVENT(summary)}}
        """) + extra


async def start_pbx(tmp_path: Path, clock: FakeClock, calendar: str, dialplan: str = DIALPLAN) -> Pbx:
    config = write_config(tmp_path / "etc", dialplan, calendar_conf=calendar, modules_conf=MODULES)
    pbx = Pbx(config, state_dir=tmp_path / "var", verbose=3)
    pbx.clock = clock  # type: ignore[attr-defined]
    calendar_types(pbx)["caldav"] = ("CalDAV calendars", MemoryBackend)
    await pbx.start()
    await asyncio.sleep(0.05)
    return pbx


def service(pbx: Pbx):  # type: ignore[no-untyped-def]
    return pbx.modules.loaded["res_calendar"].service  # type: ignore[attr-defined]


async def refresh(pbx: Pbx) -> None:
    for cal in service(pbx).calendars.values():
        await cal.refresh()


def rings(pbx: Pbx) -> int:
    return int(pbx.globals.get("RINGS", "0") or 0)


async def cli(pbx: Pbx, line: str) -> str:
    words = line.split()
    cmd = pbx.registry.find_command(words)
    assert cmd is not None, line
    out = cmd.handler(CliArgs(pbx, words, words[len(cmd.words):]))
    if asyncio.iscoroutine(out):
        out = await out
    return out  # type: ignore[return-value]


async def wait_rings(pbx: Pbx, n: int, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while rings(pbx) < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # let the call finish


# ---------------------------------------------------------------------- calendar.conf
def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_calendar_conf(parse_text(textwrap.dedent(text), "calendar.conf"))


@pytest.mark.parametrize("text, where, words", [
    ("[a]\nurl=http://x/\n", 1, "no type"),
    ("[a]\ntype=outlook\nurl=http://x/\n", 2, "unknown calendar type 'outlook'"),
    ("[a]\ntype=caldav\n", 1, "no url"),
    ("[a]\ntype=ical\nurl=http://x/\nrefresh=soon\n", 4, "refresh value 'soon' is not a whole number"),
    ("[a]\ntype=ical\nurl=http://x/\ntimeframe=0\n", 4, "timeframe value 0 is too small"),
    ("[a]\ntype=ical\nurl=http://x/\nautoreminder=-5\n", 4, "autoreminder value -5 is too small"),
    ("[a]\ntype=ical\nurl=http://x/\nchannel=0000FFFF0001\n", 4, "is not Tech/Dest"),
    ("[a]\ntype=ical\nurl=http://x/\nsetvar=novalue\n", 4, "setvar 'novalue' has no variable name"),
    ("[a]\ntype=ical\nurl=http://x/\nfetch_again_at_reload=maybe\n", 4, "is not a yes/no value"),
    ("[a]\ntype=ical\nurl=http://x/\nwaittime=long\n", 4, "waittime value 'long'"),
    ("[a]\ntype=ical\nurl=http://x/\n[a]\ntype=ical\nurl=http://y/\n", 4, "defined twice"),
])
def test_config_errors_name_file_line_and_form(text: str, where: int, words: str) -> None:
    calendars, errors = parse(text)
    assert len(errors) == 1, errors
    message = str(errors[0])
    assert message.startswith(f"calendar.conf:{where}: ") and words in message and "; expected " in message


def test_config_defaults_and_every_option() -> None:
    calendars, errors = parse("""
        [general]
        [plain]
        type=ical
        url=http://127.0.0.1/x.ics
        [full]
        type=caldav
        url=https://dav.example/cal/
        user=alice
        secret=s3cret
        refresh=5
        timeframe=90
        autoreminder=10
        channel=SIP/0000FFFF0001
        context=AutomatedMeetingSetup
        extension=start
        app=Playback
        appdata=this-is-yr-wakeup-call
        waittime=-3
        setvar=CALLERID(name)=${CALENDAR_EVENT(summary)}
        setvar=__X=a=b
        fetch_again_at_reload=yes
        """)
    assert not errors
    plain, full = calendars
    assert (plain.refresh, plain.timeframe, plain.autoreminder, plain.waittime) == (15, 60, 0, 30)
    assert plain.fetch_again_at_reload is False and plain.setvars == ()
    assert (full.user, full.secret, full.refresh, full.timeframe, full.autoreminder) == ("alice", "s3cret", 5, 90, 10)
    assert (full.channel, full.context, full.extension, full.app, full.appdata) == \
        ("SIP/0000FFFF0001", "AutomatedMeetingSetup", "start", "Playback", "this-is-yr-wakeup-call")
    assert full.waittime == 30  # <= 0 is ignored, as in Asterisk
    assert full.setvars == (("CALLERID(name)", "${CALENDAR_EVENT(summary)}"), ("__X", "a=b"))
    assert full.fetch_again_at_reload is True
    assert full.backend_settings().options["user"] == "alice"


def test_a_bad_section_is_skipped_and_the_others_run() -> None:
    calendars, errors = parse("[bad]\ntype=x\nurl=u\n[good]\ntype=ical\nurl=http://x/\n")
    assert [c.name for c in calendars] == ["good"] and len(errors) == 1


# ---------------------------------------------------------------------- reminders
@aio
async def test_alarm_rings_once_with_event_and_caller_id(tmp_path: Path) -> None:
    STORES["mem://ring"] = Store([ev("wake@1", T0 + 600, alarm=T0 + 60, summary="Wake up")])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://ring"))
    lines: list[str] = []
    pbx.verbosity.sinks.append(lines.append)
    try:
        await clock.advance(30)
        assert rings(pbx) == 0
        await clock.advance(31)
        await wait_rings(pbx, 1)
        assert rings(pbx) == 1
        assert pbx.globals["SUMMARY"] == "Wake up" and pbx.globals["WHO"] == "Wake up"
        assert any("Dialing Local/100@phones for notification on calendar work" in l for l in lines)
        # refreshes and a reload afterwards never ring it again
        await refresh(pbx)
        await pbx.modules.reload("res_calendar")
        await asyncio.sleep(0.05)
        await clock.advance(5)
        await asyncio.sleep(0.3)
        assert rings(pbx) == 1
    finally:
        await pbx.stop()


@aio
async def test_autoreminder_overrides_alarm_and_alarms_same_second_ring_each_occurrence_once(tmp_path: Path) -> None:
    # two occurrences of one recurring event (same UID) plus a copy of the first one the
    # server returned twice: all due in the same second; each occurrence rings once
    first = ev("daily@1", T0 + 900, alarm=T0 + 10, recurrence_id="20300304T091500Z")
    second = ev("daily@1", T0 + 900, alarm=T0 + 10, recurrence_id="20300305T091500Z")
    STORES["mem://auto"] = Store([first, second, ev("daily@1", T0 + 900, alarm=T0 + 10,
                                                    recurrence_id="20300304T091500Z")])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://auto", "autoreminder=10\n"))
    try:
        await clock.advance(11)  # the VALARM time: overridden by autoreminder
        await asyncio.sleep(0.2)
        assert rings(pbx) == 0
        await clock.advance(300)  # T0+311 = start - 10 min - ... not yet (start-600 = T0+300)
        await wait_rings(pbx, 2)
        assert rings(pbx) == 2
    finally:
        await pbx.stop()


@aio
async def test_alarm_moved_is_rescheduled_and_deleted_is_dropped(tmp_path: Path) -> None:
    moved = ev("moved@1", T0 + 3600, alarm=T0 + 60, recurrence_id="A")
    deleted = ev("gone@1", T0 + 3600, alarm=T0 + 60)
    store = STORES["mem://move"] = Store([moved, deleted])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://move"))
    try:
        store.events = [ev("moved@1", T0 + 3600, alarm=T0 + 300, recurrence_id="A")]
        await refresh(pbx)
        await clock.advance(120)
        await asyncio.sleep(0.2)
        assert rings(pbx) == 0
        await clock.advance(200)
        await wait_rings(pbx, 1)
        assert rings(pbx) == 1
        await asyncio.sleep(0.2)
        assert rings(pbx) == 1
    finally:
        await pbx.stop()


@aio
async def test_no_alarm_and_no_autoreminder_never_rings(tmp_path: Path) -> None:
    STORES["mem://quiet"] = Store([ev("quiet@1", T0 + 60)])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://quiet"))
    try:
        await clock.advance(120)
        await asyncio.sleep(0.2)
        assert rings(pbx) == 0 and service(pbx).scheduler.pending()[0].name == "devstate"
    finally:
        await pbx.stop()


@aio
async def test_restart_does_not_ring_again_and_missed_alarm_rule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    STORES["mem://restart"] = Store([
        ev("rung@1", T0 + 600, alarm=T0 + 60),
        ev("late@1", T0 + 1800, alarm=T0 + 900),   # due while hookflash is down, not started yet
        ev("started@1", T0 + 1000, alarm=T0 + 950),  # due and started while down
    ])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://restart"))
    try:
        await clock.advance(61)
        await wait_rings(pbx, 1)
        assert rings(pbx) == 1
    finally:
        await pbx.stop()
    clock.now = T0 + 1200  # back up 20 minutes later
    caplog.set_level(logging.INFO, "hookflash.calendar")
    pbx = await start_pbx(tmp_path / "2", clock, calendar_conf("mem://restart"))
    # same state directory as the first run: the ledger lives there
    await pbx.stop()
    pbx = Pbx(tmp_path / "etc", state_dir=tmp_path / "var", verbose=3)
    pbx.clock = clock  # type: ignore[attr-defined]
    calendar_types(pbx)["caldav"] = ("CalDAV calendars", MemoryBackend)
    await pbx.start()
    try:
        await wait_rings(pbx, 1)
        assert rings(pbx) == 1  # late@1 rang late; rung@1 did not ring again
        assert "late@1 is 300 s late" in caplog.text
        assert "reminder for '' (started@1)" in caplog.text and "already started" in caplog.text
        await clock.advance(60)
        await asyncio.sleep(0.2)
        assert rings(pbx) == 1
        outcomes = {(r[1], r[3]) for r in service(pbx).ledger.rows()}
        assert outcomes == {("rung@1", "rung"), ("late@1", "rung"), ("started@1", "missed")}
    finally:
        await pbx.stop()


@aio
async def test_alarm_without_channel_logs_the_chapter_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    STORES["mem://nochan"] = Store([ev("x@1", T0 + 600, alarm=T0 + 60)])
    clock = FakeClock(T0)
    conf = calendar_conf("mem://nochan").replace("channel=Local/100@phones\n", "")
    pbx = await start_pbx(tmp_path, clock, conf)
    try:
        await clock.advance(61)
        await asyncio.sleep(0.2)
        assert "Channel should be in form Tech/Dest" in caplog.text and "x@1" in caplog.text
        assert rings(pbx) == 0 and not [c for c in pbx.channels if c.name.startswith("Calendar/")]
    finally:
        await pbx.stop()


@aio
async def test_unanswered_reminder_is_not_retried(tmp_path: Path) -> None:
    STORES["mem://noanswer"] = Store([ev("na@1", T0 + 600, alarm=T0 + 60)])
    clock = FakeClock(T0)
    dialplan = DIALPLAN.replace("exten => 100,1,Answer()", "exten => 100,1,Wait(3)")
    conf = calendar_conf("mem://noanswer").replace("waittime=5", "waittime=1")
    pbx = await start_pbx(tmp_path, clock, conf, dialplan)
    lines: list[str] = []
    pbx.verbosity.sinks.append(lines.append)
    try:
        await clock.advance(61)
        await asyncio.sleep(1.6)
        assert any("Notification call for work was not completed" in l for l in lines)
        assert rings(pbx) == 0
        await refresh(pbx)
        await clock.advance(10)
        await asyncio.sleep(0.3)
        assert sum("for notification on calendar" in l for l in lines) == 1
    finally:
        await pbx.stop()


# ---------------------------------------------------------------------- busy and device state
@aio
async def test_busy_tentative_free_and_device_state_pushes(tmp_path: Path) -> None:
    STORES["mem://busy"] = Store([
        ev("free@1", T0 + 60, 10, busy_state=BusyState.FREE),
        ev("tent@1", T0 + 1200, 10, busy_state=BusyState.TENTATIVE),
    ])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://busy"))
    pushed: list[tuple[str, DeviceState]] = []
    device_states(pbx).subscribe(lambda d, s: pushed.append((d, s)))
    hint_changes: list[str] = []
    device_states(pbx).watch_hint("test", "200", lambda s: hint_changes.append(s.func_name))
    try:
        await clock.advance(120)  # inside the free event
        assert (await call(pbx, "busy@test")).vars["B"] == "0"
        await clock.advance(1100)  # T0+1220: inside the tentative event
        assert pushed == [("Calendar:work", DeviceState.BUSY)]
        chan = await call(pbx, "busy@test")
        assert chan.vars["B"] == "1"
        chan = await call(pbx, "ext@test")
        assert (chan.vars["S"], chan.vars["D"]) == ("BUSY", "BUSY")
        assert "busy" in (await cli(pbx, "calendar show calendars"))
        await clock.advance(600)  # after its end
        assert pushed[-1] == ("Calendar:work", DeviceState.NOT_INUSE)
        assert hint_changes == ["BUSY", "NOT_INUSE"]
        assert (await call(pbx, "busy@test")).vars["B"] == "0"
        hints = await cli(pbx, "core show hints")
        assert "200@test            : Calendar:work         State:Idle" in hints
        assert "- 1 hints registered" in hints
    finally:
        await pbx.stop()


@aio
async def test_event_deleted_while_in_progress_frees_at_once(tmp_path: Path) -> None:
    store = STORES["mem://del"] = Store([ev("now@1", T0 - 60, 60)])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://del"))
    try:
        assert device_states(pbx).state("Calendar:work") == DeviceState.BUSY
        store.events = []
        await refresh(pbx)
        assert device_states(pbx).state("Calendar:work") == DeviceState.NOT_INUSE
        assert device_states(pbx).state("Calendar:nosuch") == DeviceState.INVALID
    finally:
        await pbx.stop()


@aio
async def test_dead_server_keeps_last_events_and_logs_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = STORES["mem://dead"] = Store([ev("m@1", T0 - 60, 60)])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://dead"))
    try:
        store.fail = "connection refused (http://127.0.0.1:1/)"
        for _ in range(3):
            await clock.advance(15 * 60)  # each refresh period
        assert store.fetches >= 4
        assert caplog.text.count("refresh failed") == 1
        assert "keeping the 1 events fetched before" in caplog.text
        cal = service(pbx).get("work")
        assert list(cal.events) == [("m@1", "20300304T085900Z")]
    finally:
        await pbx.stop()


@aio
async def test_an_error_while_merging_does_not_stop_refreshing(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """An error while merging one answer (here the reminder ledger's SQLite database is
    locked by another process) is logged with the calendar, and refreshing goes on."""
    import sqlite3
    store = STORES["mem://broken"] = Store([])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://broken"))
    try:
        ledger = service(pbx).ledger
        real_seen = ledger.seen

        def locked(*args: object) -> bool:
            raise sqlite3.OperationalError("database is locked")
        ledger.seen = locked
        store.events = [ev("a@1", T0 + 3600, alarm=T0 + 1800)]
        await clock.advance(15 * 60)
        assert "Calendar work: refresh failed" in caplog.text and "database is locked" in caplog.text
        ledger.seen = real_seen
        store.events.append(ev("b@1", T0 + 3600, alarm=T0 + 1800))
        await clock.advance(15 * 60)
        assert sorted(k[0] for k in service(pbx).get("work").events) == ["a@1", "b@1"]
    finally:
        await pbx.stop()


# ---------------------------------------------------------------------- functions
def test_query_order_matches_asterisk() -> None:
    a = ev("a", 1000, 10)
    b = ev("b", 1000, 20)  # same start, longer: first
    c = ev("c", 500, 5)
    assert [e.uid for e in query_events([a, b, c], 0, 10_000)] == ["c", "b", "a"]
    assert [e.uid for e in query_events([a, b, c], 1000, 1000)] == ["a", "b"]  # nearer end first
    assert [e.uid for e in query_events([a, b, c], 2000, 3000)] == ["b"]
    assert [e.uid for e in query_events([a, b, c], 2300, 3000)] == []


@aio
async def test_calendar_query_and_result(tmp_path: Path) -> None:
    STORES["mem://query"] = Store([
        ev("one@1", T0 + 600, 30, summary="One", location="SIP/9001;evil", organizer="mailto:o@x",
           attendees=["mailto:a@x", "mailto:b@x"], categories="work", priority=3),
        ev("two@1", T0 + 60, 10, summary="Two", busy_state=BusyState.TENTATIVE),
    ])
    clock = FakeClock(T0)
    dialplan = DIALPLAN + f"""
[q]
exten => s,1,Set(ID=${{CALENDAR_QUERY(work)}})
 same => n,Set(N=${{CALENDAR_QUERY_RESULT(${{ID}},getnum)}})
 same => n,Set(F=${{CALENDAR_QUERY_RESULT(${{ID}},summary)}})
 same => n,Set(S2=${{CALENDAR_QUERY_RESULT(${{ID}},summary,2)}})
 same => n,Set(AT=${{CALENDAR_QUERY_RESULT(${{ID}},attendees,2)}})
 same => n,Set(ST=${{CALENDAR_QUERY_RESULT(${{ID}},start,2)}})
 same => n,Set(BS=${{CALENDAR_QUERY_RESULT(${{ID}},busystate,1)}})
 same => n,Set(CAL=${{CALENDAR_QUERY_RESULT(${{ID}},calendar,2)}})
 same => n,Set(PR=${{CALENDAR_QUERY_RESULT(${{ID}},priority,2)}})
 same => n,Set(OUT=${{CALENDAR_QUERY_RESULT(${{ID}},summary,3)}})
 same => n,Set(ID2=${{CALENDAR_QUERY(work,{int(T0) + 3000},{int(T0) + 4000})}})
 same => n,Set(N2=${{CALENDAR_QUERY_RESULT(${{ID2}},getnum)}})
 same => n,Set(BAD=${{CALENDAR_QUERY_RESULT(nosuch,getnum)}})
 same => n,Set(LOC=${{FILTER(0-9A-Za-z,${{CALENDAR_QUERY_RESULT(${{ID}},location,2)}})}})
"""
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://query"), dialplan)
    try:
        chan = await call(pbx, "s@q")
        v = chan.vars
        assert len(v["ID"]) == 32 and all(ch in "0123456789abcdef" for ch in v["ID"])
        assert (v["N"], v["F"], v["S2"], v["BS"]) == ("2", "Two", "One", "1")
        assert v["AT"] == "mailto:a@x,mailto:b@x" and v["ST"] == str(int(T0) + 600)
        assert (v["CAL"], v["PR"], v["OUT"], v["N2"], v["BAD"]) == ("work", "3", "", "0", "")
    finally:
        await pbx.stop()


@aio
async def test_calendar_write_success_and_refusal(tmp_path: Path) -> None:
    store = STORES["mem://write"] = Store()
    clock = FakeClock(T0)
    dialplan = DIALPLAN + """
[w]
exten => s,1,Set(CallStart=1900000000)
 same => n,Set(CALENDAR_WRITE(work,summary,description,start,end)=Call to 5551234,Call lasted 42 seconds,${CallStart},1900000042)
 same => n,Set(OK1=${CALENDAR_SUCCESS})
 same => n,Set(CALENDAR_WRITE(work,summary,start)=only one value)
 same => n,Set(OK2=${CALENDAR_SUCCESS})
 same => n,Set(CALENDAR_WRITE(nosuch,summary)=x)
 same => n,Set(OK3=${CALENDAR_SUCCESS})
"""
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://write"), dialplan)
    try:
        chan = await call(pbx, "s@w")
        assert (chan.vars["OK1"], chan.vars["OK2"], chan.vars["OK3"]) == ("1", "0", "0")
        (written,) = store.written
        assert (written.summary, written.description) == ("Call to 5551234", "Call lasted 42 seconds")
        assert (written.start_epoch, written.end_epoch) == (1900000000, 1900000042)
        assert len(written.uid) == 36 and written.uid.count("-") == 4
        store.refuse = True
        chan = await call(pbx, "s@w")
        assert chan.vars["OK1"] == "0" and len(store.written) == 1
    finally:
        await pbx.stop()


@aio
async def test_calendar_write_does_not_hold_up_other_calls(tmp_path: Path) -> None:
    gate = asyncio.Event()

    class SlowBackend(MemoryBackend):
        async def write(self, event: CalendarEvent) -> None:
            await gate.wait()

    clock = FakeClock(T0)
    dialplan = DIALPLAN + "[w]\nexten => s,1,Set(CALENDAR_WRITE(work,summary)=slow)\n same => n,Set(DONE=${CALENDAR_SUCCESS})\n"
    config = write_config(tmp_path / "etc", dialplan, calendar_conf=calendar_conf("mem://slow"), modules_conf=MODULES)
    pbx = Pbx(config, state_dir=tmp_path / "var", verbose=0)
    pbx.clock = clock  # type: ignore[attr-defined]
    calendar_types(pbx)["caldav"] = ("CalDAV calendars", SlowBackend)
    await pbx.start()
    try:
        writer = asyncio.ensure_future(call(pbx, "s@w", timeout=10))
        await asyncio.sleep(0.1)
        # another call runs to its end while the write waits for the server
        one = await pbx.request("Local/busy@test/n")
        two = one.tech.pair.chan  # type: ignore[attr-defined]
        await one.tech.call(one, "busy@test", 2)
        for _ in range(100):
            if two.hung_up:
                break
            await asyncio.sleep(0.01)
        assert two.hung_up and two.vars["B"] == "0" and not writer.done()
        await one.hangup()
        gate.set()
        assert (await writer).vars["DONE"] == "1"
    finally:
        await pbx.stop()


@aio
async def test_calendar_event_outside_notification_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    STORES["mem://ev"] = Store()
    clock = FakeClock(T0)
    dialplan = DIALPLAN + "[e]\nexten => s,1,Set(X=${CALENDAR_EVENT(summary)})\n same => n,Set(Y=${CALENDAR_BUSY(nosuch)})\n"
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://ev"), dialplan)
    try:
        chan = await call(pbx, "s@e")
        assert chan.vars["X"] == "" and chan.vars["Y"] == ""
        assert "No event notification datastore" in caplog.text
        assert "Could not find calendar 'nosuch'" in caplog.text
    finally:
        await pbx.stop()


# ---------------------------------------------------------------------- console
@aio
async def test_console_layouts(tmp_path: Path) -> None:
    STORES["mem://cli"] = Store([ev("Awesome@1", T0 + 600, 30, alarm=T0 + 300, summary="Awesome Call With Russell",
                                    priority=0, busy_state=BusyState.TENTATIVE)])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://cli"))
    try:
        out = await cli(pbx, "calendar show calendars")
        assert out.splitlines() == ["Calendar             Type       Status",
                                    "--------             ----       ------",
                                    "work                 caldav     free  "]
        out = await cli(pbx, "calendar show calendar work")
        lines = out.splitlines()
        assert lines[0] == "Name               : work                "
        assert lines[1] == "Notify channel     : Local/100@phones    "
        assert lines[4] == "Notify application :                     "
        assert lines[6] == "Refresh time      : 15"
        assert lines[7] == "Timeframe         : 120"
        assert lines[8] == "Autoreminder      : None"
        assert lines[9:11] == ["Events", "------"]
        assert lines[11] == "Summary     : Awesome Call With Russell               "
        assert lines[16] == "Priority    : 0"
        assert lines[17].startswith("UID         : Awesome@1")
        assert lines[18].startswith("Start       : 20") and " AM " in lines[18] or " PM " in lines[18]
        assert lines[21].rstrip() == "Busy State  : Busy (Tentative)"
        assert await cli(pbx, "calendar show calendar nosuch") == ""
        cmd = pbx.registry.find_command(["calendar", "show", "calendar"])
        assert cmd is not None and cmd.complete is not None and cmd.complete(pbx, [], "wo") == ["work"]
        out = await cli(pbx, "calendar show types")
        assert out.splitlines() == ["Type       Description                   ",
                                    "caldav     CalDAV calendars              "]
        out = await cli(pbx, "calendar dump sched")
        assert out.startswith("Asterisk Schedule Dump (2 in Q, ")
        assert "| notify          | work:Awesome@1  | 000300 : 000000 |" in out
    finally:
        await pbx.stop()


@aio
async def test_reload_refreshes_at_once_and_fetch_again(tmp_path: Path) -> None:
    store = STORES["mem://reload"] = Store([ev("a@1", T0 + 3600)])
    clock = FakeClock(T0)
    pbx = await start_pbx(tmp_path, clock, calendar_conf("mem://reload"))
    try:
        before = store.fetches
        store.events.append(ev("b@1", T0 + 600, alarm=T0 + 60))
        assert await pbx.modules.reload("res_calendar") == []
        await asyncio.sleep(0.1)
        assert store.fetches == before + 1 and len(service(pbx).get("work").events) == 2
        old = service(pbx).get("work")
        (tmp_path / "etc" / "calendar.conf").write_text(calendar_conf("mem://reload", "fetch_again_at_reload=yes\n"))
        await pbx.modules.reload("res_calendar")
        await asyncio.sleep(0.1)
        assert service(pbx).get("work") is not old and store.fetches == before + 2
        (tmp_path / "etc" / "calendar.conf").write_text("[work]\ntype=caldav\n")
        messages = await pbx.modules.reload("res_calendar")
        assert "calendar.conf:1: calendar 'work' has no url" in messages[0]
        assert service(pbx).get("work") is not None  # kept the running configuration
    finally:
        await pbx.stop()


@aio
async def test_backend_loaded_after_core_starts_its_calendars(tmp_path: Path) -> None:
    STORES["mem://late"] = Store([ev("a@1", T0 - 60, 60)])
    clock = FakeClock(T0)
    config = write_config(tmp_path / "etc", DIALPLAN, calendar_conf=calendar_conf("mem://late"), modules_conf=MODULES)
    pbx = Pbx(config, state_dir=tmp_path / "var", verbose=0)
    pbx.clock = clock  # type: ignore[attr-defined]
    await pbx.start()
    try:
        assert service(pbx).get("work") is None
        calendar_types(pbx)["caldav"] = ("CalDAV calendars", MemoryBackend)
        await asyncio.sleep(0.05)
        assert service(pbx).get("work") is not None and service(pbx).get("work").busy
        calendar_types(pbx).pop("caldav")
        await asyncio.sleep(0.05)
        assert service(pbx).get("work") is None
    finally:
        await pbx.stop()
