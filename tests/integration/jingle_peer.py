"""A Jingle phone for the tests: slixmpp for the signalling, **aiortc** for the media.

aiortc is an independent WebRTC implementation (its own DTLS transport, SRTP use, RTP
stack, jitter buffer and codecs; ICE through aioice, which hookflash also uses). It
speaks SDP, so this peer translates Jingle (XEP-0166/0167/0176/0320) to SDP and back the
way Jingle clients built on WebRTC stacks (Conversations, Movim) do. Like those clients
it always uses ICE with DTLS-SRTP and rtcp-mux. The Jingle<->SDP glue is ours; everything
that decides whether media flows (ICE checks, DTLS handshake and fingerprint check, SRTP,
RTP, Opus/PCMU) is aiortc's.

Only loopback: aioice's host-address discovery is narrowed to 127.0.0.1 in this process.
"""

from __future__ import annotations

import asyncio
import fractions
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hookflash.motif.jingle import (
    NS_JINGLE,
    NS_JMI,
    Candidate,
    Content,
    Fingerprint,
    Jingle,
    PayloadType,
    Transport,
    build_jingle,
    parse_jingle,
)
from tests.integration.xmpp_server import Prosody, XmppUser

FEATURES = ("urn:xmpp:jingle:1", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:apps:rtp:audio",
            "urn:xmpp:jingle:transports:ice-udp:1", "urn:xmpp:jingle:apps:dtls:0")


def _loopback_only() -> None:
    import aioice.ice
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def _tone_track(freq: float) -> Any:
    from aiortc.mediastreams import AudioStreamTrack
    import av

    class Tone(AudioStreamTrack):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._n = 0
            self._start: float | None = None

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.time()
            due = self._start + self._n * 0.02
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            t = (np.arange(960) + self._n * 960) / 48000
            samples = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = self._n * 960
            frame.time_base = fractions.Fraction(1, 48000)
            self._n += 1
            return frame

    return Tone()


@dataclass
class PeerSession:
    sid: str
    remote: str
    outgoing: bool
    state: str = "pending"  # pending, ringing, active, ended
    reason: str = ""
    pc: Any = None
    offer: Jingle | None = None
    samples: list[np.ndarray] = field(default_factory=list)
    rate: int = 48000
    codec: str = ""
    dtmf: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    media_at: float = 0.0


def _mid(name: str) -> str:
    return "".join(ch for ch in name if ch.isalnum())[:16] or "audio"


def jingle_to_sdp(content: Content) -> str:
    t = content.transport
    assert t is not None
    pts = " ".join(str(p.id) for p in content.payloads)
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0",
             f"m=audio 9 UDP/TLS/RTP/SAVPF {pts}", "c=IN IP4 0.0.0.0", f"a=mid:{_mid(content.name)}",
             f"a=ice-ufrag:{t.ufrag}", f"a=ice-pwd:{t.pwd}"]
    if t.fingerprint is not None:
        lines += [f"a=fingerprint:{t.fingerprint.hash} {t.fingerprint.value}", f"a=setup:{t.fingerprint.setup}"]
    lines += ["a=rtcp-mux", "a=sendrecv"]
    for p in content.payloads:
        rtpmap = f"a=rtpmap:{p.id} {p.name}/{p.clockrate}" + (f"/{p.channels}" if p.channels > 1 else "")
        lines.append(rtpmap)
        if p.params:
            lines.append(f"a=fmtp:{p.id} " + ";".join(f"{k}={v}" for k, v in p.params.items()))
    for c in t.candidates:
        lines.append(f"a=candidate:{c.foundation} {c.component} {c.protocol} {c.priority} {c.ip} {c.port} typ {c.type}")
    lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


def sdp_to_content(sdp: str, name: str, creator: str, bad_fingerprint: bool = False) -> Content:
    from aiortc.sdp import SessionDescription
    desc = SessionDescription.parse(sdp)
    m = desc.media[0]
    ice = m.ice or desc.ice
    dtls = m.dtls or desc.dtls
    fp = dtls.fingerprints[0]
    setup = {"auto": "actpass", "client": "active", "server": "passive"}[dtls.role]
    value = fp.value.upper()
    if bad_fingerprint:
        value = ":".join(["5A"] * 32)
    cands = [Candidate(ip=c.ip, port=c.port, component=c.component, foundation=c.foundation,
                       priority=c.priority, protocol=c.protocol.lower(), type=c.type, id=secrets.token_hex(4))
             for c in m.ice_candidates]
    payloads = []
    for codec in m.rtp.codecs:
        kind, _, enc = codec.mimeType.partition("/")
        if enc.lower() in ("rtx",):
            continue
        params = {k: str(v) for k, v in (codec.parameters or {}).items() if v is not None}
        payloads.append(PayloadType(codec.payloadType, enc, codec.clockRate, codec.channels or 1, params=params))
    transport = Transport("ice-udp", ice.usernameFragment, ice.password, cands,
                          Fingerprint(fp.algorithm.lower(), value, setup))
    return Content(name or m.rtp.muxId or "0", creator, payloads=payloads, rtcp_mux=True, transport=transport)


class JinglePeer(XmppUser):
    """An XMPP user with a Jingle audio phone (see the module docstring).

    ``answer``: what to do with an incoming session: ``accept`` (after ``ring_for``
    seconds of ringing), ``decline``, ``busy``, ``ignore`` (ring for ever). ``codecs``
    (aiortc mime types) limits and orders what we offer or accept."""

    def __init__(self, server: Prosody, user: str, resource: str = "phone", tone: float = 1000.0,
                 answer: str = "accept", ring_for: float = 0.3, codecs: tuple[str, ...] = ("audio/opus", "audio/PCMU"),
                 bad_fingerprint: bool = False, jmi: bool = False) -> None:
        _loopback_only()
        self.jmi = jmi
        self.jmi_seen: list[str] = []  # JMI elements received, as "what:id"
        self._proceeds: dict[str, asyncio.Future[str]] = {}
        self._proceeded: set[str] = set()  # JMI ids we said proceed to
        super().__init__(server, user, resource=resource)
        self.tone = tone
        self.answer = answer
        self.ring_for = ring_for
        self.codecs = codecs
        self.bad_fingerprint = bad_fingerprint
        self.sessions: dict[str, PeerSession] = {}
        self.stanzas: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._in_loop(self._setup(), 10)

    async def _setup(self) -> None:
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        c = self.client
        c.register_plugin("xep_0115")
        for f in FEATURES + (("urn:xmpp:jingle-message:0",) if self.jmi else ()):
            c.plugin["xep_0030"].add_feature(f)
        for what in ("propose", "proceed", "reject", "retract", "ringing", "accept"):  # no body: no "message" event
            c.register_handler(Callback(f"jmi {what}", MatchXPath(f"{{{c.default_ns}}}message/{{{NS_JMI}}}{what}"),
                                        self._on_jmi))
        c.register_handler(Callback("jingle", MatchXPath(f"{{{c.default_ns}}}iq/{{{NS_JINGLE}}}jingle"), self._on_iq))
        c.add_filter("in", self._log)

    def _log(self, stanza: Any) -> Any:
        text = str(stanza)
        if NS_JINGLE in text:
            with self._lock:
                self.stanzas.append(text)
        return stanza

    # ------------------------------------------------------------------ XEP-0353
    def _jmi_send(self, to: str, what: str, sid: str, media: bool = False, reason: str = "") -> None:
        msg = self.client.make_message(mto=to, mtype="chat")
        el = ET.SubElement(msg.xml, f"{{{NS_JMI}}}{what}", {"id": sid})
        if media:
            ET.SubElement(el, "{urn:xmpp:jingle:apps:rtp:1}description", {"media": "audio"})
        if reason:
            ET.SubElement(ET.SubElement(el, f"{{{NS_JINGLE}}}reason"), f"{{{NS_JINGLE}}}{reason}")
        with self._lock:
            self.stanzas.append(str(msg))
        msg.send()

    def _on_jmi(self, msg: Any) -> None:
        for el in msg.xml:
            if not el.tag.startswith(f"{{{NS_JMI}}}"):
                continue
            what, sid = el.tag.split("}", 1)[1], el.get("id") or ""
            with self._lock:
                self.stanzas.append(str(msg))
            self.jmi_seen.append(f"{what}:{sid}")
            sender = str(msg["from"])
            if what == "propose" and self.jmi:
                asyncio.ensure_future(self._answer_propose(sender, sid))
            elif what in ("proceed", "reject") and sid in self._proceeds and not self._proceeds[sid].done():
                if what == "proceed":
                    self._proceeds[sid].set_result(sender)
                else:
                    self._proceeds[sid].set_exception(ConnectionRefusedError("rejected"))

    async def _answer_propose(self, sender: str, sid: str) -> None:
        if self.answer in ("decline", "busy"):
            self._jmi_send(sender, "reject", sid, reason=self.answer)
            return
        self._jmi_send(sender, "ringing", sid)
        if self.answer == "ignore":
            return
        await asyncio.sleep(self.ring_for)
        self._proceeded.add(sid)
        self._jmi_send(sender, "proceed", sid)

    # ------------------------------------------------------------------ aiortc
    def _pc(self, sess: PeerSession) -> Any:
        from aiortc import RTCPeerConnection, RTCRtpSender
        pc = RTCPeerConnection()
        sender = pc.addTrack(_tone_track(self.tone))
        caps = RTCRtpSender.getCapabilities("audio")
        wanted = [c for mime in self.codecs for c in caps.codecs if c.mimeType.lower() == mime.lower()]
        for t in pc.getTransceivers():
            if t.sender is sender:
                t.setCodecPreferences(wanted)

        @pc.on("track")
        def on_track(track: Any) -> None:
            asyncio.ensure_future(self._consume(sess, track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and not sess.media_at:
                sess.media_at = time.monotonic()
            if pc.connectionState == "failed":
                sess.state = "failed"
        return pc

    async def _consume(self, sess: PeerSession, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            data = frame.to_ndarray().reshape(-1)
            if frame.layout.name == "stereo":
                data = data[::2]
            sess.rate = frame.sample_rate
            sess.samples.append(data.astype(np.int16))

    # ------------------------------------------------------------------ Jingle in
    def _on_iq(self, iq: Any) -> None:
        if iq["type"] != "set":
            return
        try:
            j = parse_jingle(iq.xml.find(f"{{{NS_JINGLE}}}jingle"))
        except Exception as exc:
            self.errors.append(str(exc))
            iq.reply(clear=True).error().send()
            return
        iq.reply().send()
        sess = self.sessions.get(j.sid)
        if j.action == "session-initiate":
            sess = PeerSession(j.sid, str(iq["from"]), outgoing=False, offer=j)
            self.sessions[j.sid] = sess
            asyncio.ensure_future(self._incoming(sess, j))
        elif sess is None:
            return
        elif j.action == "session-accept":
            asyncio.ensure_future(self._accepted(sess, j))
        elif j.action == "session-info" and j.info == "ringing":
            sess.state = "ringing"
        elif j.action == "session-terminate":
            sess.state, sess.reason = "ended", j.reason
            if sess.pc is not None:
                asyncio.ensure_future(sess.pc.close())

    async def _incoming(self, sess: PeerSession, j: Jingle) -> None:
        proceeded = sess.sid in self._proceeded
        if not proceeded:
            if self.answer in ("decline", "busy"):
                await asyncio.sleep(self.ring_for)
                await self._terminate(sess, self.answer)
                return
            await self._send(sess, Jingle("session-info", sess.sid, initiator=sess.remote, info="ringing"))
            sess.state = "ringing"
            if self.answer == "ignore":
                return
            await asyncio.sleep(self.ring_for)
        if sess.state == "ended":
            return
        from aiortc import RTCSessionDescription
        content = j.audio
        assert content is not None
        pc = sess.pc = self._pc(sess)
        await pc.setRemoteDescription(RTCSessionDescription(jingle_to_sdp(content), "offer"))
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        mine = sdp_to_content(pc.localDescription.sdp, content.name, content.creator, self.bad_fingerprint)
        sess.codec = mine.payloads[0].name if mine.payloads else ""
        accept = Jingle("session-accept", sess.sid, initiator=sess.remote, responder=self.jid, contents=[mine])
        sess.state = "active"
        await self._send(sess, accept)

    async def _accepted(self, sess: PeerSession, j: Jingle) -> None:
        from aiortc import RTCSessionDescription
        content = j.audio
        assert content is not None and sess.pc is not None
        sess.codec = content.payloads[0].name if content.payloads else ""
        await sess.pc.setRemoteDescription(RTCSessionDescription(jingle_to_sdp(content), "answer"))
        sess.state = "active"

    async def _send(self, sess: PeerSession, j: Jingle) -> None:
        iq = self.client.make_iq_set(ito=sess.remote)
        iq.xml.append(build_jingle(j))
        with self._lock:
            self.stanzas.append(str(iq))
        try:
            await iq.send(timeout=10)
        except Exception as exc:
            self.errors.append(f"{j.action}: {exc}")

    async def _terminate(self, sess: PeerSession, reason: str) -> None:
        sess.state, sess.reason = "ended", reason
        await self._send(sess, Jingle("session-terminate", sess.sid, initiator=sess.remote if not sess.outgoing else self.jid,
                                      reason=reason))
        if sess.pc is not None:
            await sess.pc.close()

    async def _call(self, to: str) -> str:
        sid = secrets.token_hex(8)
        if self.jmi:  # ring the bare JID first; the resource that proceeds gets the session
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._proceeds[sid] = fut
            self._jmi_send(to.split("/", 1)[0], "propose", sid, media=True)
            to = await asyncio.wait_for(fut, 15)
        sess = PeerSession(sid, to, outgoing=True)
        self.sessions[sid] = sess
        pc = sess.pc = self._pc(sess)
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        content = sdp_to_content(pc.localDescription.sdp, "", "initiator", self.bad_fingerprint)
        sess.offer = Jingle("session-initiate", sid, initiator=self.jid, contents=[content])
        await self._send(sess, sess.offer)
        return sid

    # ------------------------------------------------------------------ test API (any thread)
    def call(self, to: str) -> str:
        return self._in_loop(self._call(to), 20)  # type: ignore[no-any-return]

    def hangup(self, sid: str, reason: str = "success") -> None:
        self._in_loop(self._terminate(self.sessions[sid], reason), 10)

    def drop_media(self, sid: str) -> None:
        """Vanish from the media path without a word (a phone that lost its network)."""
        sess = self.sessions[sid]

        async def go() -> None:
            if sess.pc is not None:
                for t in sess.pc.getTransceivers():
                    await t.sender.transport.transport.stop()
        self._in_loop(go(), 10)

    def send_raw(self, to: str, xml: str) -> str:
        """Send an IQ set with an arbitrary child; the reply's type ('result'/'error')."""
        async def go() -> str:
            iq = self.client.make_iq_set(ito=to)
            iq.xml.append(ET.fromstring(xml))
            try:
                await iq.send(timeout=10)
                return "result"
            except Exception as exc:
                reply = getattr(exc, "iq", None)
                return f"error:{reply['error']['condition']}" if reply is not None else f"error:{exc}"
        return self._in_loop(go(), 15)  # type: ignore[no-any-return]

    def wait_session(self, pred: Any, timeout: float = 15) -> PeerSession:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for sess in list(self.sessions.values()):
                if pred(sess):
                    return sess
            time.sleep(0.05)
        raise AssertionError(f"no matching Jingle session; have {[(s.sid, s.state, s.reason) for s in self.sessions.values()]}"
                             f"; errors {self.errors}")

    def heard(self, sess: PeerSession, skip: float = 0.5) -> tuple[float, float]:
        """(dominant frequency, seconds) of what this peer received in the session."""
        if not sess.samples:
            return 0.0, 0.0
        data = np.concatenate(sess.samples).astype(np.float64)
        data = data[int(skip * sess.rate):]
        if len(data) < sess.rate // 10:
            return 0.0, len(data) / sess.rate
        spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
        return float(np.fft.rfftfreq(len(data), 1 / sess.rate)[int(np.argmax(spectrum))]), len(data) / sess.rate

    def stop(self, timeout: float = 3) -> None:
        async def close_all() -> None:
            for sess in self.sessions.values():
                if sess.pc is not None:
                    await sess.pc.close()
        try:
            self._in_loop(close_all(), 10)
        except Exception:
            pass
        super().stop(timeout)
