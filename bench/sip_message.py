"""Micro-benchmark of the SIP message layer on the benchmark call's messages (issue 14).

    taskset -c 1 .venv/bin/python bench/sip_message.py [--number N] [--repeat R] [--against SRC]

Prints µs of CPU per operation: the minimum over R repeats (default 7) of timeit runs
of N operations, timed with the thread's CPU clock so that time spent preempted on a
shared machine does not count.

- parse: ``parse_message`` of the datagrams hookflash receives in a SIPp call
  (uac -> hookflash -> uas): INVITE, ACK and BYE as the SIPp uac sends them, 180 and
  200 as the SIPp uas answers hookflash's INVITE, 200 to hookflash's BYE;
- parse+views: the same plus the views the call path reads of every message (top Via,
  branch, Call-ID, From/To tags, CSeq);
- build_response + bytes: 100, 180 and 200 (with SDP) to the INVITE as ``stack.reply``
  builds them, and a 200 to the BYE;
- in-dialog request + bytes: the ACK for a 2xx and a BYE from a ``Dialog``.

Each operation cycles through 64 variants of its message (other Call-ID, tags and
branch, as successive calls have).

``--against SRC`` also times the modules of another source tree (a baseline), the two
interleaved repeat by repeat, and prints both with the change, e.g.::

    git archive <commit> src | tar -x -C /tmp/baseline
    taskset -c 1 .venv/bin/python bench/sip_message.py --against /tmp/baseline/src
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import hookflash.sip.dialog as dialog_now
import hookflash.sip.message as message_now

REPEAT = 7  # --repeat: more on a busy machine (the minimum is what counts)
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


def _views(msg: Any) -> None:
    _ = msg.top_via, msg.branch, msg.call_id, msg.from_addr.tag, msg.to_addr.tag, msg.cseq


def operations(message: ModuleType, dialog: ModuleType) -> list[tuple[str, Callable[[], object]]]:
    """(label, one operation) of the benchmark on the given hookflash.sip.message and
    hookflash.sip.dialog modules (the working tree's or a baseline's)."""
    parse_message = message.parse_message
    build_response = dialog.build_response
    ops: list[tuple[str, Callable[[], object]]] = []
    grams = datagrams()
    for name, data in grams.items():
        ops.append((f"parse {name}", cycle([lambda d=d: parse_message(d) for d in data])))
    for name, data in grams.items():
        ops.append((f"parse+views {name}", cycle([lambda d=d: _views(parse_message(d)) for d in data])))

    invites = [parse_message(d) for d in grams["INVITE"]]
    byes = [parse_message(d) for d in grams["BYE"]]
    for msg in invites + byes:
        _views(msg)  # as the transaction layer has by then
    server = [("Server", "hookflash")]
    contact = [("Contact", f"<sip:1000@{PBX}>")]
    sdp = [("Content-Type", "application/sdp")]
    cases: list[tuple[str, Callable[[Any], object]]] = [
        ("100", lambda r: bytes(build_response(r, 100))),
        ("180", lambda r: bytes(build_response(r, 180, to_tag="f00dfeed0001", headers=server + contact))),
        ("200 SDP", lambda r: bytes(build_response(
            r, 200, to_tag="f00dfeed0001", headers=server + contact + sdp, body=SDP))),
    ]
    for name, fn in cases:
        ops.append((f"build_response+bytes {name} INVITE", cycle([lambda r=r, fn=fn: fn(r) for r in invites])))
    ops.append(("build_response+bytes 200 BYE",
                cycle([lambda r=r: bytes(build_response(r, 200, headers=server)) for r in byes])))

    # UAC-side dialogs of hookflash's INVITE to the uas, as after its 200
    dialogs = []
    for n, data in enumerate(grams["200 INVITE"], 1):
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
        resp = parse_message(data)
        dialogs.append((dialog.Dialog.from_uac(invite, resp, f"<sip:sipp@{PBX}>"), resp))
    via = f"SIP/2.0/UDP {PBX};branch=z9hG4bK0011223344556677aabb;rport"
    ops.append(("in-dialog ACK + bytes", cycle([lambda d=d, r=r: bytes(d.create_ack(r, via=via)) for d, r in dialogs])))
    ops.append(("in-dialog BYE + bytes", cycle([lambda d=d: bytes(d.create_request("BYE", via=via)) for d, _ in dialogs])))
    return ops


def load_modules(src: Path) -> tuple[ModuleType, ModuleType]:
    """hookflash.sip.message and .dialog imported from the tree ``src``, apart from
    (and without disturbing) the ones already imported."""
    saved = {k: v for k, v in sys.modules.items() if k == "hookflash" or k.startswith("hookflash.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(src))
    try:
        message = importlib.import_module("hookflash.sip.message")
        dialog = importlib.import_module("hookflash.sip.dialog")
    finally:
        sys.path.remove(str(src))
        for k in [k for k in sys.modules if k == "hookflash" or k.startswith("hookflash.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return message, dialog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=500, help="operations per repeat")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="repeats (the minimum is reported)")
    ap.add_argument("--against", type=Path, metavar="SRC",
                    help="also time the modules of this src directory (e.g. a `git archive` of the "
                         "baseline), interleaved repeat by repeat with the working tree's")
    args = ap.parse_args()
    sides = [("now", operations(message_now, dialog_now))]
    if args.against is not None:
        sides.insert(0, ("before", operations(*load_modules(args.against.resolve()))))
    best = [[float("inf")] * len(sides[0][1]) for _ in sides]
    for _ in range(args.repeat):  # interleaved: a busy spell of the machine hits both sides
        for side, (_, ops) in enumerate(sides):
            for i, (_, fn) in enumerate(ops):
                fn()  # warm: the first call fills the caches a running server has filled long ago
                t = timeit.timeit(fn, number=args.number, timer=time.thread_time) / args.number * 1e6
                best[side][i] = min(best[side][i], t)
    labels = [label for label, _ in sides[0][1]]
    rows = [(label, [b[i] for b in best]) for i, label in enumerate(labels)]
    for prefix, total in (("parse ", "parse, the 6 of a call"), ("parse+views ", "parse+views, the 6"),
                          ("build_response+bytes ", "build_response+bytes, the 4")):
        last = max(i for i, (label, _) in enumerate(rows) if label.startswith(prefix))
        sums = [sum(v[s] for label, v in rows if label.startswith(prefix)) for s in range(len(sides))]
        rows.insert(last + 1, (total, sums))
    width = max(len(label) for label, _ in rows)
    print(f"{'µs of CPU per operation':<{width}}  " + "  ".join(f"{name:>8}" for name, _ in sides)
          + ("    change" if len(sides) > 1 else ""))
    for label, values in rows:
        change = f"  {100 * (values[1] / values[0] - 1):+6.0f} %" if len(values) > 1 else ""
        print(f"{label:<{width}}  " + "  ".join(f"{v:8.2f}" for v in values) + change)


if __name__ == "__main__":
    main()
