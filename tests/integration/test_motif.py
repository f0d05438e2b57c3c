"""Chapter 3.3 with real components: the hookflash process (res_xmpp + chan_motif +
chan_sip), a real Prosody, a real baresip SIP phone and a Jingle phone whose media stack
is aiortc (tests/integration/jingle_peer.py: ICE, DTLS-SRTP, SRTP, RTP and codecs are
aiortc's; only the Jingle<->SDP glue is ours). Everything on loopback.

The chapter's listings run with host names changed: an incoming Jingle call lands on
``s`` in ``google_incoming`` and is bridged to the SIP phone; ``Dial(Motif/google/...)``
from the SIP phone rings the Jingle phone. Audio is checked both ways by frequency.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sip_peers import Baresip, Server, dominant, free_port, free_range, need, tone_wav
from tests.integration.test_voicemail import wait_for
from tests.integration.xmpp_server import Prosody, need_prosody, need_slixmpp

pytest.importorskip("aiortc", reason="aiortc is the Jingle phone's media stack (scripts/test installs it)")

from tests.integration.jingle_peer import JinglePeer  # noqa: E402

SIP = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no

[0000FFFF0001]
type=friend
host=dynamic
secret=phonepw
context=LocalSets
disallow=all
allow=ulaw
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
"""

MOTIF = """
[google]
context=google_incoming
disallow=all
allow={allow}
connection=asterisk      ; the [asterisk] section of xmpp.conf
{extra}
"""

DIALPLAN = """
[google_incoming]
exten => s,1,Verbose(2,Incoming call via Google from ${CALLERID(all)})
 same => n,Answer()
 same => n,Wait(2)
 same => n,SendDTMF(1)          ; accept Google Voice call screening
 same => n,Dial(SIP/0000FFFF0001,24)
 same => n,Set(DB(motif/in)=${DIALSTATUS})
 same => n,Hangup()

[LocalSets]
exten => 123,1,Verbose(2,Extension 123 calling alice@localhost)
 same => n,Dial(Motif/google/alice@localhost,{timeout})
 same => n,Hangup()
exten => h,1,Set(DB(motif/out)=${DIALSTATUS})

exten => 124,1,Dial(Motif/google/alice@localhost,4)
 same => n,Set(DB(motif/fault)=${DIALSTATUS})
 same => n,Hangup()

"""

# media only on loopback: ICE host candidates and the candidates we probe
RTP = "[general]\nrtpstart={start}\nrtpend={end}\nice_deny=0.0.0.0/0,::/0\nice_permit=127.0.0.0/8\n"


class Rig:
    def __init__(self, tmp: Path, allow: str = "ulaw", timeout: int = 30, extra: str = "",
                 answer: str = "accept", bad_fingerprint: bool = False, jmi: bool = False) -> None:
        need("baresip")
        need_prosody()
        need_slixmpp()
        self.tmp = tmp
        self.port = free_port()
        start = free_range(202)
        self.phone: Baresip | None = None
        self.alice: JinglePeer | None = None
        self.server: Server | None = None
        self.prosody = Prosody(tmp / "prosody")
        self.prosody.befriend("asterisk", "alice")
        self.prosody.start()
        try:
            self.server = Server(tmp / "etc", {
                "sip.conf": SIP.format(port=self.port),
                "extensions.conf": DIALPLAN.replace("{timeout}", str(timeout)),
                "xmpp.conf": XMPP.format(port=self.prosody.port, cafile=self.prosody.cafile),
                "motif.conf": MOTIF.format(allow=allow, extra=extra),
                "rtp.conf": RTP.format(start=start, end=start + 200),
                "asterisk.conf": "[options]\nverbose=3\n"})
            self.server.start()
            wait_for(lambda: "Connected" in self.server.rx("xmpp show connections"), what="the XMPP connection")
            self.alice = JinglePeer(self.prosody, "alice", tone=1000.0, answer=answer,
                                    bad_fingerprint=bad_fingerprint, jmi=jmi).start()
            wait_for(lambda: "Resource: phone" in self.server.rx("xmpp show buddies"), what="alice's presence")
        except BaseException:
            self.close()
            raise

    def sip_phone(self, freq: float = 440.0) -> Baresip:
        d = self.tmp / "phone"
        d.mkdir(exist_ok=True)
        account = (f"<sip:0000FFFF0001@127.0.0.1:{self.port}>;auth_pass=phonepw;answermode=auto;"
                   "audio_codecs=pcmu;regint=60")
        self.phone = Baresip(d, account, tone_wav(d / "mic.wav", freq, 30)).start()
        wait_for(lambda: "Registered SIP '0000FFFF0001'" in self.server.output(), timeout=20, what="registration")
        return self.phone

    def dial(self, exten: str) -> tuple[Baresip, JinglePeer]:
        """A SIP phone (440 Hz) that dials ``exten``; and alice, the Jingle phone."""
        phone = self.sip_phone(440)
        assert self.alice is not None
        phone.command("dial", f"sip:{exten}@127.0.0.1:{self.port}")
        return phone, self.alice

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.phone is not None:
            self.phone.stop()
        if self.alice is not None:
            self.alice.stop()
        if self.server is not None:
            self.server.stop()
        self.prosody.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with Rig(tmp_path) as r:
        yield r


def sip_heard(phone: Baresip) -> float:
    recs = phone.recordings("dec")
    assert recs, "the SIP phone recorded nothing"
    return dominant(recs[-1])


def test_incoming_jingle_call_lands_on_s_and_is_bridged_to_the_sip_phone(rig: Rig) -> None:
    phone = rig.sip_phone(440)
    alice = rig.alice
    assert alice is not None
    sid = alice.call("asterisk@localhost/pbx")
    sess = alice.wait_session(lambda s: s.sid == sid and s.state == "active", timeout=15)
    phone.wait_event("CALL_ESTABLISHED", timeout=15)
    time.sleep(3)
    freq, seconds = alice.heard(sess, skip=1.0)
    assert seconds > 1.0 and abs(freq - 440) < 15, (freq, seconds)
    alice.hangup(sid)
    phone.wait_event("CALL_CLOSED", timeout=10)
    assert abs(sip_heard(phone) - 1000) < 15
    out = rig.server.output()
    assert re.search(r'Incoming call via Google from "alice@localhost/phone" <alice>', out), out[-3000:]
    assert sess.codec.upper() == "PCMU"


def test_dial_motif_from_a_sip_phone_rings_the_jingle_peer(rig: Rig) -> None:
    phone = rig.sip_phone(440)
    alice = rig.alice
    assert alice is not None
    phone.command("dial", f"sip:123@127.0.0.1:{rig.port}")
    sess = alice.wait_session(lambda s: s.state == "active" and s.media_at, timeout=20)
    phone.wait_event("CALL_ESTABLISHED", timeout=15)
    sessions = rig.server.rx("motif show sessions")
    assert "alice@localhost/phone" in sessions and " yes " in sessions, sessions  # DTLS-SRTP in use
    time.sleep(3)
    freq, seconds = alice.heard(sess, skip=1.0)
    assert seconds > 1.0 and abs(freq - 440) < 15, (freq, seconds)
    alice.hangup(sess.sid)  # the Jingle side hangs up, and so the SIP caller (Dial without g)
    phone.wait_event("CALL_CLOSED", timeout=10)
    assert abs(sip_heard(phone) - 1000) < 15
    wait_for(lambda: "ANSWER" in rig.server.rx("database get motif out"), what="DIALSTATUS")
    assert "0 Jingle session(s)" in rig.server.rx("motif show sessions")


def test_opus_from_the_jingle_side_is_transcoded_for_the_sip_phone(tmp_path: Path) -> None:
    with Rig(tmp_path, allow="opus,ulaw") as rig:
        phone, alice = rig.dial("123")
        sess = alice.wait_session(lambda s: s.state == "active" and s.media_at, timeout=20)
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        sessions = rig.server.rx("motif show sessions")
        assert re.search(r"alice@localhost/phone\s+out\s+ice-udp\s+opus\s+yes", sessions), sessions
        time.sleep(3)
        freq, seconds = alice.heard(sess, skip=1.0)
        assert seconds > 1.0 and abs(freq - 440) < 15, (freq, seconds)
        alice.hangup(sess.sid)
        phone.wait_event("CALL_CLOSED", timeout=10)
        assert abs(sip_heard(phone) - 1000) < 15


def test_jingle_message_initiation_both_ways(tmp_path: Path) -> None:
    """XEP-0353 as Conversations, Dino and Movim use it: propose/ringing/proceed, then Jingle."""
    with Rig(tmp_path, jmi=True) as rig:
        phone, alice = rig.dial("123")
        sess = alice.wait_session(lambda s: s.state == "active" and s.media_at, timeout=20)
        assert any(seen.startswith("propose:") and seen.endswith(sess.sid) for seen in alice.jmi_seen), alice.jmi_seen
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        alice.hangup(sess.sid)
        phone.wait_event("CALL_CLOSED", timeout=10)
        # and alice rings the PBX with a propose: it proceeds, the call lands on s
        sid = alice.call("asterisk@localhost")
        assert f"proceed:{sid}" in alice.jmi_seen
        alice.wait_session(lambda s: s.sid == sid and s.state == "active" and s.media_at, timeout=15)
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        alice.hangup(sid)


@pytest.mark.parametrize("answer,status", [("decline", "NOANSWER"), ("busy", "BUSY"), ("ignore", "NOANSWER")])
def test_a_jingle_callee_that_declines_is_busy_or_never_answers(tmp_path: Path, answer: str, status: str) -> None:
    with Rig(tmp_path, answer=answer) as rig:
        phone, alice = rig.dial("124")
        wait_for(lambda: rig.server.rx("database get motif fault").strip().endswith(status), timeout=15, what=status)
        if answer == "ignore":  # Dial's timeout: we cancel the session
            sess = alice.wait_session(lambda s: s.state == "ended", timeout=5)
            assert sess.reason == "cancel"
        assert "0 Jingle session(s)" in rig.server.rx("motif show sessions")


def test_a_dtls_fingerprint_that_does_not_match_ends_the_call(tmp_path: Path) -> None:
    with Rig(tmp_path, bad_fingerprint=True) as rig:
        phone, alice = rig.dial("124")
        wait_for(lambda: "CONGESTION" in rig.server.rx("database get motif fault"), timeout=20,
                 what="CONGESTION after the DTLS failure")
        sess = alice.wait_session(lambda s: s.state == "ended", timeout=5)
        assert sess.reason == "security-error"
        assert "does not match its fingerprint" in rig.server.output()


def test_malformed_jingle_is_refused_and_the_pbx_goes_on(rig: Rig) -> None:
    alice = rig.alice
    assert alice is not None
    pbx = "asterisk@localhost/pbx"
    j = "urn:xmpp:jingle:1"
    rtp = "urn:xmpp:jingle:apps:rtp:1"
    ice = "urn:xmpp:jingle:transports:ice-udp:1"
    bad = [
        f"<jingle xmlns='{j}' action='session-initiate' sid='a1'><content name='a'><description xmlns='{rtp}' media='audio'>"
        f"<payload-type id='abc' name='PCMU'/></description><transport xmlns='{ice}'/></content></jingle>",
        f"<jingle xmlns='{j}' action='session-initiate' sid='a2'><content name='a'><description xmlns='{rtp}' media='audio'>"
        f"<payload-type id='0' name='PCMU'/></description><transport xmlns='{ice}' ufrag='u' pwd='p'>"
        f"<candidate component='1' foundation='1' generation='0' id='x' ip='127.0.0.1' port='99999' priority='1' protocol='udp' type='host'/>"
        f"</transport></content></jingle>",
        f"<jingle xmlns='{j}' action='session-explode' sid='a3'/>",
        f"<jingle xmlns='{j}' action='session-initiate'/>",
        "<session xmlns='http://www.google.com/session' type='initiate' id='g1'/>",
        f"<jingle xmlns='{j}' action='session-terminate' sid='nosuch'><reason><success/></reason></jingle>",
    ]
    replies = [alice.send_raw(pbx, x) for x in bad]
    assert replies[0] == "error:bad-request" and replies[1] == "error:bad-request"
    assert replies[2] == "error:feature-not-implemented" and replies[3] == "error:bad-request"
    assert replies[4] in ("error:feature-not-implemented", "error:service-unavailable"), replies[4]
    assert replies[5] == "error:item-not-found"
    out = rig.server.output()
    assert "Malformed Jingle from alice@localhost/phone: payload-type id 'abc' is not a number" in out
    # and a proper call still works
    phone = rig.sip_phone(440)
    sid = alice.call(pbx)
    alice.wait_session(lambda s: s.sid == sid and s.state == "active" and s.media_at, timeout=15)
    phone.wait_event("CALL_ESTABLISHED", timeout=15)
    alice.hangup(sid)


def test_a_peer_that_vanishes_from_the_media_path_is_hung_up(tmp_path: Path) -> None:
    with Rig(tmp_path, extra="rtptimeout=2") as rig:
        alice = rig.alice
        assert alice is not None
        phone = rig.sip_phone(440)
        sid = alice.call("asterisk@localhost/pbx")
        sess = alice.wait_session(lambda s: s.sid == sid and s.state == "active" and s.media_at, timeout=15)
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        alice.drop_media(sid)
        wait_for(lambda: sess.state == "ended", timeout=15, what="the PBX's session-terminate")
        assert sess.reason == "connectivity-error"
        assert "no media from the peer for 2 s (rtptimeout)" in rig.server.output()
        phone.wait_event("CALL_CLOSED", timeout=10)  # the bridged SIP leg is hung up too
        wait_for(lambda: "0 active channels" in rig.server.rx("core show channels"), what="no channels")
