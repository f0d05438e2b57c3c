"""Call origination with real SIP peers: call files, Originate() and Dial's M() against
SIPp user agents (and baresip for DTMF), with the real hookflash process."""

from __future__ import annotations

import os
import re
import subprocess
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav

SIPP_DIR = Path(__file__).parent / "sipp"

SIP_CONF = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=incoming
allowguest=yes

[uas]
type=peer
host=127.0.0.1
port={uas_port}
insecure=port,invite
context=incoming

[dead]
type=peer
host=127.0.0.1
port={dead_port}
insecure=port,invite

[nobody]
type=friend
host=dynamic
secret=never-registers

[1001]
type=friend
host=dynamic
secret=secret1001
context=phones
disallow=all
allow=ulaw
dtmfmode=rfc2833
"""

DIALPLAN = """
[callfile]
exten => s,1,Set(DB(test/ran)=${CHANNEL}|${WHO}|${CALLERID(num)})
 same => n,Wait(1)
 same => n,Set(DB(test/done)=yes)
 same => n,Hangup()

[originator]
exten => uas,1,Originate(SIP/uas/200,exten,fromorig,s,1,10)
 same => n,Set(DB(test/ostatus)=${ORIGINATE_STATUS})
exten => busy,1,Originate(SIP/uas/200,exten,fromorig,s,1,10)
 same => n,Set(DB(test/obusy)=${ORIGINATE_STATUS})

[fromorig]
exten => s,1,Set(DB(test/originated)=${CHANNEL})
 same => n,Wait(1)
 same => n,Hangup()

[incoming]
exten => confirm,1,Set(__RandomNumber=${RAND()})
 same => n,Dial(SIP/1001,20,M(CheckConfirm))
 same => n,Hangup()

[macro-CheckConfirm]
exten => s,1,Verbose(2,Allowing called party to accept or reject)
 same => n,Set(DB(test/macro_on)=${CHANNEL}|${RandomNumber})
 same => n,Read(CheckMeetingAcceptance,${PROMPT},1,,1,10)
 same => n,Set(DB(test/accept)=${CheckMeetingAcceptance})
 same => n,GotoIf($["${CheckMeetingAcceptance}" != "1"]?hangup,1)

exten => hangup,1,Verbose(2,Call was rejected by called party)
 same => n,Hangup()

[globals]
PROMPT={prompt}
"""


@pytest.fixture
def pbx(tmp_path: Path):  # type: ignore[no-untyped-def]
    need("sipp")
    port, uas_port, dead_port = free_port(), free_port(), free_port()
    rtp = free_port(pair=True)
    prompt = tone_wav(tmp_path / "prompt.wav", 880, 0.5).with_suffix("")
    spool = tmp_path / "spool"
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP_CONF.format(port=port, uas_port=uas_port, dead_port=dead_port),
        "extensions.conf": DIALPLAN.replace("{prompt}", str(prompt)),
        "rtp.conf": f"[general]\nrtpstart={rtp}\nrtpend={rtp + 200}\n",
        "asterisk.conf": f"[directories]\nastspooldir={spool}\n[options]\nverbose=3\n",
    }).start()
    server.port, server.uas_port, server.spool = port, uas_port, spool  # type: ignore[attr-defined]
    yield server
    server.stop()


def uas(server: Server, tmp_path: Path, calls: int, scenario: list[str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["sipp", *(scenario or ["-sn", "uas"]), "-i", "127.0.0.1",
                             "-p", str(server.uas_port), "-mp", str(free_port(pair=True)),  # type: ignore[attr-defined]
                             "-nostdin", "-m", str(calls), "-timeout", "60s"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 5
    port_hex = f":{server.uas_port:04X}"  # type: ignore[attr-defined]
    while time.time() < deadline and port_hex not in Path("/proc/net/udp").read_text():
        time.sleep(0.02)
    return proc


def drop(server: Server, name: str, text: str) -> Path:
    outgoing = server.spool / "outgoing"  # type: ignore[attr-defined]
    deadline = time.time() + 5
    while not outgoing.is_dir() and time.time() < deadline:
        time.sleep(0.05)
    tmp = outgoing / f".{name}"
    tmp.write_text(text)
    os.replace(tmp, outgoing / name)
    return outgoing / name


def wait_file(path: Path, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def db(server: Server) -> str:
    return server.rx("database show test")


def test_call_file_to_a_sipp_uas_runs_the_dialplan(tmp_path: Path, pbx: Server) -> None:
    far = uas(pbx, tmp_path, 1)
    try:
        path = drop(pbx, "wake.call", "Channel: SIP/uas/1234\nCallerID: \"Wake up\" <5551212>\n"
                    "Context: callfile\nExtension: s\nSetvar: WHO=sipp\nArchive: yes\n")
        done = pbx.spool / "outgoing_done" / "wake.call"  # type: ignore[attr-defined]
        assert wait_file(done, 15), pbx.output()[-3000:]
        assert far.wait(15) == 0, far.communicate()[0][-2000:]  # SIPp saw one complete call
    finally:
        if far.poll() is None:
            far.kill()
    rows = db(pbx)
    assert re.search(r"/test/ran\s*: SIP/uas-[0-9a-f]+\|sipp\|5551212", rows), rows
    assert "/test/done" in rows  # the dialplan ran to its end before the file was archived
    assert done.read_text().endswith("Status: Completed\n") and not path.exists()
    assert "Attempting call on SIP/uas/1234 for s@callfile:1 (Retry 1)" in pbx.output()


@pytest.mark.parametrize("channel, waittime, retrytime", [
    ("SIP/nobody", 2, 2),  # a peer that never registered: unavailable at once
    ("SIP/dead", 2, 1),  # a port where nothing listens: no answer within WaitTime
])
def test_unreachable_call_file_is_retried_then_archived(tmp_path: Path, pbx: Server, channel: str,
                                                        waittime: int, retrytime: int) -> None:
    start = time.time()
    drop(pbx, "retry.call", f"Channel: {channel}\nContext: callfile\nExtension: s\nMaxRetries: 2\n"
         f"RetryTime: {retrytime}\nWaitTime: {waittime}\nArchive: yes\n")
    done = pbx.spool / "outgoing_done" / "retry.call"  # type: ignore[attr-defined]
    assert wait_file(done, 40), pbx.output()[-3000:]
    elapsed = time.time() - start
    text = done.read_text()
    lines = [line.split(":")[0] for line in text.splitlines()]
    assert [k for k in lines if k.endswith("Retry")] == [
        "StartRetry", "EndRetry", "StartRetry", "EndRetry", "StartRetry"], text
    assert text.endswith("Status: Expired\n")
    assert pbx.output().count(f"Attempting call on {channel} for s@callfile:1") == 3
    assert elapsed >= 2 * retrytime  # two waits of RetryTime between the three attempts
    # each EndRetry (a failed attempt) is followed by the next start RetryTime later:
    # StartRetry carries start + RetryTime (Asterisk's layout), EndRetry the failure time
    stamps = [(k, int(line.rsplit("(", 1)[1].rstrip(")"))) for line in text.splitlines()
              for k in [line.split(":")[0]] if k in ("StartRetry", "EndRetry")]
    for (k1, t1), (_k2, t2) in pairwise(stamps):
        if k1 == "EndRetry":
            assert t2 - retrytime - t1 >= retrytime - 1, stamps
    assert "/test/ran" not in db(pbx)


def test_originate_app_to_a_sipp_uas(tmp_path: Path, pbx: Server) -> None:
    far = uas(pbx, tmp_path, 1)
    try:
        pbx.rx("channel originate Local/uas@originator application Wait 15")
        deadline = time.time() + 15
        while "/test/ostatus" not in db(pbx) and time.time() < deadline:
            time.sleep(0.1)
        assert far.wait(15) == 0, far.communicate()[0][-2000:]
    finally:
        if far.poll() is None:
            far.kill()
    rows = db(pbx)
    assert re.search(r"/test/ostatus\s*: SUCCESS", rows), rows + pbx.output()[-2000:]
    assert re.search(r"/test/originated\s*: SIP/uas-", rows), rows


def test_originate_to_a_busy_sipp_uas(tmp_path: Path, pbx: Server) -> None:
    far = uas(pbx, tmp_path, 1, ["-sf", str(SIPP_DIR / "uas_busy.xml")])
    try:
        pbx.rx("channel originate Local/busy@originator application Wait 15")
        deadline = time.time() + 15
        while "/test/obusy" not in db(pbx) and time.time() < deadline:
            time.sleep(0.1)
        far.wait(15)
    finally:
        if far.poll() is None:
            far.kill()
    rows = db(pbx)
    assert re.search(r"/test/obusy\s*: BUSY", rows), rows + pbx.output()[-2000:]
    assert "/test/originated" not in rows


def test_dial_m_checkconfirm_runs_on_the_called_phone(tmp_path: Path, pbx: Server) -> None:
    """The chapter's CheckConfirm: SIPp calls in, the dialplan dials baresip (1001) with
    M(CheckConfirm); the macro runs on baresip's channel while SIPp waits unanswered;
    baresip presses 1 and only then is SIPp answered and connected."""
    need("baresip")
    d = tmp_path / "phone1001"
    d.mkdir()
    account = (f"<sip:1001@127.0.0.1:{pbx.port}>;auth_pass=secret1001;answermode=auto;"  # type: ignore[attr-defined]
               f"audio_codecs=pcmu;regint=60")
    phone = Baresip(d, account, tone_wav(d / "mic.wav", 440, 30)).start()
    try:
        deadline = time.time() + 10
        while "127.0.0.1" not in pbx.rx("sip show peers").split("1001/1001", 1)[-1].splitlines()[0] \
                and time.time() < deadline:
            time.sleep(0.1)
        caller = subprocess.Popen(["sipp", f"127.0.0.1:{pbx.port}", "-sn", "uac", "-s", "confirm",  # type: ignore[attr-defined]
                                   "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port(pair=True)),
                                   "-m", "1", "-d", "1000", "-nostdin", "-timeout", "40s"],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        deadline = time.time() + 10
        while "/test/macro_on" not in db(pbx) and time.time() < deadline:
            time.sleep(0.1)
        caller_state = [line.split("!")[4] for line in pbx.rx("core show channels concise").splitlines()
                        if line.split("!")[2:3] == ["confirm"]]
        time.sleep(0.8)  # the prompt plays, then the called party accepts
        phone.keys("1")
        out, _ = caller.communicate(timeout=40)
    finally:
        phone.stop()
    rows = db(pbx)
    assert caller.returncode == 0, out[-2000:] + pbx.output()[-3000:]  # SIPp got its 200 and hung up
    assert re.search(r"/test/macro_on\s*: SIP/1001-[0-9a-f]+\|\d+", rows), rows  # inherited __RandomNumber
    assert re.search(r"/test/accept\s*: 1", rows), rows
    assert caller_state in (["Ring"], ["Ringing"])  # the caller waited unanswered while the macro ran
