"""Per-call SDP and RTP session set-up costs, in process: µs per operation.

    taskset -c 1 .venv/bin/python bench/sdp.py [--number N] [--codecs ulaw,alaw]

Mirrors what src/hookflash/sip/call.py does for one call of the SIPp benchmark
(uac -> hookflash -> uas through Dial(SIP/...)):

* incoming leg: ``SessionDescription.parse`` of the uac's offer, ``SdpSession.answer``
  and ``str(answer.sdp).encode()`` (``start_incoming``);
* outgoing leg: ``SdpSession.offer`` and ``str(offer).encode()`` (``start_outgoing``,
  ``_send_invite``), then ``accept_answer(offer, SessionDescription.parse(200 body))``
  (``_answer_sdp``);
* the same per call with the bodies taken from ``SdpSession.body`` (rendered once, by
  the version check) instead of ``str(sdp).encode()``;
* ``RtpSession.open`` + ``close`` on 127.0.0.1 under uvloop (as hookflash runs), two per
  call.

Every figure is the minimum over ``--repeat`` (7) timed batches of ``--batch-ms`` (1 ms)
each: on a shared machine only the minimum means anything, and a batch shorter than a
scheduler time slice has a fair chance of running alone (raise ``--repeat`` when another
process shares the core). Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hookflash.media.rtpsession import PortAllocator, RtpSession
from hookflash.media.sdp import SdpSession, SessionDescription, accept_answer

REPEAT = 7
BATCH_S = 1e-3

# SIPp's built-in uac scenario offer and uas scenario answer (same body, its [media_port])
SIPP_OFFER = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
              b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
              b"a=rtpmap:0 PCMU/8000\r\n")
SIPP_ANSWER = SIPP_OFFER.replace(b"audio 6000", b"audio 6002")
# a desk phone's offer (baresip-like: several codecs, telephone-event, extra attributes)
PHONE_OFFER = (b"v=0\r\no=- 1894532455 1186416018 IN IP4 192.0.2.20\r\ns=-\r\n"
               b"c=IN IP4 192.0.2.20\r\nt=0 0\r\na=tool:baresip 3.10.1\r\n"
               b"m=audio 10004 RTP/AVP 9 0 8 101\r\nb=AS:80\r\na=rtpmap:9 G722/8000\r\n"
               b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
               b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
               b"a=label:1\r\na=rtcp-rsize\r\na=ssrc:2939219373 cname:6ed4d6a8-1f3d-4d1f\r\n"
               b"a=ptime:20\r\n")


def per_op_us(fn: Callable[[], object], repeat: int = REPEAT, batch_s: float = BATCH_S) -> float:
    one = min(timeit.repeat(fn, number=1, repeat=20))  # warm up and size the batch
    number = max(1, int(batch_s / max(one, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def sdp_cases(codecs: list[str]) -> list[tuple[str, Callable[[], object]]]:
    def incoming(body: bytes) -> Callable[[], object]:
        def leg() -> bytes:
            sdp = SdpSession("127.0.0.1", 30000)
            answer = sdp.answer(SessionDescription.parse(body), codecs)
            return str(answer.sdp).encode()
        return leg

    def outgoing_offer() -> bytes:
        sdp = SdpSession("127.0.0.1", 30002)
        return str(sdp.offer(codecs)).encode()

    def outgoing() -> object:
        sdp = SdpSession("127.0.0.1", 30002)
        offer = sdp.offer(codecs)
        str(offer).encode()
        return accept_answer(offer, SessionDescription.parse(SIPP_ANSWER))

    def per_call() -> object:
        incoming(SIPP_OFFER)()
        return outgoing()

    def per_call_body() -> object:  # call.py sending SdpSession.body instead of str(...)
        sdp = SdpSession("127.0.0.1", 30000)
        sdp.answer(SessionDescription.parse(SIPP_OFFER), codecs)
        answer_body = sdp.body
        sdp = SdpSession("127.0.0.1", 30002)
        offer = sdp.offer(codecs)
        offer_body = sdp.body
        return answer_body, offer_body, accept_answer(offer, SessionDescription.parse(SIPP_ANSWER))

    return [
        ("parse SIPp offer", lambda: SessionDescription.parse(SIPP_OFFER)),
        ("parse phone offer", lambda: SessionDescription.parse(PHONE_OFFER)),
        ("in: parse+answer+str (SIPp)", incoming(SIPP_OFFER)),
        ("in: parse+answer+str (phone)", incoming(PHONE_OFFER)),
        ("out: offer+str", outgoing_offer),
        ("out: offer+str+parse+accept_answer", outgoing),
        ("SDP per call (SIPp: in + out)", per_call),
        ("  the same with SdpSession.body", per_call_body),
    ]


def rtp_open_close_us(repeat: int = REPEAT, batch_s: float = BATCH_S) -> float:
    """µs for RtpSession.open + close (the transport's close callback run too)."""
    async def cycle(ports: PortAllocator, number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            session = await RtpSession.open("127.0.0.1", ports)
            session.close()
        await asyncio.sleep(0)  # connection_lost callbacks
        return time.perf_counter() - start

    async def main() -> float:
        ports = PortAllocator(40000, 49999)
        one = min([await cycle(ports, 1) for _ in range(20)])
        number = max(1, int(batch_s / one))
        return min([await cycle(ports, number) for _ in range(repeat)]) / number * 1e6

    try:
        import uvloop
    except ImportError:
        print("(uvloop missing: asyncio's own loop)")
        return asyncio.run(main())
    return uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=REPEAT, help="batches per figure (min)")
    parser.add_argument("--batch-ms", type=float, default=BATCH_S * 1e3)
    parser.add_argument("--codecs", default="ulaw", help="allow= list (the SIPp bench: ulaw)")
    args = parser.parse_args()
    repeat, batch_s = args.repeat, args.batch_ms / 1e3
    codecs = args.codecs.split(",")
    cases = sdp_cases(codecs)
    width = max(len(name) for name, _ in cases)
    for name, fn in cases:
        print(f"{name:<{width}}  {per_op_us(fn, repeat, batch_s):8.2f} µs")
    print(f"{'RtpSession.open+close':<{width}}  {rtp_open_close_us(repeat, batch_s):8.2f} µs")


if __name__ == "__main__":
    main()
