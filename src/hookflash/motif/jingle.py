"""Jingle (XEP-0166) with RTP sessions (XEP-0167), sans-IO.

``parse_jingle(element)`` turns a ``<jingle/>`` element into a :class:`Jingle`;
``build_jingle(jingle)`` does the reverse. Transports: ICE-UDP (XEP-0176), raw-UDP
(XEP-0177) and the DTLS-SRTP fingerprint inside either (XEP-0320). The Google
transports are recognised only so that they can be refused by name.

Everything here comes from the network: every count and length is bounded, every
number checked, and anything unusable raises :class:`JingleError` carrying the
XMPP error condition and the Jingle-specific condition to answer with.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS_JINGLE = "urn:xmpp:jingle:1"
NS_ERRORS = "urn:xmpp:jingle:errors:1"
NS_RTP = "urn:xmpp:jingle:apps:rtp:1"
NS_RTP_AUDIO = "urn:xmpp:jingle:apps:rtp:audio"
NS_RTP_INFO = "urn:xmpp:jingle:apps:rtp:info:1"
NS_RTP_HDREXT = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"
NS_ICE = "urn:xmpp:jingle:transports:ice-udp:1"
NS_RAW = "urn:xmpp:jingle:transports:raw-udp:1"
NS_DTLS = "urn:xmpp:jingle:apps:dtls:0"
NS_JMI = "urn:xmpp:jingle-message:0"
NS_GOOGLE_P2P = "http://www.google.com/transport/p2p"
NS_GOOGLE_SESSION = "http://www.google.com/session"
NS_GOOGLE_PHONE = "http://www.google.com/session/phone"

# what we put in disco#info so that clients see we take audio calls
FEATURES = (NS_JINGLE, NS_RTP, NS_RTP_AUDIO, NS_ICE, NS_RAW, NS_DTLS, NS_JMI,
            "urn:xmpp:jingle:apps:rtp:rtcp-fb:0")

ACTIONS = frozenset({
    "content-accept", "content-add", "content-modify", "content-reject", "content-remove",
    "description-info", "security-info", "session-accept", "session-info", "session-initiate",
    "session-terminate", "transport-accept", "transport-info", "transport-reject",
    "transport-replace",
})
# XEP-0166 §7.4: the conditions a session-terminate may carry
REASONS = frozenset({
    "alternative-session", "busy", "cancel", "connectivity-error", "decline", "expired",
    "failed-application", "failed-transport", "general-error", "gone", "incompatible-parameters",
    "media-error", "security-error", "success", "timeout", "unsupported-applications",
    "unsupported-transports",
})
INFO = frozenset({"active", "hold", "mute", "ringing", "unhold", "unmute"})

MAX_CONTENTS = 4
MAX_PAYLOADS = 64
MAX_CANDIDATES = 64
MAX_PARAMS = 32
MAX_TEXT = 1024
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}\Z")  # ufrag, pwd, foundation, ids: printable ASCII
_HEX_FP = re.compile(r"([0-9A-Fa-f]{2}:){15,63}[0-9A-Fa-f]{2}\Z")


class JingleError(ValueError):
    """A Jingle element we cannot use: ``condition`` is the XMPP stanza error to answer
    with (``bad-request``, ``feature-not-implemented``, ...), ``jingle`` the Jingle one
    (``unsupported-transports``, ``out-of-order``, ...) or ''."""

    def __init__(self, text: str, condition: str = "bad-request", jingle: str = "") -> None:
        super().__init__(text)
        self.condition = condition
        self.jingle = jingle


@dataclass
class PayloadType:
    id: int
    name: str
    clockrate: int = 8000
    channels: int = 1
    ptime: int = 0
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Candidate:
    """An ICE-UDP (or raw-UDP) candidate. ``type`` is host, srflx, prflx or relay."""

    ip: str
    port: int
    component: int = 1
    foundation: str = "1"
    generation: int = 0
    id: str = ""
    network: int = 0
    priority: int = 0
    protocol: str = "udp"
    type: str = "host"
    rel_addr: str = ""
    rel_port: int = 0


@dataclass
class Fingerprint:
    hash: str  # sha-256, ...
    value: str  # colon-separated hex, upper case
    setup: str = "actpass"  # actpass, active, passive


@dataclass
class Transport:
    kind: str  # "ice-udp" or "raw-udp"
    ufrag: str = ""
    pwd: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    fingerprint: Fingerprint | None = None

    @property
    def namespace(self) -> str:
        return NS_ICE if self.kind == "ice-udp" else NS_RAW


@dataclass
class Content:
    name: str = "audio"
    creator: str = "initiator"
    senders: str = "both"
    media: str = "audio"
    payloads: list[PayloadType] = field(default_factory=list)
    rtcp_mux: bool = False
    transport: Transport | None = None
    has_description: bool = True


@dataclass
class Jingle:
    action: str
    sid: str
    initiator: str = ""
    responder: str = ""
    contents: list[Content] = field(default_factory=list)
    reason: str = ""
    reason_text: str = ""
    info: str = ""  # session-info payload: ringing, hold, unhold, active, mute, unmute

    @property
    def audio(self) -> Content | None:
        for content in self.contents:
            if content.media == "audio" and content.has_description:
                return content
        return self.contents[0] if self.contents else None


# ---------------------------------------------------------------------------- parsing

def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _int(value: str | None, what: str, low: int, high: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise JingleError(f"{what} is missing")
        return default
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        raise JingleError(f"{what} {value[:20]!r} is not a number")
    number = int(value)
    if not low <= number <= high:
        raise JingleError(f"{what} {number} is out of range {low}..{high}")
    return number


def _token(value: str | None, what: str, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise JingleError(f"{what} is missing")
        return ""
    if not _TOKEN.match(value):
        raise JingleError(f"{what} has characters or a length not allowed")
    return value


def _text(value: str | None) -> str:
    return "".join(ch for ch in (value or "")[:MAX_TEXT] if ch.isprintable())


def _ip(value: str | None, what: str) -> str:
    if not value:
        raise JingleError(f"{what} is missing")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        # RFC 8445 allows FQDN and mDNS (.local) candidates; we never resolve them
        raise JingleError(f"{what} {value[:64]!r} is not an IP address", "bad-request") from None


def _parse_payload(el: ET.Element) -> PayloadType:
    params = {}
    for p in el.findall(_q(NS_RTP, "parameter"))[:MAX_PARAMS]:
        name = (p.get("name") or "")[:64]
        if name:
            params[name] = (p.get("value") or "")[:256]
    return PayloadType(
        id=_int(el.get("id"), "payload-type id", 0, 127),
        name=(el.get("name") or "")[:32],
        clockrate=_int(el.get("clockrate"), "clockrate", 1000, 192000, 8000),
        channels=_int(el.get("channels"), "channels", 1, 8, 1),
        ptime=_int(el.get("ptime"), "ptime", 0, 1000, 0),
        params=params,
    )


def _parse_candidate(el: ET.Element, raw: bool) -> Candidate:
    cand = Candidate(
        ip=_ip(el.get("ip"), "candidate ip"),
        port=_int(el.get("port"), "candidate port", 1, 65535),
        component=_int(el.get("component"), "candidate component", 1, 2, 1),
        generation=_int(el.get("generation"), "candidate generation", 0, 255, 0),
        id=_token(el.get("id"), "candidate id", required=False),
    )
    if raw:
        return cand
    cand.foundation = _token(el.get("foundation"), "candidate foundation")
    cand.network = _int(el.get("network"), "candidate network", 0, 65535, 0)
    cand.priority = _int(el.get("priority"), "candidate priority", 0, 2**32 - 1)
    cand.protocol = (el.get("protocol") or "udp").lower()
    cand.type = (el.get("type") or "host").lower()
    if cand.type not in ("host", "srflx", "prflx", "relay"):
        raise JingleError(f"candidate type {cand.type[:20]!r} is not host, srflx, prflx or relay")
    if el.get("rel-addr"):
        cand.rel_addr = _ip(el.get("rel-addr"), "candidate rel-addr")
        cand.rel_port = _int(el.get("rel-port"), "candidate rel-port", 0, 65535, 0)
    return cand


def _parse_transport(el: ET.Element) -> Transport:
    ns = el.tag[1:].split("}", 1)[0] if el.tag.startswith("{") else ""
    if ns == NS_GOOGLE_P2P:
        raise JingleError("the Google transport is not offered by any service any more",
                          "feature-not-implemented", "unsupported-transports")
    if ns not in (NS_ICE, NS_RAW):
        raise JingleError(f"transport {ns[:80]!r} is not supported", "feature-not-implemented",
                          "unsupported-transports")
    raw = ns == NS_RAW
    transport = Transport("raw-udp" if raw else "ice-udp")
    if not raw:
        transport.ufrag = _token(el.get("ufrag"), "ICE ufrag", required=False)
        transport.pwd = _token(el.get("pwd"), "ICE pwd", required=False)
    cands = el.findall(_q(ns, "candidate"))
    for c in cands[:MAX_CANDIDATES]:
        transport.candidates.append(_parse_candidate(c, raw))
    fp = el.find(_q(NS_DTLS, "fingerprint"))
    if fp is not None:
        hash_ = (fp.get("hash") or "").lower()
        value = (fp.text or "").strip()
        if not hash_ or not _HEX_FP.match(value):
            raise JingleError("DTLS fingerprint is malformed")
        setup = (fp.get("setup") or "actpass").lower()
        if setup not in ("actpass", "active", "passive"):
            raise JingleError(f"DTLS setup {setup[:20]!r} is not actpass, active or passive")
        transport.fingerprint = Fingerprint(hash_, value.upper(), setup)
    return transport


def _parse_content(el: ET.Element) -> Content:
    content = Content(
        name=_text(el.get("name"))[:128] or "audio",
        creator=(el.get("creator") or "initiator").lower(),
        senders=(el.get("senders") or "both").lower(),
    )
    if content.creator not in ("initiator", "responder"):
        raise JingleError(f"content creator {content.creator[:20]!r} is not initiator or responder")
    if content.senders not in ("both", "initiator", "responder", "none"):
        raise JingleError(f"content senders {content.senders[:20]!r} is not allowed")
    desc = el.find(_q(NS_RTP, "description"))
    if desc is None:
        if el.find(_q(NS_GOOGLE_PHONE, "description")) is not None:
            raise JingleError("Google phone sessions are not offered by any service any more",
                              "feature-not-implemented", "unsupported-applications")
        content.has_description = any(child.tag.endswith("description") for child in el)
        if content.has_description:
            raise JingleError("only RTP sessions (XEP-0167) are supported", "feature-not-implemented",
                              "unsupported-applications")
    else:
        content.media = (desc.get("media") or "audio").lower()[:16]
        for pt in desc.findall(_q(NS_RTP, "payload-type"))[:MAX_PAYLOADS]:
            content.payloads.append(_parse_payload(pt))
        content.rtcp_mux = desc.find(_q(NS_RTP, "rtcp-mux")) is not None
    for child in el:
        if child.tag.endswith("}transport"):
            content.transport = _parse_transport(child)
            break
    return content


def parse_jingle(el: ET.Element) -> Jingle:
    """A ``<jingle xmlns='urn:xmpp:jingle:1'/>`` element, checked; JingleError if unusable."""
    if el.tag != _q(NS_JINGLE, "jingle"):
        if el.tag == _q(NS_GOOGLE_SESSION, "session"):
            raise JingleError("Google Jingle sessions are not offered by any service any more",
                              "feature-not-implemented", "unsupported-applications")
        raise JingleError(f"not a Jingle element: {el.tag[:80]}")
    action = (el.get("action") or "").lower()
    if action not in ACTIONS:
        raise JingleError(f"unknown Jingle action {action[:40]!r}", "feature-not-implemented",
                          "unsupported-info")
    sid = el.get("sid") or ""
    if not sid or len(sid) > 256 or not sid.isprintable():
        raise JingleError("the session id (sid) is missing or malformed")
    jingle = Jingle(action, sid, (el.get("initiator") or "")[:3071], (el.get("responder") or "")[:3071])
    contents = el.findall(_q(NS_JINGLE, "content"))
    if len(contents) > MAX_CONTENTS:
        raise JingleError(f"{len(contents)} contents; at most {MAX_CONTENTS} are accepted")
    for c in contents:
        jingle.contents.append(_parse_content(c))
    reason = el.find(_q(NS_JINGLE, "reason"))
    if reason is not None:
        for child in reason:
            tag = child.tag.split("}", 1)[-1]
            if tag == "text":
                jingle.reason_text = _text(child.text)
            elif tag in REASONS and not jingle.reason:
                jingle.reason = tag
        if not jingle.reason:
            jingle.reason = "general-error"
    for child in el:
        if child.tag.startswith("{" + NS_RTP_INFO + "}"):
            tag = child.tag.split("}", 1)[-1]
            if tag in INFO:
                jingle.info = tag
                break
    if action == "session-initiate":
        audio = jingle.audio
        if audio is None or not audio.payloads:
            raise JingleError("session-initiate without an RTP audio description", "bad-request")
        if audio.transport is None:
            raise JingleError("session-initiate without a transport", "bad-request")
    return jingle


# ---------------------------------------------------------------------------- building

def _sub(parent: ET.Element, ns: str, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, _q(ns, tag), {k.replace("_", "-"): v for k, v in attrs.items() if v != ""})


def build_transport(parent: ET.Element, transport: Transport) -> ET.Element:
    ns = transport.namespace
    el = _sub(parent, ns, "transport", **({"ufrag": transport.ufrag, "pwd": transport.pwd}
                                           if transport.kind == "ice-udp" else {}))
    if transport.fingerprint is not None:
        fp = _sub(el, NS_DTLS, "fingerprint", hash=transport.fingerprint.hash, setup=transport.fingerprint.setup)
        fp.text = transport.fingerprint.value
    for c in transport.candidates:
        if transport.kind == "raw-udp":
            _sub(el, ns, "candidate", component=str(c.component), generation=str(c.generation),
                 id=c.id, ip=c.ip, port=str(c.port))
            continue
        attrs = dict(component=str(c.component), foundation=c.foundation, generation=str(c.generation),
                     id=c.id, ip=c.ip, network=str(c.network), port=str(c.port),
                     priority=str(c.priority), protocol=c.protocol, type=c.type)
        if c.rel_addr:
            attrs.update(rel_addr=c.rel_addr, rel_port=str(c.rel_port))
        _sub(el, ns, "candidate", **attrs)
    return el


def build_jingle(j: Jingle) -> ET.Element:
    el = ET.Element(_q(NS_JINGLE, "jingle"), {"action": j.action, "sid": j.sid})
    if j.initiator:
        el.set("initiator", j.initiator)
    if j.responder:
        el.set("responder", j.responder)
    for content in j.contents:
        c = _sub(el, NS_JINGLE, "content", creator=content.creator, name=content.name,
                 senders="" if content.senders == "both" else content.senders)
        if content.has_description:
            d = _sub(c, NS_RTP, "description", media=content.media)
            for pt in content.payloads:
                p = _sub(d, NS_RTP, "payload-type", id=str(pt.id), name=pt.name, clockrate=str(pt.clockrate),
                         channels=str(pt.channels) if pt.channels != 1 else "",
                         ptime=str(pt.ptime) if pt.ptime else "")
                for name, value in pt.params.items():
                    _sub(p, NS_RTP, "parameter", name=name, value=value)
            if content.rtcp_mux:
                _sub(d, NS_RTP, "rtcp-mux")
        if content.transport is not None:
            build_transport(c, content.transport)
    if j.reason:
        r = _sub(el, NS_JINGLE, "reason")
        _sub(r, NS_JINGLE, j.reason)
        if j.reason_text:
            _sub(r, NS_JINGLE, "text").text = j.reason_text
    if j.info:
        _sub(el, NS_RTP_INFO, j.info)
    return el


# ---------------------------------------------------------------------------- codecs

# allow= name -> the payload type we offer (static ones keep their numbers; 111 for Opus
# as every WebRTC and Jingle client numbers it)
OFFER = {
    "opus": PayloadType(111, "opus", 48000, 2, params={"useinbandfec": "1", "minptime": "10"}),
    "g722": PayloadType(9, "G722", 8000),
    "ulaw": PayloadType(0, "PCMU", 8000),
    "alaw": PayloadType(8, "PCMA", 8000),
}
TELEPHONE_EVENT = PayloadType(101, "telephone-event", 8000, params={"events": "0-15"})
_BY_NAME = {pt.name.lower(): name for name, pt in OFFER.items()}
_STATIC = {0: "ulaw", 8: "alaw", 9: "g722"}


def codec_of(pt: PayloadType) -> str | None:
    """Our allow= name for an offered payload type, or None."""
    name = _BY_NAME.get(pt.name.lower())
    if name is None and not pt.name and pt.id in _STATIC:
        name = _STATIC[pt.id]
    if name is None:
        return None
    if name == "opus" and pt.clockrate != 48000:
        return None
    if name in ("ulaw", "alaw", "g722") and pt.clockrate != 8000:
        return None
    return name


def offer_payloads(allow: list[str], maxpayloads: int = 30) -> list[PayloadType]:
    out = [OFFER[name] for name in allow if name in OFFER]
    out = out[: max(1, maxpayloads - 1)]
    return out + [TELEPHONE_EVENT]


def choose(offered: list[PayloadType], allow: list[str]) -> tuple[PayloadType, str, PayloadType | None] | None:
    """The first offered payload type we allow (the offerer's preference, as Asterisk's
    chan_motif takes it), our codec name, and the offered telephone-event type."""
    dtmf = next((pt for pt in offered if pt.name.lower() == "telephone-event" and pt.clockrate == 8000), None)
    if dtmf is None:
        dtmf = next((pt for pt in offered if pt.name.lower() == "telephone-event"), None)
    for pt in offered:
        name = codec_of(pt)
        if name is not None and name in allow:
            return pt, name, dtmf
    return None
