"""Conferences with real SIP phones (baresip) through the real hookflash process.

Each phone sends a tone from a WAV file and records what it receives (baresip's
sndfile module); the checks are spectral: a phone hears the other phones' tones and
not its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav
from tests.integration.test_sip import PEERS, rtp_conf, wait_registered

EXTENSIONS = """
[phones]
exten => 800,1,Answer()
 same => n,MeetMe(800,dq1)
 same => n,Hangup()
exten => 801,1,MeetMe(801,dwq)
 same => n,Hangup()
exten => 802,1,MeetMe(801,dAq)
 same => n,Hangup()
exten => 810,1,ConfBridge(810,,quiet_user)
 same => n,Set(DB(test/cbresult)=${CONFBRIDGE_RESULT})
 same => n,Hangup()

; the chapter's section 1.3, with the calendar event's fields set by hand
exten => 900,1,Set(CalDescription=1002^1003)
 same => n,Set(_CalLocation=4567)
 same => n,Goto(AutomatedMeetingSetup,start,2)

[AutomatedMeetingSetup]
exten => start,1,Verbose(2,Calling multiple people and placing into a conference)
 same => n,Set(X=1)
 same => n,Set(EndPoint=${CUT(CalDescription,^,${X})})
 same => n,While($[${EXISTS(${EndPoint})}])
 same => n,Set(ToDial=${IF($[${ISNULL(${ToDial})}]?:${ToDial}&)}Local/${EndPoint}@MeetingOriginator)
 same => n,Set(X=$[${X} + 1])
 same => n,Set(EndPoint=${CUT(CalDescription,^,${X})})
 same => n,EndWhile()
 same => n,GotoIf($[${ISNULL(${ToDial})}]?hangup)
 same => n,Dial(${ToDial})
 same => n,MeetMe(${CalLocation},dA)
 same => n(hangup),Hangup()

[MeetingOriginator]
exten => _[A-Za-z0-9].,1,NoOp()
 same => n,Set(Peer=${FILTER(A-Za-z0-9,${EXTEN})})
 same => n,Originate(SIP/${Peer},exten,MeetingOriginator,meetme-${CalLocation},1)
 same => n,Hangup()

exten => _meetme-XXXX,1,Verbose(2,Joining a meeting)
 same => n,Answer()
 same => n,MeetMe(${EXTEN:7},dw)
 same => n,Hangup()
"""

CONFBRIDGE = """
[quiet_user]
type=user
quiet=yes
"""

MOH_TONE = 300


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    need("baresip")
    port = free_port()
    moh = tmp_path / "moh"
    moh.mkdir()
    tone_wav(moh / "tune.wav", MOH_TONE, 5)
    peers = PEERS.format(port=port) + "\n[1003](phone)\nsecret=secret1003\n\n[1004](phone)\nsecret=secret1004\n"
    srv = Server(tmp_path / "etc", {"sip.conf": peers, "extensions.conf": EXTENSIONS, "rtp.conf": rtp_conf(),
                                    "confbridge.conf": CONFBRIDGE,
                                    "musiconhold.conf": f"[default]\nmode=files\ndirectory={moh}\n",
                                    "asterisk.conf": "[options]\nverbose=3\n"}).start()
    srv.port = port  # type: ignore[attr-defined]
    yield srv
    srv.stop()


class Phone:
    def __init__(self, tmp_path: Path, server: Server, user: str, freq: float) -> None:
        d = tmp_path / f"phone{user}"
        d.mkdir()
        account = (f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};answermode=auto;"  # type: ignore[attr-defined]
                   f"audio_codecs=pcmu;regint=60")
        self.user = user
        self.freq = freq
        self.server = server
        self.b = Baresip(d, account, tone_wav(d / "mic.wav", freq, 40)).start()
        self.established = 0.0

    def dial(self, exten: str) -> None:
        self.b.command("dial", f"sip:{exten}@127.0.0.1:{self.server.port}")  # type: ignore[attr-defined]
        self.b.wait_event("CALL_ESTABLISHED", timeout=15)
        self.established = time.time()

    def answered(self, timeout: float = 20) -> None:
        self.b.wait_event("CALL_ESTABLISHED", timeout=timeout)
        self.established = time.time()

    def segment(self, start: float, end: float) -> np.ndarray:
        """What the phone received between two wall-clock times."""
        data, rate = soundfile.read(str(self.b.recordings("dec")[-1]))
        if data.ndim > 1:
            data = data[:, 0]
        a, b = int((start - self.established) * rate), int((end - self.established) * rate)
        assert b - a > rate // 2, (start, end, self.established, len(data))
        return data[max(a, 0):b]


def band(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[np.abs(freqs - freq) <= 12].max())


def assert_hears(x: np.ndarray, present: list[float], absent: list[float]) -> None:
    weakest = min(band(x, f) for f in present)
    loudest_absent = max(band(x, f) for f in absent)
    assert weakest > 20 * loudest_absent, ({f: round(band(x, f)) for f in present + absent})


def test_meetme_three_phones_each_hear_the_other_two_and_not_themselves(tmp_path: Path, server: Server) -> None:
    phones = [Phone(tmp_path, server, u, f) for u, f in (("1001", 500), ("1002", 900), ("1003", 1400))]
    try:
        wait_registered(server, "1001", "1002", "1003")
        for phone in phones:
            phone.dial("800")
        all_in = time.time()
        deadline = time.time() + 5
        while " 0003\t" not in server.rx("meetme list") and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(3)
        listing = server.rx("meetme list")
        assert listing.splitlines()[1].startswith("800 ") and " 0003\t" in listing, listing
        users = server.rx("meetme list 800")
        assert users.count("Channel: SIP/100") == 3 and "3 users in that conference." in users
        kicked = time.time()
        assert server.rx("meetme kick 800 all") == ""
        for phone in phones:
            phone.b.wait_event("CALL_CLOSED", timeout=10)  # kicked, no C: hung up
        time.sleep(0.5)
    finally:
        for phone in phones:
            phone.b.stop()
    for phone in phones:
        others = [p.freq for p in phones if p is not phone]
        assert_hears(phone.segment(all_in + 0.5, kicked - 0.2), others, [phone.freq])
    assert "No active MeetMe conferences." in server.rx("meetme list")


def test_meetme_w_plays_music_until_the_marked_user_joins(tmp_path: Path, server: Server) -> None:
    a, b, boss = (Phone(tmp_path, server, u, f) for u, f in (("1001", 500), ("1002", 900), ("1003", 1400)))
    try:
        wait_registered(server, "1001", "1002", "1003")
        a.dial("801")
        b.dial("801")
        both_waiting = time.time()
        time.sleep(3)
        leader_joins = time.time()
        boss.dial("802")
        time.sleep(3)
        end = time.time()
        assert "0001" in server.rx("meetme list")  # one marked user
        for phone in (a, b, boss):
            phone.b.command("hangup")
            phone.b.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        for phone in (a, b, boss):
            phone.b.stop()
    waiting = a.segment(both_waiting + 0.5, leader_joins - 0.1)
    assert_hears(waiting, [MOH_TONE], [900, 500])  # music on hold, not b (nor itself)
    mixing = a.segment(leader_joins + 1.0, end - 0.2)
    assert_hears(mixing, [900, 1400], [MOH_TONE, 500])


def test_confbridge_console_list_mute_and_kick(tmp_path: Path, server: Server) -> None:
    a, b = Phone(tmp_path, server, "1001", 500), Phone(tmp_path, server, "1002", 900)
    try:
        wait_registered(server, "1001", "1002")
        a.dial("810")
        b.dial("810")
        time.sleep(2)
        listing = server.rx("confbridge list")
        assert listing.splitlines()[2].split() == ["810", "2", "0", "unlocked"], listing
        users = server.rx("confbridge list 810")
        rows = [line.split() for line in users.splitlines()[2:]]
        assert [r[0][:8] for r in rows] == ["SIP/1001", "SIP/1002"] and rows[0][1:3] == ["quiet_user", "default_bridge"]
        unmuted = time.time()
        time.sleep(2)
        before_mute = time.time()
        assert server.rx("confbridge mute 810 SIP/1001") == "Muting SIP/1001 from confbridge 810\n"
        muted = time.time()
        time.sleep(2)
        end = time.time()  # before the kick: then b hears "conf-kicked"
        assert server.rx("confbridge kick 810 SIP/1002") == "Kicked 'SIP/1002' out of conference '810'\n"
        b.b.wait_event("CALL_CLOSED", timeout=10)  # the dialplan goes on, then hangs up
        a.b.command("hangup")
        a.b.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        a.b.stop()
        b.b.stop()
    heard_unmuted = b.segment(unmuted + 0.2, before_mute - 0.1)
    assert_hears(heard_unmuted, [500], [900])
    heard_muted = b.segment(muted + 0.3, end - 0.1)
    assert band(heard_muted, 500) < 0.05 * band(heard_unmuted, 500)
    assert "KICKED" in server.rx("database show test")


def test_chapter_meeting_attendees_wait_for_the_organiser(tmp_path: Path, server: Server) -> None:
    """CHAPTER.md 1.3: the organiser's call Dials Local channels that Originate calls to
    the attendees into meetme-XXXX (MeetMe dw); the organiser then joins with dA."""
    organiser = Phone(tmp_path, server, "1001", 1400)
    attendees = [Phone(tmp_path, server, u, f) for u, f in (("1002", 500), ("1003", 900))]
    try:
        wait_registered(server, "1001", "1002", "1003")
        organiser.b.command("dial", f"sip:900@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
        for phone in attendees:
            phone.answered()
        organiser.answered()
        deadline = time.time() + 10
        while "0001" not in server.rx("meetme list") and time.time() < deadline:
            time.sleep(0.2)  # the organiser's Dial ends when the Local channels hang up
        listing = server.rx("meetme list 4567")
        assert "3 users in that conference." in listing, listing + server.output()[-3000:]
        time.sleep(6)  # the attendees hear "conf-placeintoconf" first
        end = time.time()
        joined = end - 3
        for phone in (organiser, *attendees):
            phone.b.command("hangup")
            phone.b.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        for phone in (organiser, *attendees):
            phone.b.stop()
    assert_hears(organiser.segment(joined + 0.5, end - 0.2), [500, 900], [1400])
    assert_hears(attendees[0].segment(joined + 0.5, end - 0.2), [900, 1400], [500])
    assert_hears(attendees[1].segment(joined + 0.5, end - 0.2), [500, 1400], [900])
