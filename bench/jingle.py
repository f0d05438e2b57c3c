"""Jingle benchmark: chan_motif's call set-up with ICE and DTLS-SRTP, concurrent
Jingle-to-SIP calls on one core, and CPU per relayed packet against SIP-to-SIP.

    .venv/bin/python bench/jingle.py [--quick] [--skip 1,2,3] [--no-profile] [--keep]

Setup: a real Prosody (tests/integration/xmpp_server.py, STARTTLS) and the hookflash
process (``hookflash --config DIR -f``: res_xmpp client asterisk@localhost/pbx, chan_motif
endpoint ``[bench]`` with dtls=yes, chan_sip, verbose=0; rtp.conf restricts ICE to
loopback: ``ice_deny=0.0.0.0/0,::/0``, ``ice_permit=127.0.0.0/8``). hookflash is pinned
to core 0; Prosody, the SIPp uas, this script and the Jingle callers run on core 1. The
callers are bench/jingle_load.py, one process (uvloop): slixmpp for the signalling and
hookflash's own sans-IO Jingle (hookflash.motif.jingle) and MediaTransport (aioice ICE,
pyOpenSSL DTLS, pylibsrtp SRTP) for the media; not aiortc. Calls are spread over several
XMPP sessions (resources of load@localhost), 15 per session (hookflash takes at most 16
sessions per peer JID). Only 127.0.0.1 is used. Figures only: nothing fails on a time.
Prosody runs with ``network_settings = { nagle = false }``: with its default (Nagle on), a
stanza written to a client right after another waits for that client's delayed ACK, which
adds ~40 ms to most set-ups in (1) (``--nagle`` keeps the default, to see it).

1. Set-up time: one call at a time to ``Answer()`` + ``Echo()``. Measured at the caller
   from sending session-initiate to the first RTP packet received back (decrypted), while
   the caller sends 20 ms PCMU from the moment its ICE (+DTLS) is up; p50/p95 over N
   calls, with DTLS-SRTP and with plain RTP over ICE (no fingerprint offered), and the
   phases (initiate -> session-accept -> ICE+DTLS done -> first echo).
   Reference, same run: two bare MediaTransports in one process (the library floor: aioice
   + DTLS + SRTP with no XMPP and no PBX): from the caller having gathered to the first
   packet echoed back; ratio hookflash / floor of the p50s.
2. Concurrent Jingle-to-SIP calls: the incoming Jingle call is answered, waits for its
   media (``MOTIF_SRTP`` set), then ``Dial(SIP/1000@127.0.0.1:<uas>)`` to a SIPp uas with
   ``-rtp_echo``; hookflash relays natively (SRTP removed and applied on its side). Each
   caller sends 50 PCMU packets/s (calls staggered over the 20 ms), the echo comes back
   through hookflash. N is raised in steps while loss stays < 0.1 % (fresh hookflash and
   uas per probe, every call up, none hung up by the PBX) and the best N is confirmed for
   longer. Printed: N, loss, hookflash's CPU (% of its core), the callers' CPU, and where
   the kernel dropped packets (callers', SIPp's echo, hookflash's sockets). A probe that
   fails while the load side overflowed (callers late, their or SIPp's socket full: core 1
   is shared) is run once more.
3. CPU per relayed packet: hookflash's CPU (/proc utime+stime over the measuring window)
   / (packets sent + packets received by the callers) at a fixed N, two relays per round
   trip as in bench/sip.py (b); the reference is bench/sip.py's own (b) run (its
   ``run_media``: SIP UAC + RTP -> hookflash -> SIPp uas -rtp_echo) at the same N in this
   run; the ratio Jingle/SIP. A py-spy profile of hookflash during the Jingle run
   (``--no-profile`` to skip) shows where the time goes.
   Also: the same Jingle relay with ``Dial()`` straight after ``Answer()`` (not waiting
   for the media), to show which bridge hookflash ends up with.

Other load on the machine skews every figure: the share of core 0 used by processes other
than hookflash during each window is printed. ``--quick``: 10 set-ups per variant, probes of
3 s, steps 50/150/300, no confirmation, N=100 for (3) (about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
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
from bench import sip as sipbench  # noqa: E402
from bench._common import cpu_model, pct  # noqa: E402
from bench.sip import (  # noqa: E402
    GEN_CPU,
    RTP_END,
    RTP_START,
    SUT_CPU,
    VENV_BIN,
    Proc,
    free_port,
    own_time,
    sipp_argv,
    start,
    stop,
    stop_all,
    wait_port,
)
from tests.integration.xmpp_server import Prosody  # noqa: E402

LOSS_LIMIT = 0.001
# Prosody 0.12's epoll backend leaves Nagle on: a stanza written to a client right after
# another (hookflash's session-accept after its IQ result) then waits for the client's
# delayed ACK, ~40 ms in most set-ups; the bench measures hookflash, not that
NO_NAGLE = "network_settings = { nagle = false }\n"
PER_CONN = 15
SETUP_RATE = 50.0  # calls/s while setting up the load of (2)


def say(*args: object) -> None:
    print(*args, flush=True)


# ---------------------------------------------------------------------- the machine
def versions() -> str:
    from importlib.metadata import version
    out = []
    for pkg in ("aioice", "pyOpenSSL", "pylibsrtp", "slixmpp", "uvloop"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except Exception:  # noqa: BLE001
            out.append(f"{pkg} ?")
    return ", ".join(out)


def machine() -> None:
    about = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True, timeout=30).stdout
    prosody = next((r.strip() for r in about.splitlines() if re.match(r"Prosody \d", r)), "Prosody ?")
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    m = re.search(r"SIPp v?([\d.]+)", sipp)
    say(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    say(f"python {platform.python_version()} ({platform.python_implementation()}), loop uvloop in hookflash "
        f"and the callers; {versions()}; {prosody}; SIPp {m.group(1) if m else '?'}")


class CoreUse:
    """Busy time of one core (/proc/stat) minus the given processes' CPU: others' load."""

    def __init__(self, core: int) -> None:
        self.core = core
        self.t0 = self.busy0 = 0.0

    def _busy(self) -> float:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{self.core} "):
                    v = [int(x) for x in line.split()[1:]]
                    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def begin(self) -> None:
        self.t0, self.busy0 = time.monotonic(), self._busy()

    def others(self, own_cpu: float) -> float:
        """Share of the core used by everything but ``own_cpu`` seconds since begin()."""
        wall = time.monotonic() - self.t0
        return max(0.0, (self._busy() - self.busy0 - own_cpu) / wall) if wall > 0 else 0.0


# ---------------------------------------------------------------------- hookflash
XMPP_CONF = """[general]
[asterisk]
type=client
serverhost=127.0.0.1
username=asterisk@localhost/pbx
secret=astpw
port={port}
usetls=yes
cafile={cafile}
status=available
timeout=5
"""

MOTIF_CONF = """[bench]
context=jingle_in
disallow=all
allow=ulaw
connection=asterisk
dtls=yes
"""

SIP_CONF = """[general]
bindaddr=127.0.0.1
bindport={port}
context=bench
allowguest=no
disallow=all
allow=ulaw
"""

RTP_CONF = (f"[general]\nrtpstart={RTP_START}\nrtpend={RTP_END}\n"
            "ice_deny=0.0.0.0/0,::/0\nice_permit=127.0.0.0/8\n")

ECHO = "[jingle_in]\nexten => s,1,Answer()\n same => n,Echo()\n same => n,Hangup()\n"
# Dial once the Jingle leg's media is up (MOTIF_SRTP is set then): the bridge is native
RELAY = """[jingle_in]
exten => s,1,Answer()
 same => n,Set(I=0)
 same => n,While($["${{MOTIF_SRTP}}" = "" & ${{I}} < 500])
 same => n,Wait(0.01)
 same => n,Set(I=$[${{I}} + 1])
 same => n,EndWhile()
 same => n,Set(DB(bench/waited)=${{I}})
 same => n,Dial(SIP/1000@127.0.0.1:{uas})
 same => n,Hangup()
"""
# Dial at once: the bridge starts before ICE and DTLS are done
RELAY_AT_ONCE = """[jingle_in]
exten => s,1,Answer()
 same => n,Dial(SIP/1000@127.0.0.1:{uas})
 same => n,Hangup()
"""


class BenchProsody(Prosody):
    """The test fixture's Prosody with ``network_settings = { nagle = false }`` (``nagle``
    False: keep Prosody's default)."""

    def __init__(self, directory: Path, nagle: bool = False) -> None:
        self.nagle = nagle
        super().__init__(directory)

    def _write_config(self) -> None:
        super()._write_config()
        if not self.nagle:
            text = self.conf.read_text()
            self.conf.write_text(text.replace("interfaces = {", NO_NAGLE + "interfaces = {", 1))


class JingleSut:
    runs = 0

    def __init__(self, work: Path, prosody: Prosody) -> None:
        self.work, self.prosody = work, prosody
        self.proc: Proc | None = None

    def start(self, dialplan: str) -> None:
        JingleSut.runs += 1
        d = self.work / f"hookflash{JingleSut.runs}"
        d.mkdir(parents=True)
        self.dir = d
        self.sip_port = free_port()
        files = {"xmpp.conf": XMPP_CONF.format(port=self.prosody.port, cafile=self.prosody.cafile),
                 "motif.conf": MOTIF_CONF, "sip.conf": SIP_CONF.format(port=self.sip_port),
                 "rtp.conf": RTP_CONF, "extensions.conf": dialplan,
                 "asterisk.conf": ("[directories]\nastdbdir=db\nastspooldir=spool\nastlogdir=log\nastrundir=run\n"
                                   "astvarlibdir=lib\n[options]\nverbose=0\n")}
        for name, text in files.items():
            (d / name).write_text(text)
        self.log = d / "hookflash.log"
        self.proc = start([str(VENV_BIN / "hookflash"), "--config", str(d), "-f", "--socket", str(d / "ctl")],
                          self.log, sut=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        wait_port(self.sip_port, self.proc, 30)
        deadline = time.time() + 30
        while time.time() < deadline:
            if (d / "ctl").exists() and "Connected" in self.rx("xmpp show connections"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"hookflash's XMPP client did not connect:\n{self.proc.tail()}")

    def rx(self, command: str) -> str:
        try:
            return subprocess.run([str(VENV_BIN / "hookflash"), "--socket", str(self.dir / "ctl"), "-rx", command],
                                  capture_output=True, text=True, timeout=20).stdout
        except (subprocess.TimeoutExpired, OSError) as exc:
            return f"({exc})"

    def cpu(self) -> float:
        return self.proc.cpu() if self.proc else 0.0

    def problems(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        bad = [ln for ln in lines if re.search(r"ERROR|WARNING|Traceback|Exception", ln)]
        kinds: dict[str, int] = {}
        for ln in bad:
            k = re.sub(r"[0-9a-f]{8,}|\d+", "#", ln)[:140]
            kinds[k] = kinds.get(k, 0) + 1
        return "; ".join(f"{n}x {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:4])

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


# ---------------------------------------------------------------------- the callers
class Callers:
    """bench/jingle_load.py on core 1, driven by JSON lines."""

    def __init__(self, prosody: Prosody, log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("jingle_load.py")), "--port", str(prosody.port),
             "--cafile", str(prosody.cafile)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("ab"),
            preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}), text=True)
        self.conns = 0
        if not self._read(30).get("ready"):
            raise RuntimeError("the Jingle callers did not start")

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise TimeoutError("no answer from the Jingle callers")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Jingle callers exited (rc={self.proc.poll()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def cmd(self, timeout: float = 120, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        out = self._read(timeout)
        if "error" in out:
            raise RuntimeError(f"callers, {kw['cmd']}: {out['error']}")
        return out

    def ensure_conns(self, calls: int) -> None:
        want = max(1, math.ceil(calls / PER_CONN))
        if want > self.conns:
            self.conns = self.cmd(cmd="connect", conns=want, timeout=60)["conns"]

    def cpu(self) -> float:
        return sipbench.cpu_seconds([self.proc.pid])

    def close(self) -> None:
        try:
            self.cmd(cmd="quit", timeout=20)
            self.proc.wait(5)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------------- 1. set-up time
def fmt(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"p50 {pct(values, 0.5):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms  max {max(values):7.1f} ms"


def part1(sut: JingleSut, callers: Callers, n: int) -> dict[str, float]:
    say(f"1. call set-up, session-initiate -> first RTP back, Answer()+Echo(), {n} calls one at a time")
    sut.start(ECHO)
    figures: dict[str, float] = {}
    try:
        callers.ensure_conns(1)
        callers.cmd(cmd="setup_times", n=3, dtls=True)  # warm-up (imports, certificate)
        for dtls in (True, False):
            label = "ICE + DTLS-SRTP" if dtls else "ICE, plain RTP"
            core = CoreUse(SUT_CPU)
            cpu0 = sut.cpu()
            core.begin()
            r = callers.cmd(cmd="setup_times", n=n, dtls=dtls, timeout=60 + 10 * n)
            others = core.others(sut.cpu() - cpu0)
            f = callers.cmd(cmd="floor", n=n, dtls=dtls, timeout=60 + 10 * n)
            rows, frows = r["rows"], f["rows"]
            first = [x["first"] for x in rows]
            ffirst = [x["first"] for x in frows]
            say(f"  hookflash, {label:16s} {fmt(first)}  (n={len(rows)}; others on core {SUT_CPU}: "
                f"{100 * others:.0f} %)")
            say(f"    phases (p50): session-accept {pct([x['accept'] for x in rows], 0.5):.1f} ms, "
                f"ICE{'+DTLS' if dtls else ''} done {pct([x['connected'] for x in rows], 0.5):.1f} ms, "
                f"first echo {pct(first, 0.5):.1f} ms")
            say(f"  floor (2 bare MediaTransports, one process) {fmt(ffirst)}  (n={len(frows)}; ICE"
                f"{'+DTLS' if dtls else ''} done p50 {pct([x['connected'] for x in frows], 0.5):.1f} ms)")
            ratio = pct(first, 0.5) / pct(ffirst, 0.5) if first and ffirst else float("nan")
            say(f"  ratio hookflash / floor (p50): {ratio:.2f}x")
            for what, bad in (("hookflash", r["failed"]), ("floor", f["failed"])):
                if bad:
                    say(f"  ** {len(bad)} {what} set-ups failed: {bad[:3]}")
            key = "dtls" if dtls else "plain"
            figures[f"{key}_p50"], figures[f"{key}_p95"] = pct(first, 0.5), pct(first, 0.95)
            figures[f"{key}_floor_p50"], figures[f"{key}_ratio"] = pct(ffirst, 0.5), ratio
    finally:
        probs = sut.problems()
        if probs:
            say(f"  hookflash log: {probs}")
        sut.stop()
    return figures


# ---------------------------------------------------------------------- 2. load
def pool_idle(raw: Path) -> Path:
    """py-spy --native counts a thread-pool worker blocked on its queue (a libc wait under
    concurrent/futures/thread.py _worker) as busy; rewrite those stacks to end in epoll_wait
    so that bench/sip.py's own_time counts them idle."""
    out = raw.with_suffix(".filtered.txt")
    lines = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        py = [f for f in frames if ".py:" in f or f.endswith(".py)")]
        if py and py[-1].startswith("_worker (concurrent/futures/thread.py") and "libc" in frames[-1]:
            line = f"{stack};epoll_wait (pool worker waiting) {count}"
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out



class Probe:
    def __init__(self, n: int) -> None:
        self.n = n
        self.up = self.sent = self.got = 0
        self.cpu = self.gen_cpu = self.others = 0.0
        self.seconds = 0.0
        self.late = self.ended = self.dead = 0
        self.setup = ""
        self.note = ""
        self.passed = False
        self.profile: list[str] = []
        self.harness_drops = 0

    @property
    def harness_suspect(self) -> bool:
        """Failed, and the load side (callers late, their or SIPp's sockets full) may be why."""
        return not self.passed and self.up == self.n and (self.harness_drops > 0 or "callers late" in self.note)

    @property
    def loss(self) -> float:
        return 1 - self.got / self.sent if self.sent else 1.0

    @property
    def us_per_packet(self) -> float:
        relayed = self.sent + self.got
        return 1e6 * self.cpu / relayed if relayed else float("nan")

    def line(self) -> str:
        return (f"{self.n:5d} calls ({self.up} up{', ' + self.setup if self.setup else ''}), {self.seconds:g} s: "
                f"sent {self.sent} got {self.got} loss {100 * self.loss:.3f} %, hookflash CPU "
                f"{100 * self.cpu / self.seconds if self.seconds else 0:.0f} % ({self.us_per_packet:.1f} µs/relayed "
                f"packet), callers CPU {100 * self.gen_cpu / self.seconds if self.seconds else 0:.0f} %, "
                f"others on core {SUT_CPU} {100 * self.others:.0f} % [{'pass' if self.passed else 'FAIL'}]"
                f"{' ' + self.note if self.note else ''}")


def run_load(sut: JingleSut, callers: Callers, work: Path, n: int, seconds: float, dialplan: str = RELAY,
             profile_s: float = 0.0) -> Probe:
    pr = Probe(n)
    uas_port, uas_media = free_port(), free_port(pair=True)
    uas = start(sipp_argv("-sn", "uas", "-p", str(uas_port), "-mp", str(uas_media), "-rtp_echo",
                          "-stf", str(work / f"uas-j-{n}-{uas_port}.csv")),
                work / f"uas-j-{n}-{uas_port}.out", sut=False, cwd=work)
    spy = None
    try:
        wait_port(uas_port, uas)
        try:
            sut.start(dialplan.format(uas=uas_port))
        except RuntimeError as exc:
            pr.note = f"SUT did not start: {exc}"
            return pr
        callers.ensure_conns(n)
        s = callers.cmd(cmd="calls", n=n, rate=SETUP_RATE, timeout=60 + n / SETUP_RATE * 3)
        pr.up = s["up"]
        if s["setup_p50"] is not None:
            pr.setup = f"set-up p50 {s['setup_p50']:.0f} ms max {s['setup_max']:.0f} ms"
        if s["errors"]:
            pr.note += f" set-up errors: {s['errors']}"
        time.sleep(0.5)
        warmup = 1.0
        if profile_s and (VENV_BIN / "py-spy").exists() and sut.proc is not None:
            raw = work / f"profile-jingle-{n}.txt"
            spy = start([str(VENV_BIN / "py-spy"), "record", "--pid", str(sut.proc.pid), "--duration",
                         str(int(profile_s)), "--format", "raw", "--output", str(raw), "--rate", "200", "--native"],
                        work / "py-spy-jingle.out", sut=False)
        core = CoreUse(SUT_CPU)
        cpu0 = sut.cpu()
        core.begin()
        drops0 = sipbench.udp_drops()
        st = callers.cmd(cmd="stream", warmup=warmup, seconds=seconds, timeout=seconds + warmup + 60)
        drops1 = sipbench.udp_drops()
        delta = {port: k - drops0.get(port, 0) for port, k in drops1.items() if k > drops0.get(port, 0)}
        elapsed = warmup + seconds
        d_cpu = sut.cpu() - cpu0
        pr.others = core.others(d_cpu)
        pr.cpu = d_cpu * seconds / elapsed
        pr.gen_cpu = st["cpu_window"]
        pr.sent, pr.got, pr.seconds = st["sent"], st["got"], seconds
        pr.late, pr.ended, pr.dead = st["late"], st["ended"], st["dead"]
        if delta:  # where the kernel dropped packets: a receive buffer was full
            mine, theirs = set(s["ports"]), set(s["remote_ports"])
            ours = sum(k for port, k in delta.items() if port in mine)
            ice = sum(k for port, k in delta.items() if port in theirs)
            echo = delta.get(uas_media, 0)
            sip_rtp = sum(k for port, k in delta.items() if RTP_START <= port <= RTP_END + 1)
            pr.harness_drops = ours + echo
            if ours or ice or echo or sip_rtp:  # (other ports: other processes on the machine)
                pr.note += (f" kernel drops: callers' sockets {ours}, SIPp echo {echo}, hookflash ICE {ice}, "
                            f"hookflash SIP RTP {sip_rtp} (or another process's in {RTP_START}-{RTP_END})")
        if pr.late > st["ticks"] * 0.02:
            pr.note += f" callers late on {pr.late} ticks (generator saturated?)"
        if pr.ended:
            pr.note += f" {pr.ended} calls hung up by hookflash"
        if pr.dead:
            pr.note += f" {pr.dead} calls got nothing back"
        pr.passed = pr.up == n and pr.sent > 0 and pr.loss < LOSS_LIMIT and not pr.ended
        if spy is not None:
            spy.proc.wait(profile_s + 30)
            pr.passed = False  # the profiler paused hookflash: not a measurement
            raw = work / f"profile-jingle-{n}.txt"
            if raw.exists():
                busy, idle, leaves, pys = own_time(pool_idle(raw))
                pr.profile = [f"  profile (py-spy --native, {profile_s:g} s at {n} calls): busy "
                              f"{100 * busy / max(1, busy + idle):.0f} % of samples; own time as % of busy samples",
                              "    by leaf frame (C functions included):"]
                pr.profile += [f"      {p:5.1f} %  {name}" for p, name in leaves]
                pr.profile.append("    by innermost Python function (its C callees included):")
                pr.profile += [f"      {p:5.1f} %  {name}" for p, name in pys]
        callers.cmd(cmd="hangup", timeout=60)
        if not pr.passed:
            probs = sut.problems()
            if probs:
                pr.note += " | hookflash log: " + probs
        return pr
    finally:
        stop(spy)
        try:
            callers.cmd(cmd="hangup", timeout=60)
        except Exception:  # noqa: BLE001
            pass
        sut.stop()
        stop(uas)


def part2(sut: JingleSut, callers: Callers, work: Path, steps: list[int], probe_s: float,
          confirm_s: float | None) -> tuple[Probe | None, list[Probe]]:
    say("2. concurrent Jingle(DTLS-SRTP)->SIP calls, hookflash on one core, echo from SIPp uas -rtp_echo")
    history: list[Probe] = []

    def run(n: int, seconds: float) -> Probe:
        pr = run_load(sut, callers, work, n, seconds)
        history.append(pr)
        say(f"    probe {pr.line()}")
        if pr.harness_suspect:  # the load side on a shared core 1 may be at fault: once more
            pr = run_load(sut, callers, work, n, seconds)
            history.append(pr)
            say(f"    again {pr.line()}")
        return pr

    good: Probe | None = None
    bad = None
    part2.limit = ""  # type: ignore[attr-defined]
    for n in steps:
        pr = run(n, probe_s)
        if pr.passed:
            good = pr
        else:
            bad = n
            lost = pr.sent - pr.got
            if pr.harness_drops and pr.harness_drops >= 0.5 * lost:
                part2.limit = (f"the load side overflowed first at {n} calls: {pr.harness_drops} of the {lost} "  # type: ignore[attr-defined]
                               f"lost packets were dropped on SIPp's echo or the callers' sockets (core {GEN_CPU}), "
                               f"hookflash at {100 * pr.cpu / pr.seconds:.0f} % of its core")
            else:
                part2.limit = (f"at {n} calls: loss {100 * pr.loss:.3f} %, hookflash at "  # type: ignore[attr-defined]
                               f"{100 * pr.cpu / pr.seconds:.0f} % of its core")
            break
    if good is not None and bad is not None:
        mid = (good.n + bad) // 2 // 10 * 10
        if good.n < mid < bad:
            pr = run(mid, probe_s)
            if pr.passed:
                good = pr
    if good is None or confirm_s is None:
        return good, history
    n = good.n
    for _ in range(3):
        pr = run(n, confirm_s)
        if pr.passed:
            return pr, history
        n = int(n * 0.85) // 10 * 10 or n // 2
    return None, history


# ---------------------------------------------------------------------- 3. CPU per packet
def part3(sut: JingleSut, callers: Callers, work: Path, n: int, seconds: float, profile_s: float) -> dict[str, float]:
    say(f"3. CPU per relayed packet at {n} calls, {seconds:g} s (hookflash CPU / (sent + received))")
    j = run_load(sut, callers, work, n, seconds)
    say(f"  Jingle(SRTP)<->SIP, Dial once media is up: {j.line()}")
    k = run_load(sut, callers, work, n, seconds, dialplan=RELAY_AT_ONCE)
    say(f"  Jingle(SRTP)<->SIP, Dial right after Answer: {k.line()}")
    sip_work = work / "sip"
    sip_work.mkdir(exist_ok=True)
    hf = sipbench.Hookflash(sip_work)
    core = CoreUse(SUT_CPU)
    core.begin()
    s = sipbench.run_media(hf, sip_work, n, seconds)
    relayed = s.sent + s.received
    s_us = 1e6 * s.cpu / relayed if relayed else float("nan")
    say(f"  SIP<->SIP (bench/sip.py (b), its run_media): {s.line()}")
    ratio = j.us_per_packet / s_us if relayed else float("nan")
    at_once = k.us_per_packet / s_us if relayed else float("nan")
    say(f"  => Jingle<->SIP {j.us_per_packet:.1f} µs/packet vs SIP<->SIP {s_us:.1f} µs/packet: {ratio:.2f}x"
        f"   (Dial right after Answer: {k.us_per_packet:.1f} µs/packet, {at_once:.2f}x)")
    if profile_s:  # py-spy --native stops the process to sample it: a run of its own, figures not used
        p = run_load(sut, callers, work, n, profile_s + 2, profile_s=profile_s)
        say("\n".join(p.profile) if p.profile else "  (no profile: py-spy missing or produced nothing)")
    return {"jingle_us": j.us_per_packet, "sip_us": s_us, "ratio": ratio, "at_once_us": k.us_per_packet,
            "at_once_ratio": at_once}


# ---------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3,profile")
    parser.add_argument("--no-profile", action="store_true", help="same as --skip profile")
    parser.add_argument("--nagle", action="store_true",
                        help="keep Prosody's default Nagle (adds ~40 ms to most set-ups in (1))")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp CSVs)")
    args = parser.parse_args()
    q = args.quick
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.no_profile:
        skip.add("profile")
    setups = 10 if q else 50
    steps = [50, 150, 300] if q else [50, 100, 150, 200, 300, 400, 500, 600, 800]
    probe_s = 3.0 if q else 8.0
    confirm_s = None if q else 30.0
    ref_n = 100 if q else 200
    ref_s = 4.0 if q else 15.0
    prof_s = 0.0 if "profile" in skip else (3.0 if q else 10.0)
    for tool in ("sipp", "prosody", "prosodyctl"):
        if shutil.which(tool) is None:
            say(f"{tool} is not installed; nothing to do")
            return 1
    try:
        os.sched_setaffinity(0, {GEN_CPU})
    except OSError as exc:
        say(f"cannot pin to core {GEN_CPU}: {exc}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    machine()
    work = Path(tempfile.mkdtemp(prefix="bench-jingle-"))
    say(f"Prosody network_settings: {'default (Nagle on)' if args.nagle else 'nagle = false'}")
    say(f"hookflash on core {SUT_CPU}; Prosody, SIPp, the callers and this script on core {GEN_CPU}; "
        f"work dir {work}; loadavg before: {os.getloadavg()[0]:.2f}")
    t_start = time.time()
    prosody = BenchProsody(work / "prosody", nagle=args.nagle)
    prosody.add_user("load", "loadpw")
    prosody.start()
    callers = None
    results: dict[str, str] = {}
    try:
        callers = Callers(prosody, work / "callers.log")
        sut = JingleSut(work, prosody)
        if "1" not in skip:
            f = part1(sut, callers, setups)
            results["1"] = (f"set-up p50 {f['dtls_p50']:.1f} ms / p95 {f['dtls_p95']:.1f} ms with DTLS-SRTP "
                            f"({f['dtls_ratio']:.2f}x the floor {f['dtls_floor_p50']:.1f} ms); plain RTP over ICE "
                            f"p50 {f['plain_p50']:.1f} ms / p95 {f['plain_p95']:.1f} ms "
                            f"({f['plain_ratio']:.2f}x the floor {f['plain_floor_p50']:.1f} ms)")
        if "2" not in skip:
            best, _ = part2(sut, callers, work, steps, probe_s, confirm_s)
            results["2"] = (f"{best.n} concurrent Jingle(DTLS-SRTP)->SIP calls for {best.seconds:g} s, loss "
                            f"{100 * best.loss:.3f} %, hookflash CPU {100 * best.cpu / best.seconds:.0f} % of its core"
                            f"{' (the last step: callers or steps are the limit)' if best.n == steps[-1] else ''}"
                            if best else "no step held")
            if part2.limit:  # type: ignore[attr-defined]
                results["2"] += f"; limit: {part2.limit}"  # type: ignore[attr-defined]
        if "3" not in skip:
            f3 = part3(sut, callers, work, ref_n, ref_s, prof_s)
            results["3"] = (f"{f3['jingle_us']:.1f} µs/relayed packet Jingle<->SIP vs {f3['sip_us']:.1f} SIP<->SIP: "
                            f"{f3['ratio']:.2f}x (Dial without waiting for the Jingle media: {f3['at_once_us']:.1f} µs, "
                            f"{f3['at_once_ratio']:.2f}x: "
                            + ("the bridge went native once the media was up)"
                               if f3['at_once_us'] < 1.1 * f3['jingle_us'] else "not relayed natively)"))
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        if callers is not None:
            callers.close()
        stop_all()
        prosody.close()
    say(f"\n== summary ({time.time() - t_start:.0f} s; loadavg after {os.getloadavg()[0]:.2f})")
    for part, text in results.items():
        say(f"  ({part}) {text}")
    if args.keep:
        say(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
