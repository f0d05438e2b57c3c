"""What the benches share: the machine line's pieces and percentile formatting."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" when unknown)."""
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def loop_name() -> str:
    policy = type(asyncio.get_event_loop_policy()).__module__
    return "uvloop" if policy.startswith("uvloop") else "asyncio"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank on the sorted values); NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def stats(values: list[float], hi: float = 0.95, digits: int = 2) -> str:
    """``p50 .. ms  p95 .. ms  max .. ms  (n=..)`` of values in ms."""
    if not values:
        return "no samples"
    ordered = sorted(values)
    name = f"p{round(hi * 100)}"
    return (f"p50 {statistics.median(ordered):8.{digits}f} ms  {name} {pct(ordered, hi):8.{digits}f} ms  "
            f"max {ordered[-1]:8.{digits}f} ms  (n={len(ordered)})")
