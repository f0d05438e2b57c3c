"""Real SIP peers for the tests: the hookflash server process, SIPp and baresip.

Everything binds to 127.0.0.1 on ports picked free at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile

HOOKFLASH = [sys.executable, "-m", "hookflash"]


def free_port(kind: int = socket.SOCK_DGRAM, pair: bool = False, both: bool = False) -> int:
    """A free UDP (or TCP) port on 127.0.0.1; with ``pair`` an even port whose +1 is free too;
    with ``both`` one free for UDP and TCP alike (baresip's sip_listen binds both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if both:
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            try:
                with socket.socket(socket.AF_INET, other) as o:
                    o.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not pair:
            return port
        port &= ~1
        try:
            with socket.socket(socket.AF_INET, kind) as a, socket.socket(socket.AF_INET, kind) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_range(count: int, low: int = 20000, high: int = 32000) -> int:
    """An even port with ``count`` free UDP ports from it, below Linux's ephemeral range
    (32768-60999), so no socket bound to port 0 (aioice, SIPp, the OS) lands in it later."""
    import random
    for _ in range(200):
        base = random.randrange(low, high - count) & ~1
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def need(program: str) -> None:
    import pytest
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (scripts/test installs it from Debian)")


class Server:
    """``hookflash --config DIR -f`` as a user runs it, with ``-rx`` for commands."""

    def __init__(self, directory: Path, files: dict[str, str]) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (self.dir / name).write_text(textwrap.dedent(text))
        self.socket = self.dir / "ctl"
        self.log = self.dir / "hookflash.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(HOOKFLASH + ["--config", str(self.dir), "-f", "--socket", str(self.socket)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not self.socket.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"hookflash did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def rx(self, command: str) -> str:
        done = subprocess.run(HOOKFLASH + ["--socket", str(self.socket), "-rx", command],
                              capture_output=True, text=True, timeout=30)
        return done.stdout

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 10) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        assert self.proc is None or self.proc.returncode in (0, -15, None), self.output()


def sipp(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run SIPp in the foreground (``-nostdin``); returns (exit code, screen output)."""
    done = subprocess.run(["sipp", *args, "-nostdin", "-timeout", f"{int(timeout)}s"],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout + 15)
    return done.returncode, done.stdout + done.stderr


def tone_wav(path: Path, freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.4) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate,
                    subtype="PCM_16")
    return path


def dominant(path: Path, skip: float = 0.3) -> float:
    """The strongest frequency of a recording (mono, any rate), ignoring the first ``skip`` s."""
    data, rate = soundfile.read(str(path))
    if data.ndim > 1:
        data = data[:, 0]
    data = data[int(skip * rate):]
    if len(data) < rate // 10:
        return 0.0
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


class Baresip:
    """A headless baresip phone (see ../shared/SERVICES.md §6): WAV file as microphone,
    received audio recorded by the sndfile module, commands over ctrl_tcp."""

    def __init__(self, directory: Path, account: str, source_wav: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rec").mkdir(exist_ok=True)
        self.source_wav = source_wav
        self._write_config()
        (self.dir / "accounts").write_text(account + "\n")
        (self.dir / "contacts").write_text("")
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict[str, object]] = []
        self._buf = b""

    def _write_config(self) -> None:
        """Pick fresh ports and write baresip's config."""
        source_wav = self.source_wav
        self.sip_port = free_port(both=True)
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        rtp = free_range(42)
        (self.dir / "config").write_text(textwrap.dedent(f"""\
            poll_method\t\tepoll
            sip_listen\t\t127.0.0.1:{self.sip_port}
            call_local_timeout\t120
            call_max_calls\t\t4
            audio_player\t\talsa,null
            audio_alert\t\talsa,null
            audio_source\t\taufile,{source_wav}
            audio_level\t\tno
            ausrc_format\t\ts16
            auplay_format\t\ts16
            auenc_format\t\ts16
            audec_format\t\ts16
            rtp_ports\t\t{rtp}-{rtp + 40}
            rtcp_mux\t\tno
            jitter_buffer_delay\t1-5
            rtp_stats\t\tno
            dns_server\t\t127.0.0.1:53
            net_interface\t\t127.0.0.1
            module_path\t\t/usr/lib/baresip/modules
            module\t\t\tstdio.so
            module\t\t\tg711.so
            module\t\t\taufile.so
            module\t\t\talsa.so
            module\t\t\tsndfile.so
            module_tmp\t\tuuid.so
            module_tmp\t\taccount.so
            module_app\t\tmenu.so
            module_app\t\tctrl_tcp.so
            ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}
            statmode_default\toff
            snd_path\t\t{self.dir / 'rec'}
            """))

    def start(self) -> "Baresip":
        """Start baresip; a port taken between the pick and baresip's bind gets fresh ports
        and another try (other test processes bind ports too)."""
        for attempt in range(3):
            try:
                return self._start()
            except AssertionError:
                if attempt == 2 or "Address already in use" not in self.log.read_text(errors="replace"):
                    raise
                if self.proc is not None and self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                self._write_config()
        raise AssertionError("unreachable")

    def _start(self) -> "Baresip":
        env = dict(os.environ, HOME=str(self.dir))
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], stdin=subprocess.PIPE,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 15
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"baresip did not start:\n{self.log.read_text(errors='replace')}")
                time.sleep(0.05)
        self.sock.settimeout(0.2)
        return self

    def command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        assert self.sock is not None
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def keys(self, text: str) -> None:
        """Type on baresip's stdin (menu keys: digits send DTMF during a call)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def _pump(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return
        self._buf += data
        while b":" in self._buf:
            length_s, _, rest = self._buf.partition(b":")
            if not length_s.isdigit() or len(rest) < int(length_s) + 1:
                return
            n = int(length_s)
            try:
                self.events.append(json.loads(rest[:n]))
            except ValueError:
                pass
            self._buf = rest[n + 1:]

    def wait_event(self, kind: str, timeout: float = 10) -> dict[str, object]:
        deadline = time.time() + timeout
        seen = 0
        while time.time() < deadline:
            self._pump()
            for event in self.events[seen:]:
                if event.get("type") == kind:
                    self.events.remove(event)
                    return event
            time.sleep(0.02)
        raise AssertionError(f"baresip: no {kind} event; got {[e.get('type') for e in self.events]}\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")

    def recordings(self, which: str = "dec") -> list[Path]:
        return sorted((self.dir / "rec").glob(f"*-{which}.wav"))

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
