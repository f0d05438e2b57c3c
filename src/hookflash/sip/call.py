"""SIP calls: the INVITE dialogs behind ``SIP/...`` channels, in both directions.

Incoming: authenticate (in the stack), negotiate the SDP offer, open RTP, create
``SIP/<peer>-XXXXXXXX`` in the peer's context at the Request-URI's user and run the
dialplan; ringing/progress/answer/busy/congestion become 180/183/200/486/503; a 2xx is
retransmitted until its ACK (RFC 3261 §13.3.1.4). Outgoing (``Dial(SIP/peer[/exten])``):
INVITE with our offer, digest answer when the far end challenges, ACK for 2xx, CANCEL
when the caller gives up. BYE either way; re-INVITE for hold/resume; INFO DTMF.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import (
    Channel,
    ChannelState,
    ChannelTech,
    Control,
    Frame,
    HangupCause,
)
from hookflash.media.codecs import get_codec
from hookflash.media.rtpsession import RtpSession
from hookflash.media.sdp import SdpError, SdpSession, SessionDescription, accept_answer
from hookflash.sip.dialog import Dialog, build_cancel
from hookflash.sip.message import SipRequest, SipResponse, make_tag

if TYPE_CHECKING:
    from hookflash.sip.peers import PeerState
    from hookflash.sip.stack import SipStack

log = logging.getLogger("hookflash.sip")

CAUSE_TO_SIP = {
    HangupCause.USER_BUSY: (486, "Busy Here"),
    HangupCause.CONGESTION: (503, "Service Unavailable"),
    HangupCause.UNALLOCATED: (404, "Not Found"),
    HangupCause.CALL_REJECTED: (603, "Decline"),
    HangupCause.NO_ANSWER: (480, "Temporarily Unavailable"),
    HangupCause.NO_USER_RESPONSE: (408, "Request Timeout"),
}


def sip_to_control(status: int) -> Control:
    if status in (486, 600):
        return Control.BUSY
    if status in (404, 408, 410, 480, 484, 487, 603):
        return Control.HANGUP
    return Control.CONGESTION


def sip_to_cause(status: int) -> int:
    return {486: 17, 600: 17, 404: 1, 410: 22, 480: 18, 408: 18, 487: 16, 603: 21,
            484: 28, 503: 34}.get(status, 31 if status < 500 else 38)


class SipTech(ChannelTech):
    tech_name = "SIP"

    def __init__(self, call: "SipCall") -> None:
        self.sip = call

    async def call(self, chan: Channel, dest: str, timeout: float) -> None:
        await self.sip.start_outgoing()

    async def answer(self, chan: Channel) -> None:
        await self.sip.answer()

    async def indicate(self, chan: Channel, control: Control) -> None:
        call = self.sip
        if call.outgoing or call.answered:
            return
        if control == Control.RINGING:
            call.provisional(180, "Ringing")
        elif control == Control.PROGRESS:
            call.provisional(183, "Session Progress", sdp=True)
        elif control == Control.BUSY:
            call.final_failure(486, "Busy Here")
        elif control == Control.CONGESTION:
            call.final_failure(503, "Service Unavailable")

    async def hangup(self, chan: Channel) -> None:
        await self.sip.hangup()

    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        rtp = self.sip.rtp
        if rtp is not None and frame.kind == "voice" and rtp.relay is None:
            rtp.send_slin(frame.payload)

    async def send_digit(self, chan: Channel, digit: str, duration_ms: int) -> None:
        call = self.sip
        mode = call.peer.config.dtmfmode if call.peer else call.stack.config.general.dtmfmode
        if mode in ("info", "shortinfo") and call.dialog is not None:
            body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
            call.in_dialog("INFO", [("Content-Type", "application/dtmf-relay")], body)
        elif call.rtp is not None:
            await call.rtp.send_dtmf(digit, duration_ms)

    def native_bridge(self, other: ChannelTech) -> bool:
        """Relay RTP untouched between two SIP legs with the same codec."""
        if not isinstance(other, SipTech):
            return False
        a, b = self.sip.rtp, other.sip.rtp
        if a is None or b is None or a.codec is None or b.codec is None:
            return False
        if a.codec.name != b.codec.name:
            return False
        a.start_relay(b)
        b.start_relay(a)
        self.sip.native_peer, other.sip.native_peer = other.sip, self.sip
        if self._direct_media_with(other):
            # directmedia=yes: re-INVITE each phone to send its RTP straight to the
            # other; the relay stays armed for packets already on the way
            self.sip.stack.pbx.spawn(_go_direct(self.sip, other.sip))
        return True

    def _direct_media_with(self, other: "SipTech") -> bool:
        """Both peers allow direct media, both calls are up, neither is on hold or
        learns its address from what it sends (comedia), and the bridge needs no DTMF
        features or time limit (Dial's t/T/L())."""
        calls = (self.sip, other.sip)
        chan = self.sip.chan
        if chan is None or not getattr(chan.bridge, "direct_media", True):
            return False
        for call in calls:
            cfg = call.peer.config if call.peer else None
            if (cfg is None or not cfg.directmedia or "comedia" in cfg.nat or call.dialog is None
                    or not call.answered or call.finished or call.hold or call.rtp is None
                    or call.rtp.remote is None):
                return False
        return True

    def stop_native(self) -> None:
        self.sip.native_peer = None
        if self.sip.rtp is not None:
            self.sip.rtp.stop_relay()
        if self.sip.direct and not self.sip.finished:
            self.sip.stack.pbx.spawn(self.sip.restore_media_soon())


DIRECT_MEDIA_DELAY = 0.5  # seconds between the bridge and the direct-media re-INVITEs


async def _go_direct(a: "SipCall", b: "SipCall") -> None:
    """Switch both phones together, once neither has an INVITE transaction open
    (§14.1: an incoming leg's 200 must have its ACK): a phone switched alone would
    send to a partner still expecting its media from us."""
    for call in (a, b):
        if not call.outgoing and not call.acked.is_set():
            try:
                await asyncio.wait_for(call.acked.wait(), 64 * call.stack.config.general.timert1 / 1000.0)
            except TimeoutError:
                return
    # let the phones start their media first: re-INVITEd within milliseconds of the
    # answer, baresip sometimes never starts sending (seen in about one call in four)
    await asyncio.sleep(DIRECT_MEDIA_DELAY)
    if a.native_peer is b and b.native_peer is a and not (a.finished or b.finished):
        a.redirect_media(b)
        b.redirect_media(a)


class SipCall:
    def __init__(self, stack: "SipStack", peer: "PeerState | None", outgoing: bool) -> None:
        self.stack = stack
        self.peer = peer
        self.outgoing = outgoing
        self.chan: Channel | None = None
        self.invite: SipRequest | None = None
        self.dialog: Dialog | None = None
        self.rtp: RtpSession | None = None
        self.sdp: SdpSession | None = None
        self.offer: SessionDescription | None = None
        self.offer_body = b""  # our offer as sent (the SdpSession's rendering)
        self.source: tuple[str, int] | None = None
        self.dest: tuple[str, int] | None = None
        self.local_tag = make_tag()
        self.answered = False
        self.finished = False
        self.acked = asyncio.Event()
        self.final_response: SipResponse | None = None
        self.provisional_seen = False
        self.last_message = ""
        self.hold = False
        self.created = time.time()
        self.uri = ""
        self.auth_tries = 0
        self.transport = stack.peer_transport(peer) if outgoing else "udp"
        self.direct = False  # media goes straight to another phone (directmedia)
        self.reinvite: SipRequest | None = None  # our last in-dialog INVITE
        self.direct_target: tuple[str, int] | None = None
        self.direct_partner: SipCall | None = None
        self.native_peer: SipCall | None = None  # the leg our RTP is relayed with natively
        self.reinvite_tries = 0
        self.public_ip = stack.local_ip  # what SDP and Contact advertise (externip/localnet)
        self._2xx: _Retransmit2xx | None = None
        self._contact: tuple[tuple[str, str], str] | None = None

    def contact(self) -> str:
        """``<sip:s@host:port>`` for our Contact headers: made once per call (transport and
        advertised address are settled before the first message goes out)."""
        key = (self.transport, self.public_ip)
        if self._contact is None or self._contact[0] != key:
            self._contact = (key, f"<{self.stack.contact_uri(transport=self.transport, host=self.public_ip)}>")
        return self._contact[1]

    @property
    def codecs(self) -> list[str]:
        cfg = self.peer.config if self.peer else None
        return list(cfg.codecs if cfg else self.stack.config.general.codecs)

    # ================================================================== incoming
    @classmethod
    def incoming(cls, stack: "SipStack", request: SipRequest, source: tuple[str, int],
                 peer: "PeerState | None") -> "SipCall":
        call = cls(stack, peer, outgoing=False)
        call.invite = request
        call.source = source
        call.transport = stack.endpoint.transport_for(request)
        call.last_message = "Rx: INVITE"
        return call

    async def start_incoming(self) -> None:
        stack, request = self.stack, self.invite
        assert request is not None
        pbx = stack.pbx
        try:
            self.rtp = await RtpSession.open(stack.local_ip, stack.ports)
        except OSError as exc:
            log.error("No RTP port for an incoming call: %s", exc)
            self.final_failure(503, "Service Unavailable")
            return
        self.public_ip = stack.advertised_ip(self.source[0] if self.source else None)
        self.sdp = SdpSession(self.public_ip, self.rtp.port)
        answer_sdp = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                answer = self.sdp.answer(offer, self.codecs)
            except SdpError as exc:
                self.final_failure(exc.status if hasattr(exc, "status") else 488, "Not Acceptable Here")
                return
            except Exception as exc:
                log.warning("Bad SDP in INVITE from %s:%d: %s", *(self.source or ("?", 0)), exc)
                self.final_failure(400, "Bad Request (SDP)")
                return
            self._use_media(answer)
            answer_sdp = answer.sdp
        self.answer_body = self.sdp.body if answer_sdp is not None else None  # as rendered once by the session
        peer = self.peer
        cfg = peer.config if peer else None
        context = cfg.context if cfg else stack.config.general.context
        exten = request.request_uri.user or "s"
        name = f"SIP/{peer.name if peer else request.from_addr.uri.host}-{pbx.next_id()}"
        chan = pbx.new_channel(name, SipTech(self), context=context, exten=exten,
                               state=ChannelState.RING, language=cfg.language if cfg else "en",
                               accountcode=cfg.accountcode if cfg else "")
        self.chan = chan
        self.rtp.channel = chan
        frm = request.from_addr
        chan.caller.num = frm.uri.user or ""
        chan.caller.name = frm.display or ""
        if cfg is not None and (cfg.callerid_num or cfg.callerid_name):
            chan.caller.num = cfg.callerid_num or chan.caller.num
            chan.caller.name = cfg.callerid_name or chan.caller.name
        chan.caller.dnid = exten
        for var, value in (cfg.setvars if cfg else ()):
            chan.set_var(var, value)
        chan.set_var("SIPCALLID", request.call_id)
        if peer is not None:
            peer.calls += 1
        from hookflash.dialplan.executor import run_pbx
        from hookflash.engine.cdr import new_cdr
        new_cdr(chan)
        await run_pbx(chan)  # the dialplan runs in this task (pbx.spawn'ed): no second task per call

    def _use_media(self, negotiated: Any) -> None:
        rtp = self.rtp
        assert rtp is not None
        rtp.codec = get_codec(negotiated.codec.name)
        rtp.payload_type = negotiated.codec.payload_type
        rtp.dtmf_pt = negotiated.dtmf_payload_type
        if negotiated.remote_port and negotiated.remote_address not in ("0.0.0.0", ""):
            rtp.set_remote(negotiated.remote_address, negotiated.remote_port)
        rtp.hold = bool(getattr(negotiated, "remote_hold", False))
        self.hold = rtp.hold
        self.format = negotiated.codec.name

    def provisional(self, status: int, reason: str, sdp: bool = False) -> None:
        if self.invite is None or self.answered or self.finished:
            return
        body = (self.answer_body or b"") if sdp else b""
        headers = [("Contact", self.contact())]
        self.stack.reply(self.invite, status, reason, headers=headers, body=body, to_tag=self.local_tag)
        self.last_message = f"Tx: {status}"

    def final_failure(self, status: int, reason: str) -> None:
        if self.invite is None or self.answered or self.finished:
            return
        self.finished = True
        self.stack.reply(self.invite, status, reason, to_tag=self.local_tag)
        self.stack.pending.pop(self.invite.call_id, None)
        self.last_message = f"Tx: {status}"
        if self.chan is not None:
            self.chan.hangupcause = sip_to_cause(status)
        self._release()

    async def answer(self) -> None:
        if self.outgoing or self.answered or self.finished or self.invite is None:
            return
        request = self.invite
        stack = self.stack
        if self.answer_body is None:  # late offer: we offer in the 200, answer comes in the ACK
            assert self.sdp is not None
            self.offer = self.sdp.offer(self.codecs)
            self.answer_body = str(self.offer).encode()
        headers = [("Contact", self.contact()), ("Allow", "INVITE, ACK, CANCEL, OPTIONS, BYE, INFO")]
        response = stack.reply(request, 200, "OK", headers=headers, body=self.answer_body,
                               to_tag=self.local_tag)
        self.answered = True
        self.last_message = "Tx: 200"
        self.dialog = Dialog.from_uas(request, self.local_tag, self.contact())
        stack.calls[self.dialog.id] = self
        stack.pending.pop(request.call_id, None)
        t1 = stack.config.general.timert1 / 1000.0
        self._2xx = _Retransmit2xx(self, response, t1)

    def on_ack(self, ack: SipRequest) -> None:
        self.acked.set()
        if self._2xx is not None:
            self._2xx.cancel()
            self._2xx = None
        self.last_message = "Rx: ACK"
        if ack.body and self.offer is not None and self.rtp is not None:
            try:
                self._use_media(accept_answer(self.offer, SessionDescription.parse(ack.body)))
            except Exception as exc:
                log.warning("Bad SDP answer in ACK: %s", exc)

    def on_cancel(self, cancel: SipRequest) -> None:
        self.last_message = "Rx: CANCEL"
        if self.invite is not None and not self.answered:
            self.final_failure(487, "Request Terminated")
        if self.chan is not None:
            self.chan.hangupcause = HangupCause.NORMAL_CLEARING
            self.chan.request_hangup(HangupCause.NORMAL_CLEARING)

    # ================================================================== in-dialog requests
    def on_request(self, request: SipRequest, txn: Any, source: tuple[str, int]) -> None:
        method = request.method
        self.last_message = f"Rx: {method}"
        if self.dialog is not None and not self.dialog.receive_request(request):
            self.stack.reply(request, 500, "Server Internal Error", to_tag=self.local_tag)
            return
        if method == "BYE":
            self.stack.reply(request, 200, to_tag=self.dialog.local_tag if self.dialog else None)
            self.finished = True
            if self.chan is not None:
                self.chan.request_hangup(HangupCause.NORMAL_CLEARING)
            self._release()
        elif method == "INVITE":
            self._reinvite(request)
        elif method == "INFO":
            self._info(request)
        elif method == "ACK":
            self.on_ack(request)
        else:
            self.stack.reply(request, 200 if method in ("OPTIONS", "NOTIFY") else 501,
                             to_tag=self.dialog.local_tag if self.dialog else None)

    def _reinvite(self, request: SipRequest) -> None:
        tag = self.dialog.local_tag if self.dialog else self.local_tag
        if not request.body or self.sdp is None:
            self.stack.reply(request, 200, headers=[("Contact", self.contact())],
                             body=str(self.sdp.offer(self.codecs)).encode() if self.sdp else b"", to_tag=tag)
            return
        try:
            offer = SessionDescription.parse(request.body)
            direction = offer.direction(offer.media[0]) if offer.media else "sendrecv"
            hold_addr = any(m.connection and m.connection.address == "0.0.0.0" for m in offer.media) or (
                offer.connection is not None and offer.connection.address == "0.0.0.0")
            ours = {"sendonly": "recvonly", "inactive": "inactive", "recvonly": "sendonly"}.get(direction, "sendrecv")
            if hold_addr:
                ours = "recvonly"
            answer = self.sdp.answer(offer, self.codecs, direction=ours)
        except Exception as exc:
            self.stack.reply(request, 488, "Not Acceptable Here", to_tag=tag)
            log.debug("re-INVITE refused: %s", exc)
            return
        self._use_media(answer)
        self.hold = ours != "sendrecv"
        self.stack.reply(request, 200, headers=[("Contact", self.contact())],
                         body=str(answer.sdp).encode(), to_tag=tag)
        if self.chan is not None:
            self.stack.pbx.verbose(3, f"{self.chan.name} {'put on hold' if self.hold else 'taken off hold'} by the far end")

    def _info(self, request: SipRequest) -> None:
        tag = self.dialog.local_tag if self.dialog else None
        ctype = (request.headers.get("Content-Type") or "").lower()
        if self.chan is not None and "dtmf" in ctype:
            body = request.body.decode("utf-8", "replace")
            digit = ""
            for line in body.splitlines():
                name, _, value = line.partition("=")
                if name.strip().lower() == "signal":
                    digit = value.strip()
            if ctype.startswith("application/dtmf") and not digit:
                digit = body.strip()[:1]
            if digit and digit in "0123456789*#ABCDabcd":
                self.chan.queue_dtmf(digit.upper())
        self.stack.reply(request, 200, to_tag=tag)

    def in_dialog(self, method: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"") -> None:
        if self.dialog is None:
            return
        request = self.dialog.create_request(method, via=self.stack.new_via(transport=self.transport),
                                             headers=headers or [], body=body)
        request.headers.add("User-Agent", self.stack.useragent())
        dest = self.dest or self.source
        if dest is not None:
            self.stack.endpoint.request(request, dest, lambda response: None)
        self.last_message = f"Tx: {method}"

    # ================================================================== direct media
    def redirect_media(self, target: "SipCall") -> None:
        """Re-INVITE the far end to send its RTP to ``target``'s phone."""
        assert target.rtp is not None and target.rtp.remote is not None
        self.direct = True
        self.direct_target = target.rtp.remote
        self.direct_partner = target
        if self.chan is not None:
            self.stack.pbx.verbose(3, f"{self.chan.name} sends its media directly to "
                                      f"{target.rtp.remote[0]}:{target.rtp.remote[1]}")
        if not self.outgoing and not self.acked.is_set():
            # §14.1: no new INVITE while ours is unfinished: wait for the 200's ACK
            self.stack.pbx.spawn(self._reinvite_after_ack())
            return
        self._send_reinvite(target.rtp.remote)

    async def _reinvite_after_ack(self) -> None:
        try:
            await asyncio.wait_for(self.acked.wait(), 64 * self.stack.config.general.timert1 / 1000.0)
        except TimeoutError:
            self._direct_failed("no ACK for the 200")
            return
        if self.direct and not self.finished:
            self._send_reinvite(self.direct_target)

    async def restore_media_soon(self) -> None:
        """After a direct-media bridge: most calls are hung up right after it (Dial
        without ``g``); re-INVITE only a leg that is still up a moment later."""
        await asyncio.sleep(0.05)
        if self.direct and not self.finished:
            self.restore_media()

    def restore_media(self) -> None:
        """Re-INVITE the far end to send its RTP to us again."""
        self.direct = False
        self._send_reinvite(None)

    def _send_reinvite(self, media: tuple[str, int] | None) -> None:
        if self.dialog is None or self.sdp is None or self.finished:
            return
        codecs = [self.format] if getattr(self, "format", None) else self.codecs
        body = str(self.sdp.offer(codecs, media=media)).encode()
        contact = self.contact()
        request = self.dialog.create_request(
            "INVITE", via=self.stack.new_via(transport=self.transport),
            headers=[("Contact", contact), ("Content-Type", "application/sdp")], body=body)
        request.headers.add("User-Agent", self.stack.useragent())
        self.reinvite = request
        dest = self.dest or self.source
        if dest is not None:
            self.stack.endpoint.request(request, dest, self._on_reinvite_response)
        self.last_message = "Tx: INVITE"

    def _direct_failed(self, why: str) -> None:
        """This phone keeps sending to us: bring its partner back too, or the partner
        would send straight to a phone that drops what does not come from us."""
        log.warning("Direct media for %s not set up (%s); media stays with hookflash",
                    self.chan.name if self.chan else "?", why)
        was_direct, self.direct = self.direct, False
        partner = self.direct_partner
        if was_direct and partner is not None and partner.direct and not partner.finished:
            partner.restore_media()

    def _on_reinvite_response(self, response: SipResponse | None) -> None:
        if response is None:
            self._direct_failed("no answer to the re-INVITE")
            return
        self.last_message = f"Rx: {response.status}"
        if response.status < 200:
            return
        if response.status < 300:
            self._ack_reinvite(response)
        elif response.status == 491 and self.reinvite_tries < 2:
            # glare (§14.1): try again after 2.1-4 s, if still wanted
            self.reinvite_tries += 1
            media = self.direct_target if self.direct else None
            self.stack.pbx.spawn(self._reinvite_later(media, 2.1 + random.random() * 1.9))
        elif self.direct:  # refused: the media stays with us, the relay carries it
            self._direct_failed(f"re-INVITE answered {response.status}")

    async def _reinvite_later(self, media: tuple[str, int] | None, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.finished and (media is not None) == self.direct:
            self._send_reinvite(media)

    def _ack_reinvite(self, response: SipResponse) -> None:
        if self.dialog is None or self.reinvite is None:
            return
        ack = self.dialog.create_ack(response, via=self.stack.new_via(transport=self.transport),
                                     invite=self.reinvite)
        dest = self.dest or self.source
        if dest is not None:
            self.stack.endpoint.send(ack, dest)

    # ================================================================== outgoing
    @classmethod
    def outgoing_call(cls, stack: "SipStack", peer: "PeerState | None", uri: str,
                      dest: tuple[str, int], chan_name: str) -> "SipCall":
        call = cls(stack, peer, outgoing=True)
        call.uri = uri
        call.dest = dest
        chan = stack.pbx.new_channel(chan_name, SipTech(call),
                                     language=peer.config.language if peer else "en")
        call.chan = chan
        return call

    async def start_outgoing(self) -> None:
        stack = self.stack
        chan = self.chan
        assert chan is not None and self.dest is not None
        self.rtp = await RtpSession.open(stack.local_ip, stack.ports)
        self.rtp.channel = chan
        self.public_ip = stack.advertised_ip(self.dest[0])
        self.sdp = SdpSession(self.public_ip, self.rtp.port)
        self.offer = self.sdp.offer(self.codecs)
        self.offer_body = self.sdp.body
        if self.peer is not None:
            self.peer.calls += 1
        self._send_invite(None)

    def _send_invite(self, auth: tuple[str, str] | None) -> None:
        stack, chan = self.stack, self.chan
        assert chan is not None and self.dest is not None and self.offer is not None
        if self.invite is None:
            request = stack.new_request("INVITE", self.uri, self.uri, from_user=chan.caller.num or "anonymous",
                                        from_display=chan.caller.name, transport=self.transport)
            request.headers.set("From", request.headers.get("From").rsplit(";tag=", 1)[0] + f";tag={self.local_tag}")  # type: ignore[union-attr]
            request.headers.add("Contact", self.contact())
            request.headers.add("Allow", "INVITE, ACK, CANCEL, OPTIONS, BYE, INFO")
            request.headers.add("Content-Type", "application/sdp")
            request.body = self.offer_body
        else:
            old = self.invite
            request = SipRequest("INVITE", old.uri, old.headers.copy(), old.body)
            request.headers.set("Via", stack.new_via(transport=self.transport))
            request.headers.set("CSeq", f"{old.cseq[0] + 1} INVITE")
        if auth is not None:
            request.headers.set(auth[0], auth[1])
        self.invite = request
        stack.pending[request.call_id] = self
        self.last_message = "Tx: INVITE"
        stack.endpoint.request(request, self.dest, self._on_response)

    def _on_response(self, response: SipResponse | None) -> None:
        chan = self.chan
        if chan is None:
            return
        if response is None:  # Timer B
            self.last_message = "Timeout"
            if not self.answered:
                chan.hangupcause = HangupCause.NO_USER_RESPONSE
                chan.queue_control(Control.CONGESTION)
            return
        status = response.status
        self.last_message = f"Rx: {status}"
        if status < 200:
            self.provisional_seen = True
            if status in (180, 181, 182):
                chan.queue_control(Control.RINGING)
            elif status == 183:
                if response.body:
                    self._answer_sdp(response)
                chan.queue_control(Control.PROGRESS)
            return
        if 200 <= status < 300:
            self._on_2xx(response)
            return
        self.stack.pending.pop(response.call_id, None)
        if status in (401, 407) and self.auth_tries == 0:
            self.auth_tries += 1
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            challenge = response.headers.get(header)
            answer = self.stack.peer_auth(self.peer, challenge or "", "INVITE", self.uri) if challenge else None
            if answer is not None:
                self._send_invite(("Authorization" if status == 401 else "Proxy-Authorization", answer))
                return
        self.finished = True
        chan.hangupcause = sip_to_cause(status)
        chan.queue_control(sip_to_control(status))
        self._release()

    def _on_2xx(self, response: SipResponse) -> None:
        chan = self.chan
        assert chan is not None and self.invite is not None
        first = self.dialog is None
        if first:
            self.dialog = Dialog.from_uac(self.invite, response, self.contact())
            self.stack.calls[self.dialog.id] = self
            self.stack.pending.pop(response.call_id, None)
        self._send_ack(response)
        if not first:
            return
        self.answered = True
        if response.body:
            self._answer_sdp(response)
        if self.finished or chan.softhangup:  # we gave up meanwhile: ACK then BYE
            self.stack.pbx.spawn(self.hangup(force=True))
            return
        chan.set_up()
        chan.queue_control(Control.ANSWER)

    def _send_ack(self, response: SipResponse) -> None:
        assert self.dialog is not None
        ack = self.dialog.create_ack(response, via=self.stack.new_via(transport=self.transport), invite=self.invite)
        dest = self.dest
        if dest is not None:
            self.stack.endpoint.send(ack, dest)

    def on_stray_response(self, response: SipResponse, source: tuple[str, int]) -> None:
        if 200 <= response.status < 300 and response.cseq[1] == "INVITE" and self.dialog is not None:
            # the 2xx was retransmitted: our ACK was lost
            if self.reinvite is not None and response.cseq[0] == self.reinvite.cseq[0]:
                self._ack_reinvite(response)
            elif self.outgoing:
                self._send_ack(response)

    def _answer_sdp(self, response: SipResponse) -> None:
        if self.offer is None or self.rtp is None:
            return
        try:
            self._use_media(accept_answer(self.offer, SessionDescription.parse(response.body)))
        except Exception as exc:
            log.warning("Unusable SDP answer from %s: %s", self.uri, exc)

    # ================================================================== teardown
    async def hangup(self, force: bool = False) -> None:
        if self.finished and not force:
            self._release()
            return
        self.finished = True
        if self.outgoing and not self.answered:
            if self.invite is not None:
                cancel = build_cancel(self.invite)
                self.stack.endpoint.request(cancel, self.dest, lambda r: None)  # type: ignore[arg-type]
                self.last_message = "Tx: CANCEL"
        elif not self.outgoing and not self.answered:
            cause = self.chan.hangupcause if self.chan else 16
            status, reason = CAUSE_TO_SIP.get(cause, (480, "Temporarily Unavailable"))  # type: ignore[call-overload]
            if self.invite is not None:
                self.finished = False
                self.final_failure(status, reason)
                return
        elif self.dialog is not None:
            self.in_dialog("BYE")
        self._release()

    def _release(self) -> None:
        if self._2xx is not None:
            self._2xx.cancel()
            self._2xx = None
        if self.rtp is not None:
            self.rtp.close()
        if self.peer is not None and self.peer.calls > 0 and not getattr(self, "_released", False):
            self.peer.calls -= 1
        self._released = True
        if self.dialog is not None:
            self.stack.calls.pop(self.dialog.id, None)
        if self.invite is not None:
            self.stack.pending.pop(self.invite.call_id, None)


class _Retransmit2xx:
    """§13.3.1.4: the UAS core resends the 2xx until the ACK arrives, at T1, 2·T1, ...
    capped at T2 (4 s), and gives up (hangs up) after 64·T1. A timer handle, not a task."""

    def __init__(self, call: SipCall, response: SipResponse, t1: float) -> None:
        self.call, self.response, self.t1 = call, response, t1
        self.interval, self.waited = t1, 0.0
        self.handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(t1, self._fire)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        call = self.call
        if call.acked.is_set() or call.finished:
            if call._2xx is self:
                call._2xx = None
            return
        self.waited += self.interval
        self.interval = min(self.interval * 2, 4.0)
        if call.source is not None:
            call.stack.endpoint.send(self.response, _via_dest(self.response, call.source))
        if self.waited < 64 * self.t1:
            self.handle = asyncio.get_running_loop().call_later(self.interval, self._fire)
            return
        log.warning("No ACK for the 200 OK of %s; hanging up", call.chan.name if call.chan else "?")
        call._2xx = None
        call.stack.pbx.spawn(call.hangup())


def _via_dest(response: SipResponse, fallback: tuple[str, int]) -> tuple[str, int]:
    try:
        via = response.top_via
        host = via.params.get("received") or via.host
        port = via.params.get("rport")
        return str(host), int(port) if port else (via.port or 5060)
    except Exception:
        return fallback
