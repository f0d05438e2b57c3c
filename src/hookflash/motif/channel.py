"""The ``Motif`` channel technology: one :class:`JingleCall` per Jingle session.

Signalling is Jingle over the endpoint's XMPP connection; media is an
:class:`~hookflash.media.rtpsession.RtpSession` whose datagram transport is a
:class:`~hookflash.motif.transport.MediaTransport` (ICE-UDP, DTLS-SRTP when the peer
offers a fingerprint) or, for raw-UDP, its own socket. So everything the SIP path
does with RTP (codecs, RFC 4733 DTMF, native relay, recording, conferences) works here.

Life cycle and choices (docs/jingle.md has the whole table):

- outgoing: ``session-initiate`` (content ``audio``, our candidates, fingerprint with
  ``setup=actpass``); ``session-info/ringing`` rings; ``session-accept`` starts ICE and
  DTLS, and the channel is answered once media can flow (Asterisk answers at the accept
  and may bridge into silence; a transport that fails is then CONGESTION, not a dead
  answered call);
- incoming: acknowledged at once; rings the endpoint's context at the endpoint's name if
  that extension exists, else ``s``; caller ID number = the JID's user, name = the full
  JID (as chan_motif); ``Answer()`` sends ``session-accept``;
- ``session-terminate`` reasons both ways: success, busy, decline, cancel, timeout,
  failed-transport, security-error, incompatible-parameters, connectivity-error.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import Channel, ChannelState, ChannelTech, Control, Frame, HangupCause
from hookflash.media.codecs import get_codec
from hookflash.media.rtpsession import RtpSession
from hookflash.motif.jingle import (
    NS_DTLS,
    NS_JINGLE,
    Content,
    Fingerprint,
    Jingle,
    JingleError,
    PayloadType,
    Transport,
    build_jingle,
    choose,
    codec_of,
    offer_payloads,
)
from hookflash.motif.transport import MediaTransport, TransportFailed

if TYPE_CHECKING:
    from hookflash.motif.config import MotifEndpoint
    from hookflash.motif.module import MotifModule
    from hookflash.xmpp.client import XmppClient

log = logging.getLogger("hookflash.motif")

IQ_TIMEOUT = 10.0

# Jingle reason -> Q.850 cause, and back
REASON_CAUSE = {
    "success": HangupCause.NORMAL_CLEARING, "busy": HangupCause.USER_BUSY,
    "decline": HangupCause.CALL_REJECTED, "cancel": HangupCause.NORMAL_CLEARING,
    "timeout": HangupCause.NO_ANSWER, "expired": HangupCause.NO_ANSWER, "gone": 22,
    "failed-transport": 38, "connectivity-error": 38, "media-error": 38,
    "security-error": 127, "incompatible-parameters": 58, "unsupported-applications": 58,
    "unsupported-transports": 58, "failed-application": 58, "general-error": 41,
    "alternative-session": HangupCause.NORMAL_CLEARING,
}


def cause_reason(cause: int, answered: bool, outgoing: bool) -> str:
    if not answered:
        if cause == HangupCause.USER_BUSY:
            return "busy"
        if cause == HangupCause.CALL_REJECTED:
            return "decline"
        if cause in (HangupCause.NO_ANSWER, HangupCause.NO_USER_RESPONSE):
            return "timeout"
        if outgoing:
            return "cancel"
        if cause in (34, 38, 41, 42):
            return "general-error"
        return "decline" if cause not in (0, 16) else "cancel"
    return "success" if cause in (0, 16, 17, 18, 19, 21) else "general-error"


class MotifTech(ChannelTech):
    tech_name = "Motif"

    def __init__(self, call: "JingleCall") -> None:
        self.jc = call

    async def call(self, chan: Channel, dest: str, timeout: float) -> None:
        # Dial calls its legs one after the other: the set-up (disco, JMI, IQs) runs on
        # its own and reports through the channel's controls
        self.jc.module.spawn(self.jc.run_outgoing())

    async def answer(self, chan: Channel) -> None:
        await self.jc.answer()

    async def indicate(self, chan: Channel, control: Control) -> None:
        call = self.jc
        if call.outgoing or call.accepted or call.ended:
            return
        if control == Control.RINGING and not call.rang:
            call.rang = True
            call.send_info("ringing")
        elif control == Control.BUSY:
            await call.terminate("busy")
        elif control == Control.CONGESTION:
            await call.terminate("general-error")

    async def hangup(self, chan: Channel) -> None:
        await self.jc.hangup(chan.hangupcause)

    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        rtp = self.jc.rtp
        if rtp is not None and frame.kind == "voice" and rtp.relay is None:
            rtp.send_slin(frame.payload)

    async def send_digit(self, chan: Channel, digit: str, duration_ms: int) -> None:
        rtp = self.jc.rtp
        if rtp is not None:
            await rtp.send_dtmf(digit, duration_ms)

    def send_text(self, chan: Channel, text: str) -> bool:
        """SendText during a call: a chat message to the peer (as chan_motif)."""
        call = self.jc
        return call.client.send(call.peer, text) is not None

    def native_bridge(self, other: ChannelTech) -> bool:
        """Relay RTP packets untouched with a SIP (or another Jingle) leg of the same
        codec; SRTP is applied and removed on our side."""
        mine = self.jc.rtp
        theirs = _rtp_of(other)
        if mine is None or theirs is None or mine.codec is None or theirs.codec is None:
            return False
        if mine.codec.name != theirs.codec.name or not self.jc.media_up:
            return False
        mine.start_relay(theirs)
        theirs.start_relay(mine)
        self._partner = other
        return True

    def stop_native(self) -> None:
        rtp = self.jc.rtp
        if rtp is not None:
            rtp.stop_relay()
        partner = getattr(self, "_partner", None)
        if partner is not None:
            other = _rtp_of(partner)
            if other is not None and other.relay is rtp:
                other.stop_relay()
            self._partner = None


def _rtp_of(tech: ChannelTech) -> RtpSession | None:
    if isinstance(tech, MotifTech):
        return tech.jc.rtp
    sip = getattr(tech, "sip", None)
    rtp = getattr(sip, "rtp", None)
    return rtp if isinstance(rtp, RtpSession) else None


class JingleCall:
    def __init__(self, module: "MotifModule", endpoint: "MotifEndpoint", client: "XmppClient",
                 peer: str, outgoing: bool, sid: str | None = None) -> None:
        self.module = module
        self.endpoint = endpoint
        self.client = client
        self.peer = peer  # full JID when known
        self.outgoing = outgoing
        self.sid = sid or secrets.token_hex(12)
        self.chan: Channel | None = None
        self.rtp: RtpSession | None = None
        self.media: MediaTransport | None = None
        self.kind = endpoint.transport
        self.content_name = "audio"
        self.content_creator = "initiator"
        self.offer: Jingle | None = None  # the session-initiate we sent or received
        self.remote_fp: Fingerprint | None = None
        # what the peer told us of its transport so far: the initiate or accept, and any
        # transport-info (chan_motif sends its ufrag, pwd and candidates only there)
        self.remote_ufrag = ""
        self.remote_pwd = ""
        self.remote_candidates: list[Any] = []
        self.remote_fingerprint: Fingerprint | None = None
        self._remote_creds = asyncio.Event()
        self.jmi = False  # the session was set up with Jingle Message Initiation (XEP-0353)
        self.peer_no_dtls = False  # the callee's disco#info lists Jingle but not XEP-0320
        self.proceeded: asyncio.Future[str] | None = None
        self.chosen: tuple[PayloadType, str, PayloadType | None] | None = None
        self.accepted = False  # session-accept sent or received
        self.media_up = False
        self.rang = False
        self.ended = False
        self.local_jid = ""
        self._media_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._gathered: asyncio.Task[list[Any]] | None = None
        self._last_error = ""  # the condition of the last IQ error (or timeout)

    # ================================================================== helpers
    @property
    def xmpp(self) -> Any:
        return self.client.xmpp

    def _dtls_offered(self) -> bool:
        return self.endpoint.dtls != "no" and self.kind == "ice-udp" and not self.peer_no_dtls

    def _new_transport(self, controlling: bool, rtcp_mux: bool) -> MediaTransport:
        mod = self.module
        return MediaTransport(controlling=controlling, addresses=mod.addresses, filt=mod.filter,
                              stun=mod.ice.stunaddr, turn=mod.ice.turnaddr, turn_username=mod.ice.turnusername,
                              turn_password=mod.ice.turnpassword, rtcp_mux=rtcp_mux,
                              dtls=self.endpoint.dtls != "no", max_candidates=self.endpoint.maxicecandidates)

    def _rtp_over(self, media: MediaTransport) -> RtpSession:
        rtp = RtpSession(self.module.addresses[0] if self.module.addresses else "127.0.0.1", 0)
        rtp.transport = media  # type: ignore[assignment]
        rtp.symmetric = False
        media.session = rtp
        return rtp

    def _use_codec(self, pt: PayloadType, name: str, dtmf: PayloadType | None) -> None:
        rtp = self.rtp
        assert rtp is not None
        rtp.codec = get_codec(name)
        rtp.payload_type = pt.id
        rtp.dtmf_pt = dtmf.id if dtmf is not None else None

    async def _local_transport(self, setup: str) -> Transport:
        if self.kind == "raw-udp":
            assert self.rtp is not None
            from hookflash.motif.jingle import Candidate  # noqa: PLC0415
            ip = self.module.advertise(self.rtp.local_ip)
            return Transport("raw-udp", candidates=[Candidate(ip, self.rtp.port, id=secrets.token_hex(5))])
        assert self.media is not None
        cands = await self.media.gather()
        for c in cands:
            c.ip = self.module.advertise(c.ip)
        fp = self.media.local_fingerprint(setup) if self._dtls_offered() else None
        return Transport("ice-udp", self.media.ufrag, self.media.pwd, cands, fp)

    def absorb(self, t: Transport | None) -> None:
        """Take what a remote transport element says (ufrag/pwd, candidates, fingerprint)."""
        if t is None:
            return
        if t.ufrag and t.pwd:
            self.remote_ufrag, self.remote_pwd = t.ufrag, t.pwd
            self._remote_creds.set()
        if t.fingerprint is not None:
            self.remote_fingerprint = t.fingerprint
        new = [c for c in t.candidates if (c.ip, c.port, c.component) not in
               {(o.ip, o.port, o.component) for o in self.remote_candidates}]
        self.remote_candidates.extend(new[:64])
        if self.media is not None and new and self._remote_creds.is_set():
            self.module.spawn(self.media.add_candidates(new))
        if t.kind == "raw-udp" and t.candidates:
            self._remote_creds.set()

    def _iq(self, jingle: Jingle) -> Any:
        iq = self.xmpp.make_iq_set(ito=self.peer)
        iq.xml.append(build_jingle(jingle))
        return iq

    async def _send(self, jingle: Jingle) -> bool:
        """Send a Jingle IQ and wait for its result; False on an error or no answer."""
        if self.xmpp is None or not self.client.connected:
            return False
        try:
            await self._iq(jingle).send(timeout=IQ_TIMEOUT)
            return True
        except Exception as exc:
            log.info("Jingle %s to %s (sid %s) failed: %s", jingle.action, self.peer, self.sid, _iq_error(exc))
            self._last_error = _iq_error(exc)
            return False

    def send_info(self, info: str) -> None:
        if self.xmpp is None or self.ended:
            return
        j = Jingle("session-info", self.sid, initiator=self._initiator(), info=info)
        try:
            self._iq(j).send(timeout=IQ_TIMEOUT)  # the result is not waited for
        except Exception as exc:
            log.debug("session-info %s to %s failed: %s", info, self.peer, exc)

    def _initiator(self) -> str:
        if self.offer is not None and self.offer.initiator:
            return self.offer.initiator
        return self.local_jid if self.outgoing else self.peer

    # ================================================================== outgoing
    async def run_outgoing(self) -> None:
        try:
            await self.start_outgoing()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Jingle call to %s failed: %s", self.peer, exc)
            if self.chan is not None:
                self.chan.hangupcause = self.chan.hangupcause or 38
                self.chan.queue_control(Control.CONGESTION)
            await self.terminate("general-error")

    async def start_outgoing(self) -> None:
        chan = self.chan
        assert chan is not None
        ep = self.endpoint
        self.peer, self.jmi = await self.module.resolve(self.client, self.peer)
        self.local_jid = str(self.xmpp.boundjid.full)
        if self.jmi:
            # XEP-0353: ring every device of the bare JID; the one that proceeds gets the session
            self.module.calls[self.sid] = self
            self.proceeded = asyncio.get_running_loop().create_future()
            self.module.jmi_send(self.client, self.peer, "propose", self.sid, media=True)
            try:
                self.peer = await self.proceeded
            except (JmiRejected, asyncio.CancelledError) as exc:
                self.ended = True
                busy = isinstance(exc, JmiRejected) and exc.reason == "busy"
                chan.hangupcause = HangupCause.USER_BUSY if busy else HangupCause.CALL_REJECTED
                chan.queue_control(Control.BUSY if busy else Control.HANGUP)
                self._release()
                return
            if self.ended:
                return
        if ep.dtls == "yes" and self.kind == "ice-udp" and "/" in self.peer:
            # dtls=yes offers DTLS-SRTP only to a callee whose disco#info lists XEP-0320:
            # Asterisk's chan_motif lists Jingle without it, and takes every child of an
            # ICE-UDP transport for a candidate, so a <fingerprint/> makes it hang up
            features = await self.module._features(self.client, self.peer)
            self.peer_no_dtls = NS_JINGLE in features and NS_DTLS not in features
            if self.peer_no_dtls:
                log.debug("Jingle call to %s: no DTLS-SRTP offered, its disco#info does not list %s", self.peer, NS_DTLS)
        if self.kind == "raw-udp":
            self.rtp = await RtpSession.open(self.module.addresses[0] if self.module.addresses else "127.0.0.1",
                                             self.module.ports)
        else:
            self.media = self._new_transport(controlling=True, rtcp_mux=True)
            self.media.on_failed = self._transport_lost
            self.rtp = self._rtp_over(self.media)
        self.rtp.channel = chan
        transport = await self._local_transport("actpass")
        if self.ended or chan.softhangup:
            self._release()
            return
        content = Content(self.content_name, "initiator", payloads=offer_payloads(ep.allow, ep.maxpayloads),
                          rtcp_mux=self.kind == "ice-udp", transport=transport)
        self.offer = Jingle("session-initiate", self.sid, initiator=self.local_jid, contents=[content])
        self.module.calls[self.sid] = self
        log.debug("Jingle session-initiate to %s (sid %s)", self.peer, self.sid)
        if not await self._send(self.offer):
            self.ended = True
            chan.hangupcause = 20 if self._last_error in (
                "service-unavailable", "item-not-found", "recipient-unavailable", "remote-server-not-found",
                "timeout") else 38
            chan.queue_control(Control.CONGESTION)
            self._release()
            return
        if self.kind == "ice-udp":
            # candidates found after the initiate would go out as transport-info; we
            # gathered them all first (host candidates, STUN answered in milliseconds)
            pass

    def _on_accept(self, j: Jingle) -> None:
        chan = self.chan
        if chan is None or self.accepted or self.ended:
            return
        content = j.audio
        if content is None or content.transport is None or not content.payloads:
            self.module.spawn(self._fail("session-accept without media description or transport",
                                         "failed-application", 58))
            return
        offered_ids = {pt.id for pt in self.offer.audio.payloads} if self.offer and self.offer.audio else set()
        chosen = None
        for pt in content.payloads:
            name = codec_of(pt)
            if name is not None and name in self.endpoint.allow and (pt.id in offered_ids or not offered_ids):
                dtmf = next((p for p in content.payloads if p.name.lower() == "telephone-event"), None)
                chosen = (pt, name, dtmf)
                break
        if chosen is None:
            self.module.spawn(self._fail("the answer has no payload type we offered", "incompatible-parameters", 58))
            return
        self.accepted = True
        self.chosen = chosen
        self._use_codec(*chosen)
        self.absorb(content.transport)
        self._media_task = self.module.spawn(self._start_media(content.transport.kind))

    # ================================================================== incoming
    async def start_incoming(self, j: Jingle) -> None:
        """Set up the call for a session-initiate that was already acknowledged."""
        ep = self.endpoint
        self.offer = j
        content = j.audio
        assert content is not None and content.transport is not None
        self.content_name, self.content_creator = content.name, content.creator
        self.kind = content.transport.kind
        self.absorb(content.transport)
        self.local_jid = str(self.xmpp.boundjid.full)
        chosen = choose(content.payloads, ep.allow)
        fp = content.transport.fingerprint
        if chosen is None:
            await self.terminate("incompatible-parameters", "no common codec")
            return
        if ep.dtls == "require" and fp is None:
            await self.terminate("security-error", "DTLS-SRTP is required here")
            return
        self.chosen = chosen
        if self.kind == "raw-udp":
            self.rtp = await RtpSession.open(self.module.addresses[0] if self.module.addresses else "127.0.0.1",
                                             self.module.ports)
        else:
            self.media = self._new_transport(controlling=False, rtcp_mux=content.rtcp_mux)
            self.media.on_failed = self._transport_lost
            self.rtp = self._rtp_over(self.media)
            self._gathered = asyncio.ensure_future(self.media.gather())
        self._use_codec(*chosen)
        pbx = self.module.pbx
        dialplan = pbx.dialplan
        exten = ep.name if dialplan.exists(ep.context, ep.name) else "s"
        chan = pbx.new_channel(f"Motif/{ep.name}-{pbx.next_id()}", MotifTech(self), context=ep.context,
                               exten=exten, state=ChannelState.RING, language=ep.language or "en",
                               accountcode=ep.accountcode)
        self.chan = chan
        self.rtp.channel = chan
        if ep.musicclass:
            chan.musicclass = ep.musicclass
        caller = j.initiator or self.peer
        chan.caller.num = caller.split("@", 1)[0] if "@" in caller else caller
        chan.caller.name = caller
        chan.caller.dnid = exten
        chan.set_var("MOTIF_SID", self.sid)
        from hookflash.engine.cdr import new_cdr  # noqa: PLC0415
        new_cdr(chan)
        pbx.start_pbx(chan)

    async def answer(self) -> None:
        if self.outgoing or self.accepted or self.ended or self.offer is None:
            return
        offer_content = self.offer.audio
        assert offer_content is not None and offer_content.transport is not None and self.chosen is not None
        remote = offer_content.transport
        if self.kind == "ice-udp" and self._gathered is not None:
            await self._gathered
        setup = "active"
        if remote.fingerprint is not None and remote.fingerprint.setup == "active":
            setup = "passive"
        transport = await self._local_transport(setup)
        if remote.fingerprint is None and self.remote_fingerprint is None:
            transport.fingerprint = None  # plain RTP, as the offer
        pt, _, dtmf = self.chosen
        payloads = [pt] + ([dtmf] if dtmf is not None else [])
        content = Content(self.content_name, self.content_creator, payloads=payloads,
                          rtcp_mux=offer_content.rtcp_mux and self.kind == "ice-udp", transport=transport)
        accept = Jingle("session-accept", self.sid, initiator=self._initiator(), responder=self.local_jid,
                        contents=[content])
        self.accepted = True
        self._media_task = self.module.spawn(self._start_media(remote.kind))
        if not await self._send(accept):
            await self._fail("the peer refused our session-accept", "general-error", 41)

    # ================================================================== both
    async def _start_media(self, kind: str) -> None:
        rtp = self.rtp
        if rtp is None:
            return
        started = time.monotonic()
        try:
            if kind == "raw-udp" or self.media is None:
                if not self.remote_candidates:
                    raise TransportFailed("raw-udp transport without a candidate")
                c = self.remote_candidates[0]
                if not self.module.filter.allows(c.ip):
                    raise TransportFailed(f"the candidate {c.ip} is not allowed by ice_permit/ice_deny")
                rtp.set_remote(c.ip, c.port)
            else:
                fp = self.remote_fingerprint
                if self.endpoint.dtls == "require" and fp is None:
                    raise TransportFailed("DTLS-SRTP is required and the peer offered none", "security-error")
                self.remote_fp = fp if self.endpoint.dtls != "no" and not self.peer_no_dtls else None
                try:  # chan_motif sends its ICE credentials in a transport-info after the IQ result
                    await asyncio.wait_for(self._remote_creds.wait(), self.endpoint.icetimeout)
                except (TimeoutError, asyncio.TimeoutError):
                    raise TransportFailed("the peer sent no ICE ufrag and pwd") from None
                self.media.set_remote(self.remote_ufrag, self.remote_pwd)
                await self.media.add_candidates(list(self.remote_candidates))
                await self.media.connect(self.remote_fp, self.endpoint.icetimeout)
                rtp.remote = self.media.remote_addr
        except TransportFailed as exc:
            await self._fail(str(exc), exc.reason, REASON_CAUSE.get(exc.reason, 38))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("Jingle media set-up failed on %s", self.chan.name if self.chan else self.sid)
            await self._fail(f"media set-up failed: {exc}", "failed-transport", 38)
            return
        self.media_up = True
        setup_ms = (time.monotonic() - started) * 1000
        if self.endpoint.rtptimeout:
            self._watch_task = self.module.spawn(self._watch_media(self.endpoint.rtptimeout))
        chan = self.chan
        log.debug("Jingle media up with %s in %.1f ms (%s%s)", self.peer, setup_ms,
                  self.kind, ", DTLS-SRTP" if self.remote_fp else "")
        if chan is not None:
            chan.set_var("MOTIF_SRTP", "yes" if self.remote_fp else "no")
            if self.outgoing and not self.ended:
                chan.set_up()
                chan.queue_control(Control.ANSWER)
            bridge = chan.bridge
            if bridge is not None and hasattr(bridge, "wake"):
                # bridged before the media was up (Answer() then Dial() at once): the
                # bridge relayed frames; let it look again and relay packets natively
                bridge.wake()

    async def _watch_media(self, limit: float) -> None:
        rtp = self.rtp
        last, quiet = -1, 0.0
        step = min(1.0, limit / 2)
        while rtp is not None and not self.ended and not rtp.closed:
            await asyncio.sleep(step)
            seen = rtp.stats.packets_in
            held = self.chan is not None and self.chan.get_var("MOTIF_HOLD") == "yes"
            quiet = 0.0 if (seen != last or held) else quiet + step
            last = seen
            if quiet >= limit:
                await self._fail(f"no media from the peer for {limit:g} s (rtptimeout)", "connectivity-error", 38)
                return

    def _transport_lost(self, exc: TransportFailed) -> None:
        if not self.ended:
            self.module.spawn(self._fail(str(exc), exc.reason, REASON_CAUSE.get(exc.reason, 38)))

    async def _fail(self, why: str, reason: str, cause: int) -> None:
        chan = self.chan
        log.warning("Jingle call %s with %s ended: %s", chan.name if chan else self.sid, self.peer, why)
        if chan is not None and not chan.hangupcause:
            chan.hangupcause = cause
        await self.terminate(reason, why[:200])
        if chan is not None:
            if self.outgoing and chan.state != ChannelState.UP:
                chan.queue_control(Control.CONGESTION)
            else:
                chan.request_hangup(cause)

    def on_jingle(self, j: Jingle) -> None:
        """An IQ for this session (already acknowledged)."""
        chan = self.chan
        if j.action == "session-accept" and self.outgoing:
            self._on_accept(j)
        elif j.action == "session-info":
            if j.info == "ringing" and chan is not None and self.outgoing:
                chan.queue_control(Control.RINGING)
            elif j.info in ("hold", "unhold", "active") and self.rtp is not None:
                self.rtp.hold = False  # hold means the peer stops sending; we keep sending (music)
                if chan is not None:
                    chan.set_var("MOTIF_HOLD", "yes" if j.info == "hold" else "no")
        elif j.action == "transport-info":
            for content in j.contents:
                self.absorb(content.transport)
        elif j.action == "session-terminate":
            self._on_terminate(j)
        elif j.action == "content-modify":
            for content in j.contents:
                if content.senders in ("none",) and self.rtp is not None:
                    self.rtp.hold = True
                elif self.rtp is not None:
                    self.rtp.hold = False

    def _on_terminate(self, j: Jingle) -> None:
        self.ended = True
        chan = self.chan
        cause = int(REASON_CAUSE.get(j.reason or "success", 16))
        log.debug("Jingle session-terminate from %s (sid %s): %s %s", self.peer, self.sid, j.reason, j.reason_text)
        if chan is not None:
            if not chan.hangupcause:
                chan.hangupcause = cause
            chan.set_var("MOTIF_REASON", j.reason or "success")
            if self.outgoing and chan.state != ChannelState.UP:
                if j.reason == "busy":
                    chan.queue_control(Control.BUSY)
                elif j.reason in ("decline", "cancel", "timeout", "success", "gone", "expired", ""):
                    chan.queue_control(Control.HANGUP)
                else:
                    chan.queue_control(Control.CONGESTION)
            chan.request_hangup(cause)
        self._release()

    async def terminate(self, reason: str, text: str = "") -> None:
        if self.ended:
            return
        self.ended = True
        if self.jmi and self.offer is None and self.outgoing:
            self.module.jmi_send(self.client, self.peer, "retract", self.sid)
        if self.proceeded is not None and not self.proceeded.done():
            self.proceeded.cancel()
        if self.offer is not None:
            j = Jingle("session-terminate", self.sid, initiator=self._initiator(), reason=reason, reason_text=text)
            if self.xmpp is not None and self.client.connected:
                try:
                    self._iq(j).send(timeout=IQ_TIMEOUT)  # not waited for: the call is over either way
                except Exception as exc:
                    log.debug("session-terminate to %s failed: %s", self.peer, exc)
        self._release()

    async def hangup(self, cause: int) -> None:
        if not self.ended:
            reason = cause_reason(cause, self.accepted, self.outgoing)
            await self.terminate(reason)
        self._release()

    def _release(self) -> None:
        for task in (self._media_task, self._watch_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        if self._gathered is not None and not self._gathered.done():
            self._gathered.cancel()
        if self.rtp is not None:
            self.rtp.close()
        if self.media is not None:
            self.media.close()
        self.module.calls.pop(self.sid, None)


class JmiRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _iq_error(exc: Exception) -> str:
    iq = getattr(exc, "iq", None)
    if iq is not None:
        try:
            return str(iq["error"]["condition"]) or "error"
        except Exception:
            return "error"
    return "timeout" if "Timeout" in type(exc).__name__ else str(exc)[:80]


__all__ = ["JingleCall", "MotifTech", "JingleError"]
