"""What the call path no longer does per call (issue 14): views parsed once and shared,
an RTCP port bound only once media flows, no task for the 2xx retransmission."""

from __future__ import annotations

import asyncio
import socket

from hookflash.media.rtpsession import PortAllocator, RtpSession
from hookflash.sip.dialog import build_response
from hookflash.sip.message import SipUri, Via, make_branch, make_tag, parse_message

INVITE = (b"INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0\r\n"
          b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1\r\nTo: <sip:1000@127.0.0.1:5060>\r\n"
          b"Call-ID: 1-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_a_change_drops_only_the_view_of_that_header() -> None:
    msg = parse_message(INVITE)
    via = msg.top_via
    msg.headers.add("Contact", "<sip:a@127.0.0.1>")
    assert msg.top_via is via  # not parsed again
    msg.headers.set("Via", "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKx")
    assert msg.top_via.transport == "TCP" and msg.top_via.host == "10.0.0.1"
    msg.headers.remove("Via")
    assert msg.vias == []
    msg.headers.insert_first("Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy")
    assert msg.top_via.host == "10.0.0.2"


def test_call_id_view_follows_changes() -> None:
    msg = parse_message(INVITE)
    assert msg.call_id == "1-1@127.0.0.1"
    msg.headers.set("i", "other@x")
    assert msg.call_id == "other@x"


def test_copies_and_responses_share_the_parsed_views() -> None:
    msg = parse_message(INVITE)
    vias, frm, cseq = msg.vias, msg.from_addr, msg.cseq
    assert msg.headers.copy()._cache["via"] is msg.headers._cache["via"]
    response = build_response(msg, 180, to_tag="abc", headers=[("Contact", "<sip:s@127.0.0.1>")])
    assert response.vias == vias and response.top_via is vias[0]
    assert response.from_addr is frm and response.cseq == cseq
    assert response.to_addr.tag == "abc"
    again = parse_message(bytes(response))
    assert again.top_via == vias[0] and again.from_addr == frm


def test_same_uri_text_gives_one_shared_uri_and_bad_ones_still_raise() -> None:
    a = SipUri.parse("sip:1000@127.0.0.1:5060")
    assert SipUri.parse("sip:1000@127.0.0.1:5060") is a
    assert a.with_params(transport="tcp") is not a and a.params == {}
    for bad in ("sip:", "sip:a@[::1", "nocolon"):
        for _ in range(2):  # an error is raised every time, never remembered as a value
            try:
                SipUri.parse(bad)
            except Exception as exc:  # noqa: BLE001
                assert "Invalid" in str(exc) or "Unterminated" in str(exc)
            else:
                raise AssertionError(bad)


def test_via_parse_keeps_params_per_message() -> None:
    one = Via.parse("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKa;rport")
    two = Via.parse("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKb")
    assert (one.host, one.port, one.transport) == (two.host, two.port, two.transport)
    assert one.branch == "z9hG4bKa" and two.branch == "z9hG4bKb" and "rport" not in two.params


def test_tags_and_branches_stay_unique() -> None:
    tags = {make_tag() for _ in range(20000)}
    branches = {make_branch() for _ in range(20000)}
    assert len(tags) == 20000 and len(branches) == 20000
    assert all(len(t) == 12 for t in tags) and all(b.startswith("z9hG4bK") for b in branches)


def _bound(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        s.close()
    return False


def test_rtcp_port_is_bound_only_once_media_flows() -> None:
    async def main() -> None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        base = (20000 + probe.getsockname()[1] % 10000) & ~1
        probe.close()
        session = await RtpSession.open("127.0.0.1", PortAllocator(base, base + 200))
        assert _bound(session.port) and not _bound(session.port + 1)
        assert session._rtcp_timer is None  # no timer, no task for a call without media
        session.set_remote("127.0.0.1", 9)
        session.send_payload(b"\xff" * 160, 160)
        assert _bound(session.port + 1) and session._rtcp_timer is not None
        session.close()
        await asyncio.sleep(0.01)
        assert not _bound(session.port + 1) and session._rtcp_timer is None

    asyncio.run(main())


def test_concurrent_opens_take_consecutive_ports_without_failed_binds(monkeypatch) -> None:
    """Calls set up at once each get the next free pair at the first bind: an open()
    waiting for the loop does not leave its port to be tried again by the next one."""
    binds: list[int] = []
    real_bind = socket.socket.bind

    def counting_bind(self: socket.socket, address: tuple[str, int]) -> None:
        binds.append(address[1])
        real_bind(self, address)

    def free_range() -> int:
        """A base whose 20 even ports are free now (other tests' phones use this region too)."""
        for _ in range(50):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", 0))
            base = (20000 + probe.getsockname()[1] % 10000) & ~1
            probe.close()
            if all(not _bound(p) for p in range(base, base + 40, 2)):
                return base
        raise AssertionError("no free port range")

    async def main() -> list[RtpSession]:
        base = free_range()
        ports = PortAllocator(base, base + 400)
        monkeypatch.setattr(socket.socket, "bind", counting_bind)
        sessions = await asyncio.gather(*(RtpSession.open("127.0.0.1", ports) for _ in range(20)))
        monkeypatch.undo()
        for s in sessions:
            s.close()
        return list(sessions)

    sessions = asyncio.run(main())
    assert len({s.port for s in sessions}) == 20
    assert len(binds) == 20, f"{len(binds) - 20} failed binds"


class _FakeEndpoint:
    def __init__(self) -> None:
        self.sent: list[tuple[object, tuple[str, int]]] = []

    def send(self, message: object, dest: tuple[str, int]) -> None:
        self.sent.append((message, dest))


class _FakeCall:
    """What _Retransmit2xx uses of a SipCall."""

    def __init__(self) -> None:
        from types import SimpleNamespace
        self.acked = asyncio.Event()
        self.finished = False
        self.source = ("127.0.0.1", 5061)
        self.chan = None
        self.hangups = 0
        self._2xx: object = None
        self.stack = SimpleNamespace(endpoint=_FakeEndpoint(), pbx=SimpleNamespace(spawn=asyncio.ensure_future))

    async def hangup(self) -> None:
        self.hangups += 1


def test_2xx_is_resent_until_the_ack_then_the_call_is_hung_up_without_one() -> None:
    from hookflash.sip.call import _Retransmit2xx

    response = build_response(parse_message(INVITE), 200, to_tag="t")

    async def main() -> tuple[int, int, int, int]:
        acked = _FakeCall()
        acked._2xx = timer = _Retransmit2xx(acked, response, 0.01)  # type: ignore[arg-type]
        await asyncio.sleep(0.035)  # resends at 10 and 30 ms (T1, then 2·T1 later)
        acked.acked.set()
        timer.cancel()
        sent_before_ack = len(acked.stack.endpoint.sent)
        await asyncio.sleep(0.1)
        lost = _FakeCall()
        lost._2xx = _Retransmit2xx(lost, response, 0.01)  # type: ignore[arg-type]
        await asyncio.sleep(2.0)  # gives up once 64·T1 = 0.64 s have passed: at 1.27 s
        return sent_before_ack, len(acked.stack.endpoint.sent), len(lost.stack.endpoint.sent), lost.hangups

    sent_before_ack, sent_after, lost_sent, hangups = asyncio.run(main())
    assert sent_before_ack >= 1 and sent_after == sent_before_ack  # nothing after the ACK
    assert lost_sent == 7 and hangups == 1  # at 10, 30, 70, 150, 310, 630 and 1270 ms


def test_rtp_receive_state_is_made_when_media_flows() -> None:
    """No receive statistics, no DTMF receiver for a call that carries no RTP; the first
    packet (or telephone-event) makes them, and the counters read 0 before."""
    from types import SimpleNamespace

    from hookflash.media.dtmf import TelephoneEvent
    from hookflash.media.rtp import RtpPacket, parse_rtcp

    session = RtpSession("127.0.0.1", 0)
    assert session.stats.receiver is None and session._dtmf_rx is None
    assert session.stats.lost == 0 and session.stats.jitter == 0
    assert parse_rtcp(session.rtcp_report(now=1.0))  # a receiver report, no block
    assert session.ssrc < 1 << 32 and session.seq < 1 << 16 and session.ts < 1 << 32
    session.datagram_received(bytes(RtpPacket(0, 1, 160, 0x1234, b"\xff" * 160)), ("127.0.0.1", 9))
    assert session.stats.receiver is not None and session.stats.packets_in == 1
    assert session.stats.receiver.received == 0  # RFC 3550 A.1 probation

    digits: list[str] = []
    session.channel = SimpleNamespace(queue_dtmf=digits.append)  # type: ignore[assignment]
    event = bytes(TelephoneEvent(5, False, 10, 160))
    session.datagram_received(bytes(RtpPacket(101, 2, 320, 0x1234, event)), ("127.0.0.1", 9))
    assert digits == ["5"] and session._dtmf_rx is not None
