"""Media hot-path timings: µs per call for the per-packet and per-frame work.

    .venv/bin/python bench/media_core.py [--number N]

Prints, for one 20 ms frame (160 samples / 160 payload bytes):
rtp_header and rewrite (relay fast path), RtpPacket parse/bytes, ulaw and alaw
encode/decode with the active backend and with the numpy tables, ulaw->alaw
translate, G.722 encode/decode with 8 <-> 16 kHz resampling, and a 20 ms
350+440 tone frame. Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np

from hookflash.media.codecs import g711
from hookflash.media.codecs.g722 import G722
from hookflash.media.rtp import RtpPacket, rewrite, rtp_header
from hookflash.media.tone import SineGenerator


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    n = parser.parse_args().number
    slin = (8000 * np.sin(np.arange(160) * 2 * np.pi / 8)).astype("<i2").tobytes()
    ulaw = g711.ulaw_encode(slin)
    packet = bytes(RtpPacket(0, 1, 160, 0x1234, ulaw))
    g722, payload = G722(), G722().encode(slin)
    gen = SineGenerator([350, 440])
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("rtp_header", lambda: rtp_header(packet), n),
        ("rewrite", lambda: rewrite(packet, 2, 320, 0x5678), n),
        ("RtpPacket.parse", lambda: RtpPacket.parse(packet), n // 4),
        ("bytes(RtpPacket)", lambda: bytes(RtpPacket(0, 1, 160, 0x1234, ulaw)), n // 4),
        (f"ulaw encode 160 ({g711.BACKEND})", lambda: g711.ulaw_encode(slin), n),
        (f"ulaw decode 160 ({g711.BACKEND})", lambda: g711.ulaw_decode(ulaw), n),
        (f"alaw encode 160 ({g711.BACKEND})", lambda: g711.alaw_encode(slin), n),
        ("ulaw encode 160 (numpy)", lambda: g711.numpy_ulaw_encode(slin), n // 4),
        ("ulaw decode 160 (numpy)", lambda: g711.numpy_ulaw_decode(ulaw), n // 4),
        ("ulaw->alaw 160 (translate)", lambda: g711.ulaw_to_alaw(ulaw), n),
        ("g722 encode 20 ms (+upsample)", lambda: g722.encode(slin), n // 100),
        ("g722 decode 20 ms (+downsample)", lambda: g722.decode(payload), n // 100),
        ("tone 350+440 20 ms", lambda: gen.read(160), n // 50),
    ]
    width = max(len(name) for name, _, _ in cases)
    for name, fn, number in cases:
        print(f"{name:<{width}}  {per_call_us(fn, max(number, 100)):8.2f} µs")


if __name__ == "__main__":
    main()
