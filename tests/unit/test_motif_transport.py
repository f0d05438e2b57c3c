"""ICE + DTLS-SRTP between two hookflash media transports on loopback: real aioice
checks, a real DTLS handshake, real SRTP (no mocks; the peer here is ourselves, the
independent peers are in tests/integration/test_motif_*.py)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from hookflash.motif.jingle import Fingerprint
from hookflash.motif.transport import AddressFilter, MediaTransport, TransportFailed

LOOPBACK = AddressFilter(permit=["127.0.0.0/8"], deny=["0.0.0.0/0", "::/0"])


class Sink:
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.append(data)

    def on_rtcp(self, data: bytes, addr: object) -> None:
        self.packets.append(data)


def rtp(seq: int, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + payload


async def pair(dtls: bool = True, wrong_fp: bool = False) -> tuple[MediaTransport, MediaTransport, Sink, Sink]:
    a = MediaTransport(controlling=True, addresses=["127.0.0.1"], filt=LOOPBACK, dtls=dtls)
    b = MediaTransport(controlling=False, addresses=["127.0.0.1"], filt=LOOPBACK, dtls=dtls)
    ca, cb = await a.gather(), await b.gather()
    assert ca and all(c.ip == "127.0.0.1" for c in ca)
    a.set_remote(b.ufrag, b.pwd)
    b.set_remote(a.ufrag, a.pwd)
    await a.add_candidates(cb)
    await b.add_candidates(ca)
    sa, sb = Sink(), Sink()
    a.session, b.session = sa, sb  # type: ignore[assignment]
    fa = a.local_fingerprint("actpass")
    fb = b.local_fingerprint("active")
    if wrong_fp:
        fb = Fingerprint("sha-256", ":".join(["AB"] * 32), "active")
    await asyncio.gather(a.connect(fb if dtls else None, 10), b.connect(fa if dtls else None, 10))
    return a, b, sa, sb


@pytest.mark.parametrize("dtls", [True, False])
def test_media_crosses_both_ways(dtls: bool) -> None:
    asyncio.run(_media_crosses_both_ways(dtls))


async def _media_crosses_both_ways(dtls: bool) -> None:
    a, b, sa, sb = await pair(dtls)
    try:
        if dtls:
            assert a.srtp_tx is not None and b.srtp_rx is not None
        for seq in range(20):
            a.sendto(rtp(seq))
            b.sendto(rtp(100 + seq, b"\x01" * 160))
        for _ in range(100):
            if len(sa.packets) == 20 and len(sb.packets) == 20:
                break
            await asyncio.sleep(0.01)
        assert sb.packets[0] == rtp(0)  # what arrives is the plain packet that was sent
        assert sa.packets[-1] == rtp(119, b"\x01" * 160)
        assert len(sa.packets) == len(sb.packets) == 20
    finally:
        a.close()
        b.close()


def test_wrong_fingerprint_fails_with_security_error() -> None:
    with pytest.raises(TransportFailed) as info:
        asyncio.run(pair(True, wrong_fp=True))
    assert info.value.reason == "security-error"


def test_no_reachable_candidate_fails_in_time() -> None:
    asyncio.run(_no_reachable())


async def _no_reachable() -> None:
    a = MediaTransport(controlling=True, addresses=["127.0.0.1"], filt=LOOPBACK)
    await a.gather()
    a.set_remote("abcd", "x" * 22)
    from hookflash.motif.jingle import Candidate
    # a loopback port nobody answers on, and a candidate the filter refuses to probe
    added = await a.add_candidates([Candidate("127.0.0.1", 9, priority=1, foundation="1"),
                                    Candidate("192.0.2.1", 5000, priority=2, foundation="2")])
    assert added == 1
    with pytest.raises(TransportFailed):
        await a.connect(None, 2)
    a.close()
