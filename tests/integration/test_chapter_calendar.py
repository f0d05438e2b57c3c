"""CHAPTER.md section 1 (calendar integration) end to end, run the way a user runs it.

Real components only: the ``hookflash`` server process on a config directory (commands
through ``hookflash -rx``), Radicale as the CalDAV server (``type=caldav``), baresip
phones registered to hookflash (tone WAV as microphone, received audio recorded) and
SIPp for the call-log section (caller and ITSP). The chapter's listings
(tests/chapter/listings) are used verbatim. Alarms are set a few seconds ahead on the
real clock and picked up at once with ``module reload res_calendar`` (the chapter's own
way of forcing a refresh); the fake-clock tests are in tests/unit.

Sections: 1.1 wake-up call (prompt heard, rings once across reload and restart); 1.2
meeting between two parties (hostile location filtered, second phone dialled after the
first answers); 1.3 all attendees into MeetMe; 1.4 busy routing to VoiceMail, plain and
AstDB-driven; 1.5 finished calls written to the Phone Calls calendar, and
CALENDAR_SUCCESS=0 when Radicale refuses. The ``calendar show`` console commands are
checked against Asterisk's printf layouts (res_calendar.c).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import numpy as np
import pytest
import soundfile

from tests.integration.calendar_servers import USERS, Radicale
from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav
from tests.integration.test_calendar_reminders import uas_scenario

LISTINGS = Path(__file__).parent.parent / "chapter" / "listings"
PROMPTS = Path(__file__).parents[2] / ".venv" / "share" / "hookflash" / "sounds" / "en"
FMT = "%Y%m%dT%H%M%SZ"


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    pytest.importorskip("radicale", reason="radicale is not installed (pip install radicale)")
    with Radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def teardown() -> Iterator[contextlib.ExitStack]:
    """Stops what a test started (phones first, then the server), even when it fails
    half-way through starting them."""
    with contextlib.ExitStack() as stack:
        yield stack


def new_calendar(radicale: Radicale) -> str:
    """A fresh calendar collection of alice's; returns its URL."""
    return radicale.make_calendar(f"cal-{uuid.uuid4().hex[:8]}")


def vevent(uid: str, start: datetime, end: datetime, summary: str, *, location: str = "",
           description: str = "", alarm_before: timedelta | None = None, transp: str = "OPAQUE") -> str:
    """One VCALENDAR as a calendar client writes it (text escaped per RFC 5545)."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hookflash tests//chapter 1//EN", "BEGIN:VEVENT",
             f"UID:{uid}", f"DTSTAMP:{datetime.now(UTC).strftime(FMT)}", f"DTSTART:{start.strftime(FMT)}",
             f"DTEND:{end.strftime(FMT)}", f"SUMMARY:{esc(summary)}", f"TRANSP:{transp}"]
    if location:
        lines.append(f"LOCATION:{esc(location)}")
    if description:
        lines.append(f"DESCRIPTION:{esc(description)}")
    if alarm_before is not None:
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:reminder",
                  f"TRIGGER:-PT{int(alarm_before.total_seconds())}S", "END:VALARM"]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def put_alarm_event(radicale: Radicale, url: str, uid: str, summary: str, lead: float = 3.0,
                    **fields: str) -> datetime:
    """An event starting in 15 minutes whose VALARM (15 minutes before) is ``lead`` s from
    now; returns the alarm time."""
    alarm = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(lead) + 1)
    start = alarm + timedelta(minutes=15)
    radicale.put(url, f"{uid}.ics", vevent(uid, start, start + timedelta(minutes=30), summary,
                                           alarm_before=timedelta(minutes=15), **fields))
    return alarm


def rtp_conf() -> str:
    start = free_port(pair=True)
    return f"[general]\nrtpstart={start}\nrtpend={start + 200}\n"


def sip_conf(context: str, users: list[str]) -> str:
    """Registered phones (baresip) in ``context``; ``{port}`` is filled in by start_server."""
    text = ("[general]\nbindaddr=127.0.0.1\nbindport={port}\ncontext=unauthenticated\nallowguest=no\n\n"
            f"[phone](!)\ntype=friend\nhost=dynamic\ncontext={context}\ndisallow=all\nallow=ulaw\n"
            "dtmfmode=rfc2833\n")
    for user in users:
        text += f"\n[{user}](phone)\nsecret=secret{user}\ncallerid=\"Phone {user}\" <{user}>\n"
    return text


def caldav_section(name: str, radicale: Radicale, url: str, extra: str = "", user: str = "alice",
                   secret: str | None = None) -> str:
    return (f"[{name}]\ntype=caldav\nurl={url}\nuser={user}\nsecret={secret or USERS[user]}\n"
            f"refresh=15\ntimeframe=60\n{extra}\n")


def start_server(tmp_path: Path, teardown: contextlib.ExitStack, files: dict[str, str]) -> Server:
    port = free_port()
    files = {"rtp.conf": rtp_conf(), "asterisk.conf": "[options]\nverbose=3\n", **files}
    files["sip.conf"] = files["sip.conf"].replace("{port}", str(port))
    server = Server(tmp_path / "etc", files)
    server.port = port  # type: ignore[attr-defined]
    teardown.callback(server.stop)
    return server.start()


class Phone:
    """A registered baresip phone sending a tone; ``auto`` answers by itself."""

    def __init__(self, tmp_path: Path, server: Server, user: str, freq: float, auto: bool = True,
                 teardown: contextlib.ExitStack | None = None) -> None:
        d = tmp_path / f"phone{user}"
        mode = "auto" if auto else "manual"
        account = (f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};answermode={mode};"  # type: ignore[attr-defined]
                   "audio_codecs=pcmu;regint=600")
        d.mkdir(parents=True, exist_ok=True)
        self.user, self.freq, self.server = user, freq, server
        mic = tone_wav(d / "mic.wav", freq, 60)
        try:
            self.b = Baresip(d, account, mic).start()
        except AssertionError:  # its free ports were taken meanwhile: once more, new ports
            self.b = Baresip(d, account, mic).start()
        if teardown is not None:
            teardown.callback(self.b.stop)
        self.established = 0.0

    def wait(self, kind: str, timeout: float = 15) -> dict[str, object]:
        event = self.b.wait_event(kind, timeout)
        if kind == "CALL_ESTABLISHED":
            self.established = time.time()
        return event

    def seen(self, kind: str) -> bool:
        """Whether an event of this kind has arrived (without waiting)."""
        self.b._pump()
        return any(e.get("type") == kind for e in self.b.events)

    def dial(self, exten: str) -> None:
        self.b.command("dial", f"sip:{exten}@127.0.0.1:{self.server.port}")  # type: ignore[attr-defined]

    def hangup(self) -> None:
        self.b.command("hangup")
        self.wait("CALL_CLOSED")

    def heard(self, start: float | None = None, end: float | None = None) -> np.ndarray:
        """What the phone received in its last call (between two wall-clock times)."""
        data, rate = soundfile.read(str(self.b.recordings("dec")[-1]))
        if data.ndim > 1:
            data = data[:, 0]
        a = 0 if start is None else max(int((start - self.established) * rate), 0)
        b = len(data) if end is None else int((end - self.established) * rate)
        return data[a:b]


def wait_registered(server: Server, *users: str) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        if all(f"Registered SIP '{u}'" in server.output() for u in users):
            return
        time.sleep(0.1)
    raise AssertionError(f"not registered: {users}\n{server.rx('sip show peers')}")


def wait_until(predicate, timeout: float = 15, what: str = "", server: Server | None = None):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n" + (server.output()[-4000:] if server else ""))


def refresh(server: Server, calendar: str, uid: str | None, present: bool = True) -> None:
    """``module reload res_calendar`` and wait until the calendar shows (or no longer
    shows) the event."""
    server.rx("module reload res_calendar")
    if uid is not None:
        wait_until(lambda: (f": {uid}" in server.rx(f"calendar show calendar {calendar}")) == present,
                   what=f"{calendar} to {'show' if present else 'drop'} {uid}", server=server)


def voiced_seconds(samples: np.ndarray, rate: int = 8000, threshold: float = 0.02) -> float:
    """Seconds of 20 ms windows whose RMS is above ``threshold`` (full scale 1.0)."""
    n = rate // 50
    windows = samples[: len(samples) // n * n].reshape(-1, n)
    return float((np.sqrt((windows ** 2).mean(axis=1)) > threshold).sum()) * 0.02


def band(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[np.abs(freqs - freq) <= 12].max())


def executed(log: str, app: str) -> list[str]:
    """The data of each ``Executing [...] App("chan", "data")`` verbose line."""
    return re.findall(rf'\] {app}\("[^"]*", "([^"]*)"\)', log)


def show_calendar_expected(name: str, channel: str = "", context: str = "", extension: str = "",
                           app: str = "", appdata: str = "", refresh: int = 15, timeframe: int = 60) -> list[str]:
    """The head of ``calendar show calendar`` as Asterisk's res_calendar.c prints it:
    ``"%-18.18s : %-20.20s"`` for the notify lines, ``"%-17.17s : %d"`` for the numbers
    (CHAPTER.md's sample, from Asterisk 1.8, used 17 columns for both), ``Autoreminder :
    None`` when 0."""
    head = [f"{label:<18.18s} : {value:<20.20s}" for label, value in (
        ("Name", name), ("Notify channel", channel), ("Notify context", context),
        ("Notify extension", extension), ("Notify application", app), ("Notify appdata", appdata))]
    head += [f"{'Refresh time':<17.17s} : {refresh}", f"{'Timeframe':<17.17s} : {timeframe}",
             f"{'Autoreminder':<17.17s} : None", "Events", "------"]
    return head


def local(when: datetime) -> str:
    return time.strftime("%F %r %z", time.localtime(when.timestamp()))


# ---------------------------------------------------------------- 1.1 wake-up call
def test_1_1_alarm_on_radicale_rings_the_phone_which_hears_the_prompt_once(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("baresip")
    if not (PROMPTS / "this-is-yr-wakeup-call.wav").exists():
        pytest.skip("the chapter's prompts are not generated: run scripts/make-prompts.sh")
    url = new_calendar(radicale)
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("phones", ["1001"]),
        "extensions.conf": "[phones]\n",
        "calendar.conf": caldav_section("myGoogleCal", radicale, url,
                                        "channel=SIP/1001\napp=Playback\nappdata=this-is-yr-wakeup-call\n"
                                        "setvar=CALLERID(name)=${CALENDAR_EVENT(summary)}\n")})
    phone = Phone(tmp_path, server, "1001", 700, teardown=teardown)
    wait_registered(server, "1001")
    alarm = put_alarm_event(radicale, url, "wake-1", "Awesome Call With Russell", lead=5,
                            location="Room 1", description="Bring coffee")
    refresh(server, "myGoogleCal", "wake-1")

    # the console, in Asterisk's layout, with the Radicale event and its alarm
    shown = server.rx("calendar show calendar myGoogleCal").splitlines()
    assert shown[:11] == show_calendar_expected("myGoogleCal", "SIP/1001", app="Playback",
                                                appdata="this-is-yr-wakeup-ca"), shown
    start = alarm + timedelta(minutes=15)
    assert shown[11:23] == [f"{label:<12.12s}: {value:<40.60s}" for label, value in (
        ("Summary", "Awesome Call With Russell"), ("Description", "Bring coffee"), ("Organizer", ""),
        ("Location", "Room 1"), ("Categories", ""))] + ["Priority    : 0"] + [
        f"{label:<12.12s}: {value:<40.60s}" for label, value in (
            ("UID", "wake-1"), ("Start", local(start)), ("End", local(start + timedelta(minutes=30))),
            ("Alarm", local(alarm)), ("Busy State", "Busy"))] + [""], shown
    calendars = server.rx("calendar show calendars")
    assert calendars.splitlines() == [f"{'Calendar':<20} {'Type':<10} {'Status':<6}",
                                      f"{'--------':<20} {'----':<10} {'------':<6}",
                                      f"{'myGoogleCal':<20} {'caldav':<10} {'free':<6}"], calendars
    types = server.rx("calendar show types").splitlines()
    assert types[0] == f"{'Type':<10} {'Description':<30}"
    # every backend module loads by default; Asterisk's descriptions
    assert sorted(types[1:]) == [f"{t:<10.10} {d:<30.30}" for t, d in (
        ("caldav", "CalDAV calendars"), ("ews", "MS Exchange Web Service calendars"),
        ("exchange", "MS Exchange calendars"), ("ical", "iCalendar .ics calendars"))], types

    assert server.wait_for("Dialing SIP/1001 for notification on calendar myGoogleCal", 15), \
        server.output()[-3000:]
    dialled_at = time.time()
    assert dialled_at >= alarm.timestamp() - 0.5, "rang before the alarm"
    assert dialled_at <= alarm.timestamp() + 4, "rang late"
    phone.wait("CALL_ESTABLISHED")
    phone.wait("CALL_CLOSED", timeout=20)  # the prompt played, then hookflash hangs up
    log = server.output()
    assert re.search(r"SIP/1001-\S+ answered Calendar/myGoogleCal-[0-9a-f]{32}\n", log), log[-3000:]
    assert "Playing 'this-is-yr-wakeup-call" in log and "does not exist" not in log, log[-3000:]
    # what the phone heard is the prompt, not silence
    prompt, _ = soundfile.read(str(PROMPTS / "this-is-yr-wakeup-call.wav"))
    heard = phone.heard()
    assert voiced_seconds(heard) >= 0.5 * voiced_seconds(prompt), (voiced_seconds(heard), voiced_seconds(prompt))

    # rings once: an immediate refresh does not ring the occurrence again...
    refresh(server, "myGoogleCal", "wake-1")
    time.sleep(2)
    assert server.output().count("for notification on calendar myGoogleCal") == 1
    # ...nor a restart: the alarm is past and the event has not started, the rule that
    # would ring a missed reminder at once; the durable ledger says it already rang
    server.stop()
    (server.dir / "hookflash-first-run.log").write_text(server.output())
    server.proc = None
    server.socket.unlink(missing_ok=True)
    server.start()
    wait_until(lambda: ": wake-1" in server.rx("calendar show calendar myGoogleCal"),
               what="the event after the restart", server=server)
    time.sleep(2.5)
    assert "for notification on calendar" not in server.output(), server.output()[-3000:]
    assert not phone.seen("CALL_INCOMING")

    # the chapter: "an event moved to start in two minutes triggers at once" after a
    # reload (its 5-minute alarm is then past, the event has not started)
    now = datetime.now(UTC).replace(microsecond=0)
    later = vevent("wake-2", now + timedelta(minutes=50), now + timedelta(minutes=80), "Standup",
                   alarm_before=timedelta(minutes=5))
    radicale.put(url, "wake-2.ics", later)
    refresh(server, "myGoogleCal", "wake-2")
    time.sleep(1)
    assert "for notification on calendar" not in server.output()
    radicale.put(url, "wake-2.ics", later.replace(
        (now + timedelta(minutes=50)).strftime(FMT), (now + timedelta(minutes=2)).strftime(FMT)).replace(
        (now + timedelta(minutes=80)).strftime(FMT), (now + timedelta(minutes=32)).strftime(FMT)))
    reloaded = time.time()
    refresh(server, "myGoogleCal", None)
    assert server.wait_for("Dialing SIP/1001 for notification on calendar myGoogleCal", 10), \
        server.output()[-3000:]
    assert time.time() - reloaded < 5
    phone.wait("CALL_ESTABLISHED")
    phone.wait("CALL_CLOSED", timeout=20)
    assert server.output().count("for notification on calendar") == 1


# ---------------------------------------------------------------- 1.2 two parties
def test_1_2_hostile_location_is_filtered_and_the_location_device_rings_after_the_first_answers(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("baresip")
    listing = (LISTINGS / "listing01.conf").read_text()
    url = new_calendar(radicale)
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("phones", ["1001", "1002", "9001"]),
        "chapter.conf": listing, "extensions.conf": "#include chapter.conf\n[phones]\n",
        "calendar.conf": caldav_section("meetings", radicale, url,
                                        "channel=SIP/1001\ncontext=AutomatedMeetingSetup\nextension=start\n")})
    organiser = Phone(tmp_path, server, "1001", 500, auto=False, teardown=teardown)
    callee = Phone(tmp_path, server, "1002", 900, teardown=teardown)
    premium = Phone(tmp_path, server, "9001", 1300, teardown=teardown)  # must never ring
    wait_registered(server, "1001", "1002", "9001")
    # a compromised calendar: the location tries to reach another device with options
    put_alarm_event(radicale, url, "evil-1", "Meeting", lead=3, location="SIP/9001;evil")
    refresh(server, "meetings", "evil-1")
    organiser.wait("CALL_INCOMING", timeout=15)
    organiser.b.command("accept")
    organiser.wait("CALL_ESTABLISHED")
    organiser.wait("CALL_CLOSED", timeout=15)  # no such device: Dial fails, Hangup()
    log = server.output()
    assert "Triggering meeting setup for two participants" in log
    assert executed(log, "Dial") == ["SIP/SIP9001evil,30"], executed(log, "Dial")
    assert "SIP/9001-" not in log and "SIP/9001;" not in log
    assert not premium.seen("CALL_INCOMING") and not callee.seen("CALL_INCOMING")
    wait_until(lambda: "0 active channels" in server.rx("core show channels"), timeout=5,
               what="no channel left", server=server)

    # a clean location: the location's device is dialled once the organiser answers
    put_alarm_event(radicale, url, "meet-2", "Meeting", lead=3, location="1002")
    refresh(server, "meetings", "meet-2")
    organiser.wait("CALL_INCOMING", timeout=15)
    time.sleep(1.5)
    assert not callee.seen("CALL_INCOMING"), "the second phone rang before the first answered"
    organiser.b.command("accept")
    organiser.wait("CALL_ESTABLISHED")
    callee.wait("CALL_ESTABLISHED")
    time.sleep(2.5)
    channels = server.rx("core show channels concise")
    rows = [line.split("!") for line in channels.splitlines()]
    names = sorted(r[0].split("-")[0] for r in rows)
    assert names == ["SIP/1001", "SIP/1002"], channels
    assert any(r[0].startswith("SIP/1001-") and r[12].startswith("SIP/1002-") for r in rows), channels
    end = time.time()
    organiser.hangup()
    callee.wait("CALL_CLOSED")
    time.sleep(0.3)
    assert executed(server.output(), "Dial")[-1] == "SIP/1002,30"
    assert abs(dominant_of(callee.heard(end - 2, end - 0.2)) - 500) < 15  # the organiser's voice
    assert not premium.seen("CALL_INCOMING")


def test_1_2_extended_organiser_confirms_records_an_invite_and_the_callee_accepts(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    """The chapter's extended listing: the organiser presses 1, records an invitation
    (its tone) ended with #; the location's phone is dialled with M(CheckConfirm), hears
    the invitation, presses 1, and the two are connected."""
    need("baresip")
    if not (PROMPTS / "to-confirm-wakeup.wav").exists():
        pytest.skip("the chapter's prompts are not generated: run scripts/make-prompts.sh")
    listing = (LISTINGS / "listing02.conf").read_text()
    url = new_calendar(radicale)
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("phones", ["1001", "1002"]),
        "chapter.conf": listing, "extensions.conf": "#include chapter.conf\n[phones]\n",
        "calendar.conf": caldav_section("meetings", radicale, url,
                                        "channel=SIP/1001\ncontext=AutomatedMeetingSetup\nextension=start\n")})
    organiser = Phone(tmp_path, server, "1001", 500, teardown=teardown)
    callee = Phone(tmp_path, server, "1002", 900, teardown=teardown)
    invites_before = set(Path("/tmp").glob("meeting-invite-*.ulaw"))
    def remove_invites() -> None:
        for path in set(Path("/tmp").glob("meeting-invite-*.ulaw")) - invites_before:
            path.unlink()
    teardown.callback(remove_invites)
    wait_registered(server, "1001", "1002")
    put_alarm_event(radicale, url, "meet-3", "Design review", lead=3, location="1002")
    refresh(server, "meetings", "meet-3")
    organiser.wait("CALL_ESTABLISHED", timeout=15)
    wait_until(lambda: executed(server.output(), "Read"), what="the organiser's Read", server=server)
    time.sleep(0.5)
    # the listing's Read(...,,1) reads up to 255 digits ("1" lands in the options): end with #
    organiser.b.keys("1")
    time.sleep(0.3)
    organiser.b.keys("#")
    wait_until(lambda: executed(server.output(), "Record"), timeout=20, what="Record", server=server)
    [target] = executed(server.output(), "Record")
    assert re.fullmatch(r"/tmp/meeting-invite-\d+\.ulaw", target), target
    time.sleep(2.5)  # the beep, then about two seconds of the organiser's tone
    organiser.b.keys("#")
    callee.wait("CALL_ESTABLISHED", timeout=15)
    wait_until(lambda: len(executed(server.output(), "Read")) == 2, timeout=20, what="the callee's Read",
               server=server)
    asked = time.time()
    time.sleep(0.5)
    callee.b.keys("1")
    time.sleep(0.3)
    callee.b.keys("#")
    time.sleep(2.5)
    end = time.time()
    log = server.output()
    assert executed(log, "Dial")[-1] == "SIP/1002,30,M(CheckConfirm)"
    assert executed(log, "Playback")[-1] == target[:-len(".ulaw")]  # the invitation, by the inherited __RandomNumber
    assert "Call was rejected" not in log
    rows = [line.split("!") for line in server.rx("core show channels concise").splitlines()]
    assert any(r[0].startswith("SIP/1001-") and r[12].startswith("SIP/1002-") for r in rows), rows
    organiser.hangup()
    callee.wait("CALL_CLOSED")
    time.sleep(0.3)
    assert Path(target).stat().st_size > 8000  # over a second of mu-law
    invitation = callee.heard(callee.established + 0.2, asked - 0.2)
    assert abs(dominant_of(invitation) - 500) < 15, dominant_of(invitation)  # the organiser's recording
    assert abs(dominant_of(callee.heard(end - 1.5, end - 0.1)) - 500) < 15  # then the organiser live


def dominant_of(x: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# ---------------------------------------------------------------- 1.3 conference
def test_1_3_description_attendees_are_called_into_the_meetme_room(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("baresip")
    listing = (LISTINGS / "listing03.conf").read_text()
    url = new_calendar(radicale)
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("phones", ["1001", "1002", "1003"]),
        "chapter.conf": listing, "extensions.conf": "#include chapter.conf\n[phones]\n",
        "calendar.conf": caldav_section("conference", radicale, url,
                                        "channel=SIP/1001\ncontext=AutomatedMeetingSetup\nextension=start\n")})
    organiser = Phone(tmp_path, server, "1001", 1400, teardown=teardown)
    attendees = [Phone(tmp_path, server, u, f, teardown=teardown) for u, f in (("1002", 500), ("1003", 900))]
    wait_registered(server, "1001", "1002", "1003")
    put_alarm_event(radicale, url, "conf-1", "Weekly sync", lead=3, location="4567",
                    description="1002^1003")
    refresh(server, "conference", "conf-1")
    organiser.wait("CALL_ESTABLISHED", timeout=20)
    for phone in attendees:
        phone.wait("CALL_ESTABLISHED", timeout=20)
    listing_out = wait_until(lambda: (out := server.rx("meetme list 4567")) and
                             "3 users in that conference." in out and out, timeout=15,
                             what="3 users in room 4567", server=server)
    assert sorted(re.findall(r"Channel: (SIP/\d+)-", listing_out)) == ["SIP/1001", "SIP/1002", "SIP/1003"]
    [room] = [line.split() for line in server.rx("meetme list").splitlines() if line.startswith("4567 ")]
    assert room[1:3] == ["0003", "0001"], room  # three parties, one marked (the organiser's A)
    log = server.output()
    assert executed(log, "Dial") and executed(log, "Dial")[0] == \
        "Local/1002@MeetingOriginator&Local/1003@MeetingOriginator"
    assert sorted(executed(log, "Originate")) == ["SIP/1002,exten,MeetingOriginator,meetme-4567,1",
                                                  "SIP/1003,exten,MeetingOriginator,meetme-4567,1"]
    assert "Calendar/conference-" in log
    time.sleep(5)  # the attendees hear MeetMe's prompts first
    end = time.time()
    for phone in (organiser, *attendees):
        phone.hangup()
    time.sleep(0.3)
    heard = organiser.heard(end - 2.5, end - 0.2)
    weakest = min(band(heard, f) for f in (500, 900))
    assert weakest > 20 * band(heard, 1400), {f: round(band(heard, f)) for f in (500, 900, 1400)}


# ---------------------------------------------------------------- 1.4 busy routing
VOICEMAIL = """
[general]
format=wav
maxsecs=30
minsecs=1

[shifteight]
3000 => 1234,Leif Madsen

[sales]
3001 => 1111,Alice Sales

[support]
3002 => 2222,Bob Support
"""


def leave_voicemail(server: Server, caller: Phone, exten: str, seconds: float = 2.0) -> None:
    before = server.output().count("Playing 'beep")
    caller.dial(exten)
    caller.wait("CALL_ESTABLISHED", timeout=30)
    time.sleep(1.0)
    caller.b.keys("#")  # skip the greeting
    wait_until(lambda: server.output().count("Playing 'beep") > before, timeout=30, what="the beep",
               server=server)
    time.sleep(0.5 + seconds)
    caller.hangup()  # a hangup keeps the message


def message(server: Server, context: str, box: str) -> str:
    txt = server.dir / "var" / "spool" / "voicemail" / context / box / "INBOX" / "msg0000.txt"
    wait_until(txt.exists, what=f"a message in {box}@{context}", server=server)
    return txt.read_text()


def test_1_4_extension_3000_goes_to_voicemail_while_busy_and_rings_the_phone_when_free(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("baresip")
    listing = (LISTINGS / "listing04.conf").read_text()
    work, other = new_calendar(radicale), new_calendar(radicale)
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("LocalSets", ["1001", "0000FFFF0002"]),
        "extensions.conf": listing, "voicemail.conf": VOICEMAIL,
        "calendar.conf": caldav_section("myGoogleCal", radicale, work) + caldav_section("holidays", radicale, other)})
    caller = Phone(tmp_path, server, "1001", 440, teardown=teardown)
    desk = Phone(tmp_path, server, "0000FFFF0002", 800, teardown=teardown)
    wait_registered(server, "1001", "0000FFFF0002")
    now = datetime.now(UTC).replace(microsecond=0)
    radicale.put(work, "busy.ics", vevent("busy-1", now - timedelta(minutes=5), now + timedelta(minutes=25),
                                          "Awesome Call With Russell"))
    refresh(server, "myGoogleCal", "busy-1")
    calendars = server.rx("calendar show calendars").splitlines()
    assert calendars[2:] == [f"{'holidays':<20} {'caldav':<10} {'free':<6}",
                             f"{'myGoogleCal':<20} {'caldav':<10} {'busy':<6}"], calendars
    assert server.rx("calendar show calendar nosuchcal") == ""

    leave_voicemail(server, caller, "3000")
    meta = message(server, "shifteight", "3000")
    assert "origmailbox=3000" in meta and "callerchan=SIP/1001-" in meta, meta
    log = server.output()
    assert "Caller sent to voicemail" in log
    assert executed(log, "VoiceMail") == ["3000@shifteight,b"], executed(log, "VoiceMail")
    assert "Playing 'vm-theperson" in log  # the busy greeting (skipped with #)
    assert not desk.seen("CALL_INCOMING") and executed(log, "Dial") == []

    # the meeting is deleted on the server: free again, 3000 rings the desk phone
    radicale.delete(work, "busy.ics")
    refresh(server, "myGoogleCal", "busy-1", present=False)
    assert f"{'myGoogleCal':<20} {'caldav':<10} {'free':<6}" in server.rx("calendar show calendars")
    caller.dial("3000")
    desk.wait("CALL_ESTABLISHED", timeout=15)
    caller.wait("CALL_ESTABLISHED")
    time.sleep(2)
    end = time.time()
    caller.hangup()
    desk.wait("CALL_CLOSED")
    log = server.output()
    assert executed(log, "Dial") == ["SIP/0000FFFF0002,30"]
    assert executed(log, "VoiceMail") == ["3000@shifteight,b"]  # no second trip to voicemail
    assert abs(dominant_of(desk.heard(end - 1.5, end - 0.1)) - 440) < 15


def test_1_4_astdb_version_picks_device_calendar_and_voicemail_context_per_extension(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("baresip")
    listing = (LISTINGS / "listing05.conf").read_text()
    cal_a, cal_b = new_calendar(radicale), new_calendar(radicale)
    now = datetime.now(UTC).replace(microsecond=0)
    radicale.put(cal_a, "a.ics", vevent("a-busy", now - timedelta(minutes=5), now + timedelta(minutes=25), "Busy"))
    radicale.put(cal_b, "b.ics", vevent("b-free", now - timedelta(minutes=5), now + timedelta(minutes=25),
                                        "Lunch (free)", transp="TRANSPARENT"))
    server = start_server(tmp_path, teardown, {
        "sip.conf": sip_conf("LocalSets", ["1001", "1002", "1003"]),
        "extensions.conf": listing, "voicemail.conf": VOICEMAIL,
        "calendar.conf": caldav_section("alice_cal", radicale, cal_a) + caldav_section("bob_cal", radicale, cal_b)})
    caller = Phone(tmp_path, server, "1001", 440, teardown=teardown)
    alice = Phone(tmp_path, server, "1002", 600, teardown=teardown)
    bob = Phone(tmp_path, server, "1003", 800, auto=False, teardown=teardown)
    for exten, device, calendar, context in (("3001", "1002", "alice_cal", "sales"),
                                             ("3002", "1003", "bob_cal", "support")):
        for key, value in (("device", device), ("calendar", calendar), ("voicemail_context", context)):
            server.rx(f"database put extension/{exten} {key} {value}")
    db = server.rx("database show extension")
    assert "/extension/3001/calendar" in db and "alice_cal" in db and "/extension/3002/device" in db, db
    wait_registered(server, "1001", "1002", "1003")
    wait_until(lambda: (out := server.rx("calendar show calendars")) and
               f"{'alice_cal':<20} {'caldav':<10} {'busy':<6}" in out, what="alice_cal busy", server=server)
    wait_until(lambda: ": b-free" in server.rx("calendar show calendar bob_cal"), what="bob_cal loaded",
               server=server)

    # 3001: alice's calendar is busy -> straight to voicemail in her context, busy greeting
    leave_voicemail(server, caller, "3001")
    meta = message(server, "sales", "3001")
    assert "origmailbox=3001" in meta
    log = server.output()
    assert executed(log, "VoiceMail") == ["3001@sales,b"], executed(log, "VoiceMail")
    assert executed(log, "Dial") == [] and not alice.seen("CALL_INCOMING")

    # 3002: bob's calendar is free (a transparent event) -> his device rings; he
    # rejects it (busy) -> voicemail in his own context with the busy greeting
    caller.dial("3002")
    bob.wait("CALL_INCOMING", timeout=15)
    bob.b.command("hangup")
    caller.wait("CALL_ESTABLISHED", timeout=30)
    time.sleep(1.0)
    caller.b.keys("#")
    wait_until(lambda: server.output().count("Playing 'beep") == 2, timeout=30, what="the second beep",
               server=server)
    time.sleep(2.5)
    caller.hangup()
    meta = message(server, "support", "3002")
    assert "origmailbox=3002" in meta
    log = server.output()
    assert executed(log, "Dial") == ["SIP/1003,30"]
    assert executed(log, "VoiceMail") == ["3001@sales,b", "3002@support,b"]
    assert not alice.seen("CALL_INCOMING")
    assert not (server.dir / "var" / "spool" / "voicemail" / "sales" / "3002").exists()


# ---------------------------------------------------------------- 1.5 call log
def _events_on(radicale: Radicale, url: str) -> list[str]:
    with radicale.client() as c:
        r = c.request("PROPFIND", url, headers={"Depth": "1"})
        assert r.status_code == 207, r.text
        hrefs = [e.text for e in ET.fromstring(r.content).iter("{DAV:}href") if e.text and e.text.endswith(".ics")]
        return [c.get(h).text for h in hrefs]


def _sipp_call(tmp_path: Path, server: Server, number: str, hold_ms: int) -> tuple[float, float]:
    """SIPp's built-in UAC calls ``number`` from peer ``sipp`` and hangs up after
    ``hold_ms``; returns the wall-clock time of the call's start and end."""
    began = time.time()
    done = subprocess.run(["sipp", f"127.0.0.1:{server.port}", "-sn", "uac", "-s", number,  # type: ignore[attr-defined]
                           "-i", "127.0.0.1", "-p", str(server.uac_port), "-mp", str(free_port(pair=True)),  # type: ignore[attr-defined]
                           "-m", "1", "-d", str(hold_ms), "-nostdin", "-timeout", "30s"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=45, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + server.output()[-3000:]
    return began, time.time()


class Itsp:
    """SIPp UAS as the provider: answers and waits for the BYE."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (directory / "itsp.xml").write_text(uas_scenario(".*", None))
        self.directory = directory
        self.proc: subprocess.Popen[str] | None = None

    def start(self, calls: int) -> None:
        self.proc = subprocess.Popen(
            ["sipp", "-sf", "itsp.xml", "-i", "127.0.0.1", "-p", str(self.port), "-mp",
             str(free_port(pair=True)), "-m", str(calls), "-nostdin", "-timeout", "90s"],
            cwd=self.directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.proc.returncode


def test_1_5_finished_sip_call_is_written_to_the_phone_calls_calendar_and_refusals_give_0(
        tmp_path: Path, radicale: Radicale, teardown: contextlib.ExitStack) -> None:
    need("sipp")
    listing = (LISTINGS / "listing06.conf").read_text()
    calls = new_calendar(radicale)
    itsp = Itsp(tmp_path / "itsp")
    uac_port = free_port()
    sip = (f"[general]\nbindaddr=127.0.0.1\nbindport={{port}}\ncontext=unauthenticated\nallowguest=no\n\n"
           f"[my_itsp]\ntype=peer\nhost=127.0.0.1\nport={itsp.port}\ninsecure=port,invite\n"
           "disallow=all\nallow=ulaw\n\n"
           f"[sipp]\ntype=friend\nhost=127.0.0.1\nport={uac_port}\ncontext=LocalSets\n"
           "disallow=all\nallow=ulaw\n")
    # one line after the listing, so the test can read CALENDAR_SUCCESS from the log
    extensions = listing + "\n[LocalSets]\nexten => h,3,Verbose(1,CALENDAR_SUCCESS=${CALENDAR_SUCCESS})\n"

    def conf(**kw: str) -> str:
        return caldav_section("phone_call_calendar", radicale, calls, **kw)

    server = start_server(tmp_path, teardown, {"sip.conf": sip, "extensions.conf": extensions,
                                               "calendar.conf": conf()})
    server.uac_port = uac_port  # type: ignore[attr-defined]
    teardown.callback(itsp.kill)
    itsp.start(calls=3)
    began, ended = _sipp_call(tmp_path, server, "5552345678", 3000)
    wait_until(lambda: "CALENDAR_SUCCESS=" in server.output(), what="the h extension", server=server)
    assert "CALENDAR_SUCCESS=1" in server.output(), server.output()[-3000:]
    assert executed(server.output(), "Dial") == ["SIP/my_itsp/5552345678"]
    events = _events_on(radicale, calls)
    assert len(events) == 1, events
    cal = icalendar.Calendar.from_ical(events[0])
    [ev] = [c for c in cal.walk("VEVENT")]
    # the listing's ${EXTEN} is read in the h extension, where Asterisk (and hookflash)
    # set EXTEN to "h": the summary is "Call to h" (reported as a listing problem)
    assert str(ev["SUMMARY"]) == "Call to h"
    billsec = int(re.fullmatch(r"Call lasted (\d+) seconds", str(ev["DESCRIPTION"])).group(1))  # type: ignore[union-attr]
    assert 2 <= billsec <= 4, billsec
    start, end = ev.decoded("DTSTART").timestamp(), ev.decoded("DTEND").timestamp()
    assert began - 1 <= start <= began + 2, (began, start)
    assert ended - 2 <= end <= ended + 1, (ended, end)
    assert billsec - 1 <= end - start <= billsec + 2

    # refusals: a wrong password (401) and a user with read-only rights (403)
    for section in (conf(secret="wrong"), conf(user="bob")):
        (server.dir / "calendar.conf").write_text(section)
        server.rx("module reload res_calendar")
        before = server.output().count("CALENDAR_SUCCESS=")
        _sipp_call(tmp_path, server, "5552345679", 1000)
        wait_until(lambda n=before: server.output().count("CALENDAR_SUCCESS=") > n, what="the h extension",
                   server=server)
        assert server.output().split("CALENDAR_SUCCESS=")[-1][:1] == "0", server.output()[-3000:]
        assert len(_events_on(radicale, calls)) == 1
    assert "CALENDAR_WRITE to phone_call_calendar failed" in server.output()
    assert itsp.stop() == 0
