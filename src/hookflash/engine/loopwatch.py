"""Event-loop lag and collector pauses over time (``core show loop``).

Everything in hookflash runs on one event loop, so anything that holds it (a slow
callback, a long garbage collection, a blocking call someone slipped in) delays every
call at once: SIP retransmissions follow, then failed calls. This watch makes such
stalls visible with their time, so a failed call can be tied to one.

A timer fires every ``interval`` seconds and records how late it ran (the lag). The
collector's callbacks time each collection. Both are kept per second for the last
``keep`` seconds, plus the last stalls (lag or collection over ``stall_ms``) with
their wall-clock time. Cost: one timer callback per interval and two callbacks per
collection (collections are rare: see ``__main__._tune_gc``).

A watchdog (``faulthandler``, from its own thread) writes the Python stack of every
thread to stderr when the loop has not ticked for ``watchdog`` seconds: a stall that
long is a bug, and this says where it is while it happens.
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import gc
import sys
import time
from dataclasses import dataclass, field


@dataclass
class _Second:
    at: int  # time.time() second
    lag_max: float = 0.0  # seconds
    gc_count: int = 0
    gc_max: float = 0.0  # seconds
    gc_total: float = 0.0


@dataclass
class LoopWatch:
    interval: float = 0.1
    keep: int = 300
    stall_ms: float = 100.0
    watchdog: float = 2.0  # s without a tick before the stacks are dumped (0: no watchdog)
    seconds: collections.deque[_Second] = field(default_factory=lambda: collections.deque(maxlen=300))
    stalls: collections.deque[tuple[float, str, float]] = field(default_factory=lambda: collections.deque(maxlen=20))
    gc_by_gen: list[list[float]] = field(default_factory=lambda: [[0, 0.0, 0.0] for _ in range(3)])  # count, total, max
    started: float = 0.0
    _handle: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _due: float = 0.0
    _gc_t0: float = 0.0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if self._loop is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self.seconds = collections.deque(maxlen=self.keep)
        self.started = time.time()
        self._due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._due, self._tick)
        gc.callbacks.append(self._on_gc)
        self._arm()

    def _arm(self) -> None:
        if self.watchdog > 0:
            try:
                faulthandler.dump_traceback_later(self.watchdog, repeat=False, file=sys.stderr)
            except (ValueError, OSError, RuntimeError, AttributeError):  # no usable stderr
                self.watchdog = 0

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self.watchdog > 0:
            faulthandler.cancel_dump_traceback_later()
        self._loop = None

    # ------------------------------------------------------------------ sampling
    def _bucket(self) -> _Second:
        now = int(time.time())
        if not self.seconds or self.seconds[-1].at != now:
            self.seconds.append(_Second(now))
        return self.seconds[-1]

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        lag = max(0.0, now - self._due)
        bucket = self._bucket()
        if lag > bucket.lag_max:
            bucket.lag_max = lag
        if lag * 1000 >= self.stall_ms:
            self.stalls.append((time.time() - lag, "loop", lag))
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._tick)
        self._arm()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_t0
        gen = min(2, max(0, info.get("generation", 0)))
        stats = self.gc_by_gen[gen]
        stats[0] += 1
        stats[1] += took
        stats[2] = max(stats[2], took)
        bucket = self._bucket()
        bucket.gc_count += 1
        bucket.gc_total += took
        bucket.gc_max = max(bucket.gc_max, took)
        if took * 1000 >= self.stall_ms:
            self.stalls.append((time.time() - took, f"gc gen{gen}", took))

    # ------------------------------------------------------------------ reading
    def max_lag(self, window: float) -> float:
        """Largest lag (s) seen in the last ``window`` seconds."""
        since = time.time() - window
        return max((s.lag_max for s in self.seconds if s.at >= since), default=0.0)

    def gc_max(self, window: float) -> float:
        since = time.time() - window
        return max((s.gc_max for s in self.seconds if s.at >= since), default=0.0)

    def report(self) -> str:
        if self._loop is None:
            return "Loop watch is not running\n"
        loop = self._loop
        kind = f"{type(loop).__module__}.{type(loop).__name__}"
        tasks = len(asyncio.all_tasks(loop))
        lines = [f"Event loop: {kind}, {tasks} task{'s' if tasks != 1 else ''}, "
                 f"watched for {int(time.time() - self.started)} s (timer every {self.interval * 1000:.0f} ms)"]
        windows = ((10, "10 s"), (60, "1 min"), (self.keep, f"{self.keep // 60} min"))
        lines.append("Max lag:    " + ", ".join(f"{label} {self.max_lag(w) * 1000:.1f} ms" for w, label in windows))
        lines.append("Max GC:     " + ", ".join(f"{label} {self.gc_max(w) * 1000:.1f} ms" for w, label in windows))
        for gen, (count, total, worst) in enumerate(self.gc_by_gen):
            mean = total / count * 1000 if count else 0.0
            lines.append(f"GC gen{gen}:   {int(count)} collections, mean {mean:.2f} ms, max {worst * 1000:.1f} ms")
        lines.append(f"Stalls of {self.stall_ms:.0f} ms or more (last {self.stalls.maxlen}): {len(self.stalls)}")
        for at, what, took in self.stalls:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
            lines.append(f"  {stamp}  {what:<8} {took * 1000:8.1f} ms")
        return "\n".join(lines) + "\n"
