"""res_xmpp benchmark: hookflash's XMPP client against a real Prosody started here.

    .venv/bin/python bench/xmpp.py [--quick] [--asyncio]

Needs Prosody (``prosody``/``prosodyctl``, the fixture of tests/integration/xmpp_server.py,
STARTTLS required) and slixmpp. One Pbx in this process (uvloop when installed, verbose 0)
with res_xmpp (client ``asterisk`` = asterisk@localhost/pbx, sendtodialplan=no; client
``inbox`` = pbx2@localhost/pbx, sendtodialplan=yes), core_message and chan_sip on
127.0.0.1. The XMPP users alice (receiver/replier) and the bare reference sender are slixmpp
clients each in a thread with its own event loop, in this process (as the PBX's loop,
they share its GIL); bob, the flooder of 6, is a slixmpp client in a process of its own.
Calls are Local channels driven directly (``pbx.request`` + ``tech.call``; the ;2 half runs
the dialplan). Printed, p50 / p95 / max where there are several samples:

1. JabberSend: N calls of ``JabberSend(asterisk,alice@localhost,msg ${N})`` (``N`` carries
   the call's index and its start time, ``time.time_ns()``; alice timestamps each arrival):
   a. saturated: calls in concurrent batches of 100, back to back; messages/s from the
      first call start to the last arrival at alice; call start -> arrival latency;
   b. paced at 200 calls/s (the issue's goal: >= 200/s with p95 < 100 ms).
2. Reference: a bare slixmpp client (asterisk@localhost/bare, same receipt request as
   hookflash's) sends the same N messages to alice, saturated (batches of 100, yielding to
   its loop between batches) and paced at 200/s; ratio hookflash / bare (goal >= 0.8x).
3. JABBER_RECEIVE: a call waits in ``Set(R=${JABBER_RECEIVE(asterisk,alice@localhost,10)})``
   then ``Set(DB(b/t)=${R})``; alice replies once the waiter is registered; alice's send ->
   the call's dialplan done (the DB written), one call at a time, and for reference alice ->
   a bare slixmpp client's handler.
4. 500 calls waiting in JABBER_RECEIVE(asterisk,alice@localhost,30) at once, all for the
   same JID: the chapter 3.2 pattern (one operator answers many callers; each reply
   releases the oldest waiter). Process CPU (time.process_time, all threads) and Prosody's
   CPU over the waiting period vs the same period idle, RSS (VmRSS), then alice sends 500
   replies as fast as she can: time until every call has left the dialplan.
5. SIP MESSAGE in -> XMPP out: raw UDP MESSAGE requests (a thread, guest: allowguest=yes,
   auth_message_requests=no) to extension ``alice`` of ``[SipIn]``:
   ``MessageSend(xmpp:alice@localhost,xmpp:asterisk)``; closed loop (at most 50 sent and not
   yet at alice) and paced at 200/s; messages/s end to end and UDP send -> arrival at alice.
6. Inbound flood: bob (slixmpp in a process of its own) sends 1,000 messages within ~1 s
   to pbx2@localhost/pbx (sendtodialplan=yes, ``[IncomingMessages]`` two priorities) while
   short Local calls (``Answer`` + ``Set``) run one after another and a ticker measures
   event-loop lag (5 ms sleeps); the same without the flood; and bob's send -> dialplan
   done per message.

``--quick``: N=400, 200 waiting calls, 3 s waiting periods (under a minute). Everything is
on 127.0.0.1. Figures only; nothing fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
from bench._common import cpu_model, loop_name, pct, stats  # noqa: E402

from hookflash.channels.channel import Channel  # noqa: E402
from hookflash.channels.local import LocalTech  # noqa: E402
from hookflash.engine.pbx import Pbx  # noqa: E402
from hookflash.message.core import core  # noqa: E402
from tests.helpers import running_pbx  # noqa: E402
from tests.integration.sip_peers import free_port  # noqa: E402
from tests.integration.xmpp_server import Prosody, XmppUser  # noqa: E402

XMPP_CONF = """
[general]

[asterisk]
type=client
serverhost=127.0.0.1
username=asterisk@localhost/pbx
secret=astpw
port={port}
usetls=yes
status=available
buddy=alice@localhost
cafile={cafile}
timeout=5

[inbox]
type=client
serverhost=127.0.0.1
username=pbx2@localhost/pbx
secret=pbx2pw
port={port}
usetls=yes
cafile={cafile}
sendtodialplan=yes
context=IncomingMessages
"""

SIP_CONF = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=nowhere
allowguest=yes
accept_outofcall_message=yes
outofcall_message_context=SipIn
auth_message_requests=no
"""

DIALPLAN = """
[bench]
exten => send,1,JabberSend(asterisk,alice@localhost,msg ${N})
exten => recv,1,Set(R=${JABBER_RECEIVE(asterisk,alice@localhost,10)})
 same => n,Set(DB(b/t)=${R})
exten => wait,1,Set(R=${JABBER_RECEIVE(asterisk,alice@localhost,30)})
exten => simple,1,Answer()
 same => n,Set(X=1)

[SipIn]
exten => alice,1,MessageSend(xmpp:alice@localhost,xmpp:asterisk)

[IncomingMessages]
exten => s,1,Set(B=${MESSAGE(body)})
 same => n,NoOp(${MESSAGE(from)})
"""

BATCH = 100
RATE = 200.0


# ---------------------------------------------------------------------------- helpers





def p95(values: list[float]) -> float:
    return pct(values, 0.95)


def line(label: str, values: list[float]) -> None:
    print(f"  {label:44s} {stats(values)}", flush=True)


def rss_mb() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def proc_cpu(pid: int) -> float:
    """utime + stime of another process, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")




def machine() -> None:
    model = cpu_model()
    try:
        from importlib.metadata import version
        slix = version("slixmpp")
    except Exception:  # noqa: BLE001
        slix = "?"
    about = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True, timeout=30).stdout
    prosody = next((r.strip() for r in about.splitlines() if re.match(r"Prosody \d", r)), "Prosody ?")
    print(f"machine: {model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}), slixmpp {slix}, "
          f"{prosody}, loop {loop_name()}", flush=True)


async def until(predicate: Callable[[], bool], timeout: float, step: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(step)
    return True


class Receiver:
    """alice's arrivals: (time.time_ns(), body), recorded in her loop's thread. XmppUser's own
    message handler (which serialises every stanza) is replaced by this one."""

    def __init__(self, user: XmppUser) -> None:
        self.user = user
        self.got: list[tuple[int, str]] = []
        self.counts: dict[str, int] = {}
        user.call(lambda c: c.del_event_handler("message", user._on_message))
        user.call(lambda c: c.add_event_handler("message", self._on))

    def _on(self, msg: Any) -> None:
        body = msg["body"]
        if body:
            self.got.append((time.time_ns(), body))
            prefix = body.split(" ", 1)[0]
            self.counts[prefix] = self.counts.get(prefix, 0) + 1

    def clear(self) -> None:
        self.got = []
        self.counts = {}

    def count(self, prefix: str) -> int:
        return self.counts.get(prefix, 0)

    def latencies(self, prefix: str) -> tuple[list[float], int, int]:
        """(latencies ms, first sent ns, last arrival ns) of the bodies '<prefix> <i> <t_ns>'."""
        lat: list[float] = []
        first, last = 0, 0
        for at, body in self.got:
            parts = body.split()
            if len(parts) >= 3 and parts[0] == prefix:
                sent = int(parts[2])
                lat.append((at - sent) / 1e6)
                first = sent if not first else min(first, sent)
                last = max(last, at)
        return lat, first, last


def in_loop(user: XmppUser, coro: Any) -> asyncio.Future[Any]:
    """Run a coroutine in the user's loop; an awaitable future in ours."""
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, user.loop))


# ---------------------------------------------------------------------------- calls

async def start_call(pbx: Pbx, target: str, variables: dict[str, str] | None = None) -> tuple[Channel, Channel]:
    exten, _, context = target.partition("@")
    one = await pbx.request(f"Local/{exten}@{context}/n")
    for name, value in (variables or {}).items():
        one.set_var(name, value)
    tech = one.tech
    assert isinstance(tech, LocalTech) and tech.pair.chan is not None
    two = tech.pair.chan
    await tech.call(one, target, 30)
    return one, two


async def end_call(one: Channel, two: Channel) -> None:
    await two.hangup_event.wait()   # set when ;2's dialplan is done
    await one.hangup()


async def run_call(pbx: Pbx, target: str, variables: dict[str, str] | None = None) -> Channel:
    one, two = await start_call(pbx, target, variables)
    await end_call(one, two)
    return two


# ---------------------------------------------------------------------------- 1 + 2

async def jabbersend_saturated(pbx: Pbx, alice: Receiver, n: int, prefix: str = "msg") -> dict[str, float]:
    alice.clear()
    began = time.monotonic()
    for start in range(0, n, BATCH):
        calls = []
        for i in range(start, min(n, start + BATCH)):
            calls.append(await start_call(pbx, "send@bench", {"N": f"{i} {time.time_ns()}"}))
        await asyncio.gather(*(end_call(one, two) for one, two in calls))
    dialplan_s = time.monotonic() - began
    ok = await until(lambda: alice.count(prefix) >= n, 60)
    lat, first, last = alice.latencies(prefix)
    return {"n": len(lat), "rate": len(lat) / ((last - first) / 1e9) if lat else 0.0,
            "dialplan_rate": n / dialplan_s, "lat": lat, "complete": ok}  # type: ignore[dict-item]


async def jabbersend_paced(pbx: Pbx, alice: Receiver, n: int, rate: float) -> dict[str, Any]:
    alice.clear()
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    late = 0.0
    for i in range(n):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        one, two = await start_call(pbx, "send@bench", {"N": f"{i} {time.time_ns()}"})
        task = asyncio.ensure_future(end_call(one, two))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    offered_s = loop.time() - t0
    await asyncio.gather(*tasks)
    ok = await until(lambda: alice.count("msg") >= n, 60)
    lat, first, last = alice.latencies("msg")
    return {"n": len(lat), "rate": len(lat) / ((last - first) / 1e9) if lat else 0.0, "lat": lat,
            "offered": n / offered_s, "late": late * 1000, "complete": ok}


async def bare_burst(c: Any, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        for i in range(start, min(n, start + batch)):
            m = c.make_message(mto="alice@localhost", mbody=f"ref {i} {time.time_ns()}", mtype="chat")
            m["request_receipt"] = True
            m.send()
        await asyncio.sleep(0)


async def bare_paced(c: Any, n: int, rate: float) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(n):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        m = c.make_message(mto="alice@localhost", mbody=f"ref {i} {time.time_ns()}", mtype="chat")
        m["request_receipt"] = True
        m.send()
    return n / (loop.time() - t0)


async def bare_run(bare: XmppUser, alice: Receiver, n: int, rate: float | None) -> dict[str, Any]:
    alice.clear()
    offered = 0.0
    if rate is None:
        await in_loop(bare, bare_burst(bare.client, n, BATCH))
    else:
        offered = await in_loop(bare, bare_paced(bare.client, n, rate))
    ok = await until(lambda: alice.count("ref") >= n, 60)
    lat, first, last = alice.latencies("ref")
    return {"n": len(lat), "rate": len(lat) / ((last - first) / 1e9) if lat else 0.0, "lat": lat,
            "offered": offered, "complete": ok}


def describe(label: str, r: dict[str, Any], n: int) -> None:
    extra = f", offered {r['offered']:.0f}/s" if r.get("offered") else ""
    if "dialplan_rate" in r:
        extra += f", dialplan ran {r['dialplan_rate']:.0f} calls/s"
    if r.get("late"):
        extra += f", pacing late by up to {r['late']:.1f} ms"
    missing = "" if r["n"] >= n else f"  ** {n - r['n']} of {n} never arrived **"
    print(f"  {label:44s} {r['rate']:7.0f} msg/s{extra}{missing}", flush=True)
    line("  latency (send/call start -> alice)", r["lat"])


# ---------------------------------------------------------------------------- 3

async def receive_latency(pbx: Pbx, alice: XmppUser, bare: XmppUser, n: int) -> None:
    client = pbx.modules.loaded["res_xmpp"].client("asterisk")
    lat: list[float] = []
    wrong = 0
    for i in range(n):
        one, two = await start_call(pbx, "recv@bench")
        if not await until(lambda: len(client.waiters) == 1, 5, 0.0005):
            raise SystemExit("JABBER_RECEIVE did not start waiting")
        sent = asyncio.get_running_loop().create_future()
        body = f"reply{i}"

        def send(c: Any = alice.client, body: str = body, sent: Any = sent) -> None:
            t = time.monotonic()
            c.send_message(mto="asterisk@localhost/pbx", mbody=body, mtype="chat")
            sent.get_loop().call_soon_threadsafe(sent.set_result, t)
        alice.loop.call_soon_threadsafe(send)
        await two.hangup_event.wait()
        done = time.monotonic()
        lat.append((done - await sent) * 1000)
        if pbx.astdb.get("b", "t") != body:  # type: ignore[union-attr]
            wrong += 1
        await one.hangup()
    line("alice sends -> dialplan done (DB written)", lat)
    if wrong:
        print(f"  ** {wrong} of {n} calls wrote another value than their reply **")

    # reference: alice -> a bare slixmpp client's handler, one at a time
    got: list[float] = []
    arrived = threading.Event()

    def on(msg: Any) -> None:
        if (msg["body"] or "").startswith("ping"):
            got.append(time.monotonic())
            arrived.set()
    bare.call(lambda c: c.add_event_handler("message", on))
    ref: list[float] = []
    for i in range(n):
        arrived.clear()
        t = await in_loop(alice, _send_now(alice.client, bare.jid, f"ping{i}"))
        await asyncio.to_thread(arrived.wait, 5)
        if got:
            ref.append((got[-1] - t) * 1000)
    bare.call(lambda c: c.del_event_handler("message", on))
    line("reference: alice -> bare slixmpp handler", ref)


async def _send_now(c: Any, to: str, body: str) -> float:
    t = time.monotonic()
    c.send_message(mto=to, mbody=body, mtype="chat")
    return t


# ---------------------------------------------------------------------------- 4

async def many_waiting(pbx: Pbx, prosody: Prosody, alice: XmppUser, calls: int, seconds: float) -> None:
    client = pbx.modules.loaded["res_xmpp"].client("asterisk")
    ppid = prosody.proc.pid if prosody.proc else 0
    rss0 = rss_mb()
    c0, p0, w0 = time.process_time(), proc_cpu(ppid), time.monotonic()
    await asyncio.sleep(seconds)
    idle_cpu, idle_pro, idle_wall = time.process_time() - c0, proc_cpu(ppid) - p0, time.monotonic() - w0

    began = time.monotonic()
    pairs = [await start_call(pbx, "wait@bench") for _ in range(calls)]
    ok = await until(lambda: len(client.waiters) >= calls, 30)
    setup = time.monotonic() - began
    rss1 = rss_mb()
    c0, p0, w0 = time.process_time(), proc_cpu(ppid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, pro, wall = time.process_time() - c0, proc_cpu(ppid) - p0, time.monotonic() - w0
    rss2 = rss_mb()
    print(f"  {calls} calls waiting ({'all' if ok else 'NOT all'} registered, {len(client.waiters)} waiters) "
          f"in {setup * 1000:.0f} ms")
    print(f"  idle {idle_wall:.1f} s before the calls   : process CPU {idle_cpu:6.3f} s "
          f"({idle_cpu / idle_wall * 100:5.2f} %), Prosody CPU {idle_pro:5.2f} s")
    print(f"  {calls} waiting, {wall:.1f} s             : process CPU {cpu:6.3f} s "
          f"({cpu / wall * 100:5.2f} %), Prosody CPU {pro:5.2f} s")
    print(f"  RSS: {rss0:.1f} MB before, {rss1:.1f} MB with {calls} waiting "
          f"(+{(rss1 - rss0) * 1024 / max(1, calls):.1f} KB/call), {rss2:.1f} MB after {wall:.0f} s", flush=True)

    async def replies(c: Any, k: int) -> float:
        t = time.monotonic()
        for i in range(k):
            c.send_message(mto="asterisk@localhost/pbx", mbody=f"go{i}", mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)
        return t
    first = await in_loop(alice, replies(alice.client, calls))
    sent_all = time.monotonic()
    await asyncio.gather(*(two.hangup_event.wait() for _, two in pairs))
    drained = time.monotonic()
    got = sum(1 for _, two in pairs if (two.get_var("R") or "").startswith("go"))
    for one, _ in pairs:
        await one.hangup()
    await until(lambda: not [t for t in pbx.tasks if not t.done()], 10)
    print(f"  release: alice's {calls} replies sent in {(sent_all - first) * 1000:.0f} ms (seen from here); "
          f"all {calls} calls out of the dialplan {(drained - first) * 1000:.0f} ms after the first reply "
          f"({calls / (drained - first):.0f} calls/s); {got} got a reply; RSS {rss_mb():.1f} MB", flush=True)


# ---------------------------------------------------------------------------- 5

def sip_sender(port: int, n: int, rate: float | None, window: int, arrived: Callable[[], int],
               out: dict[str, Any]) -> None:
    """MESSAGE requests from a UDP socket: paced at ``rate``/s, or closed loop with at most
    ``window`` messages sent and not yet arrived at alice (end to end)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    nonce = time.time_ns()
    answers: dict[str, int] = {}
    answered = 0

    def drain(block: float) -> None:
        nonlocal answered
        s.settimeout(block)
        while True:
            try:
                data = s.recv(65536)
            except (TimeoutError, BlockingIOError):
                return
            status = data.split(b" ", 2)[1].decode(errors="replace") if data.startswith(b"SIP/2.0") else "?"
            if not status.startswith("1"):
                answers[status] = answers.get(status, 0) + 1
                answered += 1
            s.settimeout(0)

    t0 = time.perf_counter()
    for i in range(n):
        if rate is not None:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                drain(0)
                time.sleep(delay)
        else:
            drain(0)
            stuck = time.monotonic() + 5
            while i - arrived() >= window and time.monotonic() < stuck:  # (lost ones: not for ever)
                time.sleep(0.0002)
        body = f"sip {i} {time.time_ns()}".encode()
        s.sendto((f"MESSAGE sip:alice@127.0.0.1:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{nonce}x{i};rport\r\n"
                  f"From: <sip:bench@127.0.0.1:{lport}>;tag=b{i}\r\nTo: <sip:alice@127.0.0.1:{port}>\r\n"
                  f"Call-ID: bench-{nonce}-{i}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
                  f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body,
                 ("127.0.0.1", port))
    out["send_s"] = time.perf_counter() - t0
    end = time.monotonic() + 5
    while answered < n and time.monotonic() < end:
        drain(0.2)
    out["answers"] = answers
    s.close()


async def sip_to_xmpp(alice: Receiver, sip_port: int, n: int, rate: float | None, window: int) -> None:
    alice.clear()
    out: dict[str, Any] = {}
    await asyncio.to_thread(sip_sender, sip_port, n, rate, window, lambda: alice.count("sip"), out)
    await until(lambda: alice.count("sip") >= n, 30)
    lat, first, last = alice.latencies("sip")
    label = f"paced {rate:.0f}/s" if rate else f"closed loop, window {window}"
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(out["answers"].items()))
    missing = "" if len(lat) >= n else f"  ** {n - len(lat)} of {n} never arrived **"
    print(f"  {label:44s} {len(lat) / ((last - first) / 1e9) if lat else 0:7.0f} msg/s end to end "
          f"(sent in {out['send_s']:.2f} s; answers {answers}){missing}", flush=True)
    line("  UDP send -> arrival at alice", lat)


# ---------------------------------------------------------------------------- 6

async def ticker(stop: asyncio.Event, lags: list[float], period: float = 0.005) -> None:
    while not stop.is_set():  # perf_counter: uvloop's loop.time() has a 1 ms resolution
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - t - period) * 1000)


async def calls_loop(pbx: Pbx, stop: asyncio.Event, lat: list[float]) -> None:
    while not stop.is_set():
        t = time.monotonic()
        await run_call(pbx, "simple@bench")
        lat.append((time.monotonic() - t) * 1000)
        await asyncio.sleep(0.002)


FLOODER = r"""
import asyncio, sys, time
import slixmpp
port, cafile, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

async def main():
    loop = asyncio.get_running_loop()
    c = slixmpp.ClientXMPP("bob@localhost/flood", "bobpw")
    c.enable_direct_tls = False
    c.enable_starttls = True
    c.enable_plaintext = False
    c.ca_certs = cafile
    c.use_ipv6 = False
    ready = loop.create_future()
    c.add_event_handler("session_start", lambda _e: ready.done() or ready.set_result(None))
    c.connect("127.0.0.1", port)
    await asyncio.wait_for(ready, 15)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    t0 = loop.time()
    per_tick = max(1, n // 100)
    for i in range(n):
        c.send_message(mto="pbx2@localhost/pbx", mbody=f"flood {i} {time.time_ns()}", mtype="chat")
        if i % per_tick == per_tick - 1:
            await asyncio.sleep(max(0.0, t0 + (i + 1) / n - loop.time()))
    print(f"sent {loop.time() - t0:.3f}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    await c.disconnect(wait=2)

asyncio.run(main())
"""


async def flood(pbx: Pbx, prosody: Prosody, n: int, baseline_s: float) -> None:
    """bob is a slixmpp client in a process of its own (no GIL shared with the PBX)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOODER, str(prosody.port), str(prosody.cafile), str(n),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    if (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() != b"ready":
        raise SystemExit("the flooder did not connect")
    mc = core(pbx)
    routed: list[float] = []
    original = mc.route

    async def counted(msg: Any) -> None:
        await original(msg)
        if msg.context == "IncomingMessages":
            parts = msg.body.split()
            if len(parts) == 3 and parts[0] == "flood":
                routed.append((time.time_ns() - int(parts[2])) / 1e6)
    mc.route = counted  # type: ignore[method-assign]
    try:
        for label in ("without flood", "during flood"):
            stop = asyncio.Event()
            lags: list[float] = []
            lat: list[float] = []
            tasks = [asyncio.ensure_future(ticker(stop, lags)), asyncio.ensure_future(calls_loop(pbx, stop, lat))]
            began = time.monotonic()
            dropped0 = mc.dropped
            if label == "without flood":
                await asyncio.sleep(baseline_s)
            else:
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
                sent = (await asyncio.wait_for(proc.stdout.readline(), 30)).split()
                sent_s = float(sent[1]) if len(sent) == 2 else float("nan")
                ok = await until(lambda: len(routed) >= n, 30)
            stop.set()
            await asyncio.gather(*tasks)
            wall = time.monotonic() - began
            print(f"  {label}: {wall:.2f} s, {len(lat)} calls", flush=True)
            line("  Local call (Answer + Set)", lat)
            line("  event-loop lag (5 ms sleep overshoot)", lags)
            if label == "during flood":
                print(f"  flood: {n} messages sent by bob (own process) in {sent_s:.2f} s; {len(routed)} through "
                      f"the dialplan {'(all)' if ok else '(NOT all)'} within {wall:.2f} s; "
                      f"{mc.dropped - dropped0} dropped (queue full)")
                line("  bob sends -> [IncomingMessages] done", routed)
    finally:
        mc.route = original  # type: ignore[method-assign]
        proc.stdin.write(b"bye\n")
        try:
            await proc.stdin.drain()
            await asyncio.wait_for(proc.wait(), 5)
        except (asyncio.TimeoutError, ConnectionError):
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------------------- main

async def main(args: argparse.Namespace) -> None:
    machine()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="xmppbench-"))
    prosody = Prosody(work / "prosody")
    prosody.add_user("pbx2", "pbx2pw")
    prosody.befriend("asterisk", "alice")
    prosody.start()
    users: list[XmppUser] = []
    try:
        alice_u = await asyncio.to_thread(lambda: XmppUser(prosody, "alice", resource="desk").start())
        users.append(alice_u)
        bare = await asyncio.to_thread(lambda: XmppUser(prosody, "asterisk", resource="bare",
                                                        plugins=("xep_0184",)).start())
        users.append(bare)
        alice = await asyncio.to_thread(Receiver, alice_u)
        sip_port = free_port()
        files = {"xmpp_conf": XMPP_CONF.format(port=prosody.port, cafile=prosody.cafile),
                 "sip_conf": SIP_CONF.format(port=sip_port)}
        async with running_pbx(work, DIALPLAN, verbose=0, **files) as (pbx, _):
            xmpp = pbx.modules.loaded["res_xmpp"]
            if not await until(lambda: all(c.connected for c in xmpp.clients.values()), 20):
                raise SystemExit("the PBX's XMPP clients did not connect")
            print(f"Prosody 127.0.0.1:{prosody.port} (STARTTLS required); PBX clients connected "
                  f"{time.monotonic() - started:.1f} s after start", flush=True)
            n = args.n

            print(f"1. JabberSend, {n} calls -> alice (call start -> arrival):")
            await jabbersend_saturated(pbx, alice, min(200, n))  # warm-up
            sat = await jabbersend_saturated(pbx, alice, n)
            describe(f"saturated, batches of {BATCH} calls", sat, n)
            paced = await jabbersend_paced(pbx, alice, n, RATE)
            describe(f"paced at {RATE:.0f} calls/s", paced, n)

            print(f"2. reference: bare slixmpp client, same {n} messages -> alice (send -> arrival):")
            await bare_run(bare, alice, min(200, n), None)  # warm-up
            ref_sat = await bare_run(bare, alice, n, None)
            describe(f"saturated, batches of {BATCH} sends", ref_sat, n)
            ref_paced = await bare_run(bare, alice, n, RATE)
            describe(f"paced at {RATE:.0f}/s", ref_paced, n)
            print(f"  ratio hookflash / bare: saturated throughput {sat['rate'] / ref_sat['rate']:.2f}x; "
                  f"paced p95 {p95(paced['lat']):.2f} ms vs {p95(ref_paced['lat']):.2f} ms "
                  f"({p95(paced['lat']) / p95(ref_paced['lat']):.2f}x the latency)", flush=True)

            print(f"3. JABBER_RECEIVE reply -> dialplan, {args.receive_n} calls one at a time:")
            await receive_latency(pbx, alice_u, bare, args.receive_n)

            print(f"4. {args.waiting} calls in JABBER_RECEIVE(asterisk,alice@localhost,30) at once "
                  f"(same JID; {args.wait_s:.0f} s periods):")
            await many_waiting(pbx, prosody, alice_u, args.waiting, args.wait_s)

            print(f"5. SIP MESSAGE in -> MessageSend(xmpp:alice@localhost,xmpp:asterisk) -> alice, "
                  f"{args.sip_n} messages:")
            await sip_to_xmpp(alice, sip_port, args.sip_n, None, 50)
            await sip_to_xmpp(alice, sip_port, args.sip_n, RATE, 0)

            print(f"6. inbound flood: {args.flood_n} XMPP messages to the PBX (sendtodialplan) while Local "
                  f"calls run:")
            await flood(pbx, prosody, args.flood_n, args.baseline_s)
            for u in users:   # before the PBX and Prosody stop (Prosody then stops at once)
                await asyncio.to_thread(u.stop)
    finally:
        for u in users:
            await asyncio.to_thread(u.stop)
        prosody.close()
    print(f"total {time.monotonic() - started:.0f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=400, 200 waiting calls, 3 s periods")
    parser.add_argument("--asyncio", action="store_true", help="the standard event loop, not uvloop")
    args = parser.parse_args()
    q = args.quick
    args.n = 400 if q else 2000
    args.receive_n = 20 if q else 50
    args.waiting = 200 if q else 500
    args.wait_s = 3.0 if q else 10.0
    args.sip_n = 400 if q else 2000
    args.flood_n = 1000
    args.baseline_s = 1.0 if q else 2.0
    if shutil.which("prosody") is None or shutil.which("prosodyctl") is None:
        raise SystemExit("needs Prosody (apt-get install --no-install-recommends prosody)")
    logging.basicConfig(level=logging.WARNING, format="  [log] %(levelname)s %(name)s: %(message)s")
    if not args.asyncio:
        try:
            import uvloop  # type: ignore[import-not-found]
            uvloop.install()
        except ImportError:
            pass
    asyncio.run(main(args))
