"""Origination benchmark: call files and Originate(), figures only.

    .venv/bin/python bench/origination.py [--files 200] [--sip-calls 100] [--skip local,sip,app]

(a) local: N call files (``Channel: Local/answer@b``, connected to an extension that
    hangs up at once) dropped into the spool of an in-process Pbx at once; call files
    completed per second, from the first rename into ``outgoing`` to the last file gone,
    and the mean time from drop to the answered channel's dialplan running.
(b) sip: N call files to a SIPp UAS (``Channel: SIP/uas``) through the real hookflash
    process (``hookflash --config DIR -f``): call files completed per second, each a full
    INVITE/200/ACK ... BYE/200 exchange with SIPp.
(c) app: Originate() per second, in-process: one Local channel runs
    ``While`` + ``Originate(Local/answer@b,exten,b,done,1)`` N times (each waits for the
    answer, as the application does).
Only 127.0.0.1 is used. Nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.helpers import call, running_pbx
from tests.integration.sip_peers import Server, free_port

LOCAL_PLAN = """
[b]
exten => answer,1,Answer()
 same => n,Wait(0.05)
exten => done,1,Set(GLOBAL(DONE)=$[0${DONE} + 1])
 same => n,Hangup()
exten => loop,1,Set(I=0)
 same => n,While($[${I} < ${N}])
 same => n,Originate(Local/answer@b,exten,b,done,1)
 same => n,Set(I=$[${I} + 1])
 same => n,EndWhile()
"""


def _drop_all(outgoing: Path, n: int, text: str) -> float:
    staging = outgoing.parent / "staging"
    staging.mkdir(exist_ok=True)
    for i in range(n):
        (staging / f"c{i:05d}.call").write_text(text)
    start = time.time()
    for i in range(n):
        os.replace(staging / f"c{i:05d}.call", outgoing / f"c{i:05d}.call")
    return start


async def bench_local(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-orig-"))
    try:
        async with running_pbx(tmp, LOCAL_PLAN, verbose=0) as (pbx, _):
            spool = pbx.modules.loaded["pbx_spool"]
            start = _drop_all(spool.qdir, n, "Channel: Local/answer@b\nContext: b\nExtension: done\n")
            while any(spool.qdir.glob("*.call")):
                await asyncio.sleep(0.01)
            elapsed = time.time() - start
            done = int(pbx.globals.get("DONE", "0"))
            print(f"(a) call files, Local channels: {n} files in {elapsed:.2f} s = {n / elapsed:.0f} files/s "
                  f"({spool.completed} completed, {done} dialplans ran; watcher: "
                  f"{'inotify' if spool.inotify else 'polling'})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def bench_app(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-orig-"))
    try:
        async with running_pbx(tmp, LOCAL_PLAN, verbose=0) as (pbx, _):
            start = time.time()
            await call(pbx, "loop@b", {"N": str(n)}, timeout=600)
            while int(pbx.globals.get("DONE", "0")) < n and time.time() - start < 600:
                await asyncio.sleep(0.01)
            elapsed = time.time() - start
            print(f"(c) Originate() to Local channels, one after another: {n} in {elapsed:.2f} s = "
                  f"{n / elapsed:.0f} originations/s (each waits for the answer)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_sip(n: int) -> None:
    if shutil.which("sipp") is None:
        print("(b) skipped: sipp is not installed")
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-orig-sip-"))
    port, uas_port, rtp = free_port(), free_port(), free_port(pair=True)
    spool = tmp / "spool"
    server = Server(tmp / "etc", {
        "sip.conf": f"[general]\nbindaddr=127.0.0.1\nbindport={port}\n\n[uas]\ntype=peer\nhost=127.0.0.1\n"
                    f"port={uas_port}\ninsecure=port,invite\n",
        "extensions.conf": "[b]\nexten => s,1,Hangup()\n",
        "rtp.conf": f"[general]\nrtpstart={rtp}\nrtpend={rtp + 2000}\n",
        "asterisk.conf": f"[directories]\nastspooldir={spool}\n[options]\nverbose=0\n",
    }).start()
    uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-mp",
                            str(free_port(pair=True)), "-nostdin", "-m", str(n), "-timeout", "300s"],
                           cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        outgoing = spool / "outgoing"
        while not outgoing.is_dir():
            time.sleep(0.05)
        time.sleep(0.3)
        start = _drop_all(outgoing, n, "Channel: SIP/uas/bench\nContext: b\nExtension: s\nWaitTime: 20\n"
                                                   "Archive: yes\n")
        while any(outgoing.glob("*.call")) and time.time() - start < 300:
            time.sleep(0.01)
        elapsed = time.time() - start
        try:
            rc: int | str = uas.wait(30)
        except subprocess.TimeoutExpired:
            rc = "still running"
        statuses = [p.read_text().rstrip().rsplit("\n", 1)[-1] for p in (spool / "outgoing_done").glob("*.call")]
        completed = statuses.count("Status: Completed")
        print(f"(b) call files to a SIPp UAS through the hookflash process: {n} dropped at once, "
              f"{completed} completed, {n - completed} not, in {elapsed:.2f} s = {completed / elapsed:.0f} "
              f"completed calls/s (SIPp uas exit code {rc})")
    finally:
        if uas.poll() is None:
            uas.kill()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--sip-calls", type=int, default=100)
    parser.add_argument("--originates", type=int, default=200)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "local" not in skip:
        asyncio.run(bench_local(args.files))
    if "sip" not in skip:
        bench_sip(args.sip_calls)
    if "app" not in skip:
        asyncio.run(bench_app(args.originates))


if __name__ == "__main__":
    main()
