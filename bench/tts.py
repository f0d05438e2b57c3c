"""Text-to-speech benchmark: Festival() and the speech engines on a whole Pbx in this process.

    .venv/bin/python bench/tts.py [--quick]

Needs Debian's festival (+ festvox-kallpc16k), flite and espeak-ng; a real Festival server is
started here on a free loopback port (tests/integration/festival_server.py). Calls are Local
channels: the ;2 half runs ``Set(TTS_ENGINE=<engine>)`` then ``Festival(${TEXT})``; the ;1 half
(the caller) reads frames like the Listener of tests/integration/test_tts.py. The moment a call
enters Festival() is taken by wrapping the registered application (nothing in src/ changes).

1. Time to first audio packet, cold cache, per engine (festival server, text2wave, flite,
   espeak-ng), N distinct ~10-word sentences: Festival() entry -> first voice frame read by the
   caller (and -> first frame with speech energy); the engine alone (``module.speech()`` on a
   cold cache); the reference (the engine's own command line: ``text2wave -F 8000 -o``,
   ``flite -t .. -o``, ``espeak-ng -v en-us -w``; for the Festival server a bare socket client
   sending ``(tts_textasterisk "..." 'file)`` and reading to OK). Goal: first packet <= 300 ms.
2. Cache hit: ``await module.speech(same_text)`` on a warm cache (p50/p99, goal < 1 ms) and the
   time to first packet through Festival() on a warm cache.
3. 100 calls asking for the same new text at once: syntheses (engine.stats, cache.misses; must
   be 1) and the time until all 100 callers have their first packet.
4. CPU per second of synthesised speech per engine: this process + reaped children
   (getrusage), and the Festival server's own CPU (/proc/<pid>/stat, utime+stime+cutime+cstime).

``--quick``: N=3, 1,000 cache hits (under a minute). Figures only; nothing fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
from bench._common import cpu_model, loop_name, p50, pct, stats as common_stats  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from hookflash.channels.local import LocalTech  # noqa: E402
from hookflash.tts.engines import SpeechCache  # noqa: E402
from hookflash.tts.festival import build_command  # noqa: E402
from tests.helpers import running_pbx  # noqa: E402
from tests.integration.festival_server import Festival  # noqa: E402

ENGINES = ["festival", "text2wave", "flite", "espeak-ng"]
GOAL_MS = 300.0
SPEECH_RMS = 300.0

DIALPLAN = "[bench]\n" + "".join(
    f"exten => {e},1,Set(TTS_ENGINE={e})\n same => n,Festival(${{TEXT}})\n same => n,Hangup()\n"
    for e in ENGINES)

NAMES = ["Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Henry", "Irene", "Jacob",
         "Karen", "Louis", "Maria", "Nathan", "Olivia", "Peter", "Quinn", "Rachel", "Steven", "Tina"]
EVENTS = ["meeting", "call", "review", "lunch", "interview", "training", "briefing", "visit"]
_counter = 0


def sentence() -> str:
    """A new ~11-word sentence, never the same twice in one run. No comma: Festival(${TEXT})
    splits its arguments at a comma (as Asterisk's does) and would speak only the first part."""
    global _counter
    i = _counter
    _counter += 1
    return (f"Hello {NAMES[i % len(NAMES)]} your {EVENTS[(i // len(NAMES)) % len(EVENTS)]} "
            f"in room {101 + i} starts in {5 + i % 7} minutes.")


# ---------------------------------------------------------------------------- helpers





def p95(values: list[float]) -> float:
    return pct(values, 0.95)


def stats(values: list[float], hi: float = 0.95, digits: int = 1) -> str:
    return common_stats(values, hi, digits)


def line(label: str, values: list[float], hi: float = 0.95, digits: int = 1) -> None:
    print(f"  {label:44s} {stats(values, hi, digits)}", flush=True)


def proc_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of another process (its reaped children included), s."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(fields[k]) for k in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def server_cpu(pid: int) -> float:
    """The Festival server's CPU: its own, its reaped children's (it forks one per client) and
    its not yet reaped children's (it reaps the last one only at the next accept)."""
    total = proc_cpu(pid)
    tck = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += sum(int(fields[k]) for k in (11, 12, 13, 14)) / tck
        except (OSError, IndexError, ValueError):
            continue
    return total


def own_cpu() -> tuple[float, float]:
    """(this process, its reaped children) CPU seconds."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"




def machine() -> None:
    model = cpu_model()
    print(f"machine: {model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}) {sys.executable}, "
          f"loop {loop_name()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(other work on this machine shows in the figures)")
    print(f"festival: {first_line(['festival', '--version'])}")
    print(f"flite: {first_line(['flite', '--version'])}")
    print(f"espeak-ng: {first_line(['espeak-ng', '--version'])}", flush=True)


def audio_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


# ---------------------------------------------------------------------------- calls

class Listener:
    """The caller's half of a Local channel: the time of the first voice frame and of the
    first frame with speech energy (RMS > 300)."""

    def __init__(self, one: Any) -> None:
        self.one = one
        self.first: float | None = None
        self.voiced: float | None = None
        self.frames = 0
        self.got_first = asyncio.Event()
        self.got_voiced = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while not self.one.softhangup:
            frame = await self.one.read_frame(0.05)
            if frame is None or getattr(frame, "kind", "") != "voice":
                continue
            now = time.monotonic()
            self.frames += 1
            if self.first is None:
                self.first = now
                self.got_first.set()
            if self.voiced is None and frame.payload:
                s = np.frombuffer(frame.payload[: len(frame.payload) // 2 * 2], dtype="<i2").astype(np.float64)
                if len(s) and float(np.sqrt((s ** 2).mean())) > SPEECH_RMS:
                    self.voiced = now
                    self.got_voiced.set()


class Entries:
    """Wraps the registered Festival application: when each call (BENCH_ID) entered it."""

    def __init__(self, pbx: Any) -> None:
        self.at: dict[str, float] = {}
        reg = pbx.registry
        app = reg.applications["festival"]
        original = app.execute

        async def execute(chan: Any, data: str) -> Any:
            self.at[chan.get_var("BENCH_ID") or chan.name] = time.monotonic()
            return await original(chan, data)

        reg.applications["festival"] = dataclasses.replace(app, execute=execute)


_ids = 0


async def place(pbx: Any, entries: Entries, engine: str, text: str, *, wait_voiced: bool = True,
                timeout: float = 30.0) -> dict[str, float | None]:
    """One call; hung up once the caller has heard speech (or the first packet). Times in ms
    from Festival() entry."""
    global _ids
    _ids += 1
    bid = f"b{_ids}"
    one = await pbx.request(f"Local/{engine}@bench/n")
    tech = one.tech
    assert isinstance(tech, LocalTech) and tech.pair.chan is not None
    two = tech.pair.chan
    for chan in (one, two):
        chan.set_var("TEXT", text)
        chan.set_var("BENCH_ID", bid)
    started = time.monotonic()
    await tech.call(one, f"{engine}@bench", 10)
    listener = Listener(one)
    try:
        waiter = listener.got_voiced if wait_voiced else listener.got_first
        hung = asyncio.ensure_future(two.hangup_event.wait())
        want = asyncio.ensure_future(waiter.wait())
        await asyncio.wait({hung, want}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        hung.cancel()
        want.cancel()
    finally:
        await one.hangup()
        try:
            await asyncio.wait_for(two.hangup_event.wait(), 5)
        except asyncio.TimeoutError:
            pass
        listener.task.cancel()
    entered = entries.at.pop(bid, None)
    if entered is None or listener.first is None:
        status = two.get_var("FESTIVALSTATUS")
        print(f"    !! {engine}: no audio for {text!r} (FESTIVALSTATUS={status})", flush=True)
        return {"first": None, "voiced": None, "setup": None, "heard_at": None}
    return {"first": (listener.first - entered) * 1000,
            "voiced": (listener.voiced - entered) * 1000 if listener.voiced else None,
            "setup": (entered - started) * 1000, "heard_at": listener.first}


# ---------------------------------------------------------------------------- references

def festival_bare(port: int, text: str) -> float:
    """A plain socket client: connect, send tts_textasterisk, read WV .. OK. Seconds."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(build_command("(tts_textasterisk \"%s\" 'file)\\n", text))
        buf = bytearray()
        while True:
            data = s.recv(65536)
            if not data:
                raise RuntimeError("festival closed the connection")
            buf += data
            if buf.startswith(b"ER\n"):
                raise RuntimeError("festival answered ER")
            end = buf.find(b"ft_StUfF_key")  # the end of the WV block, then (LP ..) OK
            if end >= 0 and buf.find(b"OK\n", end) >= 0:
                break
    finally:
        s.close()
    return time.perf_counter() - t0


def cli(engine: str, text: str, out: Path) -> float:
    """The engine's own command line (what ``time <cmd>`` shows as real). Seconds."""
    if engine == "text2wave":
        argv, stdin = ["text2wave", "-F", "8000", "-o", str(out)], text + "\n"
    elif engine == "flite":
        argv, stdin = ["flite", "-t", text, "-o", str(out)], None
    else:
        argv, stdin = ["espeak-ng", "-v", "en-us", "-w", str(out), text], None
    t0 = time.perf_counter()
    subprocess.run(argv, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def uncache(module: Any, engine: str, text: str) -> None:
    """Make ``text`` a cache miss again: its file gone (lookup then drops the entry)."""
    module.cache.path(SpeechCache.key(engine, "", text)).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- sections

async def cold(pbx: Any, entries: Entries, module: Any, server: Festival, work: Path, n: int,
               texts: dict[str, list[str]]) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for engine in ENGINES:
        r: dict[str, list[float]] = {"first": [], "voiced": [], "setup": [], "alone": [], "ref": []}
        texts[engine] = [sentence() for _ in range(n)]
        for text in texts[engine]:
            got = await place(pbx, entries, engine, text)
            if not module.cache.path(SpeechCache.key(engine, "", text)).is_file():
                print(f"    !! the call did not synthesise the whole text {text!r}", flush=True)
            for k in ("first", "voiced", "setup"):
                if got[k] is not None:
                    r[k].append(got[k])  # type: ignore[arg-type]
            uncache(module, engine, text)
            t0 = time.perf_counter()
            await module.speech(text, engine)
            r["alone"].append((time.perf_counter() - t0) * 1000)
            if engine == "festival":
                ref = await asyncio.to_thread(festival_bare, server.port, text)
            else:
                ref = await asyncio.to_thread(cli, engine, text, work / "ref.wav")
            r["ref"].append(ref * 1000)
        results[engine] = r
        ref_name = "bare socket client" if engine == "festival" else "command line"
        print(f"  [{engine}]", flush=True)
        line("Festival() -> first voice frame", r["first"])
        line("Festival() -> first frame with speech", r["voiced"])
        line("engine alone: module.speech(), cold", r["alone"])
        line(f"reference: {ref_name}", r["ref"])
        line("(call setup: request -> Festival() entry)", r["setup"])
        ok = "yes" if r["first"] and p95(r["first"]) <= GOAL_MS else "NO"
        print(f"    ratios (p50): first packet / engine alone {p50(r['first']) / p50(r['alone']):.2f}x, "
              f"engine alone / reference {p50(r['alone']) / p50(r['ref']):.2f}x, "
              f"first packet / reference {p50(r['first']) / p50(r['ref']):.2f}x;  "
              f"goal p95 <= {GOAL_MS:.0f} ms: {ok}", flush=True)
    return results


async def warm(pbx: Any, entries: Entries, module: Any, hits: int, texts: dict[str, list[str]]) -> None:
    text = texts["festival"][0]
    await module.speech(text)  # warm
    before = module.cache.hits
    lat: list[float] = []
    for _ in range(hits):
        t0 = time.perf_counter()
        await module.speech(text)
        lat.append((time.perf_counter() - t0) * 1000)
    print(f"  await module.speech(same text), warm, {hits} calls "
          f"(cache hits counted {module.cache.hits - before}):")
    line("", lat, hi=0.99, digits=4)
    print(f"    goal p99 < 1 ms: {'yes' if pct(sorted(lat), 0.99) < 1 else 'NO'}")
    print("  Festival() -> first voice frame, warm cache (the texts of 1.):")
    for engine in ENGINES:
        firsts = []
        for t in texts[engine]:
            got = await place(pbx, entries, engine, t, wait_voiced=False)
            if got["first"] is not None:
                firsts.append(got["first"])  # type: ignore[arg-type]
        line(f"[{engine}]", firsts, digits=2)


async def herd(pbx: Any, entries: Entries, module: Any, calls: int, engines: list[str]) -> None:
    for engine in engines:
        text = sentence()
        eng = module.engines[engine]
        syn0, miss0 = eng.stats["syntheses"], module.cache.misses
        t0 = time.monotonic()
        results = await asyncio.gather(*(place(pbx, entries, engine, text, wait_voiced=False)
                                         for _ in range(calls)))
        firsts = [r["first"] for r in results if r["first"] is not None]
        heard = [(r["heard_at"] - t0) * 1000 for r in results if r["heard_at"] is not None]
        syn = eng.stats["syntheses"] - syn0
        miss = module.cache.misses - miss0
        verdict = "ok" if syn == 1 and miss == 1 else "NOT 1"
        print(f"  [{engine}] {calls} calls, one new text: syntheses {syn:g}, cache misses {miss} ({verdict}); "
              f"{len(firsts)}/{calls} heard audio; all first packets {max(heard) if heard else float('nan'):.0f} ms "
              f"after the burst started ({(time.monotonic() - t0):.2f} s until all hung up)", flush=True)
        line("  per call: Festival() -> first voice frame", firsts)


async def cpu(module: Any, server: Festival, n: int) -> None:
    print(f"  {'engine':10s} {'audio s':>8s} {'wall s':>7s} {'self CPU':>9s} {'children':>9s} "
          f"{'server':>8s} {'CPU s per audio s':>18s}")
    for engine in ENGINES:
        texts = [sentence() for _ in range(n)]
        s0, c0 = own_cpu()
        f0 = server_cpu(server.proc.pid) if server.proc else 0.0
        w0 = time.perf_counter()
        audio = 0.0
        for t in texts:
            path = await module.speech(t, engine)
            audio += audio_seconds(path)
        wall = time.perf_counter() - w0
        s1, c1 = own_cpu()
        f1 = server_cpu(server.proc.pid) if server.proc else 0.0
        srv = (f1 - f0) if engine == "festival" else 0.0
        total = (s1 - s0) + (c1 - c0) + srv
        print(f"  {engine:10s} {audio:8.2f} {wall:7.2f} {s1 - s0:9.3f} {c1 - c0:9.3f} {srv:8.3f} "
              f"{total / audio if audio else float('nan'):18.4f}", flush=True)


# ---------------------------------------------------------------------------- main

async def main(args: argparse.Namespace) -> None:
    machine()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ttsbench-"))
    missing = [p for p in ("festival", "text2wave", "flite", "espeak-ng") if shutil.which(p) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (apt-get install festival festvox-kallpc16k flite espeak-ng)")
    server = Festival(work / "festival")
    server.start()
    try:
        conf = f"[general]\nhost=127.0.0.1\nport={server.port}\n"
        async with running_pbx(work, DIALPLAN, verbose=0, festival_conf=conf) as (pbx, _):
            module = pbx.modules.loaded["app_festival"]
            entries = Entries(pbx)
            print(f"Festival server pid {server.proc.pid if server.proc else '?'} on 127.0.0.1:{server.port} "
                  f"(default voice); cache {module.cache.dir}; engines {', '.join(module.engines)}; "
                  f"ready {time.monotonic() - started:.1f} s", flush=True)
            # warm-up (imports, first subprocess, first connection), not counted
            for engine in ENGINES:
                await place(pbx, entries, engine, sentence(), wait_voiced=False)
            texts: dict[str, list[str]] = {}
            print(f"1. Time to first audio packet, cold cache, {args.n} distinct sentences per engine "
                  f"(~11 words, e.g. {sentence()!r}):", flush=True)
            await cold(pbx, entries, module, server, work, args.n, texts)
            print("2. Cache hit cost:", flush=True)
            await warm(pbx, entries, module, args.hits, texts)
            print(f"3. {args.herd} calls asking for the same new text at once:", flush=True)
            await herd(pbx, entries, module, args.herd, args.herd_engines)
            print(f"4. CPU per second of synthesised speech ({args.cpu_n} new sentences per engine, "
                  f"module.speech(), cold):", flush=True)
            await cpu(module, server, args.cpu_n)
            print(f"  cache: {module.cache.hits} hits, {module.cache.misses} misses, "
                  f"{len(module.cache.entries)} entries, {module.cache.total} bytes", flush=True)
    finally:
        server.stop()
    print(f"total {time.monotonic() - started:.0f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=3, 1,000 cache hits (under a minute)")
    args = parser.parse_args()
    q = args.quick
    args.n = 3 if q else 10
    args.hits = 1000 if q else 10000
    args.herd = 100
    args.herd_engines = ["festival", "espeak-ng"] if q else ENGINES
    args.cpu_n = 3 if q else 10
    logging.basicConfig(level=logging.WARNING, format="  [log] %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(args))
