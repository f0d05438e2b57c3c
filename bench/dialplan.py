"""Dialplan engine benchmark: priorities per second, pattern lookup, concurrent Local calls.

    .venv/bin/python bench/dialplan.py [--iterations N] [--calls N]

Runs on one core (sched_setaffinity) with uvloop when installed, verbose 0. Prints:
1. simple priorities per second: a While loop of Set with $[] increments, ${VAR}
   substitution and a Goto (5 priorities per iteration);
2. the time to find an extension (uncached and cached) in a context of 10,000 pattern
   extensions and in one of 50, and their ratio;
3. the time to run N concurrent Local-channel calls through a ten-priority dialplan.
Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hookflash.engine.pbx import Pbx  # noqa: E402
from tests.helpers import call  # noqa: E402

LOOP = """
[general]
looplimit=100000000
[bench]
exten => loop,1,Set(I=0)
 same => n,While($[${I} < ${N}])
 same => n,Set(I=$[${I} + 1])
 same => n,Set(LAST=${I})
 same => n,Goto(next)
 same => n(next),EndWhile()
 same => n,Hangup()
exten => _call.,1,NoOp(${EXTEN})
 same => n,Answer()
 same => n,Set(A=${EXTEN})
 same => n,Set(B=$[1 + 2])
 same => n,Set(C=${A}${B})
 same => n,GotoIf($[${B} = 3]?ok)
 same => n,NoOp(never)
 same => n(ok),Set(D=${LEN(${C})})
 same => n,Set(CDR(userfield)=${D})
 same => n,Hangup()
"""


def pattern_context(name: str, count: int, rng: random.Random) -> tuple[str, list[str]]:
    """A context of ``count`` patterns, and a generator of numbers that match them."""
    lines = [f"[{name}]"]
    dialled = []
    seen = set()
    while len(seen) < count:
        prefix = f"{rng.randint(200, 999)}{rng.randint(0, 99):02d}"
        kind = rng.random()
        if kind < 0.6:
            pat = f"_{prefix}XXXX"
            make = lambda p=prefix: p + f"{rng.randint(0, 9999):04d}"  # noqa: E731
        elif kind < 0.8:
            pat = f"_{prefix}N[2-7]XX"
            make = lambda p=prefix: p + f"{rng.randint(2, 9)}{rng.randint(2, 7)}{rng.randint(0, 99):02d}"  # noqa: E731
        else:
            pat = f"_{prefix}Z."
            make = lambda p=prefix: p + f"{rng.randint(1, 9)}{rng.randint(0, 99999)}"  # noqa: E731
        if pat in seen:
            continue
        seen.add(pat)
        lines.append(f"exten => {pat},1,NoOp()")
        dialled.append(make)
    return "\n".join(lines) + "\n", dialled


async def bench_priorities(pbx: Pbx, iterations: int) -> float:
    start = time.perf_counter()
    chan = await call(pbx, "loop@bench", {"N": str(iterations)}, timeout=600)
    elapsed = time.perf_counter() - start
    assert chan.vars["LAST"] == str(iterations), chan.vars
    return (5 * iterations + 3) / elapsed


def _lookup_pass(pbx: Pbx, context: str, numbers: list[str]) -> tuple[float, float]:
    dialplan = pbx.dialplan
    index = dialplan.contexts[context].index
    getattr(index, "_cache", {}).clear()
    dialplan._cache.clear()  # noqa: SLF001
    start = time.perf_counter()
    for number in numbers:
        dialplan.find(context, number, 1)
    uncached = (time.perf_counter() - start) / len(numbers)
    start = time.perf_counter()
    for number in numbers:
        dialplan.find(context, number, 1)
    return uncached, (time.perf_counter() - start) / len(numbers)


def bench_lookup(pbx: Pbx, cases: dict[str, list[str]], rounds: int = 9) -> dict[str, tuple[float, float]]:
    """Best of ``rounds`` passes per context, the contexts interleaved so machine load
    drifts alike for both."""
    best = {name: (float("inf"), float("inf")) for name in cases}
    for _ in range(rounds):
        for name, numbers in cases.items():
            u, c = _lookup_pass(pbx, name, numbers)
            best[name] = (min(best[name][0], u), min(best[name][1], c))
    return best


async def bench_concurrent(pbx: Pbx, calls: int) -> float:
    start = time.perf_counter()
    chans = await asyncio.gather(*(call(pbx, f"call{i}@bench", timeout=600) for i in range(calls)))
    elapsed = time.perf_counter() - start
    assert all(c.vars.get("D") for c in chans)
    return elapsed


async def main(iterations: int, calls: int) -> None:
    rng = random.Random(7)
    small, small_numbers = pattern_context("p50", 50, rng)
    big, big_numbers = pattern_context("p10000", 10000, rng)
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "etc"
        etc.mkdir()
        (etc / "extensions.conf").write_text(LOOP + small + big)
        (etc / "cdr_csv.conf").write_text("[csv]\n")
        pbx = Pbx(etc, state_dir=Path(tmp) / "var", verbose=0)
        await pbx.start()
        try:
            rate = await bench_priorities(pbx, iterations)
            print(f"simple priorities per second: {rate:,.0f} "
                  f"(While/Set $[] /Goto loop, {iterations:,} iterations)")
            # distinct dialled numbers, so the uncached pass really misses every cache
            numbers_small = list({rng.choice(small_numbers)() for _ in range(20000)})
            numbers_big = list({rng.choice(big_numbers)() for _ in range(20000)})
            best = bench_lookup(pbx, {"p50": numbers_small, "p10000": numbers_big})
            (u50, c50), (u10k, c10k) = best["p50"], best["p10000"]
            print(f"extension lookup, 50 patterns:     {u50 * 1e6:.2f} us uncached, {c50 * 1e6:.2f} us cached")
            print(f"extension lookup, 10,000 patterns: {u10k * 1e6:.2f} us uncached, {c10k * 1e6:.2f} us cached")
            print(f"lookup ratio 10,000/50: {u10k / u50:.2f}x uncached, {c10k / c50:.2f}x cached")
            elapsed = await bench_concurrent(pbx, calls)
            print(f"{calls:,} concurrent Local calls through a ten-priority dialplan: "
                  f"{elapsed * 1000:.0f} ms ({calls / elapsed:,.0f} calls/s)")
        finally:
            await pbx.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    print(f"hookflash dialplan benchmark (one core, {loop_name}, Python {sys.version.split()[0]})")
    asyncio.run(main(args.iterations, args.calls))
