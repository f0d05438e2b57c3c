"""Reminder calls end to end: a real hookflash process reads an iCalendar file
(res_calendar_icalendar), and at the event's alarm dials a SIPp phone; the answered
call runs the chapter's application or dialplan (CHAPTER.md 1.1 and 1.2).

Real components: the hookflash server process, SIPp UASes as the phones. The alarm is
set a few seconds ahead on the real clock (the fake-clock tests are in
tests/unit/test_calendar_core.py).
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.sip_peers import Server, free_port, need

LISTINGS = Path(__file__).parent.parent / "chapter" / "listings"
PROMPTS = Path(__file__).parents[2] / ".venv" / "share" / "hookflash" / "sounds" / "en"


def uas_scenario(from_regexp: str, hang_up_after_ms: int | None) -> str:
    """A phone: answer; check the INVITE's From; then either hang up after a while or wait
    for the PBX's BYE."""
    bye = f"""
  <pause milliseconds="{hang_up_after_ms}"/>
  <send retrans="500"><![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$local_to]
      To:[$remote_from]
      [last_Call-ID:]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>""" if hang_up_after_ms else """
  <recv request="BYE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="calendar phone">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="{from_regexp.replace('"', '&quot;')}" search_in="hdr" header="From:" check_it="true" assign_to="fromcheck"/>
      <ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
    </action>
  </recv>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>
    </action>
  </recv>{bye}
  <Reference variables="fromcheck,contact,remote_from,local_to"/>
</scenario>
"""


class Phone:
    """A SIPp UAS that takes one call and exits 0 if the call went as its scenario says."""

    def __init__(self, directory: Path, name: str, scenario: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        path = directory / f"{name}.xml"
        path.write_text(scenario)
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.port), "-mp",
             str(free_port(pair=True)), "-m", "1", "-nostdin", "-timeout", "40s",
             "-trace_err", "-error_file", str(directory / f"{name}-errors.log")],
            cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.errors = directory / f"{name}-errors.log"

    def result(self, timeout: float = 40) -> tuple[int, str]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        errors = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return self.proc.returncode, (out or "")[-1500:] + errors[-1500:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def ics(uid: str, summary: str, location: str, start: datetime, alarm: datetime, description: str = "") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return textwrap.dedent(f"""\
        BEGIN:VCALENDAR
        VERSION:2.0
        PRODID:-//test//calendar reminders//EN
        BEGIN:VEVENT
        UID:{uid}
        DTSTAMP:{start.strftime(fmt)}
        DTSTART:{start.strftime(fmt)}
        DTEND:{(start + timedelta(minutes=30)).strftime(fmt)}
        SUMMARY:{summary}
        LOCATION:{location}
        DESCRIPTION:{description}
        BEGIN:VALARM
        ACTION:DISPLAY
        DESCRIPTION:reminder
        TRIGGER;VALUE=DATE-TIME:{alarm.strftime(fmt)}
        END:VALARM
        END:VEVENT
        END:VCALENDAR
        """).replace("\n", "\r\n")


def sip_conf(port: int, phones: dict[str, int]) -> str:
    text = f"[general]\nbindaddr=127.0.0.1\nbindport={port}\ncontext=phones\nallowguest=no\n"
    for name, phone_port in phones.items():
        text += (f"\n[{name}]\ntype=friend\nhost=127.0.0.1\nport={phone_port}\ninsecure=port,invite\n"
                 f"context=phones\ndisallow=all\nallow=ulaw\n")
    return text


def rtp_conf() -> str:
    start = free_port(pair=True)
    return f"[general]\nrtpstart={start}\nrtpend={start + 200}\n"


def test_1_1_alarm_rings_the_phone_which_hears_the_wakeup_prompt(tmp_path: Path) -> None:
    need("sipp")
    if not (PROMPTS / "this-is-yr-wakeup-call.wav").exists():
        pytest.skip("the chapter's prompts are not generated: run scripts/make-prompts.sh")
    now = datetime.now(UTC).replace(microsecond=0)
    alarm = now + timedelta(seconds=5)
    phone = Phone(tmp_path / "phone", "phone1", uas_scenario('"Wake up, Russell"', None))
    port = free_port()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "wake.ics").write_text(ics("wake-1@test", "Wake up\\, Russell", "", now + timedelta(minutes=10), alarm))
    server = Server(etc, {
        "sip.conf": sip_conf(port, {"phone1": phone.port}), "rtp.conf": rtp_conf(),
        "extensions.conf": "[phones]\n",
        "asterisk.conf": "[options]\nverbose=3\n",
        "calendar.conf": f"""
            [myGoogleCal]
            type=ical
            url={etc / 'wake.ics'}
            refresh=15
            timeframe=60
            channel=SIP/phone1
            app=Playback
            appdata=this-is-yr-wakeup-call
            setvar=CALLERID(name)=${{CALENDAR_EVENT(summary)}}
            """}).start()
    try:
        assert server.wait_for("Dialing SIP/phone1 for notification on calendar myGoogleCal", 20), \
            server.output()[-3000:]
        rc, out = phone.result()
        assert rc == 0, out + server.output()[-3000:]
        log = server.output()
        assert "Playing 'this-is-yr-wakeup-call.wav'" in log and "does not exist" not in log, log[-3000:]
        assert "myGoogleCal          ical       free  " in server.rx("calendar show calendars")
        # one ring only: a reload (immediate refresh) does not ring it again
        server.rx("module reload res_calendar")
        time.sleep(1.5)
        assert server.output().count("for notification on calendar myGoogleCal") == 1
    finally:
        phone.stop()
        server.stop()


def test_1_2_location_device_is_dialled_after_the_first_phone_answers(tmp_path: Path) -> None:
    need("sipp")
    listing = (LISTINGS / "listing01.conf").read_text()
    assert "FILTER(0-9A-Za-z,${CALENDAR_EVENT(location)})" in listing
    now = datetime.now(UTC).replace(microsecond=0)
    organiser = Phone(tmp_path / "p1", "organiser", uas_scenario('"Meeting"', None))
    # the location names the other party's device; everything but letters/digits goes
    attendee = Phone(tmp_path / "p2", "attendee", uas_scenario(".*", 1500))
    port = free_port()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "meet.ics").write_text(ics("meet-1@test", "Meeting", "phone-2;", now + timedelta(minutes=10),
                                      now + timedelta(seconds=5)))
    server = Server(etc, {
        "sip.conf": sip_conf(port, {"phone1": organiser.port, "phone2": attendee.port}),
        "rtp.conf": rtp_conf(), "chapter.conf": listing,
        "extensions.conf": "#include chapter.conf\n[phones]\n",
        "asterisk.conf": "[options]\nverbose=3\n",
        "calendar.conf": f"""
            [meetings]
            type=ical
            url={etc / 'meet.ics'}
            channel=SIP/phone1
            context=AutomatedMeetingSetup
            extension=start
            setvar=CALLERID(name)=${{CALENDAR_EVENT(summary)}}
            """}).start()
    try:
        rc2, out2 = attendee.result()
        rc1, out1 = organiser.result()
        log = server.output()
        assert rc2 == 0 and rc1 == 0, out1 + out2 + log[-3000:]
        assert "Triggering meeting setup for two participants" in log
        assert "Dial(" in log and "SIP/phone2" in log  # "phone-2;" filtered to phone2
    finally:
        organiser.stop()
        attendee.stop()
        server.stop()
