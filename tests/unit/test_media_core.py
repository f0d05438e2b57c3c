"""Tests for hookflash.media: SDP offer/answer, RTP/RTCP, RFC 4733 DTMF, codecs, tones.

Timings on the 2-core dev machine (bench/media_core.py, CPython 3.11, µs per call):
    rtp_header 0.14, rewrite 0.19, ulaw encode 160 samples 0.35 (audioop; numpy
    table 1.2), ulaw decode 0.10 (numpy 1.2), ulaw->alaw 160 bytes 0.12,
    g722 encode/decode 20 ms with resampling ~20 / ~16.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.media import dtmf, rtp, sdp, tone
from hookflash.media.codecs import CodecError, Transcoder, g711, get_codec
from hookflash.media.codecs.g722 import G722, Resampler2x
from hookflash.media.codecs.slin import from_array, to_array

# ============================================================== RTP


# V=2 P=0 X=0 CC=0 | M=0 PT=0 | seq 7242 | ts 123456 | ssrc 0xdeadbeef | 160 x 0xff
GOLDEN_RTP = bytes.fromhex("80001c4a" "0001e240" "deadbeef") + b"\xff" * 160
# V=2 P=1 X=1 CC=2 | M=1 PT=101 | seq 1 | ts 2 | ssrc 3 | csrc 10, 11 |
# ext profile 0xbede, 1 word 0x10ab0000 | payload 05 8a 03 20 | 4 octets padding
GOLDEN_RTP_FULL = bytes.fromhex(
    "b2e50001" "00000002" "00000003" "0000000a" "0000000b"
    "bede0001" "10ab0000" "058a0320" "00000004")


def test_rtp_parse_golden() -> None:
    p = rtp.RtpPacket.parse(GOLDEN_RTP)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker) == \
        (0, 7242, 123456, 0xDEADBEEF, False)
    assert p.payload == b"\xff" * 160 and p.csrc == [] and p.extension_profile is None
    assert bytes(p) == GOLDEN_RTP


def test_rtp_parse_csrc_extension_padding() -> None:
    p = rtp.RtpPacket.parse(GOLDEN_RTP_FULL)
    assert p.marker and p.payload_type == 101
    assert p.csrc == [10, 11]
    assert p.extension_profile == 0xBEDE and p.extension == bytes.fromhex("10ab0000")
    assert p.payload == bytes.fromhex("058a0320") and p.padding_size == 4
    assert bytes(p) == GOLDEN_RTP_FULL


def test_rtp_header_fast_path_matches_parse() -> None:
    assert rtp.rtp_header(GOLDEN_RTP) == (0, 7242, 123456, 0xDEADBEEF, False, 12)
    pt, seq, ts, ssrc, marker, hlen = rtp.rtp_header(GOLDEN_RTP_FULL)
    assert (pt, seq, ts, ssrc, marker) == (101, 1, 2, 3, True)
    assert hlen == 12 + 8 + 8 and GOLDEN_RTP_FULL[hlen:hlen + 4] == bytes.fromhex("058a0320")


def test_rewrite_replaces_only_seq_ts_ssrc() -> None:
    out = rtp.rewrite(GOLDEN_RTP_FULL, 0x10001, 0x1_0000_0005, 0xCAFEBABE)
    p = rtp.RtpPacket.parse(out)
    assert (p.sequence_number, p.timestamp, p.ssrc) == (1, 5, 0xCAFEBABE)
    assert out[:2] == GOLDEN_RTP_FULL[:2] and out[12:] == GOLDEN_RTP_FULL[12:]


@pytest.mark.parametrize("data", [b"", b"\x80\x00", bytes.fromhex("40001c4a0001e240deadbeef"),
                                  bytes.fromhex("a0001c4a0001e240deadbeef05"),
                                  bytes.fromhex("81001c4a0001e240deadbeef")])
def test_rtp_parse_rejects_malformed(data: bytes) -> None:
    with pytest.raises(rtp.RtpError):
        rtp.RtpPacket.parse(data)


@given(st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.booleans(), st.binary(max_size=200),
       st.lists(st.integers(0, 2**32 - 1), max_size=15))
def test_rtp_round_trip(pt: int, seq: int, ts: int, ssrc: int, marker: bool,
                        payload: bytes, csrc: list[int]) -> None:
    p = rtp.RtpPacket(pt, seq, ts, ssrc, payload, marker, csrc)
    data = bytes(p)
    assert rtp.RtpPacket.parse(data) == p
    assert rtp.rtp_header(data) == (pt, seq, ts, ssrc, marker, 12 + 4 * len(csrc))


# SR with one report block + SDES CNAME + BYE with reason, laid out from RFC 3550 §6.4.1
GOLDEN_SR = bytes.fromhex(
    "81c8000c" "11223344" "e6a1b2c3" "80000000" "00003e80" "00000064" "00003e80"
    "deadbeef" "40000003" "00011c4a" "0000001f" "b2c38000" "00010000")
GOLDEN_SDES = bytes.fromhex("81ca0005" "11223344" "010c") + b"hf@192.0.2.1" + b"\x00\x00"
GOLDEN_BYE = bytes.fromhex("81cb0003" "11223344" "04") + b"bye!" + b"\x00\x00\x00"
GOLDEN_RR = bytes.fromhex(
    "81c90007" "55667788" "deadbeef" "ff800000" "0000ffff" "00000100" "00000000" "00000000")


def test_rtcp_compound_golden() -> None:
    packets = rtp.parse_rtcp(GOLDEN_SR + GOLDEN_SDES + GOLDEN_BYE)
    sr, sdes, bye = packets
    assert isinstance(sr, rtp.RtcpSenderReport)
    assert sr.ssrc == 0x11223344 and sr.ntp_timestamp == 0xE6A1B2C3_80000000
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (16000, 100, 16000)
    assert sr.reports == [rtp.ReportBlock(0xDEADBEEF, 64, 3, 0x11C4A, 31, 0xB2C38000, 0x10000)]
    assert isinstance(sdes, rtp.RtcpSdes) and sdes.chunks[0].cname == "hf@192.0.2.1"
    assert isinstance(bye, rtp.RtcpBye) and bye.sources == [0x11223344]
    assert bye.reason == b"bye!"
    assert rtp.build_rtcp(packets) == GOLDEN_SR + GOLDEN_SDES + GOLDEN_BYE
    assert rtp.is_rtcp(GOLDEN_SR) and not rtp.is_rtcp(GOLDEN_RTP)


def test_rtcp_rr_negative_cumulative_loss() -> None:
    (rr,) = rtp.parse_rtcp(GOLDEN_RR)
    assert isinstance(rr, rtp.RtcpReceiverReport)
    block = rr.reports[0]
    assert block.fraction_lost == 255 and block.packets_lost == -0x800000
    assert block.highest_sequence == 0xFFFF and block.jitter == 256
    assert bytes(rr) == GOLDEN_RR
    empty = rtp.RtcpReceiverReport(0x55667788)
    assert bytes(empty) == bytes.fromhex("80c90001" "55667788")


def test_rtcp_unknown_kept_and_truncation_rejected() -> None:
    app = bytes.fromhex("80cc0002" "11223344") + b"NAME"
    (pkt,) = rtp.parse_rtcp(app)
    assert isinstance(pkt, rtp.RtcpUnknown) and bytes(pkt) == app
    with pytest.raises(rtp.RtpError):
        rtp.parse_rtcp(GOLDEN_SR[:-4])
    with pytest.raises(rtp.RtpError):
        rtp.parse_rtcp(bytes.fromhex("81ca0002" "11223344" "0105616263"))


def test_receiver_stats_hand_computed() -> None:
    s = rtp.RtpReceiverStats(8000, min_sequential=0)
    # (seq, transit in 1/8000 s); 102 lost, 106 overtakes 105
    arrivals = [(100, 1000), (101, 1000), (103, 1040), (104, 1000), (106, 1080),
                (105, 1300), (107, 1000)]
    for seq, transit in arrivals:
        ts = (seq - 100) * 160
        assert s.update(seq, ts, (ts + transit) / 8000)
    # |D| = 0, 40, 40, 80, 220, 300; J += (|D| - J) / 16
    j = 0.0
    for d in (0, 40, 40, 80, 220, 300):
        j += (d - j) / 16
    assert j == pytest.approx(40.02628, abs=1e-4)
    assert s.jitter_seconds == pytest.approx(j / 8000)
    assert s.jitter == 40
    assert (s.extended_max, s.expected, s.received, s.cumulative_lost) == (107, 8, 7, 1)
    block = s.report_block(0xABC)
    assert (block.fraction_lost, block.packets_lost, block.highest_sequence) == (32, 1, 107)
    assert s.fraction_lost() == 0  # nothing new since the last report
    s.update(107, 7 * 160, 0.5)  # a duplicate
    assert s.cumulative_lost == 0


def test_receiver_stats_wrap_and_probation() -> None:
    s = rtp.RtpReceiverStats(8000)
    assert not s.update(65534, 0, 0.0)  # probation (A.1, MIN_SEQUENTIAL = 2)
    for i, seq in enumerate((65535, 0, 1)):
        assert s.update(seq, 160 * (i + 1), 0.02 * (i + 1))
    assert s.extended_max == 65536 + 1 and s.expected == 3 and s.cumulative_lost == 0
    assert s.jitter == 0
    assert not s.update(30000, 0, 1.0)  # big jump: held back once ...
    assert s.update(30001, 0, 1.02)  # ... and the source is taken as restarted
    assert s.expected == 1 and s.received == 1


# ============================================================== SDP

BARESIP_OFFER = """v=0
o=- 1894532455 1186416018 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
a=tool:baresip 3.10.1
m=audio 10004 RTP/AVP 9 0 8 101
b=AS:80
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:2939219373 cname:6ed4d6a8-1f3d-4d1f
a=ptime:20
"""

SIPP_UAC_OFFER = """v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""

LINPHONE_OFFER = """v=0
o=alice 3227 1559 IN IP4 198.51.100.7
s=Talk
c=IN IP4 198.51.100.7
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
c=IN IP4 198.51.100.8
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
m=video 9078 RTP/AVP 96
a=rtpmap:96 VP8/90000
"""

OLD_HOLD_OFFER = """v=0
o=- 1 2 IN IP4 203.0.113.5
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 20000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:30
"""

G729_ONLY_OFFER = """v=0
o=- 7 7 IN IP4 203.0.113.9
s=-
c=IN IP4 203.0.113.9
t=0 0
m=audio 16384 RTP/AVP 18 101
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
"""


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


@pytest.mark.parametrize("text", [SIPP_UAC_OFFER, OLD_HOLD_OFFER, G729_ONLY_OFFER])
def test_sdp_round_trip_exact(text: str) -> None:
    assert str(sdp.SessionDescription.parse(text)) == crlf(text)


def test_sdp_parse_baresip() -> None:
    sd = sdp.SessionDescription.parse(crlf(BARESIP_OFFER).encode())
    assert sd.origin.session_id == "1894532455" and sd.origin.version == 1186416018
    assert sd.attr("tool") == "baresip 3.10.1"
    (m,) = sd.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 10004, "RTP/AVP",
                                                      ["9", "0", "8", "101"])
    assert m.rtpmaps[101] == sdp.RtpMap(101, "telephone-event", 8000)
    assert m.fmtp(101) == "0-15" and m.ptime == 20 and m.attr("rtcp-rsize") == ""
    assert sd.direction(m) == "sendrecv" and ("b", "AS:80") in m.other
    # reserialised in RFC 4566 order: the session a=tool stays before m=
    assert sdp.SessionDescription.parse(str(sd)) == sd


def test_negotiate_baresip_our_preference_wins() -> None:
    offer = sdp.SessionDescription.parse(BARESIP_OFFER)
    ans = sdp.negotiate(offer, ["alaw", "ulaw"], "192.0.2.1", 30000, session_id=42)
    assert (ans.codec.payload_type, ans.codec.name, ans.codec.encoding) == (8, "alaw", "PCMA")
    assert ans.dtmf_payload_type == 101 and ans.codec.ptime == 20
    assert (ans.remote_address, ans.remote_port, ans.remote_rtcp_port) == \
        ("192.0.2.20", 10004, 10005)
    assert ans.direction == "sendrecv" and not ans.remote_hold
    assert str(ans.sdp) == crlf("""v=0
o=- 42 0 IN IP4 192.0.2.1
s=hookflash
c=IN IP4 192.0.2.1
t=0 0
m=audio 30000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    g722 = sdp.negotiate(offer, ["g722", "ulaw"], "192.0.2.1", 30000, session_id=42)
    assert (g722.codec.name, g722.codec.clock_rate, g722.codec.sample_rate) == \
        ("g722", 8000, 16000)


def test_negotiate_sipp_no_dtmf() -> None:
    ans = sdp.negotiate(sdp.SessionDescription.parse(SIPP_UAC_OFFER), ["alaw", "ulaw"],
                        "127.0.0.1", 4000, session_id=1)
    assert ans.codec.payload_type == 0 and ans.dtmf_payload_type is None
    assert ans.sdp.media[0].formats == ["0"]


def test_negotiate_linphone_media_level_c_and_video_rejected() -> None:
    offer = sdp.SessionDescription.parse(LINPHONE_OFFER)
    ans = sdp.negotiate(offer, ["g722", "ulaw", "alaw"], "192.0.2.1", 30000, session_id=5)
    assert ans.codec.payload_type == 0
    assert ans.dtmf_payload_type == 100  # the 8000 Hz telephone-event, mirrored
    assert ans.remote_address == "198.51.100.8"  # media-level c= beats session level
    audio, video = ans.sdp.media
    assert audio.formats == ["0", "100"]
    assert (video.media, video.port, video.formats) == ("video", 0, ["96"])


def test_negotiate_old_style_hold_and_ptime() -> None:
    ans = sdp.negotiate(sdp.SessionDescription.parse(OLD_HOLD_OFFER), ["ulaw", "alaw"],
                        "192.0.2.1", 30000, session_id=5)
    assert ans.remote_hold and ans.direction == "recvonly"
    assert ans.codec.ptime == 30 and ans.sdp.media[0].ptime == 30
    assert ans.sdp.media[0].direction() == "recvonly"


def test_negotiate_g729_only_is_488() -> None:
    with pytest.raises(sdp.SdpError) as info:
        sdp.negotiate(sdp.SessionDescription.parse(G729_ONLY_OFFER), ["ulaw", "alaw"],
                      "192.0.2.1", 30000)
    assert info.value.status == 488


@pytest.mark.parametrize("offered, answered, remote_hold", [
    ("sendrecv", "sendrecv", False), ("sendonly", "recvonly", True),
    ("recvonly", "sendonly", False), ("inactive", "inactive", True)])
def test_negotiate_directions(offered: str, answered: str, remote_hold: bool) -> None:
    offer = sdp.make_offer("192.0.2.9", 4000, ["ulaw"], direction=offered, session_id=1)
    ans = sdp.negotiate(offer, ["ulaw"], "192.0.2.1", 5000, session_id=2)
    assert ans.direction == answered and ans.remote_hold is remote_hold
    assert ans.sdp.media[0].direction() == answered


def test_negotiate_dynamic_pt_for_static_codec_and_session_direction() -> None:
    text = (SIPP_UAC_OFFER.replace("RTP/AVP 0", "RTP/AVP 96")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:96 pcmu/8000")
            .replace("t=0 0\n", "t=0 0\na=sendonly\n"))  # session-level direction
    offer = sdp.SessionDescription.parse(text)
    ans = sdp.negotiate(offer, ["ulaw"], "192.0.2.1", 5000, session_id=2)
    assert ans.codec.payload_type == 96 and ans.direction == "recvonly"


@pytest.mark.parametrize("text", ["", "o=- 1 1 IN IP4 a\n", "v=0\no=- 1\n",
                                  "v=0\nm=audio x RTP/AVP 0\n", "v=0\nbogus\n",
                                  "v=0\nm=audio 1 RTP/AVP 0\na=rtpmap:0 PCMU\n"])
def test_sdp_malformed_is_400(text: str) -> None:
    with pytest.raises(sdp.SdpError) as info:
        sd = sdp.SessionDescription.parse(text)
        _ = [m.rtpmaps for m in sd.media]
    assert info.value.status == 400


def test_offer_accept_answer_and_hold_resume_versions() -> None:
    ours = sdp.SdpSession("192.0.2.1", 4000, session_id=99)
    offer = ours.offer(["ulaw", "alaw", "g722"])
    assert offer.origin.version == 0
    assert offer.media[0].formats == ["0", "8", "9", "101"]
    theirs = sdp.SdpSession("192.0.2.2", 5000, session_id=7)
    answer = theirs.answer(sdp.SessionDescription.parse(str(offer)), ["g722", "alaw"])
    got = sdp.accept_answer(offer, sdp.SessionDescription.parse(str(answer.sdp)))
    assert (got.codec.name, got.dtmf_payload_type, got.remote_address, got.remote_port) == \
        ("g722", 101, "192.0.2.2", 5000)
    # re-INVITE putting them on hold: body changes -> version 1
    hold = ours.offer(["ulaw", "alaw", "g722"], direction="sendonly")
    assert hold.origin.version == 1 and hold.origin.session_id == "99"
    held = theirs.answer(hold, ["g722", "alaw"])
    assert held.direction == "recvonly" and held.sdp.origin.version == 1
    assert sdp.accept_answer(hold, held.sdp).direction == "sendonly"
    # same hold again (session refresh): unchanged body keeps the version
    assert ours.offer(["ulaw", "alaw", "g722"], direction="sendonly").origin.version == 1
    resume = ours.offer(["ulaw", "alaw", "g722"])
    assert resume.origin.version == 2
    assert theirs.answer(resume, ["g722"]).direction == "sendrecv"
    inactive = ours.offer(["ulaw"], direction="inactive")
    assert theirs.answer(inactive, ["ulaw"]).direction == "inactive"


def test_sdp_session_body_is_the_sdp_made_last() -> None:
    ours = sdp.SdpSession("192.0.2.1", 4000, session_id=99)
    theirs = sdp.SdpSession("192.0.2.2", 5000, session_id=7)
    assert ours.body == b""
    for direction, media in [("sendrecv", None), ("sendrecv", None), ("sendonly", None),
                             ("sendrecv", ("198.51.100.1", 6000))]:
        offer = ours.offer(["ulaw", "alaw"], direction=direction, media=media)
        assert ours.body == str(offer).encode()
        answer = theirs.answer(sdp.SessionDescription.parse(ours.body), ["alaw"])
        assert theirs.body == str(answer.sdp).encode()
    assert offer.origin.version == 2 and b"o=- 99 2 IN IP4 192.0.2.1\r\n" in ours.body


def test_accept_answer_rejected_or_foreign_codec() -> None:
    offer = sdp.make_offer("192.0.2.1", 4000, ["ulaw"], session_id=1)
    bad = sdp.SessionDescription.parse(G729_ONLY_OFFER)
    with pytest.raises(sdp.SdpError):
        sdp.accept_answer(offer, bad)
    rejected = sdp.SessionDescription.parse(SIPP_UAC_OFFER.replace("audio 6000", "audio 0"))
    with pytest.raises(sdp.SdpError) as info:
        sdp.accept_answer(offer, rejected)
    assert info.value.status == 488


def test_payload_type_enum() -> None:
    assert sdp.PayloadType(9).phrase == "G722/8000" and sdp.PayloadType.PCMA == 8


# ============================================================== DTMF


def test_telephone_event_golden() -> None:
    ev = dtmf.TelephoneEvent.parse(bytes.fromhex("058a0320"))
    assert ev == dtmf.TelephoneEvent(5, True, 10, 800) and ev.digit == "5"
    assert bytes(dtmf.TelephoneEvent(16, False, 0, 65535)) == bytes.fromhex("1000ffff")
    assert [dtmf.event_code(d) for d in "09*#aD!"] == [0, 9, 10, 11, 12, 15, 16]
    with pytest.raises(dtmf.DtmfError):
        dtmf.event_code("E")


def test_dtmf_sender_packets() -> None:
    sender = dtmf.DtmfSender(payload_type=101, ssrc=0x1234)
    pkts = sender.packets("5", 100, seq=65534, timestamp=8000)
    assert [p.at_ms for p in pkts] == [0, 20, 40, 60, 80, 80, 80]
    assert [p.packet.sequence_number for p in pkts] == [65534, 65535, 0, 1, 2, 3, 4]
    assert sender.next_seq == 5
    assert {p.packet.timestamp for p in pkts} == {8000}
    assert [p.packet.marker for p in pkts] == [True] + [False] * 6
    assert [p.packet.payload.hex() for p in pkts] == [
        "050a00a0", "050a0140", "050a01e0", "050a0280", "058a0320", "058a0320", "058a0320"]
    assert bytes(pkts[0].packet)[:2] == bytes.fromhex("80e5")


def test_dtmf_receiver_begin_once_end_once() -> None:
    rx = dtmf.DtmfReceiver()
    sender = dtmf.DtmfSender(101, 1)
    events = []
    for p in sender.packets("#", 100, 0, 1000):
        events += rx.feed_packet(p.packet)
    assert events == [dtmf.DtmfBegin("#", 1000), dtmf.DtmfEnd("#", 1000, 800, 100)]
    assert rx.active is None and rx.flush() == []


def test_dtmf_receiver_lost_end_packets() -> None:
    rx = dtmf.DtmfReceiver()
    s = dtmf.DtmfSender(101, 1)
    first = [p.packet for p in s.packets("1", 60, 0, 0)][:2]  # end packets lost
    second = [p.packet for p in s.packets("2", 60, 10, 2000)]
    out = [e for p in first + second for e in rx.feed_packet(p)]
    assert out == [dtmf.DtmfBegin("1", 0), dtmf.DtmfEnd("1", 0, 320, 40),
                   dtmf.DtmfBegin("2", 2000), dtmf.DtmfEnd("2", 2000, 480, 60)]
    rx.feed_packet(s.packets("3", 60, 20, 4000)[0].packet)
    assert rx.active == "3"
    assert rx.flush() == [dtmf.DtmfEnd("3", 4000, 160, 20)]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_dtmf_round_trip_with_loss_dup_reorder(data: st.DataObject) -> None:
    digits = data.draw(st.lists(st.sampled_from(list(dtmf.DIGITS) + ["!"]),
                                min_size=1, max_size=6))
    sender = dtmf.DtmfSender(101, 7)
    stream: list[rtp.RtpPacket] = []
    late: list[rtp.RtpPacket] = []
    totals = []
    seq = 0
    for i, digit in enumerate(digits):
        ms = data.draw(st.integers(40, 400))
        pkts = [p.packet for p in sender.packets(digit, ms, seq, 5000 + i * 8000)]
        seq = sender.next_seq
        totals.append(dtmf.TelephoneEvent.parse(pkts[-1].payload).duration)
        keep = data.draw(st.lists(st.booleans(), min_size=len(pkts), max_size=len(pkts)))
        kept = [p for p, k in zip(pkts, keep) if k] or [pkts[0]]
        kept += data.draw(st.lists(st.sampled_from(kept), max_size=3))  # duplicates
        kept = data.draw(st.permutations(kept))  # reordered within the event
        stream += kept[:1] + late + kept[1:]  # the previous event's stragglers come late
        late = data.draw(st.lists(st.sampled_from(pkts), max_size=2))
    stream += late
    rx = dtmf.DtmfReceiver()
    events = [e for p in stream for e in rx.feed_packet(p)] + rx.flush()
    begins = [e for e in events if isinstance(e, dtmf.DtmfBegin)]
    ends = [e for e in events if isinstance(e, dtmf.DtmfEnd)]
    assert [e.digit for e in begins] == digits
    assert [e.digit for e in ends] == digits
    assert [e.timestamp for e in begins] == [e.timestamp for e in ends]
    for end, total in zip(ends, totals):
        assert 0 < end.duration <= total
    for a, b in zip(events[::2], events[1::2]):  # strictly begin, end, begin, end...
        assert isinstance(a, dtmf.DtmfBegin) and isinstance(b, dtmf.DtmfEnd)


# ============================================================== codecs


def all_samples() -> bytes:
    return np.arange(-32768, 32768, dtype="<i2").tobytes()


@pytest.mark.parametrize("name, rel", [("ulaw", 1 / 32), ("alaw", 1 / 32)])
def test_g711_round_trip_error_bound(name: str, rel: float) -> None:
    codec = get_codec(name)
    x = to_array(all_samples()).astype(np.int64)
    y = to_array(codec.decode(codec.encode(all_samples()))).astype(np.int64)
    inside = np.abs(x) < 32000  # above that mu-law clips at 32124, A-law at 32256
    err = np.abs(y - x)[inside]
    assert np.all(err <= np.abs(x[inside]) * rel + 8)
    assert np.abs(y - x).max() <= 1024  # one top-segment step


def test_g711_numpy_tables_match_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm, codes = all_samples(), bytes(range(256))
    assert g711.numpy_ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.numpy_alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    assert g711.numpy_ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert g711.numpy_alaw_decode(codes) == audioop.alaw2lin(codes, 2)


def test_g711_golden_values() -> None:
    ulaw, alaw = get_codec(0), get_codec("PCMA")
    assert ulaw.encode(from_array([0, 1000, -1000, 32767])) == bytes.fromhex("ffce4e80")
    assert alaw.encode(from_array([0, 1000, -1000, 32767])) == bytes.fromhex("d5fa7aaa")
    assert to_array(ulaw.decode(bytes.fromhex("ff7f0080"))).tolist() == [0, 0, -32124, 32124]


def test_ulaw_alaw_translate_equals_decode_encode() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_to_alaw(codes) == g711.alaw_encode(g711.ulaw_decode(codes))
    assert g711.alaw_to_ulaw(codes) == g711.ulaw_encode(g711.alaw_decode(codes))
    t = Transcoder("ulaw", "alaw")
    assert t.convert is g711.ulaw_to_alaw and t(codes) == g711.ulaw_to_alaw(codes)


def test_registry() -> None:
    assert get_codec("ulaw").payload_type == 0 and get_codec("G722").sample_rate == 16000
    assert get_codec(8).name == "alaw" and get_codec("slin").encode(b"ab") == b"ab"
    assert get_codec("ulaw") is not get_codec("ulaw")
    assert all(get_codec(n).samples_per_frame == 160 for n in ("ulaw", "alaw", "g722"))
    with pytest.raises(CodecError):
        get_codec("g729")


def sine(freq: float, n: int, amp: float = 8000.0, rate: int = 8000) -> bytes:
    return from_array(amp * np.sin(2 * np.pi * freq * np.arange(n) / rate))


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_g722_round_trip_keeps_frequency(freq: float) -> None:
    enc, dec = G722(), G722()
    x = sine(freq, 1600)
    out = b""
    for i in range(10):
        payload = enc.encode(x[320 * i: 320 * (i + 1)])
        assert len(payload) == 160
        out += dec.decode(payload)
    y = to_array(out)[400:].astype(float)
    assert abs(tone.dominant_frequency(y) - freq) < 3
    assert 0.8 < y.std() / to_array(x).astype(float).std() < 1.2


def test_g722_state_per_direction_frame_invariant() -> None:
    x = sine(700, 1600)
    whole = G722().encode(x)
    c = G722()
    framed = b"".join(c.encode(x[i: i + 320]) for i in range(0, len(x), 320))
    assert framed == whole
    r1, r2 = Resampler2x(up=False), Resampler2x(up=False)
    wide = to_array(sine(500, 999, rate=16000))
    a = r1.process(wide)
    b = np.concatenate([r2.process(wide[:333]), r2.process(wide[333:])])
    assert np.array_equal(a, b)


def test_transcoder_generic_path() -> None:
    x = sine(1000, 1600)
    t = Transcoder("ulaw", "g722")
    back = Transcoder(get_codec("g722"), "alaw")
    u = get_codec("ulaw").encode(x)
    out = b"".join(get_codec("alaw").decode(back(t(u[i: i + 160])))
                   for i in range(0, 1600, 160))
    assert abs(tone.dominant_frequency(to_array(out)[400:]) - 1000) < 3
    assert Transcoder("alaw", "alaw")(b"\x01") == b"\x01"


# ============================================================== tones


@pytest.mark.parametrize("spec, freq", [("440", 440), ("1004", 1004), ("M69", 440),
                                        ("425*33", 425)])
def test_tone_dominant_frequency(spec: str, freq: float) -> None:
    frames = tone.tone_frames(spec)
    data = b"".join(next(frames) for _ in range(25))
    assert abs(tone.dominant_frequency(data) - freq) < 2


def test_dual_tone_components() -> None:
    data = b"".join(f for f, _ in zip(tone.tone_frames("350+440"), range(10)))
    p350, p440 = tone.goertzel(data, 350), tone.goertzel(data, 440)
    p1000 = tone.goertzel(data, 1000)
    expected = (tone.DEFAULT_AMPLITUDE / 2) ** 2
    assert p350 == pytest.approx(expected, rel=0.05) and p440 == pytest.approx(expected, rel=0.05)
    assert p1000 < expected / 1000


def test_tone_continuity_across_frames() -> None:
    g1, g2 = tone.SineGenerator([350, 440]), tone.SineGenerator([350, 440])
    one = to_array(g1.read(1600)).astype(int)
    framed = to_array(b"".join(g2.read(n) for n in (7, 153, 160, 480, 800))).astype(int)
    assert np.abs(one - framed).max() <= 1
    # no phase jump: second differences stay at the smooth-signal bound
    bound = tone.DEFAULT_AMPLITUDE * sum((2 * math.pi * f / 8000) ** 2 for f in (350, 440))
    assert np.abs(np.diff(framed, 2)).max() <= bound + 2


def test_tone_cadence_once_and_repeat() -> None:
    frames = [f for f, _ in zip(tone.tone_frames("!350+440/100,!0/100,440/200,0/200"),
                                    range(40))]
    power = [tone.goertzel(f, 440) for f in frames]
    on = [p > 1e5 for p in power]
    # 100 ms dial, 100 ms silence, then 200 on / 200 off forever
    assert on[:10] == [True] * 5 + [False] * 5
    assert on[10:30] == [True] * 10 + [False] * 10
    assert on[30:40] == [True] * 10
    # the first part has 350 Hz too, the repeating part only leakage from 440 Hz
    assert tone.goertzel(frames[1], 350) > 1e5
    assert tone.goertzel(frames[12], 350) < tone.goertzel(frames[12], 440) / 50
    once = list(tone.tone_frames("!1000/50"))
    assert len(once) == 3 and to_array(once[-1])[80:].tolist() == [0] * 80


def test_tone_parse() -> None:
    parts = tone.parse_tone("!350+440/100,!0/100,425*33")
    assert parts[0] == tone.TonePart((350.0, 440.0), 100, True, False)
    assert parts[2].modulate and parts[2].duration_ms is None
    with pytest.raises(tone.ToneError):
        tone.parse_tone("350+/100")


def test_milliwatt() -> None:
    mw = tone.Milliwatt()
    data = b"".join(mw.read(160) for _ in range(25))
    assert abs(tone.dominant_frequency(data) - 1004) < 2
    assert np.abs(to_array(data)).max() == pytest.approx(tone.MILLIWATT_AMPLITUDE, abs=2)
    old = tone.Milliwatt("o")
    assert old.read_ulaw(3) + old.read_ulaw(13) == (tone.DIGITAL_MILLIWATT * 2)
    assert abs(tone.dominant_frequency(old.read(4000)) - 1000) < 2
    with pytest.raises(tone.ToneError):
        mw.read_ulaw(8)


def test_goertzel_and_dominant_on_silence_and_arrays() -> None:
    assert tone.goertzel(b"", 440) == 0.0
    assert tone.goertzel(bytes(320), 440) == 0.0
    arr = 1000 * np.sin(2 * np.pi * 2000 * np.arange(800) / 8000)
    assert abs(tone.dominant_frequency(arr) - 2000) < 1
