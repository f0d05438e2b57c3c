"""SIP against real peers: baresip phones and SIPp scenarios, a real hookflash process."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.integration.sip_peers import (
    Baresip,
    Server,
    dominant,
    free_port,
    need,
    sipp,
    tone_wav,
)

SIPP_DIR = Path(__file__).parent / "sipp"

PEERS = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no
alwaysauthreject=yes
accept_outofcall_message=yes
outofcall_message_context=messages

[phone](!)
type=friend
host=dynamic
qualify=yes
context=phones
disallow=all
allow=ulaw
dtmfmode=rfc2833

[1001](phone)
secret=secret1001

[1002](phone)
secret=secret1002
allow=alaw

[reguser](phone)
secret=sippsecret

[mwiuser](phone)
mailbox=100@default
"""

DIALPLAN = """
[phones]
exten => 600,1,Answer()
 same => n,Echo()
exten => _100X,1,Dial(SIP/${EXTEN},20)
 same => n,Hangup()

exten => 700,1,Answer()
 same => n,Playback(${PROMPT})
 same => n,Record(${RECFILE}.wav,0,2,q)
 same => n,Set(DB(test/record)=${RECORD_STATUS})
 same => n,Hangup()
exten => 701,1,Answer()
 same => n,Read(DIGITS,silence/1,3,,1,10)
 same => n,Set(DB(test/digits)=${DIGITS}:${READSTATUS})
 same => n,Hangup()

[globals]
PROMPT={prompt}
RECFILE={recfile}

[guests]
exten => answer,1,Answer()
 same => n,Wait(30)
exten => busy,1,Busy()
exten => ring,1,Ringing()
 same => n,Wait(30)
"""


def rtp_conf() -> str:
    start = free_port(pair=True)
    return f"[general]\nrtpstart={start}\nrtpend={start + 200}\n"


@pytest.fixture
def pbx(tmp_path: Path):  # type: ignore[no-untyped-def]
    need("baresip")
    port = free_port()
    prompt = tone_wav(tmp_path / "prompt.wav", 880, 1.5)
    dialplan = DIALPLAN.replace("{prompt}", str(prompt.with_suffix(""))).replace("{recfile}", str(tmp_path / "rec"))
    server = Server(tmp_path / "etc", {"sip.conf": PEERS.format(port=port), "extensions.conf": dialplan,
                                       "rtp.conf": rtp_conf(),
                                       "asterisk.conf": "[options]\nverbose=3\n"}).start()
    server.port = port  # type: ignore[attr-defined]
    yield server
    server.stop()


def phone(tmp_path: Path, server: Server, user: str, freq: float, codec: str = "pcmu") -> Baresip:
    d = tmp_path / f"phone{user}"
    d.mkdir()
    account = (f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};answermode=auto;"  # type: ignore[attr-defined]
               f"audio_codecs={codec};regint=60")
    return Baresip(d, account, tone_wav(d / "mic.wav", freq, 12)).start()


def wait_registered(server: Server, *users: str) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        out = server.rx("sip show peers")
        if all(f"{u}/{u} " in out and "(Unspecified)" not in out.split(f"{u}/{u}")[1].splitlines()[0]
               for u in users):
            return
        time.sleep(0.1)
    raise AssertionError(server.rx("sip show peers"))


def test_baresip_registers_with_digest_and_hears_itself_echoed(tmp_path: Path, pbx: Server) -> None:
    b = phone(tmp_path, pbx, "1001", 440)
    try:
        wait_registered(pbx, "1001")
        peers = pbx.rx("sip show peers")
        assert "1001/1001" in peers and "127.0.0.1" in peers
        deadline = time.time() + 5
        while "OK (" not in pbx.rx("sip show peer 1001") and time.time() < deadline:
            time.sleep(0.1)  # qualify (OPTIONS) right after the registration
        assert "OK (" in pbx.rx("sip show peer 1001")
        assert "baresip" in pbx.rx("sip show peer 1001")
        b.command("dial", f"sip:600@127.0.0.1:{pbx.port}")  # type: ignore[attr-defined]
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(2.5)
        b.command("hangup")
        b.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        b.stop()
    heard = b.recordings("dec")
    assert heard and abs(dominant(heard[-1]) - 440) < 15
    assert 'Echo("SIP/1001-' in pbx.output()


@pytest.mark.parametrize("bob_codec", ["pcmu", "pcma"])
def test_two_phones_talk_through_dial(tmp_path: Path, pbx: Server, bob_codec: str) -> None:
    # pcmu on both legs: RTP relayed as is; pcma for bob: decoded and re-encoded by the bridge
    alice = phone(tmp_path, pbx, "1001", 440)
    bob = phone(tmp_path, pbx, "1002", 1000, bob_codec)
    try:
        wait_registered(pbx, "1001", "1002")
        alice.command("dial", f"sip:1002@127.0.0.1:{pbx.port}")  # type: ignore[attr-defined]
        alice.wait_event("CALL_ESTABLISHED")
        time.sleep(0.5)
        channels = pbx.rx("core show channels")
        assert "SIP/1001-" in channels and "SIP/1002-" in channels
        assert "2 active SIP dialogs" in pbx.rx("sip show channels")
        time.sleep(2.5)
        alice.command("hangup")
        bob.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        alice.stop()
        bob.stop()
    assert abs(dominant(alice.recordings("dec")[-1]) - 1000) < 15  # alice hears bob
    assert abs(dominant(bob.recordings("dec")[-1]) - 440) < 15  # bob hears alice
    assert "0 active SIP dialogs" in pbx.rx("sip show channels")


def test_phone_hears_a_prompt_and_is_recorded(tmp_path: Path, pbx: Server) -> None:
    b = phone(tmp_path, pbx, "1001", 440)
    try:
        wait_registered(pbx, "1001")
        b.command("dial", f"sip:700@127.0.0.1:{pbx.port}")  # type: ignore[attr-defined]
        b.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_CLOSED", timeout=15)  # the dialplan hangs up after recording
        time.sleep(0.5)
    finally:
        b.stop()
    assert abs(dominant(b.recordings("dec")[-1], skip=0.2) - 880) < 15  # the prompt arrived
    recorded = tmp_path / "rec.wav"
    assert recorded.exists() and abs(dominant(recorded, skip=0.1) - 440) < 15  # what the phone sent
    assert "TIMEOUT" in pbx.rx("database show test")


def test_phone_dtmf_reaches_read(tmp_path: Path, pbx: Server) -> None:
    b = phone(tmp_path, pbx, "1001", 440)
    try:
        wait_registered(pbx, "1001")
        b.command("dial", f"sip:701@127.0.0.1:{pbx.port}")  # type: ignore[attr-defined]
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(1.5)
        for digit in "472":
            b.keys(digit)
            time.sleep(0.4)
        b.wait_event("CALL_CLOSED", timeout=15)
    finally:
        b.stop()
    assert "472:OK" in pbx.rx("database show test")


def test_originate_rings_the_phone(tmp_path: Path, pbx: Server) -> None:
    b = phone(tmp_path, pbx, "1002", 300)
    try:
        wait_registered(pbx, "1002")
        out = pbx.rx(f"channel originate SIP/1002 application Playback {tmp_path / 'prompt'}")
        assert "Usage" not in out
        b.wait_event("CALL_CLOSED", timeout=15)
        time.sleep(0.5)
    finally:
        b.stop()
    assert abs(dominant(b.recordings("dec")[-1], skip=0.2) - 880) < 15


# ---------------------------------------------------------------------- SIPp
@pytest.fixture
def guest_pbx(tmp_path: Path):  # type: ignore[no-untyped-def]
    need("sipp")
    port = free_port()
    conf = PEERS.format(port=port).replace("allowguest=no", "allowguest=yes").replace(
        "context=unauthenticated", "context=guests")
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf(),
                                       "asterisk.conf": "[options]\nverbose=3\n"}).start()
    server.port = port  # type: ignore[attr-defined]
    yield server
    server.stop()


def run_sipp(server: Server, tmp_path: Path, *args: str, timeout: float = 40) -> tuple[int, str]:
    return sipp([f"127.0.0.1:{server.port}", "-i", "127.0.0.1", "-p", str(free_port()),  # type: ignore[attr-defined]
                 "-mp", str(free_port(pair=True)), *args], tmp_path, timeout)


def successful(out: str) -> int:
    for line in out.splitlines():
        if line.strip().startswith("Successful call"):
            return int(line.split("|")[2].strip())
    return -1


def test_sipp_registers_with_auth(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "register_auth.xml"), "-s", "reguser",
                       "-au", "reguser", "-ap", "sippsecret", "-m", "1")
    assert rc == 0, out
    assert "reguser/reguser" in guest_pbx.rx("sip show peers")
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "register_auth.xml"), "-s", "reguser",
                       "-au", "reguser", "-ap", "wrong", "-m", "1", timeout=10)
    assert rc != 0  # a wrong password gets 403, which the scenario does not accept


def test_sipp_calls_answered(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sn", "uac", "-s", "answer", "-m", "10", "-r", "10", "-d", "500")
    assert rc == 0 and successful(out) == 10, out


def test_sipp_call_rejected_busy(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "invite_busy.xml"), "-s", "busy", "-m", "3")
    assert rc == 0 and successful(out) == 3, out


def test_sipp_cancel(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "invite_cancel.xml"), "-s", "ring", "-m", "3")
    assert rc == 0 and successful(out) == 3, out
    time.sleep(0.5)
    assert "0 active channels" in guest_pbx.rx("core show channels")


def test_sipp_reinvite_hold_and_resume(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "invite_hold.xml"), "-s", "answer", "-m", "1")
    assert rc == 0 and successful(out) == 1, out
    assert "put on hold by the far end" in guest_pbx.output()


def test_sipp_calls_complete_under_packet_loss(tmp_path: Path, guest_pbx: Server) -> None:
    # SIPp drops 10 % of what it sends and receives: retransmissions must carry every call
    rc, out = run_sipp(guest_pbx, tmp_path, "-sn", "uac", "-s", "answer", "-m", "20", "-r", "10",
                       "-d", "300", "-lost", "10", timeout=90)
    assert successful(out) == 20, out


def test_sipp_mwi_subscription_gets_message_summary(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "subscribe_mwi.xml"), "-s", "mwiuser", "-m", "1")
    assert rc == 0, out


def test_sipp_message(tmp_path: Path, guest_pbx: Server) -> None:
    rc, out = run_sipp(guest_pbx, tmp_path, "-sf", str(SIPP_DIR / "message.xml"), "-s", "1001", "-m", "1")
    assert rc == 0, out


# ---------------------------------------------------------------------- enumeration, robustness
def _ask(port: int, method: str, user: str, extra: str = "") -> str:
    """Send one request from a raw socket; return the status line of the final answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        lport = s.getsockname()[1]
        body = ""
        msg = (f"{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{time.time_ns()}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=t{time.time_ns()}\r\n"
               f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: {time.time_ns()}@enum\r\nCSeq: 1 {method}\r\n"
               f"Contact: <sip:{user}@127.0.0.1:{lport}>\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        while True:
            data = s.recv(65535).decode()
            status = data.split("\r\n", 1)[0]
            code = int(status.split()[1])
            if code >= 200:
                headers = {line.split(":", 1)[0].lower() for line in data.split("\r\n")[1:] if ":" in line}
                return f"{status} {sorted(headers)}"


def test_known_and_unknown_users_get_the_same_answers(tmp_path: Path, pbx: Server) -> None:
    port = pbx.port  # type: ignore[attr-defined]
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        known = _ask(port, method, "1001")
        unknown = _ask(port, method, "nosuchuser")
        assert known == unknown, (method, known, unknown)
    bad = 'Authorization: Digest username="{u}", realm="asterisk", nonce="abc", uri="sip:x", response="0"\r\n'
    assert _ask(port, "REGISTER", "1001", bad.format(u="1001")) == \
        _ask(port, "REGISTER", "nosuchuser", bad.format(u="nosuchuser"))


def test_rfc4475_torture_messages_leave_the_server_serving(tmp_path: Path, pbx: Server) -> None:
    port = pbx.port  # type: ignore[attr-defined]
    data_dir = Path(__file__).parent.parent / "data" / "rfc4475"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for path in sorted(data_dir.glob("*.dat")):
            s.sendto(path.read_bytes()[:65000], ("127.0.0.1", port))
        s.sendto(b"\x00\xff garbage \r\n\r\n", ("127.0.0.1", port))
    time.sleep(0.5)
    assert _ask(port, "OPTIONS", "1001").startswith("SIP/2.0 200")
    assert pbx.proc is not None and pbx.proc.poll() is None


def test_sipp_calls_over_tcp(tmp_path: Path) -> None:
    need("sipp")
    port = free_port(socket.SOCK_STREAM)
    conf = PEERS.format(port=port).replace("allowguest=no", "allowguest=yes").replace(
        "context=unauthenticated", "context=guests").replace("bindport=", "transport=udp,tcp\nbindport=")
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf()}).start()
    try:
        rc, out = sipp([f"127.0.0.1:{port}", "-t", "t1", "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_STREAM)),
                        "-mp", str(free_port(pair=True)), "-sn", "uac", "-s", "answer", "-m", "5", "-r", "5",
                        "-d", "300"], tmp_path, 40)
        assert rc == 0 and successful(out) == 5, out
    finally:
        server.stop()


def test_baresip_over_tcp_registers_and_calls(tmp_path: Path) -> None:
    need("baresip")
    port = free_port(socket.SOCK_STREAM)
    conf = PEERS.format(port=port).replace("bindport=", "transport=udp,tcp\nbindport=")
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf(),
                                       "asterisk.conf": "[options]\nverbose=3\n"}).start()
    d = tmp_path / "tcpphone"
    d.mkdir()
    b = Baresip(d, f"<sip:1001@127.0.0.1:{port};transport=tcp>;auth_pass=secret1001;answermode=auto;"
                   f"audio_codecs=pcmu;regint=60", tone_wav(d / "mic.wav", 600, 12)).start()
    try:
        wait_registered(server, "1001")
        b.command("dial", f"sip:600@127.0.0.1:{port};transport=tcp")
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(2)
        b.command("hangup")
        b.wait_event("CALL_CLOSED")
        time.sleep(0.5)
    finally:
        b.stop()
        server.stop()
    assert abs(dominant(b.recordings("dec")[-1]) - 600) < 15


def test_tls_transport_answers_options(tmp_path: Path) -> None:
    import ssl
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    udp, tls = free_port(), free_port(socket.SOCK_STREAM)
    conf = PEERS.format(port=udp).replace(
        "bindport=", f"transport=udp,tls\ntlscertfile={cert}\ntlsprivatekey={key}\ntlsbindaddr=127.0.0.1:{tls}\nbindport=")
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf()}).start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", tls), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            lport = s.getsockname()[1]
            s.sendall((f"OPTIONS sip:1001@127.0.0.1:{tls} SIP/2.0\r\n"
                       f"Via: SIP/2.0/TLS 127.0.0.1:{lport};branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n"
                       f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\n"
                       f"Call-ID: tls1@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
            answer = s.recv(65535).decode()
        assert answer.startswith("SIP/2.0 200 OK")
        assert "Via: SIP/2.0/TLS" in answer
    finally:
        server.stop()


def test_rtcp_reports_are_sent_during_a_call(tmp_path: Path) -> None:
    """Our RTP session sends compound RTCP (SR/RR + SDES CNAME) to the RTCP port."""
    import asyncio

    from hookflash.media.rtp import RtcpSdes, RtcpSenderReport, parse_rtcp
    from hookflash.media.rtpsession import PortAllocator, RtpSession

    async def main() -> list[object]:
        start = free_port(pair=True)
        session = await RtpSession.open("127.0.0.1", PortAllocator(start, start + 20))
        session.rtcp_interval = 0.1
        far = free_port(pair=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp:
            rtcp.bind(("127.0.0.1", far + 1))
            rtcp.setblocking(False)
            session.set_remote("127.0.0.1", far)
            session.send_payload(b"\xff" * 160, 160)
            loop = asyncio.get_running_loop()
            data = await asyncio.wait_for(loop.sock_recv(rtcp, 2048), 5)
        session.close()
        return parse_rtcp(data)

    packets = asyncio.run(main())
    assert isinstance(packets[0], RtcpSenderReport) and packets[0].packet_count == 1
    assert isinstance(packets[1], RtcpSdes) and packets[1].chunks[0].cname.startswith("hookflash@")


def test_dial_out_through_a_trunk_peer_to_sipp(tmp_path: Path) -> None:
    """SIPp calls in, the dialplan dials SIP/uas/<exten> (a type=peer trunk), SIPp's UAS answers."""
    import subprocess
    need("sipp")
    uas_port = free_port()
    port = free_port()
    conf = PEERS.format(port=port).replace("allowguest=no", "allowguest=yes").replace(
        "context=unauthenticated", "context=trunk") + \
        f"\n[uas]\ntype=peer\nhost=127.0.0.1\nport={uas_port}\ninsecure=port,invite\ncontext=trunk\n"
    dialplan = DIALPLAN + "\n[trunk]\nexten => _X.,1,Dial(SIP/uas/${EXTEN},10)\n same => n,Hangup()\n"
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": dialplan, "rtp.conf": rtp_conf()}).start()
    uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-mp",
                            str(free_port(pair=True)), "-nostdin", "-m", "3"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)
        rc, out = sipp([f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()), "-mp",
                        str(free_port(pair=True)), "-sn", "uac", "-s", "5551234", "-m", "3", "-r", "3",
                        "-d", "300"], tmp_path, 40)
        assert rc == 0 and successful(out) == 3, out + server.output()[-2000:]
        assert uas.wait(20) == 0  # the far side saw three complete calls
    finally:
        if uas.poll() is None:
            uas.kill()
        server.stop()


def test_outbound_registration_to_another_registrar(tmp_path: Path) -> None:
    """`register =>` in sip.conf: one hookflash registers to another (digest, refresh)."""
    provider_port, client_port = free_port(), free_port()
    provider = Server(tmp_path / "provider", {
        "sip.conf": PEERS.format(port=provider_port), "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf()}).start()
    client_conf = (f"[general]\nbindaddr=127.0.0.1\nbindport={client_port}\n"
                   f"register => 1001:secret1001@127.0.0.1:{provider_port}/1001~120\n")
    client = Server(tmp_path / "client", {"sip.conf": client_conf, "extensions.conf": "[default]\n",
                                          "rtp.conf": rtp_conf()}).start()
    try:
        deadline = time.time() + 10
        while "Registered" not in client.rx("sip show registry") and time.time() < deadline:
            time.sleep(0.1)
        registry = client.rx("sip show registry")
        assert f"127.0.0.1:{provider_port}" in registry and "Registered" in registry and "1 SIP registrations." in registry
        assert "1001/1001                 127.0.0.1" in provider.rx("sip show peers")
    finally:
        client.stop()
        provider.stop()


def test_rfc4733_digits_sent_by_an_rtp_session_decode_as_one_event(tmp_path: Path) -> None:
    import asyncio

    from hookflash.media.dtmf import DtmfBegin, DtmfEnd, DtmfReceiver
    from hookflash.media.rtp import RtpPacket
    from hookflash.media.rtpsession import PortAllocator, RtpSession

    async def main() -> list[object]:
        start = free_port(pair=True)
        session = await RtpSession.open("127.0.0.1", PortAllocator(start, start + 20))
        far = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
            rx.bind(("127.0.0.1", far))
            rx.setblocking(False)
            session.set_remote("127.0.0.1", far)
            session.dtmf_pt = 101
            await session.send_dtmf("7", 120)
            await asyncio.sleep(0.05)
            receiver, events = DtmfReceiver(), []
            while True:
                try:
                    packet = RtpPacket.parse(rx.recv(2048))
                except BlockingIOError:
                    break
                assert packet.payload_type == 101
                events += receiver.feed(packet.timestamp, packet.payload)
        session.close()
        return events

    events = asyncio.run(main())
    assert [type(e) for e in events] == [DtmfBegin, DtmfEnd]
    assert events[0].digit == "7" and 100 <= events[1].duration_ms <= 140  # type: ignore[attr-defined]


@pytest.mark.parametrize("localnet,expected", [("10.0.0.0/8", "192.0.2.1"), ("127.0.0.0/8", "127.0.0.1")])
def test_externip_advertised_outside_localnet(tmp_path: Path, localnet: str, expected: str) -> None:
    port = free_port()
    conf = PEERS.format(port=port).replace("allowguest=no", "allowguest=yes").replace(
        "context=unauthenticated", "context=guests").replace(
        "bindport=", f"externip=192.0.2.1\nlocalnet={localnet}\nbindport=")
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN, "rtp.conf": rtp_conf()}).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            lport = s.getsockname()[1]
            sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {free_port(pair=True)} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            s.sendto((f"INVITE sip:answer@127.0.0.1:{port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKext{lport}\r\nMax-Forwards: 70\r\n"
                      f"From: <sip:guest@127.0.0.1>;tag=g1\r\nTo: <sip:answer@127.0.0.1>\r\n"
                      f"Call-ID: ext{lport}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:guest@127.0.0.1:{lport}>\r\n"
                      f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode(),
                     ("127.0.0.1", port))
            while True:
                answer = s.recv(65535).decode()
                if answer.startswith("SIP/2.0 200"):
                    break
        assert f"c=IN IP4 {expected}" in answer
        contact = [line for line in answer.split("\r\n") if line.lower().startswith("contact:")][0]
        assert f"@{expected}:" in contact
    finally:
        server.stop()


def test_directmedia_phones_talk_to_each_other_directly(tmp_path: Path) -> None:
    """directmedia=yes: after the answer hookflash re-INVITEs both phones, each with the
    other's RTP address; both accept, hookflash stops receiving their RTP (its counters
    stop growing), and each phone hears the other's tone; nothing is left after."""
    need("baresip")
    port = free_port()
    conf = PEERS.format(port=port).replace("type=friend", "type=friend\ndirectmedia=yes").replace(
        "allow=alaw\n", "")  # same codec on both legs, else the media must be transcoded here
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": DIALPLAN.replace(
        "{prompt}", "beep").replace("{recfile}", str(tmp_path / "rec")), "rtp.conf": rtp_conf(),
        "asterisk.conf": "[options]\nverbose=3\n"}).start()
    server.port = port  # type: ignore[attr-defined]
    alice = phone(tmp_path, server, "1001", 440)
    bob = phone(tmp_path, server, "1002", 1000)
    try:
        wait_registered(server, "1001", "1002")
        server.rx("sip set debug on")
        alice.command("dial", f"sip:1002@127.0.0.1:{port}")
        alice.wait_event("CALL_ESTABLISHED")
        deadline = time.time() + 5
        while server.output().count("sends its media directly to") < 2:
            assert time.time() < deadline, server.output()[-3000:]
            time.sleep(0.05)
        time.sleep(1.0)  # the phones have switched
        first = _relayed(server.rx("sip show channelstats"))
        time.sleep(2.0)
        second = _relayed(server.rx("sip show channelstats"))
        assert second - first < 10, (first, second)  # 2 s relayed would be ~200 packets
        alice.command("hangup")
        bob.wait_event("CALL_CLOSED")
        time.sleep(0.5)
        assert "0 active SIP dialogs" in server.rx("sip show channels")
        log = server.output()
    finally:
        alice.stop()
        bob.stop()
        server.stop()
    # each phone's offer/answer port, then the re-INVITE that points the other phone at it
    ports = {m.group(1) for m in re.finditer(r"\nm=audio (\d+) RTP/AVP", log)}
    targets = re.findall(r"sends its media directly to 127\.0\.0\.1:(\d+)", log)
    assert len(targets) == 2 and set(targets) <= ports, (targets, log[-3000:])
    answered = re.findall(r"SIP/2.0 200 OK[^\n]*\n(?:[^\n]+\n)*?CSeq: (\d+) INVITE", log)
    assert len(answered) >= 3, log[-3000:]  # our 200 to alice, and both phones' 200s to the re-INVITEs
    assert abs(dominant(alice.recordings("dec")[-1]) - 1000) < 15, log[-3000:]  # alice hears bob
    assert abs(dominant(bob.recordings("dec")[-1]) - 440) < 15, log[-3000:]  # bob hears alice


def _relayed(stats: str) -> int:
    """Packets hookflash received over every call in `sip show channelstats`."""
    rows = [line.split() for line in stats.splitlines()[1:] if line.startswith("127.")]
    assert len(rows) == 2, stats
    return sum(int(row[3]) for row in rows)


def test_directmedia_caller_gets_its_media_back_when_the_callee_leaves(tmp_path: Path) -> None:
    """Dial(...,g) with directmedia: when bob hangs up, alice's phone is re-INVITEd back to
    hookflash: what the dialplan records next is alice's tone (sent to hookflash again)."""
    need("baresip")
    port = free_port()
    conf = PEERS.format(port=port).replace("type=friend", "type=friend\ndirectmedia=yes").replace(
        "allow=alaw\n", "")
    back = tmp_path / "back"
    dialplan = DIALPLAN.replace("{prompt}", "beep").replace("{recfile}", str(tmp_path / "rec")) + \
        f"\n[phones]\nexten => 2002,1,Dial(SIP/1002,20,g)\n same => n,Record({back}.wav,0,2,q)\n" \
        " same => n,Hangup()\n"
    server = Server(tmp_path / "etc", {"sip.conf": conf, "extensions.conf": dialplan, "rtp.conf": rtp_conf(),
                                       "asterisk.conf": "[options]\nverbose=3\n"}).start()
    server.port = port  # type: ignore[attr-defined]
    alice = phone(tmp_path, server, "1001", 440)
    bob = phone(tmp_path, server, "1002", 1000)
    try:
        wait_registered(server, "1001", "1002")
        alice.command("dial", f"sip:2002@127.0.0.1:{port}")
        alice.wait_event("CALL_ESTABLISHED")
        assert server.wait_for("sends its media directly to", 5), server.output()[-3000:]
        time.sleep(1.5)
        bob.command("hangup")
        alice.wait_event("CALL_CLOSED", timeout=10)  # after the 2 s recording
        log = server.output()
    finally:
        alice.stop()
        bob.stop()
        server.stop()
    recording = back.with_suffix(".wav")
    assert recording.exists(), log[-3000:]
    assert abs(dominant(recording, skip=0.5) - 440) < 15, log[-3000:]
