"""Why CPU per call falls as the call rate rises, for hookflash and Asterisk alike.

The same work costs more CPU when the processor was idle just before it: caches, TLB
and branch predictors are cold, and a virtual CPU that halts may come back slower.
At a low call rate every SIP datagram wakes an idle process; at a high rate one
wake-up finds several datagrams and the caches stay warm.

This bench times one fixed piece of work with idle gaps of 0 to 10 ms before it,
pinned to one core, by thread CPU time (the gap itself is not counted):

* hookflash: parse a SIPp INVITE and build the 180 to it (pure Python, our code);
* reference: ``json.loads`` of a small document and ``zlib.crc32`` of 4 KiB (C code).

    .venv/bin/python bench/cold_cpu.py [--cpu 0] [--n 400]

It prints µs per unit and the ratio to the back-to-back figure. If the reference
slows down as much as hookflash does, the effect belongs to the machine, not to the
code: no change to hookflash can make CPU per call flat across rates there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hookflash.sip.dialog import build_response  # noqa: E402
from hookflash.sip.message import parse_message  # noqa: E402

INVITE = (b"INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0\r\n"
          b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1SIPpTag001\r\n"
          b"To: sut <sip:100@127.0.0.1:5060>\r\nCall-ID: 1-1@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
          b"Contact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\nSubject: Performance Test\r\n"
          b"Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
DOC = json.dumps({"calls": [{"id": i, "from": f"sip:{i}@example.com", "state": "up"} for i in range(12)]})
BLOB = os.urandom(4096)


def hookflash_unit() -> None:
    msg = parse_message(INVITE)
    bytes(build_response(msg, 180, to_tag="abc"))  # type: ignore[arg-type]


def c_unit() -> None:
    json.loads(DOC)
    zlib.crc32(BLOB)


def timed(unit, gap: float, n: int) -> float:
    """Mean thread CPU µs of ``unit`` run 5 times after each idle gap of ``gap`` s."""
    total = 0.0
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t = time.thread_time()
        for _ in range(5):
            unit()
        total += time.thread_time() - t
    return total / n / 5 * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (default 0)")
    parser.add_argument("--n", type=int, default=400, help="samples per gap (default 400)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.machine())
    print(f"machine: {model}, {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}; pinned to core {args.cpu}")
    gaps = (0.0, 0.0005, 0.002, 0.01)
    for label, unit in (("hookflash parse INVITE + build 180", hookflash_unit),
                        ("reference json.loads + crc32 (C)", c_unit)):
        timed(unit, 0, 200)  # warm up
        base = None
        cells = []
        for gap in gaps:
            us = min(timed(unit, gap, args.n) for _ in range(3))
            base = base or us
            cells.append(f"gap {gap * 1000:4.1f} ms {us:6.1f} µs ({us / base:.2f}x)")
        print(f"{label:<36} " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
