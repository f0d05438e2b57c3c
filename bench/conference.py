"""Conference mixing capacity on this machine (one core, one event loop).

    .venv/bin/python bench/conference.py [--seconds S] [--quick]

1. Mixer alone: CPU per 20 ms tick for N participants (all talking, and 3 talking
   with the rest listening), from ``Mixer.tick`` timed in a loop.
2. Real time, one room: N in-process participants. Each is a real Channel whose
   technology G.711-encodes what the room writes and sends it as an RTP packet over
   UDP to a sink on 127.0.0.1; a feeder task queues one G.711-decoded frame per
   participant every 20 ms, as the RTP receive path does. The room task runs as in
   the server. A tick is *late* when it starts more than 20 ms after its due time.
   Reported: the rooms' mixing time per 20 ms period, the worst tick, late ticks and
   the process CPU; then the largest N with under 1 % late ticks, and the largest with
   that and the process at most 50 % busy (the margin left for SIP signalling, the
   dialplan and everything else on the loop).
3. Real time, many rooms of 3 and of 4: the same, counting participants.

Not included: the kernel's UDP receive path and the asyncio datagram callbacks of
real RTP legs (the feeder stands in for them), so a server with real phones mixes
somewhat fewer. Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np

from hookflash.channels.channel import Channel, ChannelState, ChannelTech, Frame
from hookflash.conference.mixer import Mixer
from hookflash.conference.room import Room
from hookflash.engine.pbx import Pbx
from hookflash.media.codecs.g711 import ulaw_decode, ulaw_encode

PERIOD = 0.020


def tone(freq: float) -> bytes:
    t = np.arange(160) / 8000
    return (4000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


# ---------------------------------------------------------------------- 1. mixer alone
def mixer_tick_us(n: int, talkers: int) -> float:
    mixer = Mixer()
    frames = [tone(200 + 10 * i) for i in range(n)]
    for i in range(n):
        mixer.add(i)

    def one() -> None:
        for i in range(talkers):
            mixer.push(i, frames[i])
        mixer.tick()

    number = max(20, 20000 // max(n, 1))
    return min(timeit.repeat(one, number=number, repeat=3)) / number * 1e6


# ---------------------------------------------------------------------- 2. real time
class RtpOut(ChannelTech):
    """Encodes to G.711 µ-law and sends one RTP packet per frame, as a SIP leg does."""

    tech_name = "Bench"

    def __init__(self, sock: socket.socket, sink: tuple[str, int]) -> None:
        self.sock = sock
        self.sink = sink
        self.seq = 0
        self.ts = 0

    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        header = struct.pack("!BBHII", 0x80, 0, self.seq, self.ts, 0x1234)
        try:
            self.sock.sendto(header + ulaw_encode(frame.payload), self.sink)
        except BlockingIOError:
            pass


async def run_rooms(pbx: Pbx, rooms: int, size: int, seconds: float) -> dict[str, float]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    target = sink.getsockname()
    loop = asyncio.get_running_loop()
    loop.add_reader(sink.fileno(), lambda: _drain(sink))
    all_rooms: list[Room] = []
    chans: list[Channel] = []
    payloads: list[bytes] = []
    for r in range(rooms):
        room = Room(pbx, f"bench{r}", kind="bench")
        all_rooms.append(room)
        for i in range(size):
            chan = Channel(pbx, f"Bench/{r}-{i}", RtpOut(out, target), state=ChannelState.UP)
            chans.append(chan)
            payloads.append(ulaw_encode(tone(300 + 50 * (i % 20))))
            room.join(chan)
    stop = asyncio.Event()

    async def feeder() -> None:  # the RTP receive path: decode, queue
        start, n = loop.time(), 0
        while not stop.is_set():
            for chan, payload in zip(chans, payloads):
                pcm = ulaw_decode(payload)
                chan.queue_frame(Frame("voice", pcm, 160))
            n += 1
            await asyncio.sleep(max(start + n * PERIOD - loop.time(), 0))

    feed = asyncio.ensure_future(feeder())
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    stop.set()
    await feed
    for chan in chans:
        chan.request_hangup()
    await asyncio.sleep(0.1)
    loop.remove_reader(sink.fileno())
    sink.close()
    out.close()
    ticks = sum(r.stats.ticks for r in all_rooms)
    late = sum(r.stats.late for r in all_rooms)
    busy = sum(r.stats.busy for r in all_rooms)
    return {"ticks": ticks, "late_pct": 100.0 * late / max(ticks, 1),
            "tick_ms": 1000 * busy / max(ticks, 1) * rooms,  # all rooms' work per 20 ms period
            "worst_ms": 1000 * max(r.stats.worst for r in all_rooms), "cpu_pct": 100 * cpu / seconds}


def _drain(sock: socket.socket) -> None:
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


def fits(result: dict[str, float], cpu_limit: float) -> bool:
    return result["late_pct"] < 1.0 and result["cpu_pct"] < cpu_limit


async def search(pbx: Pbx, size_of: Any, steps: list[int], seconds: float, label: str) -> tuple[int, int]:
    """(largest count with <1 % late ticks, largest with that and the loop at most half busy)."""
    best, margin = 0, 0
    for step in steps:
        rooms, size = size_of(step)
        result = await run_rooms(pbx, rooms, size, seconds)
        ok = fits(result, 95.0)
        print(f"  {label}={step:<5d} participants={rooms * size:<5d} mixing/period={result['tick_ms']:6.2f} ms "
              f"worst tick={result['worst_ms']:6.2f} ms late={result['late_pct']:5.2f} % "
              f"process CPU={result['cpu_pct']:5.1f} % {'ok' if ok else 'OVER'}", flush=True)
        if not ok:
            break
        best = rooms * size
        if fits(result, 50.0):
            margin = rooms * size
    return best, margin


async def main_async(args: argparse.Namespace) -> None:
    print("1. Mixer.tick alone (µs per 20 ms tick)")
    print(f"  {'N':>5} {'all talking':>12} {'3 talking':>10}")
    for n in (3, 4, 10, 25, 50, 100, 200, 400, 800):
        print(f"  {n:5d} {mixer_tick_us(n, n):12.1f} {mixer_tick_us(n, min(3, n)):10.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        pbx = Pbx(state_dir=Path(tmp), verbose=0)
        seconds = args.seconds
        one_room = [10, 50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1500, 2000]
        if args.quick:
            one_room = [10, 50, 100, 200]
        print(f"2. One room, real time ({seconds:g} s per step; ok = <1 % late ticks, loop not saturated)")
        best_one = await search(pbx, lambda n: (1, n), one_room, seconds, "N")
        results = {"one room": best_one}
        for size in (3, 4):
            print(f"3. Rooms of {size}, real time")
            steps = [10, 50, 100, 150, 200, 250, 300, 400, 500] if not args.quick else [5, 20, 50]
            results[f"rooms of {size}"] = await search(pbx, lambda k, s=size: (k, s), steps, seconds, "rooms")
    print("Largest participant counts mixed in real time (one core): <1 % late ticks / same with the loop "
          "at most 50 % busy")
    for label, (n, margin) in results.items():
        print(f"  {label}: {n} / {margin}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
