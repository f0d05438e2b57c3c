"""Two hookflash processes call each other over Jingle through a real Prosody: the parts
of chan_motif the aiortc phone cannot exercise (RFC 4733 DTMF both ways into the dialplan,
SendText as a chat message, raw-UDP, ICE with plain RTP as Asterisk's chan_motif speaks
it). Interop with independent implementations is in test_motif.py (aiortc) and the
golden exchanges of tests/unit/test_motif_golden.py (Asterisk's chan_motif, Dino)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.sip_peers import Server, free_range
from tests.integration.test_voicemail import wait_for
from tests.integration.xmpp_server import Prosody, need_prosody, need_slixmpp

XMPP = """
[{name}]
type=client
serverhost=127.0.0.1
username={user}@localhost/pbx
secret={password}
port={port}
buddy={buddy}@localhost
cafile={cafile}
"""

MOTIF = """
[{name}]
context=incoming
allow=ulaw
connection={name}
transport={transport}
dtls={dtls}
"""

A_DIALPLAN = """
[incoming]
exten => s,1,Answer()
 same => n,Read(DIGITS,,3,,,8)
 same => n,Set(DB(t/a)=${DIGITS})
 same => n,SendText(hello from A)
 same => n,Set(DB(t/text)=${SENDTEXTSTATUS})
 same => n,Wait(0.5)
 same => n,SendDTMF(42)
 same => n,Wait(8)
"""

B_DIALPLAN = """
[incoming]
exten => s,1,Hangup()

[out]
exten => go,1,Wait(1)
 same => n,SendDTMF(123)
 same => n,Set(GOT=${JABBER_RECEIVE(b,asterisk@localhost/pbx,8)})
 same => n,Set(DB(t/chat)=${GOT})
 same => n,Read(DIGITS,,2,,,8)
 same => n,Set(DB(t/b)=${DIGITS}/${MOTIF_SRTP})
 same => n,Hangup()
"""

RTP = "[general]\nrtpstart={start}\nrtpend={end}\nice_deny=0.0.0.0/0,::/0\nice_permit=127.0.0.0/8\n"


def pbx(tmp: Path, prosody: Prosody, name: str, user: str, buddy: str, dialplan: str,
        transport: str, dtls: str) -> Server:
    start = free_range(202)
    return Server(tmp / name, {
        "xmpp.conf": XMPP.format(name=name, user=user, password=prosody.users[user], port=prosody.port,
                                 buddy=buddy, cafile=prosody.cafile),
        "motif.conf": MOTIF.format(name=name, transport=transport, dtls=dtls),
        "extensions.conf": dialplan,
        "rtp.conf": RTP.format(start=start, end=start + 200),
        "asterisk.conf": "[options]\nverbose=3\n"}).start()


@pytest.mark.parametrize("transport,dtls,srtp", [("ice-udp", "yes", "yes"), ("ice-udp", "no", "no"),
                                                 ("raw-udp", "no", "no")])
def test_dtmf_both_ways_and_sendtext(tmp_path: Path, transport: str, dtls: str, srtp: str) -> None:
    need_prosody()
    need_slixmpp()
    prosody = Prosody(tmp_path / "prosody")
    prosody.befriend("asterisk", "bob")
    prosody.start()
    a = b = None
    try:
        a = pbx(tmp_path, prosody, "a", "asterisk", "bob", A_DIALPLAN, transport, dtls)
        b = pbx(tmp_path, prosody, "b", "bob", "asterisk", B_DIALPLAN, transport, dtls)
        for s in (a, b):
            wait_for(lambda s=s: "Connected" in s.rx("xmpp show connections"), what="XMPP")
        wait_for(lambda: "Resource: pbx" in b.rx("xmpp show buddies"), what="A's presence at B")
        b.rx("channel originate Motif/b/asterisk@localhost/pbx extension go@out")
        wait_for(lambda: "123" in a.rx("database get t a"), timeout=20, what="B's digits in A's dialplan")
        sessions = a.rx("motif show sessions")  # the call is still up (A waits)
        assert f" in   {transport:<10} ulaw   {srtp:<5}" in sessions, sessions
        wait_for(lambda: "SUCCESS" in a.rx("database get t text"), what="SendText")
        wait_for(lambda: "hello from A" in b.rx("database get t chat"), what="the chat message at B")
        wait_for(lambda: f"42/{srtp}" in b.rx("database get t b"), timeout=20, what="A's digits in B's dialplan")
    finally:
        for s in (a, b):
            if s is not None:
                s.stop()
        prosody.close()
