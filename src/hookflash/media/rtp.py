"""RTP and RTCP wire formats and receiver statistics (RFC 3550).

Sans-IO: bytes in, dataclasses out and back.  Two layers:

* ``RtpPacket`` / RTCP dataclasses with ``parse()`` and ``__bytes__`` for code
  that needs every field (§5.1, §6.4);
* ``rtp_header()`` and ``rewrite()``, the per-packet fast path of a relay, which
  read or patch the fixed 12-byte header with one ``struct`` call.

``RtpReceiverStats`` keeps the per-source counters of appendix A.1/A.3 and the
interarrival jitter of A.8; arrival times are handed in, never read from a clock.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "ReportBlock",
    "RtcpBye",
    "RtcpPacket",
    "RtcpReceiverReport",
    "RtcpSdes",
    "RtcpSenderReport",
    "RtpError",
    "RtpPacket",
    "RtpReceiverStats",
    "SdesChunk",
    "build_rtcp",
    "is_rtcp",
    "parse_rtcp",
    "rewrite",
    "rtp_header",
]

RTP_VERSION = 2
_FIXED = struct.Struct("!BBHII")
_unpack_fixed = _FIXED.unpack_from
_pack_seq_ts_ssrc = struct.Struct("!HII").pack
_EXT = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP/RTCP packet (the peer broke the rules)."""


# --------------------------------------------------------------------------- RTP


@dataclass
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1)."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None  # §5.3.1; None = no extension
    extension: bytes = b""  # extension body, a multiple of 4 bytes
    padding_size: int = 0  # total padding octets incl. the count octet

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise RtpError(f"RTP packet too short: {len(data)} bytes")
        b0, b1, seq, ts, ssrc = _unpack_fixed(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}, expected 2")
        pos = 12
        cc = b0 & 0x0F
        if len(data) < pos + 4 * cc:
            raise RtpError("RTP packet truncated in the CSRC list")
        csrc = list(struct.unpack_from(f"!{cc}I", data, pos))
        pos += 4 * cc
        profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise RtpError("RTP packet truncated in the extension header")
            profile, words = _EXT.unpack_from(data, pos)
            pos += 4
            ext = bytes(data[pos : pos + 4 * words])
            if len(ext) != 4 * words:
                raise RtpError("RTP packet truncated in the extension")
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > end:
                raise RtpError(f"bad RTP padding count {padding}")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension_profile=profile,
            extension=ext,
            padding_size=padding,
        )

    def __bytes__(self) -> bytes:
        if len(self.extension) % 4:
            raise RtpError("RTP header extension must be a multiple of 4 bytes")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [_FIXED.pack(b0, b1, self.sequence_number & 0xFFFF,
                             self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXT.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)


def rtp_header(data: bytes) -> tuple[int, int, int, int, bool, int]:
    """Fast path: ``(pt, seq, ts, ssrc, marker, header_len)`` of an RTP datagram.

    ``header_len`` covers CSRCs and the header extension, so the payload is
    ``data[header_len:]`` (less any padding, which the relay never needs).
    Raises ``struct.error`` on datagrams shorter than 12 bytes.
    """
    b0, b1, seq, ts, ssrc = _unpack_fixed(data)
    hlen = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        hlen += 4 + (((data[hlen + 2] << 8) | data[hlen + 3]) << 2)
    return b1 & 0x7F, seq, ts, ssrc, b1 >= 0x80, hlen


def rewrite(data: bytes, seq: int, ts: int, ssrc: int) -> bytes:
    """Relay fast path: the same packet with sequence, timestamp and SSRC replaced."""
    return data[:2] + _pack_seq_ts_ssrc(seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + data[12:]


# -------------------------------------------------------------------------- RTCP

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP = 200, 201, 202, 203, 204
SDES_END, SDES_CNAME = 0, 1
_REPORT = struct.Struct("!IIIIII")
_COMMON = struct.Struct("!BBH")


def _rtcp_header(count: int, packet_type: int, body_len: int) -> bytes:
    if body_len % 4:
        raise RtpError("RTCP packet length must be a multiple of 4")
    return _COMMON.pack((RTP_VERSION << 6) | count, packet_type, body_len // 4)


@dataclass
class ReportBlock:
    """A reception report block (§6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost/expected * 256
    packets_lost: int  # cumulative, 24-bit signed
    highest_sequence: int  # extended highest sequence number received
    jitter: int
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int = 0  # delay since last SR, 1/65536 s

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> ReportBlock:
        ssrc, lost_word, high, jitter, lsr, dlsr = _REPORT.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, high, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return _REPORT.pack(self.ssrc, (self.fraction_lost & 0xFF) << 24 | lost,
                            self.highest_sequence & 0xFFFFFFFF, self.jitter,
                            self.lsr, self.dlsr)


def _parse_reports(body: bytes, pos: int, count: int) -> list[ReportBlock]:
    if len(body) < pos + 24 * count:
        raise RtpError("RTCP report blocks truncated")
    return [ReportBlock.parse(body, pos + 24 * i) for i in range(count)]


@dataclass
class RtcpSenderReport:
    """SR (§6.4.1); ``ntp_timestamp`` is the full 64-bit value."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpSenderReport:
        if len(body) < 24:
            raise RtpError("RTCP SR too short")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = _REPORT.unpack_from(body)
        return cls(ssrc, ntp_hi << 32 | ntp_lo, rtp_ts, packets, octets,
                   _parse_reports(body, 24, count))

    def __bytes__(self) -> bytes:
        body = _REPORT.pack(self.ssrc, self.ntp_timestamp >> 32,
                            self.ntp_timestamp & 0xFFFFFFFF, self.rtp_timestamp,
                            self.packet_count, self.octet_count)
        body += b"".join(bytes(r) for r in self.reports)
        return _rtcp_header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass
class RtcpReceiverReport:
    """RR (§6.4.2)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpReceiverReport:
        if len(body) < 4:
            raise RtpError("RTCP RR too short")
        return cls(struct.unpack_from("!I", body)[0], _parse_reports(body, 4, count))

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _rtcp_header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass
class SdesChunk:
    """One SSRC's items: ``(type, value)`` pairs, e.g. ``(1, b"user@host")`` for CNAME."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        out = bytearray(struct.pack("!I", self.ssrc))
        for kind, value in self.items:
            out += bytes((kind, len(value))) + value
        out.append(SDES_END)
        out += bytes(-len(out) % 4)  # null octets up to the 32-bit boundary (§6.5)
        return bytes(out)


@dataclass
class RtcpSdes:
    """SDES (§6.5)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpSdes:
        chunks, pos = [], 0
        for _ in range(count):
            if len(body) < pos + 4:
                raise RtpError("RTCP SDES chunk truncated")
            chunk = SdesChunk(struct.unpack_from("!I", body, pos)[0])
            pos += 4
            while True:
                if pos >= len(body):
                    raise RtpError("RTCP SDES items not terminated")
                kind = body[pos]
                if kind == SDES_END:
                    pos = (pos + 4) & ~3  # skip the end octet and the padding
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    raise RtpError("RTCP SDES item truncated")
                length = body[pos + 1]
                chunk.items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        body = b"".join(bytes(c) for c in self.chunks)
        return _rtcp_header(len(self.chunks), RTCP_SDES, len(body)) + body


@dataclass
class RtcpBye:
    """BYE (§6.6)."""

    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpBye:
        if len(body) < 4 * count:
            raise RtpError("RTCP BYE truncated")
        sources = list(struct.unpack_from(f"!{count}I", body))
        reason = b""
        pos = 4 * count
        if pos < len(body):
            length = body[pos]
            reason = bytes(body[pos + 1 : pos + 1 + length])
            if len(reason) != length:
                raise RtpError("RTCP BYE reason truncated")
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            tail = bytes([len(self.reason)]) + self.reason
            body += tail + bytes(-len(tail) % 4)
        return _rtcp_header(len(self.sources), RTCP_BYE, len(body)) + body


@dataclass
class RtcpUnknown:
    """Any other RTCP packet (APP, XR, feedback...), kept opaque."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        return _rtcp_header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket: TypeAlias = (RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye
                          | RtcpUnknown)
_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    RTCP_SR: RtcpSenderReport.parse_body, RTCP_RR: RtcpReceiverReport.parse_body,
    RTCP_SDES: RtcpSdes.parse_body, RTCP_BYE: RtcpBye.parse_body}


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: RTCP packet types 192-223 in the second octet."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (§6.1) into its parts."""
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        if len(data) < pos + 4:
            raise RtpError("RTCP header truncated")
        b0, packet_type, words = _COMMON.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {b0 >> 6}, expected 2")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtpError("RTCP packet longer than the datagram")
        body = bytes(data[pos + 4 : end])
        if b0 & 0x20:  # padding, only legal on the last packet
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtpError("bad RTCP padding")
            body = body[: -body[-1]]
        count = b0 & 0x1F
        parser = _PARSERS.get(packet_type)
        packets.append(parser(count, body) if parser
                       else RtcpUnknown(packet_type, count, body))
        pos = end
    return packets


def build_rtcp(packets: list[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound RTCP datagram."""
    return b"".join(bytes(p) for p in packets)


# ------------------------------------------------------------ receiver statistics

MAX_DROPOUT = 3000
MAX_MISORDER = 100
RTP_SEQ_MOD = 1 << 16


class RtpReceiverStats:
    """Per-source receive statistics: RFC 3550 A.1 (sequence validation),
    A.3 (loss) and A.8 (interarrival jitter).

    ``update(seq, ts, arrival)`` with ``arrival`` in seconds on any monotonic
    scale; returns False for packets A.1 rejects (probation, big jumps).
    """

    def __init__(self, clock_rate: int, min_sequential: int = 2) -> None:
        self.clock_rate = clock_rate
        self.min_sequential = min_sequential
        self.started = False
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = min_sequential
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0

    # A.1
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        if not self.started:
            self.started = True
            self._init_seq(seq)
            self.probation = self.min_sequential
            if not self.probation:
                self.received = 1
                return True
            self.max_seq = (seq - 1) & 0xFFFF
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # the source restarted: resync
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted below
        self.received += 1
        return True

    def update(self, seq: int, ts: int, arrival: float) -> bool:
        if not self._update_seq(seq):
            return False
        transit = arrival * self.clock_rate - ts  # A.8, in timestamp units
        if self._transit is not None:
            d = abs(transit - self._transit)
            self._jitter += (d - self._jitter) / 16.0
        self._transit = transit
        return True

    # A.3
    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def cumulative_lost(self) -> int:
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units, as sent in report blocks."""
        return int(self._jitter)

    @property
    def jitter_seconds(self) -> float:
        return self._jitter / self.clock_rate

    def fraction_lost(self) -> int:
        """Fraction lost since the previous call (8-bit fixed point); advances the interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """A report block for this source; starts a new fraction-lost interval."""
        return ReportBlock(ssrc, self.fraction_lost(), self.cumulative_lost,
                           self.extended_max, self.jitter, lsr, dlsr)
