"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.

Parsing keeps every line (unknown ones too) so ``str(SessionDescription.parse(t))``
gives the same lines back in RFC 4566 §5 order.  Negotiation is functions of
SDP in, SDP and a ``Negotiated`` summary out:

* ``make_offer()``: our offer (initial INVITE, re-INVITE for hold/resume).
* ``negotiate(offer, allowed, ...)``: answer someone's offer, picking the first
  codec of *our* ``allowed`` list (Asterisk ``allow=`` names) that the offer has;
  ``SdpError(488)`` when none matches.
* ``accept_answer(offer, answer)``: read the answer to our own offer.
* ``SdpSession``: keeps o= session id and bumps the version only when what we
  send changes (RFC 3264 §8).

Errors: ``SdpError.status`` is the SIP status to answer, 400 for SDP that does
not parse, 488 (Not Acceptable Here) for SDP we cannot accept.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import IntEnum

from .codecs import Codec, CodecError, codec_class

__all__ = [
    "DIRECTIONS",
    "TELEPHONE_EVENT_PT",
    "Answer",
    "CodecChoice",
    "Connection",
    "MediaDescription",
    "Negotiated",
    "Origin",
    "PayloadType",
    "RtpMap",
    "SdpError",
    "SdpSession",
    "SessionDescription",
    "accept_answer",
    "make_offer",
    "negotiate",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly",
            "recvonly": "sendonly", "inactive": "inactive"}
TELEPHONE_EVENT_PT = 101
DEFAULT_PTIME = 20
_RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
_HOLD_ADDRESSES = ("0.0.0.0", "::")


class SdpError(Exception):
    """SDP we cannot use; ``status`` is the SIP response to send."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class PayloadType(IntEnum):
    """Static audio payload types (RFC 3551 §6) that we recognise."""

    PCMU = 0
    GSM = 3
    G723 = 4
    PCMA = 8
    G722 = 9
    CN = 13
    G729 = 18

    @property
    def phrase(self) -> str:
        return f"{self.name}/8000"


# ------------------------------------------------------------------ wire structs


@dataclass
class Origin:
    """o= (§5.2)."""

    username: str = "-"
    session_id: str = "0"
    version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, value: str) -> Origin:
        f = value.split()
        if len(f) != 6 or not f[2].isdigit():
            raise SdpError(400, f"bad o= line {value!r}")
        return cls(f[0], f[1], int(f[2]), f[3], f[4], f[5])

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass
class Connection:
    """c= (§5.7); ``address`` keeps any /ttl suffix of a multicast address."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str) -> Connection:
        f = value.split()
        if len(f) != 3:
            raise SdpError(400, f"bad c= line {value!r}")
        return cls(f[2], f[1], f[0])

    @classmethod
    def for_ip(cls, ip: str) -> Connection:
        return cls(ip, "IP6" if ":" in ip else "IP4")

    @property
    def host(self) -> str:
        return self.address.split("/")[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class RtpMap:
    """a=rtpmap (§6): ``<pt> <encoding>/<clock>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        try:
            pt, rest = value.split(None, 1)
            parts = rest.strip().split("/")
            return cls(int(pt), parts[0], int(parts[1]),
                       int(parts[2]) if len(parts) > 2 else 1)
        except (ValueError, IndexError):
            raise SdpError(400, f"bad a=rtpmap {value!r}") from None

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"

    def same_codec(self, other: RtpMap) -> bool:
        return (self.encoding.lower() == other.encoding.lower()
                and self.clock_rate == other.clock_rate and self.channels == other.channels)


Attribute = tuple[str, "str | None"]


def _attr_line(attr: Attribute) -> str:
    name, value = attr
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_attr(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return (name, rest if sep else None)


@dataclass
class MediaDescription:
    """An m= section (§5.14) and its i=, c=, b=, k=, a= lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)  # i=, b=, k= lines

    @classmethod
    def parse_m(cls, value: str) -> MediaDescription:
        f = value.split()
        if len(f) < 3:
            raise SdpError(400, f"bad m= line {value!r}")
        port, _, count = f[1].partition("/")
        if not port.isdigit() or (count and not count.isdigit()):
            raise SdpError(400, f"bad m= port {f[1]!r}")
        return cls(f[0], int(port), f[2], f[3:], int(count) if count else None)

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        out = [f"m={' '.join([self.media, port, self.proto, *self.formats])}"]
        out += [f"{k}={v}" for k, v in self.other if k == "i"]
        if self.connection:
            out.append(f"c={self.connection}")
        out += [f"{k}={v}" for k, v in self.other if k in "bk"]
        out += [_attr_line(a) for a in self.attributes]
        return out

    def attr(self, name: str) -> str | None:
        """Value of the first a=<name> (an empty string for a flag)."""
        for key, value in self.attributes:
            if key.lower() == name:
                return value if value is not None else ""
        return None

    def attrs(self, name: str) -> list[str]:
        return [v or "" for k, v in self.attributes if k.lower() == name]

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        maps = (RtpMap.parse(v) for v in self.attrs("rtpmap"))
        return {m.payload_type: m for m in maps}

    def fmtp(self, pt: int) -> str | None:
        for v in self.attrs("fmtp"):
            key, _, params = v.partition(" ")
            if key == str(pt):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attr("ptime")
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    def direction(self, default: str = "sendrecv") -> str:
        for key, _ in self.attributes:
            if key.lower() in DIRECTIONS:
                return key.lower()
        return default

    def payload_map(self) -> list[RtpMap]:
        """The formats in order, static ones filled in; unknown dynamic ones left out."""
        maps = self.rtpmaps
        out = []
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            if pt in maps:
                out.append(maps[pt])
            elif pt in PayloadType._value2member_map_:
                out.append(RtpMap(pt, PayloadType(pt).name, 8000))
        return out


_SESSION_ORDER = "iuep"  # lines between s= and c= (§5)


@dataclass
class SessionDescription:
    """A whole SDP body (§5)."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    times: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)  # i u e p b r z k
    version: int = 0

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
        lines = [ln for ln in lines if ln]
        if not lines or not lines[0].startswith("v="):
            raise SdpError(400, "SDP must start with v=")
        sd = cls(times=[])
        media: MediaDescription | None = None
        for line in lines:
            kind, sep, value = line.partition("=")
            if not sep or len(kind) != 1:
                raise SdpError(400, f"bad SDP line {line!r}")
            if kind == "m":
                media = MediaDescription.parse_m(value)
                sd.media.append(media)
            elif media is not None:
                if kind == "c":
                    media.connection = Connection.parse(value)
                elif kind == "a":
                    media.attributes.append(_parse_attr(value))
                else:
                    media.other.append((kind, value))
            elif kind == "v":
                if value.strip() != "0":
                    raise SdpError(400, f"unsupported SDP version {value!r}")
            elif kind == "o":
                sd.origin = Origin.parse(value)
            elif kind == "s":
                sd.session_name = value
            elif kind == "c":
                sd.connection = Connection.parse(value)
            elif kind == "t":
                start, _, stop = value.partition(" ")
                try:
                    sd.times.append((int(start), int(stop)))
                except ValueError:
                    raise SdpError(400, f"bad t= line {value!r}") from None
            elif kind == "a":
                sd.attributes.append(_parse_attr(value))
            else:
                sd.other.append((kind, value))
        return sd

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or '-'}"]
        out += [f"{k}={v}" for k, v in self.other if k in _SESSION_ORDER]
        if self.connection:
            out.append(f"c={self.connection}")
        out += [f"b={v}" for k, v in self.other if k == "b"]
        out += [f"t={a} {b}" for a, b in self.times or [(0, 0)]]
        out += [f"{k}={v}" for k, v in self.other if k in "rzk"]
        out += [_attr_line(a) for a in self.attributes]
        for m in self.media:
            out += m.lines()
        return out

    def __str__(self) -> str:
        return "\r\n".join(self.lines()) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode()

    def attr(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key.lower() == name:
                return value if value is not None else ""
        return None

    def direction(self, media: MediaDescription) -> str:
        """A media section's direction, falling back to the session level (§6)."""
        return media.direction(
            next((k.lower() for k, _ in self.attributes if k.lower() in DIRECTIONS),
                 "sendrecv"))

    def connection_for(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection


# ------------------------------------------------------------------ offer/answer


@dataclass(frozen=True)
class CodecChoice:
    payload_type: int
    name: str  # allow= name: ulaw, alaw, g722
    encoding: str  # PCMU, PCMA, G722
    clock_rate: int  # RTP clock
    ptime: int  # ms per packet
    sample_rate: int


@dataclass(frozen=True)
class Negotiated:
    """What the media layer needs after offer/answer.

    ``direction`` is ours (``sendonly``: we send, they don't), after old-style
    hold (``c=0.0.0.0``) is taken into account; ``remote_hold`` tells that the
    far end put us on hold.
    """

    codec: CodecChoice
    dtmf_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str
    remote_hold: bool
    media_index: int = 0

    @property
    def remote_rtcp_port(self) -> int:
        return self.remote_port + 1


@dataclass(frozen=True)
class Answer(Negotiated):
    sdp: SessionDescription = field(default_factory=SessionDescription, repr=False)


def _known_codec(rtpmap: RtpMap) -> type[Codec] | None:
    try:
        cls = codec_class(rtpmap.encoding)
    except CodecError:
        return None
    if cls.payload_type is None or cls.clock_rate != rtpmap.clock_rate:
        return None
    return cls if rtpmap.channels == 1 else None


def _allowed_classes(allowed: list[str]) -> list[type[Codec]]:
    out = []
    for name in allowed:
        try:
            cls = codec_class(name)
        except CodecError:
            raise SdpError(488, f"unknown codec {name!r} in allow list") from None
        if cls.payload_type is not None and cls not in out:
            out.append(cls)
    return out


def _choice(cls: type[Codec], pt: int, ptime: int) -> CodecChoice:
    return CodecChoice(pt, cls.name, cls.encoding, cls.clock_rate, ptime,
                       cls.sample_rate)


def _telephone_event(m: MediaDescription, clock_rate: int) -> int | None:
    for r in m.rtpmaps.values():
        if r.encoding.lower() == "telephone-event" and r.clock_rate == clock_rate:
            return r.payload_type
    return None


def _combine(local: str, remote_view: str) -> str:
    """Our direction given what we want and what the peer's SDP lets us do.

    ``remote_view`` is the peer's direction seen from our side (reversed)."""
    send = local in ("sendrecv", "sendonly") and remote_view in ("sendrecv", "sendonly")
    recv = local in ("sendrecv", "recvonly") and remote_view in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, recv)]


def _view(remote_direction: str, hold_address: bool) -> str:
    """The peer's direction seen from our side; an old-style hold address
    (c=0.0.0.0, RFC 3264 §8.4) means we must not send to it."""
    view = _REVERSE[remote_direction]
    if hold_address:
        view = {"sendrecv": "recvonly", "sendonly": "inactive"}.get(view, view)
    return view


def _remote(sd: SessionDescription, m: MediaDescription) -> tuple[str, bool]:
    conn = sd.connection_for(m)
    if conn is None:
        raise SdpError(400, "no c= line for the audio stream")
    return conn.host, conn.host in _HOLD_ADDRESSES


def _session(local_ip: str, session_id: int | str | None, version: int,
             username: str, session_name: str) -> SessionDescription:
    sid = str(session_id if session_id is not None else random.getrandbits(31) + 1)  # RFC 4566: unique, not secret
    conn = Connection.for_ip(local_ip)
    return SessionDescription(
        origin=Origin(username, sid, version, "IN", conn.addrtype, local_ip),
        session_name=session_name, connection=conn)


def _audio_media(port: int, codecs: list[tuple[int, type[Codec]]], dtmf_pt: int | None,
                 ptime: int, direction: str, proto: str = "RTP/AVP") -> MediaDescription:
    m = MediaDescription("audio", port, proto, [str(pt) for pt, _ in codecs])
    for pt, cls in codecs:
        m.attributes.append(("rtpmap", f"{pt} {cls.encoding}/{cls.clock_rate}"))
    if dtmf_pt is not None:
        m.formats.append(str(dtmf_pt))
        m.attributes += [("rtpmap", f"{dtmf_pt} telephone-event/8000"),
                         ("fmtp", f"{dtmf_pt} 0-16")]
    m.attributes += [("ptime", str(ptime)), (direction, None)]
    return m


def make_offer(local_ip: str, port: int, codecs: list[str], dtmf: bool = True,
               direction: str = "sendrecv", session_id: int | str | None = None,
               version: int = 0, ptime: int = DEFAULT_PTIME,
               dtmf_pt: int = TELEPHONE_EVENT_PT, username: str = "-",
               session_name: str = "hookflash") -> SessionDescription:
    """An offer with one audio stream; ``codecs`` are allow= names in preference order."""
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    classes = _allowed_classes(codecs)
    if not classes:
        raise SdpError(488, "no codec to offer")
    sd = _session(local_ip, session_id, version, username, session_name)
    sd.media.append(_audio_media(port, [(pt, c) for c in classes
                                        if (pt := c.payload_type) is not None],
                                 dtmf_pt if dtmf else None, ptime, direction))
    return sd


def negotiate(offer: SessionDescription, allowed: list[str], local_ip: str, port: int,
              session_id: int | str | None = None, version: int = 0, dtmf: bool = True,
              direction: str = "sendrecv", ptime: int | None = None,
              username: str = "-", session_name: str = "hookflash") -> Answer:
    """Answer ``offer`` (RFC 3264 §6): accept the first usable audio stream with the
    first codec of ``allowed`` it offers, reject every other stream with port 0."""
    classes = _allowed_classes(allowed)
    answer = _session(local_ip, session_id, version, username, session_name)
    result: Answer | None = None
    for index, m in enumerate(offer.media):
        accepted = None
        if result is None and m.media == "audio" and m.port and m.proto in _RTP_PROTOS:
            accepted = _match(m, classes)
        if accepted is None:  # §6: rejected streams keep their formats, port 0
            answer.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats)))
            continue
        pt, cls = accepted
        address, hold_addr = _remote(offer, m)
        remote_dir = offer.direction(m)
        ours = _combine(direction, _view(remote_dir, hold_addr))
        use_ptime = m.ptime or ptime or DEFAULT_PTIME
        dtmf_pt = _telephone_event(m, cls.clock_rate) if dtmf else None
        answer.media.append(_audio_media(port, [(pt, cls)], dtmf_pt, use_ptime, ours,
                                         m.proto))
        result = Answer(_choice(cls, pt, use_ptime), dtmf_pt, address, m.port, ours,
                        hold_addr or remote_dir in ("sendonly", "inactive"), index)
    if result is None:
        raise SdpError(488, "no acceptable audio stream or codec")
    return replace(result, sdp=answer)


def _match(m: MediaDescription, classes: list[type[Codec]]) -> tuple[int, type[Codec]] | None:
    offered = [(r.payload_type, _known_codec(r)) for r in m.payload_map()]
    for cls in classes:
        for pt, known in offered:
            if known is cls:
                return pt, cls
    return None


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Read the answer to our offer (RFC 3264 §7): the answerer's first format that
    we offered is the one we send."""
    if len(answer.media) != len(offer.media):
        raise SdpError(488, "answer has a different number of m= lines")
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media)):
        if ours.media != "audio" or not theirs.port or not ours.port:
            continue
        offered = [(r, _known_codec(r)) for r in ours.payload_map()]
        for r in theirs.payload_map():
            cls = _known_codec(r)
            if cls is not None and any(k is cls for _, k in offered):
                address, hold_addr = _remote(answer, theirs)
                their_dir = answer.direction(theirs)
                mine = _combine(offer.direction(ours), _view(their_dir, hold_addr))
                ptime = theirs.ptime or ours.ptime or DEFAULT_PTIME
                dtmf_pt = (_telephone_event(theirs, cls.clock_rate)
                           if _telephone_event(ours, cls.clock_rate) is not None else None)
                return Negotiated(_choice(cls, r.payload_type, ptime), dtmf_pt, address,
                                  theirs.port, mine,
                                  hold_addr or their_dir in ("sendonly", "inactive"), index)
        raise SdpError(488, "answer chose no codec we offered")
    raise SdpError(488, "answer rejected the audio stream")


class SdpSession:
    """Our side of one SDP session: keeps the o= id and bumps the version only
    when the body we send changes (RFC 3264 §8, §5 ¶ on o= version)."""

    def __init__(self, local_ip: str, port: int, session_id: int | str | None = None,
                 username: str = "-", session_name: str = "hookflash") -> None:
        self.local_ip = local_ip
        self.port = port
        self.session_id = str(session_id if session_id is not None
                              else random.getrandbits(31) + 1)  # RFC 4566: unique, not secret
        self.username = username
        self.session_name = session_name
        self.version = 0
        self._last: list[str] | None = None

    def _stamp(self, sd: SessionDescription) -> SessionDescription:
        body = [ln for ln in sd.lines() if not ln.startswith("o=")]
        if self._last is not None and body != self._last:
            self.version += 1
        self._last = body
        sd.origin.version = self.version
        return sd

    def offer(self, codecs: list[str], direction: str = "sendrecv",
              dtmf: bool = True, media: tuple[str, int] | None = None) -> SessionDescription:
        """Our offer; ``media`` points the stream at another address and port than
        ours (direct media: the far end sends its RTP straight to the other phone)."""
        sd = make_offer(self.local_ip, media[1] if media else self.port, codecs, dtmf,
                        direction, self.session_id, self.version,
                        username=self.username, session_name=self.session_name)
        if media is not None:
            sd.connection = Connection.for_ip(media[0])
        return self._stamp(sd)

    def answer(self, offer: SessionDescription, allowed: list[str],
               direction: str = "sendrecv", dtmf: bool = True) -> Answer:
        ans = negotiate(offer, allowed, self.local_ip, self.port, self.session_id,
                        self.version, dtmf, direction, username=self.username,
                        session_name=self.session_name)
        self._stamp(ans.sdp)
        return ans
