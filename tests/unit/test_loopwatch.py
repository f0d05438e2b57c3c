"""core show loop: a stall of the event loop and a collection are seen, with their time."""

from __future__ import annotations

import asyncio
import gc
import re
import time

from hookflash.engine.loopwatch import LoopWatch


def test_a_blocked_loop_is_reported_as_a_stall() -> None:
    async def main() -> str:
        watch = LoopWatch(interval=0.02, stall_ms=100)
        watch.start()
        await asyncio.sleep(0.1)
        time.sleep(0.25)  # someone blocks the loop
        await asyncio.sleep(0.1)
        gc.collect()
        report = watch.report()
        assert 0.2 <= watch.max_lag(10) < 1.0
        watch.stop()
        return report

    report = asyncio.run(main())
    assert "Stalls of 100 ms or more (last 20): " in report  # the collection may be one too
    stall = [ln for ln in report.splitlines() if ln.strip().endswith("ms") and "loop" in ln and ":" in ln[:20]]
    assert stall, report
    assert float(stall[0].split()[-2]) >= 200
    gen2 = re.search(r"GC gen2:\s+(\d+) collections", report)
    assert gen2 and int(gen2.group(1)) >= 1, report  # the gc.collect() above, at least


def test_quiet_loop_has_no_stall_and_stop_detaches() -> None:
    async def main() -> LoopWatch:
        watch = LoopWatch(interval=0.01, stall_ms=500)  # a busy test machine may hiccup, not for 0.5 s
        watch.start()
        await asyncio.sleep(0.2)
        watch.stop()
        return watch

    watch = asyncio.run(main())
    assert not watch.stalls
    assert watch.max_lag(10) < 0.5
    assert watch._on_gc not in gc.callbacks
    assert watch.report() == "Loop watch is not running\n"


def test_a_long_stall_dumps_the_stack_that_holds_the_loop(tmp_path, monkeypatch) -> None:
    import sys
    out = (tmp_path / "stderr").open("w+")
    monkeypatch.setattr(sys, "stderr", out)

    def hold_the_loop() -> None:
        time.sleep(0.6)

    async def main() -> None:
        watch = LoopWatch(interval=0.02, watchdog=0.3)
        watch.start()
        await asyncio.sleep(0.05)
        hold_the_loop()
        await asyncio.sleep(0.05)
        watch.stop()

    asyncio.run(main())
    out.flush()
    text = (tmp_path / "stderr").read_text()
    assert "hold_the_loop" in text and "test_loopwatch.py" in text, text
