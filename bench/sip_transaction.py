"""In-process micro-benchmark of the SIP transaction layer (issue 14): the messages of
one proxied call driven through the sans-IO :class:`TransactionLayer`, no sockets.

    taskset -c 1 .venv/bin/python bench/sip_transaction.py [--calls 2000] [--repeat 7]
                                                          [--endpoint] [--profile]

Per call, as hookflash sees a SIPp uac -> hookflash -> SIPp uas call through Dial:
A's INVITE (server INVITE transaction) answered 100/180/200, the INVITE to B (client
INVITE transaction) answered 100/180/200, A's ACK for the 2xx, A's BYE (server
non-INVITE) answered 200, a BYE to B (client non-INVITE) answered 200; the driver asks
for the next deadline after each step, as the endpoint does, and Timers L, J and K
fire before the next call. Every call uses fresh parsed messages (built before the
timing, their Via and CSeq views already read, so message parsing is not counted).

Prints µs per call, the minimum of ``--repeat`` runs (timeit style; use ``taskset``).
``--endpoint`` drives the same calls through :class:`SipEndpoint` with a stub clock
and transport instead (adds execute/send/handler bookkeeping and the serialisation
of each message sent).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hookflash.sip.dialog import build_response
from hookflash.sip.message import SipRequest, SipResponse, parse_message
from hookflash.sip.transaction import TransactionLayer

A = ("127.0.0.1", 5061)  # SIPp uac
B = ("127.0.0.1", 5062)  # SIPp uas
CALL_GAP = 100.0  # seconds of fake time between calls: every timer of the last call is due


def _request(method: str, uri: str, via: str, frm: str, to: str, call_id: str, cseq: int,
             body: bytes = b"") -> SipRequest:
    text = (f"{method} {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {frm}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:x@127.0.0.1:5061>\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    msg = parse_message(text)
    assert isinstance(msg, SipRequest)
    msg.top_via, msg.cseq  # noqa: B018 - parsed before the timing
    return msg


def _response(req: SipRequest, status: int, tag: str | None) -> SipResponse:
    """A response as it arrives from the wire (parsed, not built)."""
    msg = parse_message(bytes(build_response(req, status, to_tag=tag)))
    assert isinstance(msg, SipResponse)
    msg.top_via, msg.cseq  # noqa: B018
    return msg


def make_call(i: int) -> dict[str, Any]:
    """The messages of call ``i``; responses that hookflash sends are built, as the TU
    would build them (dialog.build_response)."""
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    a_from = f"sipp <sip:sipp@127.0.0.1:5061>;tag={i}a"
    a_to = "<sip:1000@127.0.0.1:5060>"
    a_cid = f"{i}-a@127.0.0.1"
    inv_a = _request("INVITE", "sip:1000@127.0.0.1:5060",
                     f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-0", a_from, a_to, a_cid, 1, sdp)
    ack_a = _request("ACK", "sip:1000@127.0.0.1:5060",
                     f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-5", a_from, a_to + ";tag=hfA",
                     a_cid, 1)
    bye_a = _request("BYE", "sip:1000@127.0.0.1:5060",
                     f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-6", a_from, a_to + ";tag=hfA",
                     a_cid, 2)
    b_from = f"<sip:sipp@127.0.0.1:5060>;tag={i}hfB"
    b_to = "<sip:2000@127.0.0.1:5062>"
    b_cid = f"{i}-b@127.0.0.1"
    inv_b = _request("INVITE", "sip:2000@127.0.0.1:5062",
                     f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{i}hfb1;rport", b_from, b_to, b_cid, 1, sdp)
    bye_b = _request("BYE", "sip:2000@127.0.0.1:5062",
                     f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{i}hfb2;rport", b_from, b_to + ";tag=uas",
                     b_cid, 2)
    return {
        "inv_a": inv_a, "ack_a": ack_a, "bye_a": bye_a, "inv_b": inv_b, "bye_b": bye_b,
        "a100": build_response(inv_a, 100), "a180": build_response(inv_a, 180, to_tag="hfA"),
        "a200": build_response(inv_a, 200, to_tag="hfA", body=sdp),
        "bye_a200": build_response(bye_a, 200, to_tag="hfA"),
        "b100": _response(inv_b, 100, None), "b180": _response(inv_b, 180, "uas"),
        "b200": _response(inv_b, 200, "uas"), "bye_b200": _response(bye_b, 200, "uas"),
    }


def run_layer(calls: list[dict[str, Any]]) -> float:
    layer = TransactionLayer(shrink=True)  # as the endpoint makes it
    receive, respond, send_request = layer.receive, layer.respond, layer.send_request
    next_deadline, on_timer = layer.next_deadline, layer.on_timer
    start = time.perf_counter()
    for i, m in enumerate(calls):
        now = i * CALL_GAP
        on_timer(now)  # the last call's L, J and K
        next_deadline()
        receive(m["inv_a"], A, now); next_deadline()
        respond(m["inv_a"], m["a100"], now); next_deadline()
        send_request(m["inv_b"], B, now, reliable=False); next_deadline()
        receive(m["b100"], B, now + 0.001); next_deadline()
        receive(m["b180"], B, now + 0.002); next_deadline()
        respond(m["inv_a"], m["a180"], now + 0.002); next_deadline()
        receive(m["b200"], B, now + 0.003); next_deadline()
        respond(m["inv_a"], m["a200"], now + 0.003); next_deadline()
        receive(m["ack_a"], A, now + 0.004); next_deadline()
        receive(m["bye_a"], A, now + 0.010); next_deadline()
        respond(m["bye_a"], m["bye_a200"], now + 0.010); next_deadline()
        send_request(m["bye_b"], B, now + 0.010, reliable=False); next_deadline()
        receive(m["bye_b200"], B, now + 0.011); next_deadline()
    elapsed = time.perf_counter() - start
    assert len(layer) == 3, len(layer)  # the last call's L, J and K still pending
    return elapsed


class _Clock:
    """The part of an event loop the endpoint uses, on a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> Any:
        return _Handle()


class _Handle:
    def cancel(self) -> None:
        pass


class _Transport:
    def sendto(self, data: bytes, addr: Any) -> None:
        pass


class _User:
    def on_request(self, request: SipRequest, txn: Any, source: Any) -> None:
        pass

    def on_stray(self, message: Any, source: Any) -> None:
        pass


def run_endpoint(calls: list[dict[str, Any]]) -> float:
    from hookflash.sip.endpoint import SipEndpoint

    clock = _Clock()
    ep = SipEndpoint.__new__(SipEndpoint)
    SipEndpoint.__init__(ep, _User())  # type: ignore[arg-type]
    ep.loop = clock  # type: ignore[assignment]
    ep.transport = _Transport()  # type: ignore[assignment]
    layer = ep.layer
    execute, respond, request = ep.execute, ep.respond, ep.request

    def handler(response: SipResponse | None) -> None:
        pass

    def rx(msg: Any, addr: Any) -> None:  # datagram_received after the parse
        execute(layer.receive(msg, addr, clock.now))

    start = time.perf_counter()
    for i, m in enumerate(calls):
        base = clock.now = i * CALL_GAP
        execute(layer.on_timer(base))  # _fire
        rx(m["inv_a"], A)
        respond(m["inv_a"], m["a100"])
        request(m["inv_b"], B, handler)
        clock.now = base + 0.001
        rx(m["b100"], B)
        clock.now = base + 0.002
        rx(m["b180"], B)
        respond(m["inv_a"], m["a180"])
        clock.now = base + 0.003
        rx(m["b200"], B)
        respond(m["inv_a"], m["a200"])
        clock.now = base + 0.004
        rx(m["ack_a"], A)
        clock.now = base + 0.010
        rx(m["bye_a"], A)
        respond(m["bye_a"], m["bye_a200"])
        request(m["bye_b"], B, handler)
        clock.now = base + 0.011
        rx(m["bye_b200"], B)
    elapsed = time.perf_counter() - start
    assert len(layer) == 3 and not ep.handlers, (len(layer), ep.handlers)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--endpoint", action="store_true", help="through SipEndpoint (stub I/O)")
    ap.add_argument("--profile", action="store_true", help="cProfile one run instead")
    args = ap.parse_args()
    run = run_endpoint if args.endpoint else run_layer
    if args.profile:
        calls = [make_call(i) for i in range(args.calls)]
        prof = cProfile.Profile()
        prof.runcall(run, calls)
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
        return
    best = float("inf")
    for _ in range(args.repeat):
        calls = [make_call(i) for i in range(args.calls)]  # fresh messages every run
        gc.collect()
        gc.disable()  # as timeit does
        try:
            best = min(best, run(calls))
        finally:
            gc.enable()
    what = "endpoint (stub I/O, incl. serialisation)" if args.endpoint else "transaction layer"
    print(f"{what}: {best / args.calls * 1e6:.1f} µs per call "
          f"(min of {args.repeat} x {args.calls} calls)")


if __name__ == "__main__":
    main()
