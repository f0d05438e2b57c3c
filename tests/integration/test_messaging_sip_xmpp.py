"""Chapter 3.4 with real peers: the hookflash process, baresip phones sending and
receiving SIP MESSAGE (authenticated, auth_message_requests=yes), a real Prosody and a
slixmpp user. A message from a SIP phone is answered, relayed to an XMPP user and the
XMPP user's answer relayed back; a message for a phone that is not registered waits and
is delivered when it registers."""

from __future__ import annotations

import re
import time
from pathlib import Path


from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav
from tests.integration.test_voicemail import _rtp_conf, wait_for
from tests.integration.xmpp_server import Prosody, XmppUser, need_prosody, need_slixmpp

SIP = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no
accept_outofcall_message=yes
outofcall_message_context=IncomingMessages
auth_message_requests=yes

[phone](!)
type=friend
host=dynamic
context=phones
disallow=all
allow=ulaw

[1001](phone)
secret=secret1001

[1002](phone)
secret=secret1002
"""

XMPP = """
[asterisk]
type=client
serverhost=127.0.0.1
username=asterisk@localhost/pbx
secret=astpw
port={port}
buddy=alice@localhost
cafile={cafile}
sendtodialplan=yes
context=IncomingMessages
"""

DIALPLAN = """
[IncomingMessages]
; from XMPP (extension s): back to the phone that wrote to alice
exten => s,1,Verbose(2,XMPP message from ${MESSAGE(from)}: ${MESSAGE(body)})
 same => n,Set(MESSAGE(body)=alice says: ${MESSAGE(body)})
 same => n,MessageSend(sip:1001,"PBX" <sip:pbx@127.0.0.1>)
 same => n,Set(DB(m/back)=${MESSAGE_SEND_STATUS})

; from SIP: the Request-URI's user is the extension
exten => echo,1,Verbose(2,SIP message from ${MESSAGE(from)} (${MESSAGE_DATA(SIP_PEERNAME)}): ${MESSAGE(body)})
 same => n,Set(MESSAGE(body)=Thank you for messaging the Shift-Eight PBX)
 same => n,MessageSend(sip:${MESSAGE_DATA(SIP_PEERNAME)},"PBX" <sip:pbx@127.0.0.1>)

exten => alice,1,Set(MESSAGE(body)=${MESSAGE_DATA(SIP_PEERNAME)}: ${MESSAGE(body)})
 same => n,MessageSend(xmpp:alice@localhost,xmpp:asterisk)
 same => n,Set(DB(m/toxmpp)=${MESSAGE_SEND_STATUS})

exten => later,1,Set(MESSAGE(body)=while you were away)
 same => n,MessageSend(sip:1002,"PBX" <sip:pbx@127.0.0.1>)
 same => n,Set(DB(m/later)=${MESSAGE_SEND_STATUS}/${MESSAGE_DELIVERY_STATUS})
"""


def phone(tmp_path: Path, server: Server, user: str, contact: str) -> Baresip:
    d = tmp_path / f"phone{user}"
    d.mkdir(exist_ok=True)
    account = f"<sip:{user}@127.0.0.1:{server.port}>;auth_pass=secret{user};regint=60"  # type: ignore[attr-defined]
    b = Baresip(d, account, tone_wav(d / "mic.wav", 440, 5))
    config = (d / "config").read_text() + "module\t\t\tcontact.so\n"
    (d / "config").write_text(config)
    (d / "contacts").write_text(contact + "\n")
    return b.start()


def received(phone_: Baresip) -> str:
    return phone_.log.read_text(errors="replace")


def test_sip_and_xmpp_messages_routed_through_the_dialplan(tmp_path: Path) -> None:
    need("baresip")
    need_prosody()
    need_slixmpp()
    prosody = Prosody(tmp_path / "prosody")
    prosody.befriend("asterisk", "alice")
    prosody.start()
    port = free_port()
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN,
        "xmpp.conf": XMPP.format(port=prosody.port, cafile=prosody.cafile), "rtp.conf": _rtp_conf(),
        "asterisk.conf": "[options]\nverbose=3\n"})
    server.port = port  # type: ignore[attr-defined]
    server.start()
    alice = XmppUser(prosody, "alice", resource="desk").start()
    phones: list[Baresip] = []
    try:
        wait_for(lambda: "Connected" in server.rx("xmpp show connections"), what="the XMPP connection")
        one = phone(tmp_path, server, "1001", f"<sip:echo@127.0.0.1:{port}>")
        phones.append(one)
        wait_for(lambda: "Registered SIP '1001'" in server.output(), timeout=30, what="1001 registration")

        # 1. a SIP phone writes to the PBX and gets the chapter's answer (digest-authenticated MESSAGE)
        one.command("message", "hello pbx")
        wait_for(lambda: "Thank you for messaging the Shift-Eight PBX" in received(one), what="the SIP reply")
        assert re.search(r"SIP message from .*1001.* \(1001\): hello pbx", server.output())

        # 2. relayed to an XMPP user, whose answer comes back to the phone
        (one.dir / "contacts").write_text(f"<sip:alice@127.0.0.1:{port}>\n")
        one.stop()
        one = phone(tmp_path, server, "1001", f"<sip:alice@127.0.0.1:{port}>")
        phones.append(one)
        wait_for(lambda: server.output().count("Registered SIP '1001'") >= 2, what="re-registration")
        one.command("message", "are you there?")
        got = alice.wait_message(lambda m: "are you there?" in m.body, timeout=10)
        assert got.body == "1001: are you there?" and got.frm.startswith("asterisk@localhost")
        alice.send("asterisk@localhost/pbx", "yes, in a minute")
        wait_for(lambda: "alice says: yes, in a minute" in received(one), what="the relayed answer")
        assert server.rx("database get m back").strip().endswith("SUCCESS")

        # 3. store and forward: 1002 is not registered yet
        server.rx("channel originate Local/later@IncomingMessages application NoOp")
        wait_for(lambda: "SUCCESS/QUEUED" in server.rx("database get m later"), what="the queued message")
        assert "1002" in server.rx("message show queue")
        two = phone(tmp_path, server, "1002", f"<sip:echo@127.0.0.1:{port}>")
        phones.append(two)
        wait_for(lambda: "while you were away" in received(two), timeout=15, what="the delivery on register")
        wait_for(lambda: "No messages waiting" in server.rx("message show queue"), what="an empty queue")
    finally:
        for p in phones:
            p.stop()
        alice.stop()
        server.stop()
        prosody.close()


def test_unauthenticated_message_is_challenged_and_unknown_users_look_the_same(tmp_path: Path) -> None:
    """No enumeration: a MESSAGE from a known and from an unknown user gets the same answer."""
    import socket
    port = free_port()
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN,
        "asterisk.conf": "[options]\nverbose=3\n"}).start()
    try:
        answers = []
        for user in ("1001", "nosuchuser"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                s.settimeout(3)
                lport = s.getsockname()[1]
                s.sendto((f"MESSAGE sip:echo@127.0.0.1:{port} SIP/2.0\r\n"
                          f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{user}{time.time_ns()}\r\n"
                          f"From: <sip:{user}@127.0.0.1>;tag=1\r\nTo: <sip:echo@127.0.0.1>\r\n"
                          f"Call-ID: {user}-{time.time_ns()}\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
                          "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi").encode(), ("127.0.0.1", port))
                answers.append(s.recv(4096).split(b"\r\n")[0])
        assert answers[0] == answers[1], answers
        assert b"401" in answers[0] or b"407" in answers[0]
    finally:
        server.stop()
