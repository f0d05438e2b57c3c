"""SIP benchmark: hookflash against sippy's B2BUA and Kamailio, on the same workloads.

    .venv/bin/python bench/sip.py [--duration 30] [--quick] [--only hookflash|sippy|kamailio]
                                  [--skip a,b,c] [--no-profile]

The system under test (SUT) runs pinned to core 0; SIPp, the RTP generator and this
script run on core 1. Only 127.0.0.1 is used. Figures only: nothing here fails on a time.

(a) call rate: SIPp uac (INVITE/200/ACK/BYE, ``-d`` hold) -> SUT -> SIPp uas. The rate is
    found by doubling then bisecting with short probes (a fresh SUT and uas per probe), and
    the best is confirmed for ``--duration`` s. A probe passes when every call succeeded and
    retransmissions (uac + uas) are under 0.1 % of the retransmittable messages (INVITE,
    BYE, 200-to-INVITE: 3 per call). Also CPU ms per call of the SUT (/proc utime+stime).
(b) relayed audio: N calls set up by a small SIP UAC in this script, each sending 20 ms
    PCMU packets (50/s) to the SUT, which relays them to a SIPp uas with ``-rtp_echo``; the
    echo comes back through the SUT to us. Loss and RFC 3550 jitter (kernel receive time
    stamps) on what comes back; CPU µs per relayed packet (2 relays per round trip).
(c) REGISTER with digest auth: SIPp (bench/sip/register_users.xml), users from a CSV,
    highest rate with no failure.
Profiles: ``py-spy record`` of hookflash at a fixed load for (a) and (b), top own-time.

See docs/bench-sip.md for the method and the figures measured.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import struct
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "sip"
VENV_BIN = Path(sys.executable).parent
SUT_CPU = 0
GEN_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
RETRANS_LIMIT = 0.001  # 0.1 %
RECV_TIMEOUT_MS = 8000  # SIPp -recv_timeout of the uac: a call with no answer by then has failed
CONFIRM_FACTORS = (1.0, 0.85, 0.7, 0.5, 0.35, 0.2)
LOSS_LIMIT = 0.001
SYSTEMS = ("hookflash", "asterisk", "sippy", "kamailio")
RTP_START, RTP_END = 10000, 32767  # the SUT's RTP ports, below the ephemeral range; SIPp and we use 40000-60000

TARGETS = {"a": "300 calls/s and >= 1.2x sippy", "b": "300 relayed calls (stretch 500)",
           "c": ">= 0.15x Kamailio's registrations/s"}


def say(*args: object) -> None:
    print(*args, flush=True)


# ---------------------------------------------------------------------- processes
_used_ports: set[int] = set()


def free_port(pair: bool = False, low: int = 40000, high: int = 60000) -> int:
    """A free UDP port on 127.0.0.1 outside the SUT's RTP range (RTP_START-RTP_END)."""
    for _ in range(500):
        port = random.randrange(low, high) & ~1
        if port in _used_ports or port + 1 in _used_ports:
            continue
        socks = []
        try:
            for p in ((port, port + 1) if pair else (port,)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        _used_ports.update((port, port + 1))
        return port
    raise RuntimeError("no free port")


def udp_bound(port: int) -> bool:
    needle = f":{port:04X} "
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                if any(needle in line.split(None, 3)[1] + " " for line in f.readlines()[1:]):
                    return True
        except OSError:
            pass
    return False


def udp_drops() -> dict[int, int]:
    """Kernel drop counters (receive buffer full) of the UDP sockets on 127.0.0.1, by local port."""
    out: dict[int, int] = {}
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                port = int(parts[1].split(":")[1], 16)
                out[port] = out.get(port, 0) + int(parts[-1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def tree_pids(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def _pin_sut() -> None:
    os.sched_setaffinity(0, {SUT_CPU})
    os.setpgrp()


def _pin_gen() -> None:
    os.sched_setaffinity(0, {GEN_CPU})
    os.setpgrp()


_SPEED_CODE = """
import hashlib, json, time
blob = bytes(range(256)) * 32768
doc = {"calls": [{"id": i, "uri": f"sip:{i}@example.com", "up": True} for i in range(50)]}
def c(): hashlib.sha256(blob).digest()
def py():
    total = 0
    for i in range(60000):
        total += len(str(i)) * (i & 7)
    return total
best_c = best_py = 1e9
for _ in range(5):
    t = time.perf_counter(); c(); best_c = min(best_c, time.perf_counter() - t)
    t = time.perf_counter(); py(); best_py = min(best_py, time.perf_counter() - t)
print(f"{best_c * 1000:.2f} {best_py * 1000:.2f}")
"""


def core_speed() -> str:
    """How fast the SUT's core is right now: a C workload (SHA-256 of 8 MiB) and a Python
    one, best of 5, in ms (lower is faster). The machine's speed drifts (other VMs on the
    host): systems measured minutes apart can be compared only alongside this."""
    try:
        out = subprocess.run([sys.executable, "-c", _SPEED_CODE], capture_output=True, text=True,
                             timeout=60, preexec_fn=_pin_sut).stdout.split()
        return f"core {SUT_CPU} speed now: C {out[0]} ms, Python {out[1]} ms (lower is faster)"
    except (OSError, IndexError, subprocess.TimeoutExpired) as exc:
        return f"core speed not measured: {exc!r}"


class Proc:
    """A child process in its own process group; ``stop`` ends the group."""

    def __init__(self, argv: list[str], log: Path, sut: bool, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv, self.log = argv, log
        self.proc = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                     preexec_fn=_pin_sut if sut else _pin_gen)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(tree_pids(self.pid))

    def stop(self, grace: float = 3.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        else:  # the leader is gone; make sure no child of its group is left
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


_live: list[Proc] = []


def start(argv: list[str], log: Path, sut: bool, **kw: object) -> Proc:
    p = Proc(argv, log, sut, **kw)  # type: ignore[arg-type]
    _live.append(p)
    return p


def stop(p: Proc | None, grace: float = 3.0) -> None:
    if p is not None:
        p.stop(grace)
        if p in _live:
            _live.remove(p)


def stop_all() -> None:
    for p in list(_live):
        stop(p, 1.0)


def wait_port(port: int, proc: Proc, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while not udp_bound(port):
        if not proc.alive():
            raise RuntimeError(f"{proc.argv[0]} exited (rc={proc.proc.returncode}):\n{proc.tail()}")
        if time.time() > deadline:
            raise RuntimeError(f"{proc.argv[0]} did not bind UDP {port}:\n{proc.tail()}")
        time.sleep(0.03)


# ---------------------------------------------------------------------- systems under test
class Sut:
    name = "?"
    media = False  # relays RTP in (b)
    registrar = False  # does (c)

    def __init__(self, work: Path, verbose: int = 0) -> None:
        self.work = work
        self.verbose = verbose
        self.proc: Proc | None = None
        self.port = 0

    def available(self) -> str | None:
        """None, or why this system cannot run."""
        return None

    def start_proxy(self, uas_port: int) -> None:
        raise NotImplementedError

    def start_registrar(self, users: list[tuple[str, str]]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def cpu(self) -> float:
        return self.proc.cpu() if self.proc else 0.0

    def problems(self) -> str:
        return ""


class Hookflash(Sut):
    name = "hookflash"
    media = True
    registrar = True
    runs = 0

    def available(self) -> str | None:
        return None if (VENV_BIN / "hookflash").exists() else f"{VENV_BIN / 'hookflash'} is missing"

    def _start(self, sip_conf: str, extensions: str) -> None:
        Hookflash.runs += 1
        d = self.work / f"hookflash{Hookflash.runs}"
        d.mkdir(parents=True)
        (d / "sip.conf").write_text(sip_conf)
        (d / "extensions.conf").write_text(extensions)
        (d / "rtp.conf").write_text(f"[general]\nrtpstart={RTP_START}\nrtpend={RTP_END}\n")
        # the CDR engine runs, but no CDR is written: the Asterisk under test has no CDR backend
        (d / "modules.conf").write_text("[modules]\nautoload=yes\nnoload => cdr_csv.so\n")
        (d / "asterisk.conf").write_text(
            "[directories]\nastdbdir=db\nastspooldir=spool\nastlogdir=log\nastrundir=run\n"
            f"astvarlibdir=lib\n[options]\nverbose={self.verbose}\n")
        self.dir = d
        self.log = d / "hookflash.log"
        self.proc = start([str(VENV_BIN / "hookflash"), "--config", str(d), "-f", "--socket", str(d / "ctl")],
                          self.log, sut=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        wait_port(self.port, self.proc, 30)
        deadline = time.time() + 20
        while not (d / "ctl").exists() and time.time() < deadline:
            time.sleep(0.05)

    def general(self) -> str:
        self.port = free_port()
        return (f"[general]\nbindaddr=127.0.0.1\nbindport={self.port}\ncontext=bench\n"
                "allowguest=yes\nalwaysauthreject=yes\ndisallow=all\nallow=ulaw\n")

    def start_proxy(self, uas_port: int) -> None:
        # as the Asterisk under test: Dial(SIP/peer/exten) to a [uas] type=peer
        peer = (f"\n[uas]\ntype=peer\nhost=127.0.0.1\nport={uas_port}\ncontext=bench\n"
                "insecure=invite\nqualify=no\n")
        dialplan = ("[bench]\n"
                    "exten => _X.,1,Dial(SIP/uas/${EXTEN})\n"
                    " same => n,Hangup()\n")
        self._start(self.general() + peer, dialplan)

    def start_registrar(self, users: list[tuple[str, str]]) -> None:
        conf = self.general() + "\n[phone](!)\ntype=friend\nhost=dynamic\ncontext=bench\n"
        conf += "".join(f"\n[{u}](phone)\nsecret={p}\n" for u, p in users)
        self._start(conf, "[bench]\nexten => _X.,1,Hangup()\n")

    def rx(self, command: str) -> str:
        try:
            return subprocess.run([str(VENV_BIN / "hookflash"), "--socket", str(self.dir / "ctl"), "-rx", command],
                                  capture_output=True, text=True, timeout=20).stdout
        except (subprocess.TimeoutExpired, OSError) as exc:
            return f"({exc})"

    def problems(self) -> str:
        if self.proc is None:
            return ""
        out = self.stalls()
        lines = self.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if re.search(r"ERROR|WARNING|Traceback|Exception", ln)]
        if not bad:
            return out
        kinds = Counter(re.sub(r"^\[[^\]]*\] ", "", re.sub(r"[0-9a-f]{8}\b|\d+", "#", ln))[:140] for ln in bad)
        return "; ".join([out] + [f"{n}x {k}" for k, n in kinds.most_common(4)])

    def stalls(self) -> str:
        """`core show loop` in one line: the worst event-loop lag and collection of the last
        minute and the stalls (100 ms or more), so a failed probe can be tied to one."""
        report = self.rx("core show loop")
        lag = re.search(r"Max lag:.*1 min ([\d.]+) ms", report)
        gcm = re.search(r"Max GC:.*1 min ([\d.]+) ms", report)
        stalls = re.findall(r"(\d\d:\d\d:\d\d\.\d+)\s+(\S+(?: gen\d)?)\s+([\d.]+) ms", report)
        if not lag:
            return f"loop: {report.strip()[:100]}"
        text = f"loop lag max {lag.group(1)} ms, GC max {gcm.group(1) if gcm else '?'} ms"
        if stalls:
            text += ", stalls: " + " ".join(f"{t} {w} {float(ms):.0f} ms" for t, w, ms in stalls[-5:])
        return text


class Sippy(Sut):
    name = "sippy"

    def available(self) -> str | None:
        if not (VENV_BIN / "b2bua_simple").exists():
            return "b2bua_simple not found (.venv/bin/pip install sippy)"
        return None

    def start_proxy(self, uas_port: int) -> None:
        self.port = free_port()
        self.log = self.work / f"sippy-{self.port}.log"
        self.proc = start([str(VENV_BIN / "b2bua_simple"), "-f", "-l", "127.0.0.1", "-p", str(self.port),
                           "-n", f"127.0.0.1:{uas_port}", "-L", str(self.log)], self.log, sut=True)
        wait_port(self.port, self.proc)


class Kamailio(Sut):
    name = "kamailio"
    registrar = True
    children = 1  # one UDP worker on its one core; with 2, 180 and 200 can be relayed out of order

    def available(self) -> str | None:
        if shutil.which("kamailio") is None:
            return "kamailio is not installed (apt-get install -y kamailio)"
        return None

    def _start(self, template: str, **fill: str) -> None:
        self.port = free_port()
        text = (HERE / template).read_text()
        fill = dict(fill, PORT=str(self.port), CHILDREN=str(self.children))
        for key, value in fill.items():
            text = text.replace(f"@{key}@", value)
        cfg = self.work / f"kamailio-{self.port}.cfg"
        cfg.write_text(text)
        rundir = self.work / f"kamrun-{self.port}"
        rundir.mkdir()
        self.log = self.work / f"kamailio-{self.port}.log"
        self.proc = start(["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(rundir), "-m", "256", "-M", "16"],
                          self.log, sut=True)
        wait_port(self.port, self.proc)
        time.sleep(0.3)  # children start after the bind

    def start_proxy(self, uas_port: int) -> None:
        self._start("kamailio-proxy.cfg", UAS_PORT=str(uas_port))

    def start_registrar(self, users: list[tuple[str, str]]) -> None:
        lines = "\n".join(f'    $sht(users=>{u}) = "{p}";' for u, p in users)
        self._start("kamailio-registrar.cfg", USERS=lines)


ASTERISK = Path(os.environ.get("ASTERISK_PREFIX", "/work/asterisk/root"))
# only what the call path needs: SIP, Dial, the dialplan, u-law, RTP and the bridges
ASTERISK_MODULES = ("chan_sip", "app_dial", "pbx_config", "codec_ulaw", "res_rtp_asterisk",
                    "bridge_simple", "bridge_native_rtp", "res_timing_timerfd")
# res_rtp_asterisk needs these when Asterisk was built with pjproject (ICE)
ASTERISK_OPTIONAL = ("res_sorcery_config", "res_sorcery_memory", "res_pjproject")


class Asterisk(Sut):
    """Asterisk 20 with chan_sip, as built in tests/data/imap/README.md (not needed by CI).

    Its own configuration directory per run (asterisk.conf's directories point into the work
    directory, ``-C``), ``autoload=no`` and only ASTERISK_MODULES. ``directmedia=no`` keeps the
    media on the PBX, like hookflash's relay."""

    name = "asterisk"
    media = True
    runs = 0

    def __init__(self, work: Path, verbose: int = 0) -> None:
        super().__init__(work, verbose)
        self.binary = ASTERISK / "sbin" / "asterisk"
        self.moddir = ASTERISK / "lib" / "asterisk" / "modules"

    def available(self) -> str | None:
        if not self.binary.exists():
            return f"Asterisk not found at {self.binary} (set ASTERISK_PREFIX)"
        missing = [m for m in ASTERISK_MODULES if not (self.moddir / f"{m}.so").exists()]
        if missing:
            return f"Asterisk at {ASTERISK} lacks {', '.join(m + '.so' for m in missing)}"
        return None

    def start_proxy(self, uas_port: int) -> None:
        Asterisk.runs += 1
        d = self.work / f"asterisk{Asterisk.runs}"
        for sub in ("run", "log", "lib", "spool", "keys", "agi"):
            (d / sub).mkdir(parents=True)
        self.port = free_port()
        dirs = {"astetcdir": d, "astmoddir": self.moddir, "astvarlibdir": d / "lib", "astdbdir": d / "lib",
                "astkeydir": d / "keys", "astdatadir": ASTERISK / "var" / "lib" / "asterisk", "astagidir": d / "agi",
                "astspooldir": d / "spool", "astrundir": d / "run", "astlogdir": d / "log",
                "astsbindir": ASTERISK / "sbin"}
        self.conf = d / "asterisk.conf"
        self.conf.write_text("[directories]\n" + "".join(f"{k} => {v}\n" for k, v in dirs.items())
                             + f"[options]\nverbose = {self.verbose}\ndebug = 0\nnofork = yes\n"
                             "documentation_language = en_US\n")
        (d / "modules.conf").write_text("[modules]\nautoload = no\n"
                                        + "".join(f"load => {m}.so\n" for m in ASTERISK_OPTIONAL
                                                  if (self.moddir / f"{m}.so").exists())
                                        + "".join(f"load => {m}.so\n" for m in ASTERISK_MODULES))
        (d / "logger.conf").write_text("[general]\n[logfiles]\nmessages => error,warning\n")
        for quiet in ("cdr", "cel", "features", "acl", "udptl", "ccss", "indications"):
            (d / f"{quiet}.conf").write_text("")  # defaults, without a complaint in the log
        (d / "rtp.conf").write_text(f"[general]\nrtpstart={RTP_START}\nrtpend={RTP_END}\n")
        (d / "sip.conf").write_text(
            f"[general]\nudpbindaddr=127.0.0.1:{self.port}\ncontext=bench\nallowguest=yes\n"
            "alwaysauthreject=yes\ndisallow=all\nallow=ulaw\ndirectmedia=no\ntcpenable=no\n"
            "\n[uas]\ntype=peer\nhost=127.0.0.1\n"
            f"port={uas_port}\ncontext=bench\ndirectmedia=no\ninsecure=invite\nqualify=no\n")
        (d / "extensions.conf").write_text("[bench]\nexten => _X.,1,Dial(SIP/uas/${EXTEN})\n"
                                           " same => n,Hangup()\n")
        self.log = d / "asterisk.out"
        # a build with pjproject (for ICE) links res_pjproject to a pjproject of its own
        libs = [str(p) for p in (ASTERISK / "lib", ASTERISK.parent / "pjproject" / "lib") if p.is_dir()]
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(libs + [os.environ.get("LD_LIBRARY_PATH", "")]))
        self.proc = start([str(self.binary), "-f", "-n", "-C", str(self.conf)], self.log, sut=True, cwd=d, env=env)
        wait_port(self.port, self.proc, 30)
        subprocess.run([str(self.binary), "-C", str(self.conf), "-rx", "core waitfullybooted"],
                       capture_output=True, timeout=30, env=env, check=False)

    def problems(self) -> str:
        try:
            lines = (self.work / f"asterisk{Asterisk.runs}" / "log" / "messages").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        startup = ("deprecated", "indications.c", "res_sorcery_config.c")  # said once at every start
        bad = [ln for ln in lines if re.search(r"ERROR|WARNING", ln) and not any(x in ln for x in startup)]
        kinds = Counter(re.sub(r"^\[[^\]]*\] ", "", re.sub(r"\d+", "#", ln))[:140] for ln in bad)
        return "; ".join(f"{n}x {k}" for k, n in kinds.most_common(4))


# ---------------------------------------------------------------------- SIPp
def read_stf(path: Path) -> dict[str, str]:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head, last = lines[0].split(";"), lines[-1].split(";")
    return dict(zip(head, last))


def stat(d: dict[str, str], key: str) -> int:
    try:
        return int(d.get(key, "0") or 0)
    except ValueError:
        return 0


def sipp_argv(*args: str) -> list[str]:
    return ["sipp", *args, "-nostdin", "-i", "127.0.0.1", "-trace_stat", "-fd", "1"]


@dataclass
class Probe:
    rate: float
    calls: int
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    note: str = ""
    passed: bool = False

    def ratio(self, per_call: int) -> float:
        return self.retrans / max(1, self.calls * per_call)

    def line(self, per_call: int) -> str:
        ms = 1000 * self.cpu / self.ok if self.ok else float("nan")
        verdict = "pass" if self.passed else "FAIL"
        return (f"{self.rate:7.0f}/s x {self.elapsed:5.1f}s: {self.ok:6d} ok {self.failed:5d} failed, "
                f"retrans {self.retrans} ({100 * self.ratio(per_call):.3f} %), "
                f"{ms:6.2f} ms CPU/call [{verdict}]{' ' + self.note if self.note else ''}")


def start_uas(work: Path, name: str, *extra: str) -> tuple[Proc, int, int, Path]:
    """SIPp uas on fresh ports (returns it, its SIP and media ports and its -stf CSV). Other
    programs on the machine may take a port between our check and SIPp's bind: then SIPp
    exits, and we try other ports."""
    for attempt in range(4):
        uas_port, uas_media = free_port(), free_port(pair=True)
        tag = f"{name}-{uas_port}"
        stf = work / f"uas-{tag}.csv"
        uas = start(sipp_argv("-sn", "uas", "-p", str(uas_port), "-mp", str(uas_media), "-stf", str(stf), *extra),
                    work / f"uas-{tag}.out", sut=False, cwd=work)
        try:
            wait_port(uas_port, uas)
            return uas, uas_port, uas_media, stf
        except RuntimeError:
            stop(uas)
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def run_calls(sut: Sut, work: Path, rate: float, seconds: float, hold_ms: int) -> Probe:
    """One call-rate probe with a fresh uas and a fresh SUT."""
    calls = max(1, int(rate * seconds))
    pr = Probe(rate, calls)
    uas, uas_port, _, uas_stf = start_uas(work, f"{sut.name}-{int(rate)}", "-recv_timeout", "20000")
    tag = f"{sut.name}-{int(rate)}-{uas_port}"
    uac_stf = work / f"uac-{tag}.csv"
    uac = None
    try:
        try:
            sut.start_proxy(uas_port)
        except RuntimeError as exc:
            pr.note = f"SUT did not start: {exc}"
            return pr
        uac_port = free_port()
        limit = str(max(1000, int(rate * (hold_ms / 1000 + 8) * 2)))
        cpu0 = sut.cpu()
        t0 = time.time()
        uac = start(sipp_argv(f"127.0.0.1:{sut.port}", "-sn", "uac", "-s", "1000", "-p", str(uac_port),
                              "-mp", str(free_port(pair=True)), "-r", f"{rate:g}", "-m", str(calls),
                              "-d", str(hold_ms), "-l", limit, "-recv_timeout", str(RECV_TIMEOUT_MS),
                              "-timeout", f"{int(seconds + hold_ms / 1000 + 3 + RECV_TIMEOUT_MS / 500)}s",
                              "-stf", str(uac_stf)),
                    work / f"uac-{tag}.out", sut=False, cwd=work)
        try:
            uac.proc.wait(seconds + hold_ms / 1000 + 40)
        except subprocess.TimeoutExpired:
            pr.note = "uac did not finish"
        pr.elapsed = time.time() - t0
        pr.cpu = sut.cpu() - cpu0
        time.sleep(1.1)  # the uas writes its stats every second
        a, b = read_stf(uac_stf), read_stf(uas_stf)
        pr.ok = stat(a, "SuccessfulCall(C)")
        pr.failed = stat(a, "FailedCall(C)") + (calls - stat(a, "OutgoingCall(C)"))
        pr.retrans = stat(a, "Retransmissions(C)") + stat(b, "Retransmissions(C)")
        # a SUT that falls behind stretches the run: allow 2 s (+10 %) over sending time + hold
        expected = 1.1 * seconds + hold_ms / 1000 + 2
        if pr.elapsed > expected and not pr.note:
            pr.note = f"took {pr.elapsed:.1f}s for a {seconds:g}s run (SUT fell behind)"
        pr.passed = (pr.failed == 0 and pr.ok == calls and pr.ratio(3) < RETRANS_LIMIT
                     and pr.elapsed <= expected)
        if not pr.passed:
            probs = sut.problems()
            if probs:
                pr.note += (" | SUT log: " + probs)
        return pr
    finally:
        stop(uac)
        stop(uas)
        sut.stop()


def run_registers(sut: Sut, work: Path, rate: float, seconds: float, users: list[tuple[str, str]]) -> Probe:
    calls = max(1, int(rate * seconds))
    pr = Probe(rate, calls)
    csv = work / "users.csv"
    if not csv.exists():
        csv.write_text("SEQUENTIAL\n" + "".join(f"{u};{p};[authentication username={u} password={p}]\n"
                                                for u, p in users))
    try:
        sut.start_registrar(users)
    except RuntimeError as exc:
        pr.note = f"SUT did not start: {exc}"
        return pr
    tag = f"{sut.name}-reg-{int(rate)}-{sut.port}"
    stf = work / f"reg-{tag}.csv"
    uac = None
    try:
        cpu0 = sut.cpu()
        t0 = time.time()
        uac = start(sipp_argv(f"127.0.0.1:{sut.port}", "-sf", str(HERE / "register_users.xml"),
                              "-inf", str(csv), "-p", str(free_port()), "-r", f"{rate:g}", "-m", str(calls),
                              "-l", str(max(1000, int(rate * 10))), "-recv_timeout", str(RECV_TIMEOUT_MS),
                              "-timeout", f"{int(seconds + 3 + RECV_TIMEOUT_MS / 500)}s", "-stf", str(stf)),
                    work / f"reg-{tag}.out", sut=False, cwd=work)
        try:
            uac.proc.wait(seconds + 40)
        except subprocess.TimeoutExpired:
            pr.note = "sipp did not finish"
        pr.elapsed = time.time() - t0
        pr.cpu = sut.cpu() - cpu0
        a = read_stf(stf)
        pr.ok = stat(a, "SuccessfulCall(C)")
        pr.failed = stat(a, "FailedCall(C)") + (calls - stat(a, "OutgoingCall(C)"))
        pr.retrans = stat(a, "Retransmissions(C)")
        expected = 1.1 * seconds + 2
        if pr.elapsed > expected and not pr.note:
            pr.note = f"took {pr.elapsed:.1f}s for a {seconds:g}s run (SUT fell behind)"
        pr.passed = pr.failed == 0 and pr.ok == calls and pr.ratio(2) < RETRANS_LIMIT and pr.elapsed <= expected
        if pr.passed and isinstance(sut, Hookflash):
            peers = sut.rx("sip show peers")
            m = re.search(r"(\d+) sip peers \[Monitored: \d+ online, \d+ offline Unmonitored: (\d+) online", peers)
            if m:
                pr.note = f"sip show peers: {m.group(2)} of {m.group(1)} registered"
        if not pr.passed:
            probs = sut.problems()
            if probs:
                pr.note += (" | SUT log: " + probs)
        return pr
    finally:
        stop(uac)
        sut.stop()


def search(probe: Callable[[float, float], Probe], per_call: int, start_rate: float, cap: float,
           probe_s: float, duration: float, bisect_steps: int, label: str) -> tuple[Probe | None, list[Probe]]:
    """Double from start_rate until a probe fails (or cap), bisect, confirm for ``duration``."""
    history: list[Probe] = []

    def run(rate: float, seconds: float) -> Probe:
        pr = probe(rate, seconds)
        history.append(pr)
        say(f"    {label} probe {pr.line(per_call)}")
        return pr

    good, bad = 0.0, None
    rate = start_rate
    while rate <= cap:
        if run(rate, probe_s).passed:
            good = rate
            rate *= 2
        else:
            bad = rate
            break
    if good and good * 2 > cap and bad is None and good < cap:
        if run(cap, probe_s).passed:
            good = cap
        else:
            bad = cap
    if not good:
        lo = start_rate / 4
        if run(lo, probe_s).passed:
            good, bad = lo, start_rate
        else:
            return None, history
    if bad is not None:
        for _ in range(bisect_steps):
            mid = round((good + bad) / 2 / 10) * 10 or (good + bad) / 2
            if mid <= good or mid >= bad:
                break
            if run(mid, probe_s).passed:
                good = mid
            else:
                bad = mid
    # confirm for the full duration; a system that degrades over a long run (hookflash, sippy)
    # does not hold its short-probe rate, so step down further each time
    for factor in CONFIRM_FACTORS:
        rate = max(1.0, round(good * factor / 5) * 5)
        pr = run(rate, duration)
        if pr.passed:
            return pr, history
    return None, history


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
        except (OSError, ValueError):
            pass
    return total


def sipp_current(path: Path) -> int:
    return stat(read_stf(path), "CurrentCall")


@dataclass
class Held:
    calls: int
    up: int = 0
    rss0_kib: int = 0
    rss_kib: int = 0
    cpu_rest: float = 0.0  # share of one core while the calls are held
    setup_ms: float = 0.0  # CPU ms per call while setting them up
    note: str = ""

    def line(self) -> str:
        per_call = (self.rss_kib - self.rss0_kib) / max(1, self.up)
        return (f"{self.up} of {self.calls} calls held: RSS {self.rss0_kib / 1024:.0f} -> {self.rss_kib / 1024:.0f} MiB "
                f"({per_call:.1f} KiB/call), CPU at rest {100 * self.cpu_rest:.1f} % of a core, "
                f"set-up {self.setup_ms:.2f} ms CPU/call{' ' + self.note if self.note else ''}")


def run_held(sut: Sut, work: Path, n: int, rate: float, hold_ms: int, rest_s: float = 10.0) -> Held:
    """n concurrent calls (SIPp uac -d hold_ms at ``rate``), media anchored on the SUT but idle:
    the SUT's memory per call and its CPU while nothing happens."""
    res = Held(n)
    uas, uas_port, _, _ = start_uas(work, f"{sut.name}-held-{n}", "-recv_timeout", str(hold_ms + 30000))
    tag = f"{sut.name}-held-{n}-{uas_port}"
    uac_stf = work / f"uac-{tag}.csv"
    uac = None
    try:
        try:
            sut.start_proxy(uas_port)
        except RuntimeError as exc:
            res.note = f"SUT did not start: {exc}"
            return res
        assert sut.proc is not None
        time.sleep(1.0)
        res.rss0_kib = rss_kib(tree_pids(sut.proc.pid))
        cpu0 = sut.cpu()
        setup_s = n / rate
        uac = start(sipp_argv(f"127.0.0.1:{sut.port}", "-sn", "uac", "-s", "1000", "-p", str(free_port()),
                              "-mp", str(free_port(pair=True)), "-r", f"{rate:g}", "-m", str(n), "-l", str(n),
                              "-d", str(hold_ms), "-recv_timeout", str(RECV_TIMEOUT_MS),
                              "-timeout", f"{int(setup_s + hold_ms / 1000 + 30)}s", "-stf", str(uac_stf)),
                    work / f"uac-{tag}.out", sut=False, cwd=work)
        time.sleep(setup_s + 3.0)
        cpu1 = sut.cpu()
        res.setup_ms = 1000 * (cpu1 - cpu0) / n
        if setup_s + 3.0 + rest_s + 2.0 > hold_ms / 1000:
            res.note = f"(hold {hold_ms} ms is too short for the rest window)"
        t1 = time.time()
        time.sleep(rest_s)
        res.cpu_rest = (sut.cpu() - cpu1) / (time.time() - t1)
        res.rss_kib = rss_kib(tree_pids(sut.proc.pid))
        res.up = sipp_current(uac_stf)
        if stat(read_stf(uac_stf), "FailedCall(C)"):
            res.note += f" {stat(read_stf(uac_stf), 'FailedCall(C)')} calls failed"
        return res
    finally:
        stop(uac)
        stop(uas)
        sut.stop()


# ---------------------------------------------------------------------- (b) SIP UAC + RTP
_HDR = struct.Struct("!BBHII")
_TAG = struct.Struct("!II")
PAYLOAD_PAD = b"\xff" * (160 - _TAG.size)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _hdr(msg: str, name: str) -> str:
    m = re.search(rf"^{name}\s*:\s*(.*)$", msg, re.M | re.I)
    return m.group(1).strip() if m else ""


@dataclass
class Leg:
    idx: int
    call_id: str
    tag: str
    branch: str
    invite: bytes = b""
    state: str = "new"  # new, trying, up, failed, bye, done
    sent_at: float = 0.0
    next_retx: float = 0.0
    retx: int = 0
    to_hdr: str = ""
    contact: str = ""
    media: tuple[str, int] | None = None
    bye: bytes = b""
    # RTP stats
    ssrc: int = 0
    sent: int = 0
    got: int = 0
    jitter: float = 0.0
    last_transit: float | None = None
    max_seq_seen: int = -1


@dataclass
class MediaResult:
    calls: int
    established: int = 0
    sent: int = 0
    received: int = 0
    jitter_p99_ms: float = 0.0
    jitter_mean_ms: float = 0.0
    cpu: float = 0.0
    seconds: float = 0.0
    late_ticks: int = 0
    note: str = ""
    passed: bool = False

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0

    def line(self) -> str:
        relayed = self.sent + self.received
        us = 1e6 * self.cpu / relayed if relayed else float("nan")
        verdict = "pass" if self.passed else "FAIL"
        return (f"{self.calls:5d} calls ({self.established} up), {self.seconds:4.1f}s: sent {self.sent} got "
                f"{self.received} loss {100 * self.loss:.3f} %, jitter p99 {self.jitter_p99_ms:.2f} ms "
                f"(mean {self.jitter_mean_ms:.2f}), {us:.1f} µs CPU/relayed packet, SUT CPU "
                f"{100 * self.cpu / self.seconds if self.seconds else 0:.0f} % [{verdict}]"
                f"{' ' + self.note if self.note else ''}")


class MediaLoad:
    """N calls through the SUT: SIP signalling and RTP over two sockets of our own."""

    def __init__(self, sut_port: int, n: int, setup_rate: float = 100.0) -> None:
        self.sut = ("127.0.0.1", sut_port)
        self.n = n
        self.setup_rate = setup_rate
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.setblocking(False)
        self.sip_port = self.sip.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            try:
                self.rtp.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                break
            except OSError:
                continue
        try:
            self.rtp.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), 8 << 20)
        except OSError:
            pass
        self.rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.rtp_port = self.rtp.getsockname()[1]
        self.legs: list[Leg] = []
        self.by_callid: dict[str, Leg] = {}
        self.jitters: list[float] = []
        self.measuring = False
        self.stray_requests = 0
        self.dropped = 0

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    # ---- SIP
    def _from(self, leg: Leg) -> str:
        return f"<sip:bench@127.0.0.1:{self.sip_port}>;tag={leg.tag}"

    def _invite(self, leg: Leg) -> bytes:
        sdp = (f"v=0\r\no=- {leg.idx + 1} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {self.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
        uri = f"sip:{1000 + leg.idx}@127.0.0.1:{self.sut[1]}"
        return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={leg.branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: {self._from(leg)}\r\nTo: <{uri}>\r\nCall-ID: {leg.call_id}\r\n"
                f"CSeq: 1 INVITE\r\nContact: <sip:bench@127.0.0.1:{self.sip_port}>\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()

    def _in_dialog(self, leg: Leg, method: str, cseq: int) -> bytes:
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        return (f"{method} {leg.contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: {self._from(leg)}\r\nTo: {leg.to_hdr}\r\nCall-ID: {leg.call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n").encode()

    def _answer_request(self, msg: str) -> None:
        self.stray_requests += 1
        method = msg.split(" ", 1)[0]
        vias = re.findall(r"^Via\s*:.*$", msg, re.M | re.I)
        to = _hdr(msg, "To")
        if ";tag=" not in to:
            to += ";tag=bench"
        resp = ("SIP/2.0 200 OK\r\n" + "\r\n".join(v.strip() for v in vias) +
                f"\r\nFrom: {_hdr(msg, 'From')}\r\nTo: {to}\r\nCall-ID: {_hdr(msg, 'Call-ID')}\r\n"
                f"CSeq: {_hdr(msg, 'CSeq')}\r\nContent-Length: 0\r\n\r\n")
        if method != "ACK":
            self.sip.sendto(resp.encode(), self.sut)
        if method == "BYE":
            leg = self.by_callid.get(_hdr(msg, "Call-ID"))
            if leg is not None and leg.state == "up":
                leg.state = "done"
                self.dropped += 1

    def _on_sip(self, data: bytes) -> None:
        msg = data.decode(errors="replace")
        if not msg.startswith("SIP/2.0"):
            self._answer_request(msg)
            return
        leg = self.by_callid.get(_hdr(msg, "Call-ID"))
        if leg is None:
            return
        status = int(msg[8:11])
        method = _hdr(msg, "CSeq").split()[-1].upper()
        if method == "INVITE":
            if status < 200:
                if leg.state == "new":
                    leg.state = "trying"
                return
            if status >= 300:
                leg.state = "failed"
                ack = (f"ACK sip:{1000 + leg.idx}@127.0.0.1:{self.sut[1]} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={leg.branch};rport\r\nMax-Forwards: 70\r\n"
                       f"From: {self._from(leg)}\r\nTo: {_hdr(msg, 'To')}\r\nCall-ID: {leg.call_id}\r\n"
                       f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                self.sip.sendto(ack.encode(), self.sut)
                return
            if not leg.to_hdr:
                leg.to_hdr = _hdr(msg, "To")
                m = re.search(r"<([^>]+)>", _hdr(msg, "Contact"))
                leg.contact = m.group(1) if m else f"sip:127.0.0.1:{self.sut[1]}"
                body = msg.split("\r\n\r\n", 1)[-1]
                mc = re.search(r"^c=IN IP4 (\S+)", body, re.M)
                mm = re.search(r"^m=audio (\d+)", body, re.M)
                if mm:
                    leg.media = (mc.group(1) if mc else "127.0.0.1", int(mm.group(1)))
                if leg.state in ("new", "trying"):
                    leg.state = "up" if leg.media else "failed"
            self.sip.sendto(self._in_dialog(leg, "ACK", 1), self.sut)
        elif method == "BYE" and status >= 200:
            leg.state = "done"

    def _pump_sip(self) -> None:
        while True:
            try:
                data = self.sip.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            self._on_sip(data)

    def setup(self, timeout: float = 30.0) -> int:
        t0 = time.monotonic()
        interval = 1.0 / self.setup_rate
        for i in range(self.n):
            leg = Leg(i, f"bench-{os.getpid()}-{i}-{random.getrandbits(32):x}", f"{random.getrandbits(32):x}",
                      f"z9hG4bK{random.getrandbits(48):x}", ssrc=random.getrandbits(32))
            leg.invite = self._invite(leg)
            self.legs.append(leg)
            self.by_callid[leg.call_id] = leg
        pending = list(self.legs)
        next_send = t0
        deadline = t0 + self.n / self.setup_rate + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            while pending and now >= next_send:
                leg = pending.pop(0)
                self.sip.sendto(leg.invite, self.sut)
                leg.sent_at, leg.next_retx = now, now + 0.5
                next_send += interval
            for leg in self.legs:
                if leg.state == "new" and leg.sent_at and now >= leg.next_retx and leg.retx < 6:
                    leg.retx += 1
                    self.sip.sendto(leg.invite, self.sut)
                    leg.next_retx = now + 0.5 * (2 ** leg.retx)
            self._pump_sip()
            if not pending and all(leg.state in ("up", "failed") for leg in self.legs):
                break
            select.select([self.sip], [], [], 0.005)
        return sum(1 for leg in self.legs if leg.state == "up")

    def teardown(self, timeout: float = 10.0) -> None:
        up = [leg for leg in self.legs if leg.state in ("up", "trying", "new") and leg.to_hdr]
        for i, leg in enumerate(up):
            leg.bye = self._in_dialog(leg, "BYE", 2)
            leg.state = "bye"
            self.sip.sendto(leg.bye, self.sut)
            if i % 50 == 49:
                self._pump_sip()
                time.sleep(0.01)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline and any(leg.state == "bye" for leg in up):
            self._pump_sip()
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                for leg in up:
                    if leg.state == "bye":
                        self.sip.sendto(leg.bye, self.sut)
            select.select([self.sip], [], [], 0.02)

    # ---- RTP
    def _drain_rtp(self) -> None:
        rtp = self.rtp
        legs = self.legs
        measuring = self.measuring
        jitters = self.jitters
        anc = socket.CMSG_SPACE(16)
        while True:
            try:
                data, ancdata, _flags, _addr = rtp.recvmsg(2048, anc)
            except (BlockingIOError, InterruptedError):
                return
            if len(data) < 12 + _TAG.size:
                continue
            arrival = None
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    arrival = sec + nsec * 1e-9
            if arrival is None:
                arrival = time.time()
            idx, seq = _TAG.unpack_from(data, 12)
            if idx >= len(legs):
                continue
            leg = legs[idx]
            ts = int.from_bytes(data[4:8], "big")
            transit = arrival * 8000 - ts
            if leg.last_transit is not None:
                d = transit - leg.last_transit
                d = -d if d < 0 else d
                if d > 4e9:  # timestamp wrap
                    d = 0
                leg.jitter += (d - leg.jitter) / 16.0
            leg.last_transit = transit
            if measuring and seq >= leg.max_seq_seen:  # tagged packets of the window only
                leg.got += 1
                jitters.append(leg.jitter)

    def stream(self, warmup: float, seconds: float, drain: float = 1.0) -> tuple[int, int, float, int]:
        """Send 50 packets/s per call (calls staggered over the 20 ms), measure over ``seconds``."""
        up = [leg for leg in self.legs if leg.state == "up" and leg.media]
        slots: list[list[Leg]] = [[] for _ in range(20)]
        for i, leg in enumerate(up):
            slots[i % 20].append(leg)
        seq = 0
        t0 = time.monotonic()
        t_measure = t0 + warmup
        t_end = t_measure + seconds
        late = 0
        tick = 0
        sendto = self.rtp.sendto
        pack_hdr, pack_tag = _HDR.pack, _TAG.pack
        first_seq: int | None = None
        while True:
            due = t0 + tick * 0.001
            now = time.monotonic()
            if now >= t_end:
                break
            if now < due:
                r, _, _ = select.select([self.rtp, self.sip], [], [], due - now)
                if self.sip in r:
                    self._pump_sip()
                self._drain_rtp()
                continue
            if now - due > 0.02:
                late += 1
            slot = tick % 20
            seq = tick // 20
            if first_seq is None and due >= t_measure:
                first_seq = seq
                self.measuring = True
                for leg in up:
                    leg.max_seq_seen = seq  # only count packets sent in the window
            ts = (seq * 160) & 0xFFFFFFFF
            for leg in slots[slot]:
                pkt = pack_hdr(0x80, 0, seq & 0xFFFF, ts, leg.ssrc) + pack_tag(leg.idx, seq) + PAYLOAD_PAD
                try:
                    sendto(pkt, leg.media)
                except (BlockingIOError, OSError):
                    continue
                if self.measuring:
                    leg.sent += 1
            tick += 1
            if tick % 5 == 0:
                self._drain_rtp()
        # stop sending; let the last packets come back
        end = time.monotonic() + drain
        while time.monotonic() < end:
            select.select([self.rtp], [], [], 0.01)
            self._drain_rtp()
        self.measuring = False
        sent = sum(leg.sent for leg in up)
        got = sum(leg.got for leg in up)
        return sent, got, time.monotonic() - t0 - drain, late


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_media(sut: Sut, work: Path, n: int, seconds: float, setup_rate: float = 100.0) -> MediaResult:
    res = MediaResult(n)
    uas, uas_port, uas_media, _ = start_uas(work, f"{sut.name}-media-{n}", "-rtp_echo")
    load = None
    try:
        try:
            sut.start_proxy(uas_port)
        except RuntimeError as exc:
            res.note = f"SUT did not start: {exc}"
            return res
        load = MediaLoad(sut.port, n, setup_rate)
        res.established = load.setup()
        if res.established < n:
            states = Counter(leg.state for leg in load.legs)
            res.note = f"only {res.established} of {n} calls set up ({dict(states)})"
        warmup = 1.0
        # CPU over the measuring window only: sample around stream() and subtract the warm-up share
        cpu0 = sut.cpu()
        drops0 = udp_drops()
        sent, got, elapsed, late = load.stream(warmup, seconds)
        cpu1 = sut.cpu()
        drops1 = udp_drops()
        delta = {port: n - drops0.get(port, 0) for port, n in drops1.items() if n > drops0.get(port, 0)}
        res.cpu = (cpu1 - cpu0) * seconds / max(elapsed, seconds)
        res.sent, res.received, res.seconds, res.late_ticks = sent, got, seconds, late
        res.jitter_p99_ms = percentile(load.jitters, 0.99) / 8.0
        res.jitter_mean_ms = (sum(load.jitters) / len(load.jitters) / 8.0) if load.jitters else float("nan")
        if load.dropped:
            res.note += f" {load.dropped} calls hung up by the SUT"
        if delta:  # where the kernel dropped packets: a full receive buffer
            echo, ours = delta.pop(uas_media, 0), delta.pop(load.rtp_port, 0)
            sut_rtp = sum(n for port, n in delta.items() if RTP_START <= port <= RTP_END + 1)
            res.note += (f" kernel drops: SIPp echo socket {echo}, our RTP socket {ours}, "
                         f"SUT RTP sockets {sut_rtp}")
        if late > seconds * 1000 * 0.02:
            res.note += f" generator late on {late} ticks (load generator saturated?)"
        res.passed = (res.established == n and res.sent > 0 and res.loss < LOSS_LIMIT and not load.dropped)
        load.teardown()
        if not res.passed:
            probs = sut.problems()
            if probs:
                res.note += " | SUT log: " + probs
        return res
    finally:
        if load is not None:
            load.close()
        stop(uas)
        sut.stop()


def harness_check(work: Path, n: int, seconds: float) -> str:
    """The load generator alone: n streams straight to a SIPp -rtp_echo (no SUT)."""
    uas_port, uas_media = free_port(), free_port(pair=True)
    uas = start(sipp_argv("-sn", "uas", "-p", str(uas_port), "-mp", str(uas_media), "-rtp_echo",
                          "-stf", str(work / f"uas-harness-{n}.csv")), work / f"uas-harness-{n}.out", sut=False, cwd=work)
    load = None
    try:
        wait_port(uas_port, uas)
        load = MediaLoad(9, n)
        for i in range(n):
            leg = Leg(i, f"h{i}", "t", "b", state="up", media=("127.0.0.1", uas_media), ssrc=random.getrandbits(32))
            load.legs.append(leg)
        sent, got, _, late = load.stream(1.0, seconds)
        loss = 100 * (1 - got / sent) if sent else 100.0
        return (f"{n} streams straight to SIPp -rtp_echo (no SUT): loss {loss:.3f} %, jitter p99 "
                f"{percentile(load.jitters, 0.99) / 8:.2f} ms, generator late on {late} ticks")
    finally:
        if load is not None:
            load.close()
        stop(uas)


def media_search(sut: Sut, work: Path, probe_s: float, duration: float, steps: list[int]) -> tuple[MediaResult | None, list[MediaResult]]:
    history: list[MediaResult] = []

    def run(n: int, seconds: float) -> MediaResult:
        r = run_media(sut, work, n, seconds)
        history.append(r)
        say(f"    (b) probe {r.line()}")
        return r

    good, bad = 0, None
    for n in steps:
        if run(n, probe_s).passed:
            good = n
        else:
            bad = n
            break
    if good and bad is not None:
        mid = (good + bad) // 2 // 10 * 10
        if good < mid < bad and run(mid, probe_s).passed:
            good = mid
    if not good:
        return None, history
    n = good
    for _ in range(3):
        r = run(n, duration)
        if r.passed:
            return r, history
        n = int(n * 0.85) // 10 * 10 or n // 2
        if n <= 0:
            break
    return None, history


# ---------------------------------------------------------------------- profiles
def own_time(raw: Path, top: int = 12) -> tuple[int, int, list[tuple[float, str]], list[tuple[float, str]]]:
    """py-spy ``--format raw --native`` (collapsed stacks) -> busy samples, idle samples,
    own time by leaf frame (C or Python) and by innermost Python function, as % of busy samples.
    A sample whose leaf is epoll_pwait is the event loop waiting: idle; so is a sample of the
    thread pool's worker (it only ever waits for work here)."""
    leaf_own: Counter[str] = Counter()
    py_own: Counter[str] = Counter()
    busy = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if frames[-1].startswith(("epoll_wait", "epoll_pwait")) or any(
                f.startswith("_worker (concurrent/futures/thread.py") for f in frames):
            idle += n  # the loop waiting, or the thread pool's idle worker waiting for work
            continue
        busy += n
        leaf_own[frames[-1] or "?"] += n
        py = [f for f in frames if f.endswith(".py)")]
        py_own[py[-1] if py else "(no Python frame)"] += n
    def pct(c: Counter[str]) -> list[tuple[float, str]]:
        return [(100 * k / max(1, busy), name) for name, k in c.most_common(top)]
    return busy, idle, pct(leaf_own), pct(py_own)


def profile(sut: Hookflash, work: Path, kind: str, load: float, seconds: float, hold_ms: int) -> list[str]:
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        return ["py-spy is not installed (.venv/bin/pip install py-spy)"]
    uas_port, uas_media = free_port(), free_port(pair=True)
    uas = start(sipp_argv("-sn", "uas", "-p", str(uas_port), "-mp", str(uas_media), "-rtp_echo",
                          "-stf", str(work / f"uas-prof-{kind}.csv")), work / f"uas-prof-{kind}.out", sut=False, cwd=work)
    uac = spy = None
    media = None
    raw = work / f"profile-{kind}.txt"
    out: list[str] = []
    try:
        wait_port(uas_port, uas)
        sut.start_proxy(uas_port)
        assert sut.proc is not None
        # --native: hookflash runs on uvloop, whose C code (and the syscalls) would otherwise be
        # charged to the Python frame that entered the loop (asyncio Runner.run)
        spy_argv = [str(pyspy), "record", "--pid", str(sut.proc.pid), "--duration", str(int(seconds)),
                    "--format", "raw", "--output", str(raw), "--rate", "200", "--native"]
        if kind == "a":
            uac = start(sipp_argv(f"127.0.0.1:{sut.port}", "-sn", "uac", "-s", "1000", "-p", str(free_port()),
                                  "-mp", str(free_port(pair=True)), "-r", f"{load:g}", "-d", str(hold_ms),
                                  "-m", str(int(load * (seconds + 4))), "-recv_timeout", "8000",
                                  "-timeout", f"{int(seconds + 20)}s", "-stf", str(work / "uac-prof.csv")),
                        work / "uac-prof.out", sut=False, cwd=work)
            time.sleep(2)
            spy = start(spy_argv, work / "py-spy-a.out", sut=False)
            spy.proc.wait(seconds + 30)
            cpu_note = ""
        else:
            media = MediaLoad(sut.port, int(load))
            up = media.setup()
            spy = start(spy_argv, work / "py-spy-b.out", sut=False)
            sent, got, _, _ = media.stream(0.5, seconds)
            spy.proc.wait(30)
            cpu_note = f" ({up} calls up, loss {100 * (1 - got / sent) if sent else 100:.2f} %)"
            media.teardown(3)
        if not raw.exists():
            return [f"py-spy produced nothing: {spy.tail(5) if spy else ''}"]
        busy, idle, leaves, pys = own_time(raw)
        out.append(f"  profile ({kind}) at {load:g} {'calls/s' if kind == 'a' else 'relayed calls'}, "
                   f"{seconds:g} s{cpu_note}: busy {100 * busy / max(1, busy + idle):.0f} % of samples; "
                   f"own time as % of busy samples")
        out.append("    by leaf frame (C functions included):")
        out.extend(f"      {p:5.1f} %  {name}" for p, name in leaves)
        out.append("    by innermost Python function (its C callees included):")
        out.extend(f"      {p:5.1f} %  {name}" for p, name in pys)
        return out
    except Exception as exc:  # a profile is a bonus: report, do not abort the benchmark
        return [f"  profile ({kind}) failed: {exc!r}"]
    finally:
        if media is not None:
            media.close()
        stop(spy)
        stop(uac)
        stop(uas)
        sut.stop()


# ---------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None,
                        help="confirmation run length in s (default 30, 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="5 s confirmation runs, 2 s probes, short profiles")
    parser.add_argument("--only", action="append", help="run only these systems (repeatable or comma-separated)")
    parser.add_argument("--skip", default="", help="comma-separated parts or systems to skip: a,flat,b,c,d,profile,asterisk,...")
    parser.add_argument("--no-profile", action="store_true", help="same as --skip profile")
    parser.add_argument("--hold", default="0,1000",
                        help="call hold times in ms for (a), comma-separated; (a) runs once per hold (default 0,1000)")
    parser.add_argument("--held", type=int, default=5000, help="concurrent calls for (d) (default 5000)")
    parser.add_argument("--held-rate", type=float, default=200.0, help="set-up rate of (d) in calls/s (default 200)")
    parser.add_argument("--users", type=int, default=1000, help="users for (c) (default 1000)")
    parser.add_argument("--pair-rate", type=float, default=0.0,
                        help="rate of the alternated hookflash/Asterisk runs (default: the lower clean rate of (a))")
    parser.add_argument("--pairs", type=int, default=3, help="alternated hookflash/Asterisk runs per hold (default 3)")
    parser.add_argument("--verbose", type=int, default=0, help="hookflash asterisk.conf verbose (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp CSVs)")
    args = parser.parse_args()
    duration = args.duration if args.duration is not None else 5.0 if args.quick else 30.0
    probe_s = 2.0 if args.quick else 5.0
    prof_s = 5.0 if args.quick else 10.0
    bisect_steps = 1 if args.quick else 3
    if args.quick:  # keep the whole quick run near 5 minutes: overloaded probes end sooner
        global RECV_TIMEOUT_MS, CONFIRM_FACTORS
        RECV_TIMEOUT_MS, CONFIRM_FACTORS = 3000, (1.0, 0.7, 0.4)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.no_profile:
        skip.add("profile")
    holds = [int(h) for h in args.hold.split(",") if h.strip()]
    only = [x.strip() for o in (args.only or []) for x in o.split(",") if x.strip()]
    for x in only:
        if x not in SYSTEMS:
            parser.error(f"--only {x}: not one of {', '.join(SYSTEMS)}")
    systems = [x for x in (only or SYSTEMS) if x not in skip]
    if shutil.which("sipp") is None:
        say("sipp is not installed (apt-get install -y sip-tester); nothing to do")
        return 1
    try:
        os.sched_setaffinity(0, {GEN_CPU})
    except OSError as exc:
        say(f"cannot pin to core {GEN_CPU}: {exc}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # (d) holds thousands of calls: Asterisk needs about 10 descriptors per call
        resource.setrlimit(resource.RLIMIT_NOFILE, (262144, max(hard, 262144)))
    except (ValueError, OSError):  # not allowed to raise the hard limit: up to it
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    work = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    users = [(str(100000 + i), f"pw{random.getrandbits(40):x}") for i in range(args.users)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    say(f"SIP benchmark: SUT on core {SUT_CPU}, load on core {GEN_CPU}; confirmation {duration:g} s, "
        f"probes {probe_s:g} s, holds {holds} ms; work dir {work}")
    results: dict[str, dict[str, str]] = {}
    figures: dict[str, dict[str, float]] = {}
    t_start = time.time()
    try:
        for name in systems:
            sut: Sut = {"hookflash": Hookflash, "asterisk": Asterisk, "sippy": Sippy, "kamailio": Kamailio}[name](work, args.verbose)
            results[name], figures[name] = {}, {}
            why = sut.available()
            say(f"\n== {name}")
            if not why:
                results[name]["speed"] = core_speed()
                say(f"  {results[name]['speed']}")
            if why:
                say(f"  not run: {why}")
                results[name] = {p: f"n/a ({why})" for p in "abc"}
                continue
            for hold in ([] if "a" in skip else holds):
                key = f"a{hold}"
                say(f"  (a) call rate (SIPp uac -> SUT -> SIPp uas), -d {hold}")
                best, _ = search(lambda r, s, sut=sut, hold=hold: run_calls(sut, work, r, s, hold), 3, 50, 3000,
                                 probe_s, duration, bisect_steps, f"(a -d {hold})")
                if best:
                    ms = 1000 * best.cpu / best.ok
                    figures[name][key], figures[name][key + "_ms"] = best.rate, ms
                    results[name][key] = f"{best.rate:g} calls/s for {duration:g} s, {ms:.2f} ms CPU/call"
                    if best.rate >= 3000:
                        results[name][key] += " (the search cap: SIPp-bound, not the SUT's limit)"
                else:
                    results[name][key] = "no rate held"
                say(f"  => (a -d {hold}) {results[name][key]}")
                if best and "flat" not in skip:
                    # CPU per call at a quarter and half of the clean rate, same run length
                    cells = []
                    for frac in (0.25, 0.5):
                        low = run_calls(sut, work, max(10.0, round(best.rate * frac)), duration, hold)
                        if low.ok:
                            lms = 1000 * low.cpu / low.ok
                            figures[name][f"{key}_ms{int(frac * 100)}"] = lms
                            cells.append(f"{low.rate:g}/s {lms:.2f} ms")
                    cells.append(f"{best.rate:g}/s {figures[name][key + '_ms']:.2f} ms")
                    low25 = figures[name].get(f"{key}_ms25")
                    spread = f"; 25 % -> 100 %: {low25 / figures[name][key + '_ms']:.2f} x" if low25 else ""
                    results[name][key + "-flat"] = "CPU/call at 25, 50, 100 % of it: " + ", ".join(cells) + spread
                    say(f"  => (a -d {hold}) {results[name][key + '-flat']}")
            if "b" not in skip:
                if sut.media:
                    say("  (b) relayed audio (our UAC+RTP -> SUT -> SIPp uas -rtp_echo -> back)")
                    steps = ([100, 300, 500, 800, 1000] if args.quick
                             else [50, 100, 200, 300, 400, 500, 600, 800, 1000])
                    best_m, hist = media_search(sut, work, 2.0 if args.quick else 8.0, duration, steps)
                    failed_n = [r.calls for r in hist if not r.passed]
                    if failed_n:
                        check = harness_check(work, max(failed_n), 3.0 if args.quick else 8.0)
                        say(f"    harness check: {check}")
                        results[name]["b-harness"] = check
                    if best_m:
                        relayed = best_m.sent + best_m.received
                        us = 1e6 * best_m.cpu / relayed
                        figures[name]["b"] = best_m.calls
                        results[name]["b"] = (f"{best_m.calls} calls for {duration:g} s, loss "
                                              f"{100 * best_m.loss:.3f} %, jitter p99 {best_m.jitter_p99_ms:.2f} ms, "
                                              f"{us:.1f} µs CPU/relayed packet")
                    else:
                        results[name]["b"] = "no load held"
                else:
                    results[name]["b"] = ("n/a: media does not flow through it here (Kamailio would need rtpengine/"
                                          "rtpproxy; sippy's B2BUA relays RTP only with an external rtpproxy)")
                say(f"  => (b) {results[name]['b']}")
            if "c" not in skip:
                if sut.registrar:
                    say(f"  (c) REGISTER with digest auth, {len(users)} users from a CSV")
                    best_r, _ = search(lambda r, s: run_registers(sut, work, r, s, users), 2, 100, 6000,
                                       probe_s, duration, bisect_steps, "(c)")
                    if best_r:
                        figures[name]["c"] = best_r.rate
                        results[name]["c"] = (f"{best_r.rate:g} registrations/s ({2 * best_r.rate:g} REGISTER "
                                              f"transactions/s) for {duration:g} s, "
                                              f"{1000 * best_r.cpu / best_r.ok:.2f} ms CPU/registration")
                        if best_r.rate >= 6000:
                            results[name]["c"] += " (the search cap: SIPp-bound, not the SUT's limit)"
                        if best_r.note:
                            results[name]["c"] += f"; {best_r.note}"
                    else:
                        results[name]["c"] = "no rate held"
                else:
                    results[name]["c"] = "n/a: not a registrar in this setup (b2bua_simple only proxies REGISTER)"
                say(f"  => (c) {results[name]['c']}")
            if "d" not in skip and sut.media:
                hold_ms = max(60000, int(1000 * (args.held / args.held_rate + 20)))
                say(f"  (d) {args.held} held calls (-d {hold_ms}, set up at {args.held_rate:g}/s), media anchored, idle")
                h = run_held(sut, work, args.held, args.held_rate, hold_ms)
                results[name]["d"] = h.line()
                figures[name]["d_kib"] = (h.rss_kib - h.rss0_kib) / max(1, h.up)
                figures[name]["d_cpu"] = h.cpu_rest
                say(f"  => (d) {results[name]['d']}")
            if name == "hookflash" and "profile" not in skip:
                assert isinstance(sut, Hookflash)
                a_rate = min(200.0, 0.8 * figures[name].get(f"a{holds[-1]}" if holds else "", 100.0))
                b_calls = int(min(200, figures[name].get("b", 100)))
                for kind, load in (("a", a_rate), ("b", float(b_calls))):
                    lines = profile(sut, work, kind, load, prof_s, holds[-1] if holds else 1000)
                    results[name][f"profile-{kind}"] = "\n".join(lines)
                    say("\n".join(lines))
        if "pair" not in skip and "hookflash" in results and "asterisk" in results and holds \
                and not Asterisk(work).available():
            # the same rate, the two systems alternated: both see the same machine (its speed drifts)
            for hold in holds:
                key = f"a{hold}"
                rate = args.pair_rate or min(figures["hookflash"].get(key, 280.0), figures["asterisk"].get(key, 280.0))
                say(f"\n== hookflash and Asterisk alternated at {rate:g} calls/s, -d {hold}, {args.pairs} pairs")
                per: dict[str, list[float]] = {"hookflash": [], "asterisk": []}
                for _ in range(args.pairs):
                    for name, cls in (("hookflash", Hookflash), ("asterisk", Asterisk)):
                        pr = run_calls(cls(work, args.verbose), work, rate, duration, hold)
                        say(f"    {name:9s} {pr.line(3)}")
                        if pr.ok:
                            per[name].append(1000 * pr.cpu / pr.ok)
                if per["hookflash"] and per["asterisk"]:
                    hf_ms, ast_ms = statistics.median(per["hookflash"]), statistics.median(per["asterisk"])
                    figures["hookflash"][key + "_pair"] = hf_ms / ast_ms
                    results["hookflash"][key + "-pair"] = (
                        f"alternated with Asterisk at {rate:g} calls/s: median {hf_ms:.2f} vs {ast_ms:.2f} ms "
                        f"CPU/call = {hf_ms / ast_ms:.2f} x")
                    say(f"  => (a -d {hold}) {results['hookflash'][key + '-pair']}")
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        stop_all()
    # ---------------------------------------------------------------- summary
    say(f"\n== summary ({time.time() - t_start:.0f} s; at the end, {core_speed()})")
    for name, parts in results.items():
        for part, text in parts.items():
            if not part.startswith("profile"):
                say(f"  {name:9s} ({part}) {text}")
    hf = figures.get("hookflash", {})
    ast = figures.get("asterisk", {})
    sp = figures.get("sippy", {})
    km = figures.get("kamailio", {})
    say("\n  targets (hookflash on one core):")
    for hold in holds:
        key = f"a{hold}"
        if key not in hf:
            continue
        line = f"    (a -d {hold}) {hf[key]:g} calls/s, {hf[key + '_ms']:.2f} ms CPU/call"
        if key in ast:
            rate_x, cpu_x = hf[key] / ast[key], hf[key + "_ms"] / ast[key + "_ms"]
            line += (f": {rate_x:.2f} x Asterisk's rate (target >= 1.25), {cpu_x:.2f} x its CPU/call "
                     f"(target <= 0.8) -> {'met' if rate_x >= 1.25 and cpu_x <= 0.8 else 'not met'}")
        if key + "_ms25" in hf:
            spread = hf[key + "_ms25"] / hf[key + "_ms"]
            line += (f"; CPU/call at 25 % of the rate {spread:.2f} x that at 100 % (target <= 1.2 -> "
                     f"{'met' if spread <= 1.2 else 'not met'}")
            if key + "_ms25" in ast:
                line += f"; Asterisk {ast[key + '_ms25'] / ast[key + '_ms']:.2f} x"
            line += ")"
        if key + "_pair" in hf:
            line += f"; at the same rate, alternated: {hf[key + '_pair']:.2f} x Asterisk's CPU/call"
        if key in sp:
            line += f"; {hf[key] / sp[key]:.2f} x sippy"
        if key in km:
            line += f"; {hf[key] / km[key]:.2f} x Kamailio"
        say(line)
    if "b" in hf:
        say(f"    (b) {hf['b']:g} relayed calls vs target 300 (stretch 500)"
            f" -> {'met' if hf['b'] >= 300 else 'not met'}{', stretch met' if hf['b'] >= 500 else ''}")
    if "c" in hf:
        line = f"    (c) {hf['c']:g} registrations/s"
        if "c" in km:
            ratio = hf["c"] / km["c"]
            line += f" = {ratio:.2f} x Kamailio ({km['c']:g}/s) vs target 0.15 x -> {'met' if ratio >= 0.15 else 'not met'}"
        say(line)
    if "d_kib" in hf:
        line = f"    (d) {hf['d_kib']:.1f} KiB/call held, CPU at rest {100 * hf['d_cpu']:.1f} %"
        if "d_kib" in ast:
            line += f" (Asterisk: {ast['d_kib']:.1f} KiB/call, {100 * ast['d_cpu']:.1f} %)"
        say(line)
    if args.keep:
        say(f"\nlogs and SIPp CSVs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
