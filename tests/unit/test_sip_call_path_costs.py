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
