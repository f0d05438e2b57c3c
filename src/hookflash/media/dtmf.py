"""RFC 4733 telephone-event: DTMF digits carried in RTP.

* ``TelephoneEvent``: the 4-byte payload (§2.3): event, E bit, volume, duration.
* ``DtmfSender``: the packets for one digit (§2.5.1): one timestamp for the
  whole event, marker on the first packet, the duration growing every 20 ms,
  and the final (E bit) packet sent three times.
* ``DtmfReceiver``: incoming event packets (lost, duplicated, reordered, end
  repeated) in, ``DtmfBegin``/``DtmfEnd`` out, exactly one of each per event.
  Like Asterisk, the digit is reported when it starts and its duration when it
  ends.  Events are told apart by their RTP timestamp (§2.5.2.1).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .rtp import RtpPacket

__all__ = [
    "DIGITS",
    "DtmfBegin",
    "DtmfEnd",
    "DtmfError",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "event_code",
    "event_digit",
]

DIGITS = "0123456789*#ABCD"
FLASH = 16  # hook flash, reported as the digit "!"  (RFC 4733 §3.2)
_EVENT = struct.Struct("!BBH")


class DtmfError(ValueError):
    """A malformed telephone-event payload or an unknown digit."""


def event_code(digit: str) -> int:
    """'0'-'9', '*', '#', 'A'-'D' -> 0-15; '!' (flash) -> 16."""
    if digit == "!":
        return FLASH
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return code


def event_digit(code: int) -> str:
    if code == FLASH:
        return "!"
    if 0 <= code < 16:
        return DIGITS[code]
    raise DtmfError(f"telephone-event {code} is not a DTMF event")


@dataclass(frozen=True)
class TelephoneEvent:
    """RFC 4733 §2.3 payload.  ``volume`` is -dBm0 (0-63); ``duration`` in clock units."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise DtmfError(f"telephone-event payload too short: {len(data)} bytes")
        event, flags, duration = _EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                           self.duration & 0xFFFF)

    @property
    def digit(self) -> str:
        return event_digit(self.event)


@dataclass(frozen=True)
class DtmfPacket:
    """One packet to send ``at_ms`` milliseconds after the digit started."""

    at_ms: int
    packet: RtpPacket


class DtmfSender:
    """Builds the RTP packets of digits; the caller owns sequence numbers and pacing.

    ``packets(digit, duration_ms, seq, timestamp)`` returns DtmfPackets whose
    sequence numbers start at ``seq``; ``next_seq`` tells the caller where the
    audio stream resumes.
    """

    END_REPEATS = 3  # §2.5.1.4

    def __init__(self, payload_type: int, ssrc: int, clock_rate: int = 8000,
                 volume: int = 10, interval_ms: int = 20) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.volume = volume
        self.interval_ms = interval_ms
        self.next_seq = 0

    def packets(self, digit: str, duration_ms: int, seq: int,
                timestamp: int) -> list[DtmfPacket]:
        return list(self.iter_packets(digit, duration_ms, seq, timestamp))

    def iter_packets(self, digit: str, duration_ms: int, seq: int,
                     timestamp: int) -> Iterator[DtmfPacket]:
        code = event_code(digit)
        step = self.clock_rate * self.interval_ms // 1000
        # one event spans at most 0xFFFF clock units (§2.5.1.3 segments are left out)
        total = min(max(self.clock_rate * duration_ms // 1000, step), 0xFFFF)
        count = -(-total // step)
        for i in range(count + self.END_REPEATS - 1):
            last = i >= count - 1
            ev = TelephoneEvent(code, last, self.volume, total if last else step * (i + 1))
            pkt = RtpPacket(self.payload_type, (seq + i) & 0xFFFF, timestamp, self.ssrc,
                            bytes(ev), marker=(i == 0))
            self.next_seq = (seq + i + 1) & 0xFFFF
            yield DtmfPacket(min(i, count - 1) * self.interval_ms, pkt)


@dataclass(frozen=True)
class DtmfBegin:
    digit: str
    timestamp: int


@dataclass(frozen=True)
class DtmfEnd:
    digit: str
    timestamp: int
    duration: int  # clock units
    duration_ms: int


DtmfEvent = DtmfBegin | DtmfEnd


def _ts_before(a: int, b: int) -> bool:
    """RTP timestamp a is earlier than b (modulo 2**32)."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


class DtmfReceiver:
    """Turns telephone-event packets into one DtmfBegin and one DtmfEnd per event.

    ``feed(timestamp, payload)`` returns the events that packet causes.  A packet
    of an event that already ended, or older than the current one, is ignored.
    A new event ending an unfinished one ends it with its last known duration;
    ``flush()`` does the same at hang-up or after a timeout the caller runs.
    """

    def __init__(self, clock_rate: int = 8000, memory: int = 32) -> None:
        self.clock_rate = clock_rate
        self._current: tuple[int, int, int] | None = None  # (ts, code, duration)
        self._ended: deque[int] = deque(maxlen=memory)
        self._latest: int | None = None

    def feed(self, timestamp: int, payload: bytes) -> list[DtmfEvent]:
        ev = TelephoneEvent.parse(payload)
        if ev.event > FLASH or timestamp in self._ended:
            return []
        out: list[DtmfEvent] = []
        cur = self._current
        if cur is None or cur[0] != timestamp:
            if self._latest is not None and _ts_before(timestamp, self._latest):
                return []  # a straggler from an event we already moved past
            if cur is not None:
                out.append(self._end(cur))
            cur = (timestamp, ev.event, ev.duration)
            self._latest = timestamp
            out.append(DtmfBegin(event_digit(ev.event), timestamp))
        else:
            cur = (timestamp, cur[1], max(cur[2], ev.duration))
        self._current = cur
        if ev.end:
            out.append(self._end(cur))
        return out

    def feed_packet(self, packet: RtpPacket) -> list[DtmfEvent]:
        return self.feed(packet.timestamp, packet.payload)

    def flush(self) -> list[DtmfEvent]:
        """End the event in progress, if any (its end packets never came)."""
        return [self._end(self._current)] if self._current is not None else []

    @property
    def active(self) -> str | None:
        """The digit currently held down, if any."""
        return event_digit(self._current[1]) if self._current else None

    def _end(self, cur: tuple[int, int, int]) -> DtmfEnd:
        ts, code, duration = cur
        self._ended.append(ts)
        self._current = None
        return DtmfEnd(event_digit(code), ts, duration,
                       duration * 1000 // self.clock_rate)
