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
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

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
_DIRECTION_SET = frozenset(DIRECTIONS)
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
        if cls is RtpMap:  # the same few rtpmap lines come in every call
            known = _RTPMAP_CACHE.get(value)
            if known is not None:
                return known
        try:
            pt, rest = value.split(None, 1)
            parts = rest.strip().split("/")
            parsed = cls(int(pt), parts[0], int(parts[1]),
                         int(parts[2]) if len(parts) > 2 else 1)
        except (ValueError, IndexError):
            raise SdpError(400, f"bad a=rtpmap {value!r}") from None
        if cls is RtpMap:
            if len(_RTPMAP_CACHE) >= _RTPMAP_CACHE_SIZE:
                _RTPMAP_CACHE.clear()
            _RTPMAP_CACHE[value] = parsed
        return parsed

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"

    def same_codec(self, other: RtpMap) -> bool:
        return (self.encoding.lower() == other.encoding.lower()
                and self.clock_rate == other.clock_rate and self.channels == other.channels)


_RTPMAP_CACHE: dict[str, RtpMap] = {}  # a=rtpmap value -> its (immutable) RtpMap
_RTPMAP_CACHE_SIZE = 512  # bounded: values come from the network
# formats without an a=rtpmap that RFC 3551 defines (static payload types)
_STATIC_MAPS = {pt.value: RtpMap(pt.value, pt.name, 8000) for pt in PayloadType}

Attribute = tuple[str, "str | None"]


def _attr_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


def _direction_of(attributes: list[Attribute]) -> str | None:
    """The first direction attribute (§6: sendrecv, sendonly, recvonly, inactive)."""
    for key, _ in attributes:
        key = key.lower()
        if key in _DIRECTION_SET:
            return key
    return None


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
        other = self.other
        if other:
            out += [f"{k}={v}" for k, v in other if k == "i"]
        if self.connection:
            out.append(f"c={self.connection}")
        if other:
            out += [f"{k}={v}" for k, v in other if k in "bk"]
        out += _attr_lines(self.attributes)
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
        maps: dict[int, RtpMap] = {}
        for key, value in self.attributes:
            if key == "rtpmap" or key.lower() == "rtpmap":
                rtpmap = RtpMap.parse(value or "")
                maps[rtpmap.payload_type] = rtpmap
        return maps

    def fmtp(self, pt: int) -> str | None:
        for v in self.attrs("fmtp"):
            key, _, params = v.partition(" ")
            if key == str(pt):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        return _ptime(self.attr("ptime"))

    def direction(self, default: str = "sendrecv") -> str:
        return _direction_of(self.attributes) or default

    def payload_map(self, rtpmaps: dict[int, RtpMap] | None = None) -> list[RtpMap]:
        """The formats in order, static ones filled in; unknown dynamic ones left out.
        ``rtpmaps`` is ``self.rtpmaps`` when the caller has it already."""
        maps = self.rtpmaps if rtpmaps is None else rtpmaps
        out = []
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            known = maps.get(pt) or _STATIC_MAPS.get(pt)
            if known is not None:
                out.append(known)
        return out


def _ptime(value: str | None) -> int | None:
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


def _media_facts(m: MediaDescription) -> tuple[dict[int, RtpMap], int | None, str | None]:
    """``m.rtpmaps``, ``m.ptime`` and ``m.direction()`` (None when it has no direction
    attribute) in one pass over its a= lines."""
    maps: dict[int, RtpMap] = {}
    ptime: str | None = None
    direction: str | None = None
    for key, value in m.attributes:
        key = key.lower()
        if key == "rtpmap":
            rtpmap = RtpMap.parse(value or "")
            maps[rtpmap.payload_type] = rtpmap
        elif key == "ptime":
            if ptime is None:
                ptime = value if value is not None else ""
        elif direction is None and key in _DIRECTION_SET:
            direction = key
    return maps, _ptime(ptime), direction


_SESSION_ORDER = "iuep"  # lines between s= and c= (§5)
_NO_TIMES = [(0, 0)]  # t=0 0: an unbounded session; never mutated


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
        # the first non-blank line; what follows checks every line for <type>=<value>
        if not text.lstrip().startswith("v="):
            raise SdpError(400, "SDP must start with v=")
        origin: Origin | None = None
        session_name = "-"
        connection: Connection | None = None
        times: list[tuple[int, int]] = []
        attributes: list[Attribute] = []
        media_list: list[MediaDescription] = []
        other: list[tuple[str, str]] = []
        media: MediaDescription | None = None
        target = attributes  # where a= lines go: the session's, then each m= section's
        for line in text.split("\n"):  # CRLF or LF: strip() drops the CR
            line = line.strip()
            if not line:
                continue
            if line[1:2] != "=" or line[0] == "=":  # the type is one character (§5)
                raise SdpError(400, f"bad SDP line {line!r}")
            kind = line[0]
            value = line[2:]
            if kind == "a":
                name, sep, rest = value.partition(":")
                target.append((name, rest if sep else None))
            elif kind == "m":
                media = MediaDescription.parse_m(value)
                media_list.append(media)
                target = media.attributes
            elif media is not None:
                if kind == "c":
                    media.connection = Connection.parse(value)
                else:
                    media.other.append((kind, value))
            elif kind == "o":
                origin = Origin.parse(value)
            elif kind == "c":
                connection = Connection.parse(value)
            elif kind == "t":
                start, _, stop = value.partition(" ")
                try:
                    times.append((int(start), int(stop)))
                except ValueError:
                    raise SdpError(400, f"bad t= line {value!r}") from None
            elif kind == "s":
                session_name = value
            elif kind == "v":
                if value.strip() != "0":
                    raise SdpError(400, f"unsupported SDP version {value!r}")
            else:
                other.append((kind, value))
        return cls(origin if origin is not None else Origin(), session_name, connection, times,
                   attributes, media_list, other)

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or '-'}"]
        other = self.other
        if other:
            out += [f"{k}={v}" for k, v in other if k in _SESSION_ORDER]
        if self.connection:
            out.append(f"c={self.connection}")
        if other:
            out += [f"b={v}" for k, v in other if k == "b"]
        out += [f"t={a} {b}" for a, b in self.times or _NO_TIMES]
        if other:
            out += [f"{k}={v}" for k, v in other if k in "rzk"]
        if self.attributes:
            out += _attr_lines(self.attributes)
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
        return (_direction_of(media.attributes) or _direction_of(self.attributes)
                or "sendrecv")

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
    return _codec_for(rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels)


@lru_cache(maxsize=256, typed=True)
def _codec_for(encoding: str, clock_rate: int, channels: int) -> type[Codec] | None:
    """Our codec for an rtpmap's encoding/clock/channels (the codec registry is fixed,
    so the answer is remembered)."""
    try:
        cls = codec_class(encoding)
    except CodecError:
        return None
    if cls.payload_type is None or cls.clock_rate != clock_rate:
        return None
    return cls if channels == 1 else None


def _allowed_classes(allowed: list[str]) -> tuple[type[Codec], ...]:
    return _allowed_tuple(tuple(allowed))


@lru_cache(maxsize=64)
def _allowed_tuple(allowed: tuple[str, ...]) -> tuple[type[Codec], ...]:
    out: list[type[Codec]] = []
    for name in allowed:
        try:
            cls = codec_class(name)
        except CodecError:
            raise SdpError(488, f"unknown codec {name!r} in allow list") from None
        if cls.payload_type is not None and cls not in out:
            out.append(cls)
    return tuple(out)


@lru_cache(maxsize=256, typed=True)
def _choice(cls: type[Codec], pt: int, ptime: int) -> CodecChoice:
    return CodecChoice(pt, cls.name, cls.encoding, cls.clock_rate, ptime,
                       cls.sample_rate)


def _telephone_event(rtpmaps: dict[int, RtpMap], clock_rate: int) -> int | None:
    for r in rtpmaps.values():
        if r.clock_rate == clock_rate and r.encoding.lower() == "telephone-event":
            return r.payload_type
    return None


_SEND_RECV = {(True, True): "sendrecv", (True, False): "sendonly",
              (False, True): "recvonly", (False, False): "inactive"}
_HELD_VIEW = {"sendrecv": "recvonly", "sendonly": "inactive"}


def _combine(local: str, remote_view: str) -> str:
    """Our direction given what we want and what the peer's SDP lets us do.

    ``remote_view`` is the peer's direction seen from our side (reversed)."""
    combined = _COMBINED.get((local, remote_view))
    if combined is not None:
        return combined
    send = local in ("sendrecv", "sendonly") and remote_view in ("sendrecv", "sendonly")
    recv = local in ("sendrecv", "recvonly") and remote_view in ("sendrecv", "recvonly")
    return _SEND_RECV[send, recv]


_COMBINED: dict[tuple[str, str], str] = {}  # every (local, remote_view) pair, worked out once
_COMBINED.update({(local, remote): _combine(local, remote)
                  for local in DIRECTIONS for remote in DIRECTIONS})


def _view(remote_direction: str, hold_address: bool) -> str:
    """The peer's direction seen from our side; an old-style hold address
    (c=0.0.0.0, RFC 3264 §8.4) means we must not send to it."""
    view = _REVERSE[remote_direction]
    if hold_address:
        view = _HELD_VIEW.get(view, view)
    return view


def _remote(sd: SessionDescription, m: MediaDescription) -> tuple[str, bool]:
    conn = sd.connection_for(m)
    if conn is None:
        raise SdpError(400, "no c= line for the audio stream")
    host = conn.host
    return host, host in _HOLD_ADDRESSES


def _session(local_ip: str, session_id: int | str | None, version: int,
             username: str, session_name: str) -> SessionDescription:
    sid = str(session_id if session_id is not None else random.getrandbits(31) + 1)  # RFC 4566: unique, not secret
    conn = Connection.for_ip(local_ip)
    return SessionDescription(
        origin=Origin(username, sid, version, "IN", conn.addrtype, local_ip),
        session_name=session_name, connection=conn)


def _audio_media(port: int, codecs: tuple[tuple[int, type[Codec]], ...], dtmf_pt: int | None,
                 ptime: int, direction: str, proto: str = "RTP/AVP") -> MediaDescription:
    formats, attributes = _audio_template(codecs, dtmf_pt, ptime, direction)
    return MediaDescription("audio", port, proto, list(formats), attributes=list(attributes))


@lru_cache(maxsize=128, typed=True)
def _audio_template(codecs: tuple[tuple[int, type[Codec]], ...], dtmf_pt: int | None,
                    ptime: int, direction: str) -> tuple[tuple[str, ...], tuple[Attribute, ...]]:
    """The m= formats and a= lines of our audio stream (a handful of combinations
    recur: made once, copied per call)."""
    formats = [str(pt) for pt, _ in codecs]
    attributes: list[Attribute] = [("rtpmap", f"{pt} {cls.encoding}/{cls.clock_rate}")
                                   for pt, cls in codecs]
    if dtmf_pt is not None:
        formats.append(str(dtmf_pt))
        attributes += [("rtpmap", f"{dtmf_pt} telephone-event/8000"),
                       ("fmtp", f"{dtmf_pt} 0-16")]
    attributes += [("ptime", str(ptime)), (direction, None)]
    return tuple(formats), tuple(attributes)


def make_offer(local_ip: str, port: int, codecs: list[str], dtmf: bool = True,
               direction: str = "sendrecv", session_id: int | str | None = None,
               version: int = 0, ptime: int = DEFAULT_PTIME,
               dtmf_pt: int = TELEPHONE_EVENT_PT, username: str = "-",
               session_name: str = "hookflash") -> SessionDescription:
    """An offer with one audio stream; ``codecs`` are allow= names in preference order."""
    if direction not in _DIRECTION_SET:
        raise ValueError(f"bad direction {direction!r}")
    classes = _allowed_classes(codecs)
    if not classes:
        raise SdpError(488, "no codec to offer")
    sd = _session(local_ip, session_id, version, username, session_name)
    sd.media.append(_audio_media(port, _static_codecs(classes),
                                 dtmf_pt if dtmf else None, ptime, direction))
    return sd


@lru_cache(maxsize=64)
def _static_codecs(classes: tuple[type[Codec], ...]) -> tuple[tuple[int, type[Codec]], ...]:
    return tuple((pt, c) for c in classes if (pt := c.payload_type) is not None)


def negotiate(offer: SessionDescription, allowed: list[str], local_ip: str, port: int,
              session_id: int | str | None = None, version: int = 0, dtmf: bool = True,
              direction: str = "sendrecv", ptime: int | None = None,
              username: str = "-", session_name: str = "hookflash") -> Answer:
    """Answer ``offer`` (RFC 3264 §6): accept the first usable audio stream with the
    first codec of ``allowed`` it offers, reject every other stream with port 0."""
    classes = _allowed_classes(allowed)
    answer = _session(local_ip, session_id, version, username, session_name)
    result: tuple[CodecChoice, int | None, str, int, str, bool, int] | None = None
    for index, m in enumerate(offer.media):
        accepted = None
        rtpmaps: dict[int, RtpMap] = {}
        m_ptime: int | None = None
        m_direction: str | None = None
        if result is None and m.media == "audio" and m.port and m.proto in _RTP_PROTOS:
            rtpmaps, m_ptime, m_direction = _media_facts(m)
            accepted = _match(m.payload_map(rtpmaps), classes)
        if accepted is None:  # §6: rejected streams keep their formats, port 0
            answer.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats)))
            continue
        pt, cls = accepted
        address, hold_addr = _remote(offer, m)
        remote_dir = m_direction or _direction_of(offer.attributes) or "sendrecv"
        ours = _combine(direction, _view(remote_dir, hold_addr))
        use_ptime = m_ptime or ptime or DEFAULT_PTIME
        dtmf_pt = _telephone_event(rtpmaps, cls.clock_rate) if dtmf else None
        answer.media.append(_audio_media(port, ((pt, cls),), dtmf_pt, use_ptime, ours,
                                         m.proto))
        result = (_choice(cls, pt, use_ptime), dtmf_pt, address, m.port, ours,
                  hold_addr or remote_dir in ("sendonly", "inactive"), index)
    if result is None:
        raise SdpError(488, "no acceptable audio stream or codec")
    return Answer(*result, sdp=answer)


def _match(offered: list[RtpMap], classes: tuple[type[Codec], ...]
           ) -> tuple[int, type[Codec]] | None:
    """The first of our ``classes`` among the ``offered`` formats, with its payload type."""
    known = [(r.payload_type, _known_codec(r)) for r in offered]
    for cls in classes:
        for pt, codec in known:
            if codec is cls:
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
        our_maps, our_ptime, our_media_dir = _media_facts(ours)
        offered = [_known_codec(r) for r in ours.payload_map(our_maps)]
        their_maps, their_ptime, their_media_dir = _media_facts(theirs)
        for r in theirs.payload_map(their_maps):
            cls = _known_codec(r)
            if cls is not None and cls in offered:
                address, hold_addr = _remote(answer, theirs)
                their_dir = (their_media_dir or _direction_of(answer.attributes)
                             or "sendrecv")
                our_dir = our_media_dir or _direction_of(offer.attributes) or "sendrecv"
                mine = _combine(our_dir, _view(their_dir, hold_addr))
                ptime = their_ptime or our_ptime or DEFAULT_PTIME
                dtmf_pt = (_telephone_event(their_maps, cls.clock_rate)
                           if _telephone_event(our_maps, cls.clock_rate) is not None else None)
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
        self._lines: list[str] = []  # the last SDP made, rendered, its o= line stamped

    def _stamp(self, sd: SessionDescription) -> SessionDescription:
        lines = sd.lines()
        body = lines[:1] + lines[2:]  # all but o= (always the second line)
        if self._last is not None and body != self._last:
            self.version += 1
        self._last = body
        sd.origin.version = self.version
        lines[1] = f"o={sd.origin}"
        self._lines = lines
        return sd

    @property
    def body(self) -> bytes:
        """The last offer or answer made, as bytes to send: ``str(sdp).encode()`` of it,
        from the rendering the version check made (so valid while that SDP is unchanged)."""
        return ("\r\n".join(self._lines) + "\r\n").encode() if self._lines else b""

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
