"""Micro-benchmark of the SIP message layer on the benchmark call's messages (issue 14).

    taskset -c 1 .venv/bin/python bench/sip_message.py [--number N]

Prints µs of CPU per operation (min of 7 repeats of timeit, timed with the thread's
CPU clock so that time spent preempted on a shared machine does not count):

- parse: ``parse_message`` of the datagrams hookflash receives in a SIPp call
  (uac -> hookflash -> uas): INVITE, ACK and BYE as the SIPp uac sends them, 180 and
  200 as the SIPp uas answers hookflash's INVITE, 200 to hookflash's BYE;
- parse+views: the same plus the views the call path reads of every message (top Via,
  branch, Call-ID, From/To tags, CSeq);
- build_response + bytes: 100, 180 and 200 (with SDP) to the INVITE as ``stack.reply``
  builds them, and a 200 to the BYE;
- in-dialog request + bytes: the ACK for a 2xx and a BYE from a ``Dialog``.

Each operation cycles through 64 variants of its message (other Call-ID, tags and
branch, as successive calls have), so no cache keyed on a whole value can flatter it.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hookflash.sip.dialog import Dialog, build_response  # noqa: E402
from hookflash.sip.message import SipRequest, SipResponse, parse_message  # noqa: E402

REPEAT = 7
VARIANTS = 64

SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
       b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
UAC = "127.0.0.1:5061"  # SIPp uac
PBX = "127.0.0.1:5060"  # hookflash
UAS = "127.0.0.1:5062"  # SIPp uas


def _msg(lines: list[str], body: bytes = b"") -> bytes:
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body


def uac_request(method: str, n: int, cseq: int, to_tag: str = "") -> bytes:
    """A request of the SIPp uac scenario (call number ``n``)."""
    sdp = method == "INVITE"
    return _msg([
        f"{method} sip:1000@{PBX} SIP/2.0",
        f"Via: SIP/2.0/UDP {UAC};branch=z9hG4bK-4242-{n}-{cseq}{method}",
        f"From: sipp <sip:sipp@{UAC}>;tag=4242SIPpTag00{n}",
        f"To: 1000 <sip:1000@{PBX}>{to_tag}",
        f"Call-ID: {n}-4242@127.0.0.1",
        f"CSeq: {cseq} {method}",
        f"Contact: sip:sipp@{UAC}",
        "Max-Forwards: 70",
        "Subject: Performance Test",
        *(["Content-Type: application/sdp"] if sdp else []),
    ], SDP if sdp else b"")


def uas_response(status: str, method: str, n: int, cseq: int) -> bytes:
    """The SIPp uas answer to a request hookflash sent (its Via, From, To echoed)."""
    sdp = status == "200 OK" and method == "INVITE"
    return _msg([
        f"SIP/2.0 {status}",
        f"Via: SIP/2.0/UDP {PBX};branch=z9hG4bK{n:08x}aabbccdd{cseq:04x};rport",
        f'From: "sipp" <sip:sipp@{PBX}>;tag=a1b2c3{n:06x}',
        f"To: <sip:1000@{UAS}>;tag=4243SIPpTag01{n}",
        f"Call-ID: {n:024x}@127.0.0.1",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{UAS};transport=UDP>",
        *(["Content-Type: application/sdp"] if sdp else []),
    ], SDP if sdp else b"")


def datagrams() -> dict[str, list[bytes]]:
    ns = range(1, VARIANTS + 1)
    tag = ";tag=f00dfeed0001"
    return {
        "INVITE": [uac_request("INVITE", n, 1) for n in ns],
        "180": [uas_response("180 Ringing", "INVITE", n, 1) for n in ns],
        "200 INVITE": [uas_response("200 OK", "INVITE", n, 1) for n in ns],
        "ACK": [uac_request("ACK", n, 1, tag) for n in ns],
        "BYE": [uac_request("BYE", n, 2, tag) for n in ns],
        "200 BYE": [uas_response("200 OK", "BYE", n, 2) for n in ns],
    }


def cycle(items: list[Callable[[], object]]) -> Callable[[], object]:
    """One call runs the next item (round robin)."""
    state = [0]
    count = len(items)

    def run() -> object:
        i = state[0]
        state[0] = (i + 1) % count
        return items[i]()

    return run


def per_op(fn: Callable[[], object], number: int) -> float:
    # CPU time of this thread: the machine is shared, time spent preempted is not ours
    return min(timeit.repeat(fn, number=number, repeat=REPEAT, timer=time.thread_time)) / number * 1e6


def _views(msg: SipRequest | SipResponse) -> None:
    _ = msg.top_via, msg.branch, msg.call_id, msg.from_addr.tag, msg.to_addr.tag, msg.cseq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=500, help="operations per repeat")
    args = ap.parse_args()
    number = args.number
    rows: list[tuple[str, float]] = []
    grams = datagrams()

    for name, data in grams.items():
        rows.append((f"parse {name}", per_op(cycle([lambda d=d: parse_message(d) for d in data]), number)))
    total = sum(t for _, t in rows)
    rows.append(("parse, the 6 of a call", total))
    for name, data in grams.items():
        rows.append((f"parse+views {name}", per_op(
            cycle([lambda d=d: _views(parse_message(d)) for d in data]), number)))

    invites = [parse_message(d) for d in grams["INVITE"]]
    byes = [parse_message(d) for d in grams["BYE"]]
    for msg in invites + byes:
        _views(msg)  # as the transaction layer has by then
    assert all(isinstance(m, SipRequest) for m in invites + byes)
    server = [("Server", "hookflash")]
    contact = [("Contact", f"<sip:1000@{PBX}>")]
    sdp = [("Content-Type", "application/sdp")]
    reqs: list[SipRequest] = invites  # type: ignore[assignment]
    cases: list[tuple[str, Callable[[SipRequest], object]]] = [
        ("100", lambda r: bytes(build_response(r, 100))),
        ("180", lambda r: bytes(build_response(r, 180, to_tag="f00dfeed0001", headers=server + contact))),
        ("200 SDP", lambda r: bytes(build_response(
            r, 200, to_tag="f00dfeed0001", headers=server + contact + sdp, body=SDP))),
    ]
    build_total = 0.0
    for name, fn in cases:
        t = per_op(cycle([lambda r=r, fn=fn: fn(r) for r in reqs]), number)
        build_total += t
        rows.append((f"build_response+bytes {name} INVITE", t))
    bye_reqs: list[SipRequest] = byes  # type: ignore[assignment]
    t = per_op(cycle([lambda r=r: bytes(build_response(r, 200, headers=server)) for r in bye_reqs]), number)
    build_total += t
    rows.append(("build_response+bytes 200 BYE", t))
    rows.append(("build_response+bytes, the 4", build_total))

    # UAC-side dialogs of hookflash's INVITE to the uas, as after its 200
    ok = [parse_message(d) for d in grams["200 INVITE"]]
    dialogs = []
    for n, resp in enumerate(ok, 1):
        invite = parse_message(_msg([
            f"INVITE sip:1000@{UAS} SIP/2.0",
            f"Via: SIP/2.0/UDP {PBX};branch=z9hG4bK{n:08x}aabbccdd0001;rport",
            "Max-Forwards: 70",
            f'From: "sipp" <sip:sipp@{PBX}>;tag=a1b2c3{n:06x}',
            f"To: <sip:1000@{UAS}>",
            f"Call-ID: {n:024x}@127.0.0.1",
            "CSeq: 1 INVITE",
            "User-Agent: hookflash",
            f"Contact: <sip:sipp@{PBX}>",
        ]))
        assert isinstance(invite, SipRequest) and isinstance(resp, SipResponse)
        dialogs.append((Dialog.from_uac(invite, resp, f"<sip:sipp@{PBX}>"), resp))
    via = f"SIP/2.0/UDP {PBX};branch=z9hG4bK0011223344556677aabb;rport"
    t_ack = per_op(cycle([lambda d=d, r=r: bytes(d.create_ack(r, via=via)) for d, r in dialogs]), number)
    t_bye = per_op(cycle([lambda d=d: bytes(d.create_request("BYE", via=via)) for d, _ in dialogs]), number)
    rows.append(("in-dialog ACK + bytes", t_ack))
    rows.append(("in-dialog BYE + bytes", t_bye))

    width = max(len(name) for name, _ in rows)
    for name, t in rows:
        print(f"{name:<{width}}  {t:7.2f} µs")


if __name__ == "__main__":
    main()
