"""Voicemail end to end: the real hookflash process, baresip phones (RTP audio, RFC 4733
DTMF), a SIPp message-waiting lamp subscribed to message-summary, and a real SMTP server
(aiosmtpd) on loopback. Nothing is mocked.

(baresip 1.0.0's own mwi module is not used for the lamp: now and then it loops
re-subscribing tens of thousands of times a second and never completes a subscription.)"""

from __future__ import annotations

import email
import email.policy
import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.sip_peers import (
    Baresip,
    Server,
    dominant,
    free_port,
    need,
    tone_wav,
)

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
callerid="Alice Caller" <1001>

[1002](phone)
secret=secret1002
mailbox=100@default

[lamp](phone)
mailbox=100@default
"""

DIALPLAN = """
[phones]
exten => 100,1,VoiceMail(100@default,u)
 same => n,Set(DB(test/vmstatus)=${VMSTATUS})
 same => n,Hangup()
exten => 500,1,VoiceMailMain(100@default)
 same => n,Hangup()
"""

VOICEMAIL = """
[general]
format=wav|gsm
attach=yes
maxsecs=30
minsecs=1
smtphost=127.0.0.1
smtpport={smtp}
serveremail=voicemail@example.com

[default]
100 => 4242,Bob Owner,bob@example.com
"""


def _rtp_conf() -> str:
    start = free_port(pair=True)
    return f"[general]\nrtpstart={start}\nrtpend={start + 200}\n"


class Mailbag:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    controller_mod = pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd")
    bag = Mailbag()
    port = free_port(__import__("socket").SOCK_STREAM)
    controller = controller_mod.Controller(bag, hostname="127.0.0.1", port=port)
    controller.start()
    bag.port = port  # type: ignore[attr-defined]
    yield bag
    controller.stop()


def make_server(tmp_path: Path, smtp_port: int) -> Server:
    port = free_port()
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN,
        "voicemail.conf": VOICEMAIL.format(smtp=smtp_port), "rtp.conf": _rtp_conf(),
        "asterisk.conf": "[options]\nverbose=3\n"})
    server.port = port  # type: ignore[attr-defined]
    return server


def phone(tmp_path: Path, server: Server, user: str, freq: float, seconds: float) -> Baresip:
    d = tmp_path / f"phone{user}"
    d.mkdir(exist_ok=True)
    account = (f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};"  # type: ignore[attr-defined]
               f"audio_codecs=pcmu;regint=60")
    return Baresip(d, account, tone_wav(d / "mic.wav", freq, seconds)).start()


def lamp(tmp_path: Path, server: Server) -> subprocess.Popen[str]:
    """SIPp as the mailbox's message-waiting lamp (sipp/vm_mwi_lamp.xml)."""
    scenario = Path(__file__).parent / "sipp" / "vm_mwi_lamp.xml"
    (tmp_path / "lamp").mkdir()
    return subprocess.Popen(
        ["sipp", f"127.0.0.1:{server.port}", "-i", "127.0.0.1", "-p", str(free_port()),  # type: ignore[attr-defined]
         "-sf", str(scenario), "-s", "lamp", "-m", "1", "-trace_msg", "-nostdin", "-timeout", "120s"],
        cwd=tmp_path / "lamp", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def notify_bodies(tmp_path: Path) -> list[str]:
    """The message-summary bodies SIPp received, in order (its -trace_msg log)."""
    text = "".join(p.read_text(errors="replace") for p in (tmp_path / "lamp").glob("*_messages.log"))
    return re.findall(r"(Messages-Waiting: \w+\s+Message-Account: \S+\s+Voice-Message: \S+)", text)


def wait_for(predicate, timeout: float = 15, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def windows_with(path: Path, freq: float, window: float = 0.5) -> int:
    data, rate = soundfile.read(str(path))
    if data.ndim > 1:
        data = data[:, 0]
    n = int(window * rate)
    hits = 0
    for start in range(0, len(data) - n, n):
        chunk = data[start:start + n]
        if np.sqrt(np.mean(chunk ** 2)) < 0.01:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(n)))
        if abs(float(np.fft.rfftfreq(n, 1 / rate)[int(np.argmax(spectrum))]) - freq) < 15:
            hits += 1
    return hits


def leave_message(tmp_path: Path, server: Server, seconds: float = 3.0) -> Baresip:
    caller = phone(tmp_path, server, "1001", 440, 20)
    wait_for(lambda: "Registered SIP '1001'" in server.output(), what="1001 registration")
    caller.command("dial", f"sip:100@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(1.0)
    caller.keys("#")  # skip the greeting
    wait_for(lambda: "Playing 'beep" in server.output(), what="the beep")
    time.sleep(0.5 + seconds)
    caller.keys("#")  # end of message
    return caller


def test_message_lamp_email_and_voicemailmain(tmp_path: Path, smtp: Mailbag) -> None:
    need("baresip")
    need("sipp")
    server = make_server(tmp_path, smtp.port).start()  # type: ignore[attr-defined]
    light = lamp(tmp_path, server)
    owner = phone(tmp_path, server, "1002", 1000, 40)
    caller = None
    try:
        wait_for(lambda: "Registered SIP '1002'" in server.output(), what="1002 registration")
        caller = leave_message(tmp_path, server, 3.0)
        caller.wait_event("CALL_CLOSED", timeout=20)  # vm-goodbye, then the dialplan hangs up
        inbox = server.dir / "var" / "spool" / "voicemail" / "default" / "100" / "INBOX"
        wait_for(lambda: (inbox / "msg0000.txt").exists(), what="msg0000.txt")
        meta = (inbox / "msg0000.txt").read_text()
        assert "[message]" in meta and "origmailbox=100" in meta and "context=phones" in meta
        assert re.search(r"callerid=\"Alice Caller\" <1001>", meta), meta
        assert re.search(r"callerchan=SIP/1001-", meta), meta
        duration = int(re.search(r"duration=(\d+)", meta).group(1))  # type: ignore[union-attr]
        assert 2 <= duration <= 5, meta
        assert abs(dominant(inbox / "msg0000.wav", skip=0.2) - 440) < 15
        assert (inbox / "msg0000.gsm").stat().st_size > 1000  # one file per format
        assert "SUCCESS" in server.rx("database show test")

        wait_for(lambda: smtp.messages, what="the e-mail")
        mail = email.message_from_bytes(smtp.messages[0], policy=email.policy.default)
        assert mail["Subject"] == "[PBX]: New message 1 in mailbox 100"
        assert "bob@example.com" in mail["To"] and "voicemail@example.com" in mail["From"]
        body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.startswith("Dear Bob Owner:") and '"Alice Caller" <1001>' in body
        attachments = list(mail.iter_attachments())
        assert [a.get_filename() for a in attachments] == ["msg0000.wav"]
        assert attachments[0].get_content_type() == "audio/x-wav"
        data, rate = soundfile.read(io.BytesIO(attachments[0].get_content()))
        assert rate == 8000 and len(data) > 8000 * 2

        users = server.rx("voicemail show users")
        assert re.search(r"default\s+100\s+Bob Owner\s+1\n", users), users
        assert "1 voicemail users configured." in users
        assert "Alice Caller" in server.rx("voicemail show mailbox 100 default")

        # the owner logs in, hears the message, deletes it and leaves: the lamp goes off
        owner.command("dial", f"sip:500@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
        owner.wait_event("CALL_ESTABLISHED")
        time.sleep(1.5)
        for key in "4242#":
            owner.keys(key)
            time.sleep(0.3)
        wait_for(lambda: "logged in to mailbox 100@default" in server.output(), what="login")
        time.sleep(1.0)
        owner.keys("1")
        wait_for(lambda: "INBOX/msg0000.wav'" in server.output(), timeout=20, what="message playback")
        time.sleep(duration + 1.0)
        owner.keys("7")
        wait_for(lambda: "vm-deleted" in server.output(), what="delete")
        time.sleep(0.5)
        owner.keys("#")
        owner.wait_event("CALL_CLOSED", timeout=20)
        out, _ = light.communicate(timeout=30)
        bodies = notify_bodies(tmp_path)
        assert light.returncode == 0, out + "\n".join(bodies)  # off, on (1/0), off (0/0), in that order
        assert [b.split()[1] for b in bodies] == ["no", "yes", "no"], bodies
        assert "Voice-Message: 1/0" in bodies[1] and "Voice-Message: 0/0" in bodies[2]
        assert not list(inbox.glob("msg*"))
        assert not list((inbox.parent / "Old").glob("msg*"))
        heard = owner.recordings("dec")[-1]
        assert windows_with(heard, 440) >= 3  # about three seconds of the caller's tone
    finally:
        if light.poll() is None:
            light.kill()
        if caller is not None:
            caller.stop()
        owner.stop()
        server.stop()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killing_hookflash_while_recording_leaves_no_message_or_a_complete_one(
        tmp_path: Path, smtp: Mailbag, how: str) -> None:
    need("baresip")
    server = make_server(tmp_path, smtp.port).start()  # type: ignore[attr-defined]
    inbox = server.dir / "var" / "spool" / "voicemail" / "default" / "100" / "INBOX"
    caller = phone(tmp_path, server, "1001", 440, 30)
    try:
        wait_for(lambda: "Registered SIP '1001'" in server.output(), what="registration")
        caller.command("dial", f"sip:100@127.0.0.1:{server.port}")  # type: ignore[attr-defined]
        caller.wait_event("CALL_ESTABLISHED")
        time.sleep(1.0)
        caller.keys("#")
        wait_for(lambda: "Playing 'beep" in server.output(), what="the beep")
        time.sleep(2.5)
        assert server.proc is not None
        os.kill(server.proc.pid, getattr(signal, how))
        server.proc.wait(15)
    finally:
        caller.stop()
    messages = sorted(inbox.glob("msg*.txt"))
    if how == "SIGKILL":  # nothing was committed: no message, and no stray audio under a message name
        assert messages == [] and not list(inbox.glob("msg*"))
    else:  # a graceful stop hangs the caller up: the message is kept whole, as a hangup keeps it
        assert [m.name for m in messages] == ["msg0000.txt"]
        info = soundfile.info(str(inbox / "msg0000.wav"))
        assert 1.5 <= info.duration <= 4 and abs(dominant(inbox / "msg0000.wav", skip=0.2) - 440) < 15
    before = {p.name: p.read_bytes() for p in inbox.glob("msg*")} if inbox.exists() else {}

    # restart on the same spool; the next message takes the next number, nothing overwritten
    server.proc = None
    server.socket.unlink(missing_ok=True)
    server.start()
    caller2 = None
    try:
        (tmp_path / "again").mkdir()
        caller2 = leave_message(tmp_path / "again", server, 2.0)
        wait_for(lambda: len(list(inbox.glob("msg*.txt"))) == len(messages) + 1, what="the second message")
    finally:
        if caller2 is not None:
            caller2.stop()
        server.stop()
    expected = f"msg{len(messages):04d}.txt"
    assert max(p.name for p in inbox.glob("msg*.txt")) == expected
    for name, data in before.items():
        assert (inbox / name).read_bytes() == data
