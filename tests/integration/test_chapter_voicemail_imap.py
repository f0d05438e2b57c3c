"""Chapter section 2 end to end: voicemail on IMAP with the real hookflash process, a real
Dovecot over IMAPS (``imapflags=ssl/novalidate-cert``, the chapter's advice for a
self-signed server), baresip phones and a SIPp message-waiting lamp. Nothing is mocked.

The story: a greeting stored on the server (as another PBX or Asterisk would have put
it there) is what the caller hears; the message appears in the IMAP INBOX with its
audio and Asterisk's headers; the lamp lights; a mail client marks it read and the lamp
goes off within a second; the owner logs in by phone, hears a second message, saves it
to Work (it moves to the Work folder on the server), deletes the first, hangs up, and
the deleted one is expunged (``expungeonhangup=yes``). Then Dovecot is frozen: a caller
still leaves a message at once (VMSTATUS=SUCCESS) and it reaches the server once
Dovecot is thawed, exactly once."""

from __future__ import annotations

import email
import re
import time
from datetime import datetime
from pathlib import Path


from hookflash.voicemail.imap.layout import build_greeting
from tests.integration.imap_server import Dovecot, dovecot  # noqa: F401  (fixture)
from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav
from tests.integration.test_voicemail import _rtp_conf, wait_for, windows_with

SIP = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no

[phone](!)
type=friend
host=dynamic
context=phones
disallow=all
allow=ulaw
dtmfmode=rfc2833

[1001](phone)
secret=secret1001
callerid="Jane Caller" <1001>

[1002](phone)
secret=secret1002
mailbox=100@shifteight

[lamp](phone)
mailbox=100@shifteight
"""

DIALPLAN = """
[phones]
exten => 100,1,VoiceMail(100@shifteight,u)
 same => n,Set(DB(test/vmstatus)=${VMSTATUS})
 same => n,Hangup()
exten => 500,1,VoiceMailMain(100@shifteight)
 same => n,Hangup()
"""

# the chapter's [general] and mailbox line, with only host, port and password changed
VOICEMAIL = """
[general]
format=wav49             ; GSM in a WAV container: small, plays on desktops
imapserver=127.0.0.1
imapport={port}
imapflags=ssl/novalidate-cert
imapgreetings=yes
expungeonhangup=yes      ; delete messages marked deleted when the caller hangs up
pollmailboxes=yes        ; poll for changes so MWI stays right
pollfreq=30              ; seconds between polls
imapopentimeout=5
imapreadtimeout=5

[shifteight]
100 => 0107,Leif Madsen,,,|imapuser=alice|imappassword=alicepw
"""


def phone(tmp_path: Path, server: Server, user: str, freq: float, seconds: float) -> Baresip:
    d = tmp_path / f"phone{user}-{time.monotonic_ns()}"
    d.mkdir()
    account = (f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};"  # type: ignore[attr-defined]
               f"audio_codecs=pcmu;regint=60")
    return Baresip(d, account, tone_wav(d / "mic.wav", freq, seconds)).start()


def lamp(tmp_path: Path, server: Server):  # type: ignore[no-untyped-def]
    import subprocess
    scenario = Path(__file__).parent / "sipp" / "vm_mwi_lamp_loop.xml"
    (tmp_path / "lamp").mkdir()
    return subprocess.Popen(
        ["sipp", f"127.0.0.1:{server.port}", "-i", "127.0.0.1", "-p", str(free_port()),  # type: ignore[attr-defined]
         "-sf", str(scenario), "-s", "lamp", "-m", "1", "-trace_msg", "-nostdin", "-timeout", "300s"],
        cwd=tmp_path / "lamp", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def notifies(tmp_path: Path) -> list[tuple[float, str]]:
    """(arrival time, Voice-Message value) of every NOTIFY the lamp received."""
    text = "".join(p.read_text(errors="replace") for p in (tmp_path / "lamp").glob("*_messages.log"))
    found = []
    for block in re.split(r"\n-{10,} ", text):
        stamp = re.match(r"(\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)", block)
        if stamp and "message received" in block and "NOTIFY sip:" in block:
            body = re.search(r"Voice-Message: (\S+)", block)
            when = datetime.strptime(f"{stamp.group(1)} {stamp.group(2)}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
            found.append((when, body.group(1) if body else "?"))
    return found


def leave_message(tmp_path: Path, server: Server, freq: float, seconds: float = 2.5,
                  listen_greeting: float = 0.0) -> Baresip:
    caller = phone(tmp_path, server, "1001", freq, 30)
    try:
        wait_for(lambda: "Registered SIP '1001'" in server.output(), what="1001 registration")
        mark = len(server.output())
        caller.command("dial", f"sip:100@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
        caller.wait_event("CALL_ESTABLISHED")
        time.sleep(1.0 + listen_greeting)
        caller.keys("#")  # skip (the rest of) the greeting
        wait_for(lambda: "Playing 'beep" in server.output()[mark:], what="the beep")
        time.sleep(0.5 + seconds)
        caller.keys("#")  # end of message
        caller.wait_event("CALL_CLOSED", timeout=20)
    except BaseException:
        caller.stop()  # never leave a phone running behind a failed test
        raise
    return caller


def seen(dv: Dovecot, uid: int) -> None:
    """A mail client marks the message read."""
    c = dv.login("alice")
    try:
        c.select("INBOX")
        c.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")
    finally:
        c.logout()


def test_chapter_voicemail_on_imap(dovecot: Dovecot, tmp_path: Path) -> None:  # noqa: F811
    need("baresip")
    need("sipp")
    port = free_port()
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN,
        "voicemail.conf": VOICEMAIL.format(port=dovecot.ssl_port), "rtp.conf": _rtp_conf(),
        "asterisk.conf": "[options]\nverbose=3\n"})
    server.port = port  # type: ignore[attr-defined]
    # the unavailable greeting is on the server already, in Asterisk's layout
    greeting = tone_wav(tmp_path / "greeting.wav", 660, 1.5).read_bytes()
    dovecot.append("alice", build_greeting(
        name="unavail", mailbox="100", context="shifteight", extension="100", audio=greeting, ext="wav",
        fromstring="Asterisk PBX", from_addr="asterisk@example.com", to_name="Leif Madsen",
        to_addr="alice", message_id="<greeting-test@example.com>"))
    server.start()
    light = lamp(tmp_path, server)
    owner = phone(tmp_path, server, "1002", 1000, 60)
    callers: list[Baresip] = []
    try:
        wait_for(lambda: "Registered SIP '1002'" in server.output(), what="1002 registration")
        wait_for(lambda: notifies(tmp_path), what="the lamp's first NOTIFY")
        assert notifies(tmp_path)[-1][1] == "0/0"

        # 1. a message: on the server with audio and headers, the lamp lights
        callers.append(leave_message(tmp_path, server, 440, listen_greeting=1.0))
        assert "SUCCESS" in server.rx("database show test")
        assert windows_with(callers[0].recordings("dec")[-1], 660) >= 1  # heard the IMAP greeting
        wait_for(lambda: any(b"X-Asterisk-VM-Message-Type: Message" in m for m in dovecot.messages("alice")),
                 what="the message on the server")
        voicemail = [m for m in dovecot.uid_messages("alice")
                     if b"X-Asterisk-VM-Message-Type: Message" in m[1]]
        assert len(voicemail) == 1
        uid1, raw = voicemail[0]
        mail = email.message_from_bytes(raw)
        assert mail["X-Asterisk-VM-Context"] == "shifteight" and mail["X-Asterisk-VM-Extension"] == "100"
        assert mail["X-Asterisk-VM-Caller-ID-Num"] == "1001"
        assert mail["X-Asterisk-VM-Caller-ID-Name"] == "Jane Caller"
        assert mail["Subject"] == "[PBX]: New message 1 in mailbox 100"
        audio = [p for p in mail.walk() if p.get_content_maintype() == "audio"]
        assert [a.get_filename() for a in audio] == ["msg0000.WAV"]
        assert audio[0].get_content_type() == "audio/x-wav" or audio[0].get_content_type() == "audio/x-WAV"
        wav49 = audio[0].get_payload(decode=True)
        assert wav49[:4] == b"RIFF" and wav49[20:22] == b"\x31\x00"  # WAVE_FORMAT_GSM610
        wait_for(lambda: notifies(tmp_path)[-1][1] == "1/0", what="the lamp on")

        # 2. read in a mail client: the lamp goes off within a second
        changed = time.time()
        seen(dovecot, uid1)
        wait_for(lambda: notifies(tmp_path)[-1][1] == "0/1", timeout=5, what="the lamp off")
        assert notifies(tmp_path)[-1][0] - changed < 1.0, notifies(tmp_path)
        status = server.rx("voicemail show mailbox 100 shifteight")
        assert "IDLE" in status and "live" in status and "outbox: 0" in status, status

        # 3. a second message, then the owner: hears it, saves it to Work, deletes the first
        callers.append(leave_message(tmp_path, server, 880))
        wait_for(lambda: notifies(tmp_path)[-1][1] == "1/1", what="the lamp on again")
        owner.command("dial", f"sip:500@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
        owner.wait_event("CALL_ESTABLISHED")
        time.sleep(1.5)
        for key in "0107#":
            owner.keys(key)
            time.sleep(0.3)
        wait_for(lambda: "logged in to mailbox 100@shifteight" in server.output(), what="login")
        time.sleep(1.0)
        mark = len(server.output())
        owner.keys("1")  # the new message
        wait_for(lambda: ".imapcache/" in server.output()[mark:], timeout=20, what="playback from IMAP")
        time.sleep(3.5)
        owner.keys("9")  # save to ...
        wait_for(lambda: "vm-savefolder" in server.output()[mark:], what="the folder menu")
        owner.keys("2")  # ... Work
        wait_for(lambda: "vm-savedto" in server.output()[mark:], what="saved")
        time.sleep(1.0)
        mark = len(server.output())
        owner.keys("2")  # change folder ...
        wait_for(lambda: "vm-changeto" in server.output()[mark:], what="the change-folder menu")
        owner.keys("1")  # ... Old
        time.sleep(2.5)
        mark = len(server.output())
        owner.keys("1")  # the old message
        wait_for(lambda: ".imapcache/" in server.output()[mark:], timeout=20, what="old message playback")
        time.sleep(3.0)
        owner.keys("7")  # delete
        wait_for(lambda: "vm-deleted" in server.output()[mark:], what="delete")
        time.sleep(0.5)
        owner.keys("#")
        owner.wait_event("CALL_CLOSED", timeout=20)
        heard = owner.recordings("dec")[-1]
        assert windows_with(heard, 880) >= 2 and windows_with(heard, 440) >= 2
        wait_for(lambda: "Work" in dovecot.folders("alice") and len(dovecot.messages("alice", "Work")) == 1,
                 what="the message in Work")
        work = email.message_from_bytes(dovecot.messages("alice", "Work")[0])
        assert work["X-Asterisk-VM-Extension"] == "100"
        # expunged on hangup: only the greeting is left in INBOX
        wait_for(lambda: [b"unavail" in m for m in dovecot.messages("alice")] == [True], what="the expunge")
        wait_for(lambda: notifies(tmp_path)[-1][1] == "0/0", what="the lamp off at the end")

        # 4. Dovecot frozen: the caller still leaves a message at once, and it arrives once
        dovecot.freeze()
        try:
            started = time.monotonic()
            callers.append(leave_message(tmp_path, server, 550))
            assert time.monotonic() - started < 14  # 1 s + greeting skip + 3 s + goodbye; no IMAP wait
            assert server.rx("database get test vmstatus").strip().endswith("SUCCESS")
            wait_for(lambda: notifies(tmp_path)[-1][1] == "1/0", what="the lamp on during the outage")
            status = server.rx("voicemail show mailbox 100 shifteight")
        finally:
            dovecot.thaw()
        wait_for(lambda: sum(b"X-Asterisk-VM-Message-Type: Message" in m for m in dovecot.messages("alice")) == 1,
                 timeout=60, what="the message uploaded after the thaw")
        time.sleep(1.0)
        assert sum(b"X-Asterisk-VM-Message-Type: Message" in m for m in dovecot.messages("alice")) == 1
        assert "outbox: 0" in server.rx("voicemail show mailbox 100 shifteight")
    finally:
        if light.poll() is None:
            light.kill()
        for caller in callers:
            caller.stop()
        owner.stop()
        server.stop()
