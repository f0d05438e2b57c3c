"""RTP sessions: one UDP socket pair per call leg, on the event loop.

Incoming packets are decoded to the engine's 8 kHz signed-linear frames and queued on
the channel, or, when two legs with the same codec are bridged, relayed as they are:
the relay path rewrites sequence number, timestamp, SSRC (and the payload type when the
two legs numbered telephone-event differently) in place and sends, with no decoding and
no task switch, straight from ``datagram_received``. Symmetric RTP: once a packet
arrives, we send to where it came from (``nat=force_rport,comedia`` behaviour), so
phones behind NAT work.

Outgoing audio is sent as written: the writer (an application, the bridge) paces at
20 ms. DTMF goes out as RFC 4733 events (three end packets).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hookflash.media.dtmf import DtmfBegin, DtmfReceiver, DtmfSender
from hookflash.media.rtp import (
    ReportBlock,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    RtpReceiverStats,
    SdesChunk,
    build_rtcp,
    parse_rtcp,
)

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.rtp")

_HDR = struct.Struct("!BBHII")
EVENTS = "0123456789*#ABCD"


class PortAllocator:
    """Even RTP ports from rtp.conf's [rtpstart, rtpend], RTCP on the odd port above."""

    def __init__(self, start: int = 10000, end: int = 20000) -> None:
        self.start = start + (start & 1)
        self.end = end
        self.next = self.start + 2 * random.randrange(max(1, (end - self.start) // 2))

    def candidates(self) -> Iterator[int]:
        """Port pairs to try, from the last one handed out onwards (lazily: the range
        may hold thousands and the first try usually succeeds)."""
        port = self.next
        for _ in range(max(1, (self.end - self.start) // 2)):
            if port + 1 > self.end:
                port = self.start
            yield port
            port += 2

    def advance(self, used: int) -> None:
        self.next = used + 2 if used + 2 < self.end else self.start


class RtpStats:
    """Counters of one leg; receive statistics (loss, jitter) per RFC 3550 A.1/A.8.

    ``receiver`` is made when media starts to flow (``RtpSession._start_rtcp``, which
    runs before the first packet is counted): a call without RTP never needs it."""

    __slots__ = ("packets_in", "packets_out", "bytes_in", "bytes_out", "receiver", "last_sr",
                 "last_sr_time", "remote_report")

    def __init__(self) -> None:
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0
        self.receiver: RtpReceiverStats | None = None
        self.last_sr = 0  # middle 32 bits of the last SR's NTP time we received
        self.last_sr_time = 0.0
        self.remote_report: ReportBlock | None = None  # what the far end says of our stream

    def start_receiving(self) -> RtpReceiverStats:
        if self.receiver is None:
            self.receiver = RtpReceiverStats(8000)
        return self.receiver

    @property
    def lost(self) -> int:
        return self.receiver.cumulative_lost if self.receiver is not None else 0

    @property
    def jitter(self) -> float:
        return self.receiver.jitter if self.receiver is not None else 0


class RtpSession(asyncio.DatagramProtocol):
    """One leg's RTP. ``codec`` is a hookflash.media.codecs codec (encode/decode slin)."""

    def __init__(self, local_ip: str, port: int) -> None:
        self.local_ip = local_ip
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.learned = False
        self.symmetric = True
        self.channel: "Channel | None" = None
        self.codec: Any = None
        self.payload_type = 0
        self.dtmf_pt: int | None = 101
        bits = random.getrandbits(80)  # RFC 3550 §5.1: random SSRC, sequence and timestamp
        self.ssrc = bits & 0xFFFFFFFF
        self.seq = (bits >> 32) & 0xFFFF
        self.ts = bits >> 48
        self.stats = RtpStats()
        self.relay: "RtpSession | None" = None  # native bridge partner
        self._relay_seq_off = 0
        self._relay_ts_off = 0
        self._relay_ready = False
        self._dtmf_rx: DtmfReceiver | None = None  # made by the first telephone-event
        self.hold = False  # the far end asked us not to send (sendonly/inactive offer)
        self.closed = False
        self.rtcp_remote: tuple[str, int] | None = None
        # the RTCP port is bound with the RTP port but read, and reported on, only once
        # media flows (a call that never sends RTP costs no reader and no timer)
        self._rtcp_sock: socket.socket | None = None
        self._rtcp_family: int | None = None  # set by open(): RTCP is ours to bind
        self._rtcp_on = False
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self.rtcp_interval = 5.0
        self.remote_ssrc = 0  # SSRC of the stream we receive (for RTCP report blocks)

    # ------------------------------------------------------------------ setup
    @classmethod
    async def open(cls, local_ip: str, ports: PortAllocator) -> "RtpSession":
        """Bind an even port of the range for RTP; RTCP gets the odd port above it when
        media first flows (the allocator never hands odd ports out). The socket is made
        and bound here (the event loop's own local_addr path would resolve the address
        in a thread pool, which stalls under load) and handed to the loop already bound
        (the loop makes it non-blocking: asyncio's and uvloop's sock= paths both do)."""
        loop = asyncio.get_running_loop()
        last_error: OSError | None = None
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        for port in ports.candidates():
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((local_ip, port))
            except OSError as exc:
                rtp.close()
                last_error = exc
                continue
            # advance before the await: another call's open() may run meanwhile, and would
            # otherwise start at this very port (taken), fail to bind, and push the next one
            # onto a port in use again (about two failed binds per call at 250 calls/s)
            ports.advance(port)
            session = cls(local_ip, port)
            session._rtcp_family = family
            await loop.create_datagram_endpoint(lambda: session, sock=rtp)
            return session
        raise OSError(f"no free RTP port pair in range: {last_error}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def set_remote(self, host: str, port: int) -> None:
        if not self.learned:
            self.remote = (host, port)

    def close(self) -> None:
        self.closed = True
        self.relay = None
        self.channel = None
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.rtcp_transport is not None:
            self.rtcp_transport.close()
            self.rtcp_transport = None
        sock, self._rtcp_sock = self._rtcp_sock, None
        if sock is not None:
            if self._rtcp_on:
                try:
                    asyncio.get_running_loop().remove_reader(sock)
                except RuntimeError:  # no loop any more: nothing is watching it
                    pass
            sock.close()

    # ------------------------------------------------------------------ receiving
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if len(data) < 12 or (data[0] & 0xC0) != 0x80:
            return
        if self.symmetric and (self.remote != addr):
            self.remote = addr
            self.learned = True
        if not self._rtcp_on:
            self._start_rtcp()
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += len(data)
        relay = self.relay
        if relay is not None:
            if (data[1] & 0x7F) == self.dtmf_pt and self.channel is not None and len(data) >= 16:
                # bridge features (Dial's t/T) still see the digits relayed past them
                self._on_event(data[12 + 4 * (data[0] & 0x0F):], int.from_bytes(data[4:8], "big"), self.channel)
            relay._forward(data, self)
            return
        b1 = data[1]
        pt = b1 & 0x7F
        seq = (data[2] << 8) | data[3]
        ts = int.from_bytes(data[4:8], "big")
        stats.receiver.update(seq, ts, time.monotonic())  # type: ignore[union-attr]  # made by _start_rtcp
        self.remote_ssrc = int.from_bytes(data[8:12], "big")
        cc = data[0] & 0x0F
        offset = 12 + 4 * cc
        if data[0] & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * int.from_bytes(data[offset + 2:offset + 4], "big")
        payload = data[offset:]
        if data[0] & 0x20 and payload:
            payload = payload[:-payload[-1]]
        chan = self.channel
        if chan is None:
            return
        if pt == self.dtmf_pt:
            self._on_event(payload, ts, chan)
            return
        if pt != self.payload_type or self.codec is None:
            return
        from hookflash.channels.channel import Frame
        pcm = self.codec.decode(payload)
        chan.queue_frame(Frame("voice", pcm, len(pcm) // 2))

    def _on_event(self, payload: bytes, ts: int, chan: "Channel") -> None:
        """RFC 4733 (media/dtmf.py): one digit per event, reported when it begins;
        lost, repeated and reordered packets are sorted out by the receiver."""
        receiver = self._dtmf_rx
        if receiver is None:
            receiver = self._dtmf_rx = DtmfReceiver()
        for event in receiver.feed(ts, payload):
            if isinstance(event, DtmfBegin):
                chan.queue_dtmf("F" if event.digit == "!" else event.digit)

    # ------------------------------------------------------------------ relaying
    def _forward(self, data: bytes, source: "RtpSession") -> None:
        """Send a packet that arrived on ``source`` out of this session, as our stream."""
        if self.remote is None or self.transport is None or self.hold:
            return
        if not self._rtcp_on:
            self._start_rtcp()
        buf = bytearray(data)
        seq = (buf[2] << 8) | buf[3]
        ts = int.from_bytes(buf[4:8], "big")
        if not self._relay_ready:
            self._relay_seq_off = (self.seq - seq) & 0xFFFF
            self._relay_ts_off = (self.ts - ts) & 0xFFFFFFFF
            self._relay_ready = True
        new_seq = (seq + self._relay_seq_off) & 0xFFFF
        new_ts = (ts + self._relay_ts_off) & 0xFFFFFFFF
        pt = buf[1] & 0x7F
        if pt == source.dtmf_pt and self.dtmf_pt is not None and pt != self.dtmf_pt:
            buf[1] = (buf[1] & 0x80) | self.dtmf_pt
        struct.pack_into("!HII", buf, 2, new_seq, new_ts, self.ssrc)
        self.seq = (new_seq + 1) & 0xFFFF
        self.ts = new_ts
        self.transport.sendto(buf, self.remote)
        st = self.stats
        st.packets_out += 1
        st.bytes_out += len(buf)

    def start_relay(self, other: "RtpSession") -> None:
        self.relay = other
        other._relay_ready = False

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay = None

    # ------------------------------------------------------------------ sending
    def send_payload(self, payload: bytes, samples: int, marker: bool = False, pt: int | None = None) -> None:
        if self.remote is None or self.transport is None or self.closed or self.hold:
            self.ts = (self.ts + samples) & 0xFFFFFFFF
            return
        header = _HDR.pack(0x80, (0x80 if marker else 0) | (self.payload_type if pt is None else pt),
                           self.seq, self.ts, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        if pt is None:
            self.ts = (self.ts + samples) & 0xFFFFFFFF
        packet = header + payload
        if not self._rtcp_on:
            self._start_rtcp()
        self.transport.sendto(packet, self.remote)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(packet)

    def send_slin(self, pcm: bytes) -> None:
        if self.codec is None:
            return
        samples = len(pcm) // 2
        rtp_samples = samples * self.codec.clock_rate // 8000 if hasattr(self.codec, "clock_rate") else samples
        self.send_payload(self.codec.encode(pcm), rtp_samples)

    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """RFC 4733 (media/dtmf.py): packets every 20 ms sharing one timestamp, then the
        end packet three times; audio resumes after the event's duration."""
        if self.dtmf_pt is None or digit.upper() not in EVENTS:
            return
        sender = DtmfSender(self.dtmf_pt, self.ssrc)
        start_ts = self.ts
        loop = asyncio.get_running_loop()
        began = loop.time()
        for item in sender.packets(digit.upper(), max(40, duration_ms), self.seq, start_ts):
            delay = began + item.at_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.remote is not None and self.transport is not None and not self.closed:
                data = bytes(item.packet)
                self.transport.sendto(data, self.remote)
                self.stats.packets_out += 1
                self.stats.bytes_out += len(data)
        self.seq = sender.next_seq & 0xFFFF
        self.ts = (start_ts + max(40, duration_ms) * 8) & 0xFFFFFFFF

    # ------------------------------------------------------------------ RTCP
    def rtcp_report(self, now: float | None = None) -> bytes:
        """A compound SR (we sent media) or RR, with a report block on what we received,
        and our CNAME (RFC 3550 §6.4, §6.5)."""
        now = time.time() if now is None else now
        st = self.stats
        blocks = []
        if st.receiver is not None and st.receiver.started and self.relay is None:
            block = st.receiver.report_block(self.remote_ssrc)
            if st.last_sr:
                block.lsr = st.last_sr
                block.dlsr = int((now - st.last_sr_time) * 65536)
            blocks.append(block)
        if st.packets_out:
            ntp = int((now + 2208988800) * (1 << 32))
            report: Any = RtcpSenderReport(self.ssrc, ntp, self.ts, st.packets_out, max(0, st.bytes_out - 12 * st.packets_out), blocks)
        else:
            report = RtcpReceiverReport(self.ssrc, blocks)
        sdes = RtcpSdes([SdesChunk(self.ssrc, [(1, f"hookflash@{self.local_ip}".encode())])])
        return build_rtcp([report, sdes])

    def _start_rtcp(self) -> None:
        """Media flows: bind the RTCP port (RTP port + 1), read it and report every
        ``rtcp_interval`` (±50 %, RFC 3550 §6.2), with a reader callback and a timer
        handle instead of a task. A call that never carries media costs none of it."""
        self._rtcp_on = True
        self.stats.start_receiving()  # datagram_received counts every packet from now on
        if self._rtcp_family is None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        sock = socket.socket(self._rtcp_family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.local_ip, self.port + 1))
        except OSError as exc:  # taken by someone outside our range's rules: no RTCP
            sock.close()
            log.debug("No RTCP for RTP port %d: %s", self.port, exc)
            return
        sock.setblocking(False)
        self._rtcp_sock = sock
        loop.add_reader(sock, self._read_rtcp)
        self._rtcp_timer = loop.call_later(self.rtcp_interval * random.uniform(0.5, 1.5), self._rtcp_tick)

    def _read_rtcp(self) -> None:
        sock = self._rtcp_sock
        while sock is not None:
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable and the like
                log.debug("RTCP socket error on port %d: %s", self.port + 1, exc)
                return
            self.on_rtcp(data, addr[:2])
            sock = self._rtcp_sock

    def _rtcp_tick(self) -> None:
        self._rtcp_timer = None
        if self.closed:
            return
        target = self.rtcp_remote or (self.remote and (self.remote[0], self.remote[1] + 1))
        sender = self.rtcp_transport or self._rtcp_sock
        if target and sender is not None and not self.hold:
            try:
                sender.sendto(self.rtcp_report(), target)
            except Exception as exc:  # never let reporting break the call
                log.debug("RTCP report failed: %s", exc)
        loop = asyncio.get_running_loop()
        self._rtcp_timer = loop.call_later(self.rtcp_interval * random.uniform(0.5, 1.5), self._rtcp_tick)

    def on_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        self.rtcp_remote = addr
        try:
            packets = parse_rtcp(data)
        except Exception:
            return
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                self.stats.last_sr = (packet.ntp_timestamp >> 16) & 0xFFFFFFFF
                self.stats.last_sr_time = time.time()
            reports = getattr(packet, "reports", None) or []
            for block in reports:
                if block.ssrc == self.ssrc:
                    self.stats.remote_report = block

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        log.debug("RTP socket error on port %d: %s", self.port, exc)


class _RtcpSink(asyncio.DatagramProtocol):
    """The RTCP port: reports from the far end go to the session."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.session.rtcp_transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.session.on_rtcp(data, addr)


__all__ = ["RtpSession", "PortAllocator"]
