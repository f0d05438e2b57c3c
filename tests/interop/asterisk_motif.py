"""Real Asterisk 20 with chan_motif (Jingle over res_xmpp) on loopback, as an interop peer.

Developer tooling, not a pytest test (no ``test_`` prefix, so pytest does not collect it).

How the Asterisk it drives was built
------------------------------------
Asterisk 20.20.1 from public source in ``/work/asterisk/src``, installed into the prefix
``/work/asterisk/root`` (binary ``/work/asterisk/root/sbin/asterisk``). The base recipe is the
one in ``tests/data/imap/README.md`` ("How Asterisk was built": ``./configure
--with-imap=system --without-pjproject --with-jansson-bundled=no --without-libjwt
--prefix=/work/asterisk/root``, every menuselect category disabled, then a short list of
modules enabled). On top of it:

    apt-get install -y libiksemel-dev          # res_xmpp and chan_motif depend on iksemel
    /work/asterisk/build-pjproject.sh           # external pjproject 2.17 -> /work/asterisk/pjproject
    PKG_CONFIG_PATH=/work/asterisk/pjproject/lib/pkgconfig ./configure --with-imap=system \\
        --without-pjproject-bundled --with-jansson-bundled=no --without-libjwt \\
        --prefix=/work/asterisk/root LDFLAGS="-Wl,-rpath,/work/asterisk/pjproject/lib"
    menuselect/menuselect --enable app_dial --enable res_xmpp --enable chan_motif \\
        --enable app_playback --enable app_echo --enable res_musiconhold --enable func_channel \\
        --enable app_senddtmf --enable codec_gsm --enable codec_alaw --enable res_rtp_asterisk \\
        --enable app_read --enable app_system --enable app_exec --enable func_strings \\
        --enable func_logic --enable chan_sip --enable app_voicemail_imap \\
        --enable res_clioriginate --enable app_originate \\
        --enable res_pjproject --enable res_sorcery_config --enable res_sorcery_memory \\
        menuselect.makeopts
    make -j2 && make install

(all the ``--enable`` switches in ONE menuselect call on an existing menuselect.makeopts:
menuselect writes ./menuselect.makeopts with *defaults* whenever it was not given that
file as an existing config, which silently re-enables ~250 modules). ``res_clioriginate``
provides ``channel originate``. Local channels are in the core.

ICE: chan_motif's ICE-UDP transport needs ICE from res_rtp_asterisk, which exists only when
Asterisk is built with pjproject (pjnath); Debian 12 has no pjproject package. Without it
chan_motif sends a session-initiate with an empty ``<transport/>`` and then hangs up (see
tests/data/jingle/asterisk20-motif-NOTES.md). Asterisk was therefore configured against an
external (not the bundled, downloaded) pjproject 2.17 built from its git tag with Asterisk's
config_site.h and configure switches (``/work/asterisk/build-pjproject.sh``); res_rtp_asterisk
then needs the res_pjproject module (and res_sorcery_config). pjproject is linked with an
rpath; :class:`Asterisk` sets LD_LIBRARY_PATH too, in case it is not. More in
tests/interop/README.md.

What this module does
---------------------
* :func:`write_config` writes a complete, self-contained Asterisk config directory
  (``asterisk.conf`` pointing every directory into it, ``modules.conf`` with
  ``autoload=no``, ``xmpp.conf``, ``motif.conf``, ``sip.conf``, ``rtp.conf`` with ICE on,
  ``extensions.conf`` from the given dialplan, ``logger.conf``) for a given XMPP server port,
  JID and password, SIP port and dialplan;
* :class:`Asterisk` runs it in the foreground (``asterisk -f -C DIR/asterisk.conf``) as a
  subprocess, runs console commands (``asterisk -C DIR/asterisk.conf -rx CMD``) and stops it;
* the CLI does the same from a shell (``python tests/interop/asterisk_motif.py --help``),
  including ``prosody`` to run a loopback Prosody (tests/integration/xmpp_server.py) for it.

Only loopback addresses are used: SIP binds 127.0.0.1, XMPP goes to 127.0.0.1, and
rtp.conf's ``ice_host_candidates`` / ICE blacklist keep ICE host candidates on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(os.environ.get("ASTERISK_ROOT", "/work/asterisk/root"))
ASTERISK = ROOT / "sbin" / "asterisk"
MODDIR = ROOT / "lib" / "asterisk" / "modules"
D = textwrap.dedent
# pjproject 2.17 built as shared libraries (for ICE); without an rpath in them the indirect
# ones (libpjsip -> libpjlib-util) are found only through LD_LIBRARY_PATH
PJPROJECT_LIB = Path(os.environ.get("PJPROJECT_LIB", "/work/asterisk/pjproject/lib"))

# Modules loaded by default (modules.conf has autoload=no).
MODULES = [
    "res_sorcery_config.so", "res_sorcery_memory.so", "res_pjproject.so",  # ICE (pjnath) needs these
    "res_rtp_asterisk.so", "res_xmpp.so", "chan_motif.so", "chan_sip.so", "pbx_config.so",
    "app_dial.so", "app_echo.so", "app_playback.so", "app_verbose.so", "app_senddtmf.so",
    "app_read.so", "app_exec.so", "app_system.so", "func_strings.so", "func_logic.so",
    "func_channel.so", "func_callerid.so", "codec_ulaw.so", "codec_alaw.so", "codec_gsm.so",
    "codec_a_mu.so", "format_pcm.so", "format_wav.so", "format_gsm.so", "bridge_simple.so",
    "bridge_native_rtp.so", "res_timing_timerfd.so", "res_clioriginate.so", "res_musiconhold.so",
]

DEFAULT_DIALPLAN = """\
[incoming-motif]
; chan_motif looks for the endpoint's name first, then "s"
exten => s,1,NoOp(Jingle call from ${CALLERID(all)} on ${CHANNEL})
 same => n,Answer()
 same => n,Echo()
 same => n,Hangup()
exten => jingle,1,Goto(s,1)

[incoming]
exten => echo,1,Answer()
 same => n,Echo()
exten => _X.,1,Dial(Motif/jingle/${EXTEN}@localhost)

[park]
exten => echo,1,Answer()
 same => n,Echo()
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port on 127.0.0.1 (TCP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ipv4_addresses() -> list[str]:
    """The machine's non-loopback IPv4 interface addresses (``ip -4 -o addr``)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            ip = parts[parts.index("inet") + 1].split("/")[0]
            if not ip.startswith("127.") and ip not in found:
                found.append(ip)
    return found


def write_config(directory: Path | str, *, xmpp_port: int, jid: str, password: str,
                 sip_port: int = 0, dialplan: str = DEFAULT_DIALPLAN,
                 client: str = "motif-client", endpoint: str = "jingle",
                 context: str = "incoming-motif", transport: str = "ice-udp",
                 codecs: tuple[str, ...] = ("ulaw",), usetls: bool = True,
                 buddies: tuple[str, ...] = (), rtp_ports: tuple[int, int] = (0, 0),
                 xmpp_debug: bool = True, modules: list[str] | None = None,
                 icesupport: bool = True) -> Path:
    """Write a self-contained Asterisk config dir; returns the path of its asterisk.conf.

    ``jid`` may carry a resource (``asterisk@localhost/pbx``); without one res_xmpp uses
    ``asterisk``. ``sip_port`` 0 picks a free UDP port; ``rtp_ports`` (0, 0) picks a free
    range of 100. ``xmpp_debug`` sets xmpp.conf ``debug=yes``: res_xmpp then logs every stanza
    it sends and receives to the verbose log (``DIR/log/full``)."""
    d = Path(directory).resolve()
    for sub in ("log", "run", "lib", "spool", "keys", "data/sounds", "agi", "data/moh"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    if len(str(d / "run" / "asterisk.ctl")) > 100:
        raise ValueError(f"{d} is too long for the control socket path (sun_path is 108 bytes)")
    if not sip_port:
        sip_port = free_port(socket.SOCK_DGRAM)
    if rtp_ports == (0, 0):
        base = 30000 + (os.getpid() * 7 + int(time.time())) % 30000 // 2 * 2
        rtp_ports = (base, base + 100)
    modules = MODULES if modules is None else modules
    files = {
        "asterisk.conf": f"""\
            [directories]
            astetcdir => {d}
            astmoddir => {MODDIR}
            astvarlibdir => {d}/lib
            astdbdir => {d}/lib
            astkeydir => {d}/keys
            astdatadir => {d}/data
            astagidir => {d}/agi
            astspooldir => {d}/spool
            astrundir => {d}/run
            astlogdir => {d}/log
            astsbindir => {ROOT}/sbin

            [options]
            verbose = 5
            debug = 0
            nofork = yes
            documentation_language = en_US
            cache_media_frames = no
            """,
        "modules.conf": "[modules]\nautoload = no\n" + "".join(f"load => {m}\n" for m in modules),
        "logger.conf": """\
            [general]
            [logfiles]
            console => notice,warning,error,verbose
            full => notice,warning,error,verbose,debug,dtmf
            """,
        "rtp.conf": D(f"""\
            [general]
            rtpstart = {rtp_ports[0]}
            rtpend = {rtp_ports[1]}
            icesupport = {'yes' if icesupport else 'no'}
            ; loopback only. res_rtp_asterisk never offers 127.0.0.0/8 or ::1 as ICE host
            ; candidates, so each IPv4 interface address is advertised as 127.0.0.1 instead
            ; (RTP binds 0.0.0.0) and IPv6 is denied
            ice_deny = ::/0
            [ice_host_candidates]
            """) + "".join(f"{ip} => 127.0.0.1\n" for ip in _ipv4_addresses()),
        "xmpp.conf": D(f"""\
            [general]
            debug = {'yes' if xmpp_debug else 'no'}
            autoprune = no
            autoregister = yes
            auth_policy = accept

            [{client}]
            type = client
            serverhost = 127.0.0.1
            port = {xmpp_port}
            username = {jid}
            secret = {password}
            usetls = {'yes' if usetls else 'no'}
            usesasl = yes
            status = available
            statusmessage = Asterisk chan_motif
            priority = 1
            timeout = 5
            """) + "".join(f"buddy = {b}\n" for b in buddies),
        "motif.conf": D(f"""\
            [{endpoint}]
            context = {context}
            transport = {transport}
            connection = {client}
            disallow = all
            """) + "".join(f"allow = {c}\n" for c in codecs),
        "sip.conf": f"""\
            [general]
            udpbindaddr = 127.0.0.1:{sip_port}
            tcpenable = no
            context = incoming
            allowguest = yes
            disallow = all
            allow = ulaw
            allow = alaw
            dtmfmode = rfc2833
            """,
        "extensions.conf": "[general]\nstatic = yes\nwriteprotect = yes\n\n" + dialplan,
        "musiconhold.conf": "[general]\n",
        "indications.conf": """\
            [general]
            country = us
            [us]
            description = United States / North America
            ringcadence = 2000,4000
            dial = 350+440
            busy = 480+620/500,0/500
            ring = 440+480/2000,0/4000
            congestion = 480+620/250,0/250
            """,
        "ccss.conf": "",
    }
    for name, text in files.items():
        (d / name).write_text(D(text) if name not in ("extensions.conf", "modules.conf") else text)
    # the XML documentation must be found (else stasis fails to start and so does Asterisk)
    for name in ("documentation", "rest-api", "static-http", "images", "phoneprov", "firmware"):
        link, target = d / "data" / name, ROOT / "var" / "lib" / "asterisk" / name
        if target.exists() and not link.exists():
            link.symlink_to(target)
    (d / "ports.txt").write_text(f"sip={sip_port}\nrtp={rtp_ports[0]}-{rtp_ports[1]}\nxmpp={xmpp_port}\n")
    return d / "asterisk.conf"


class Asterisk:
    """One Asterisk in the foreground on a config dir written by :func:`write_config`."""

    def __init__(self, conf: Path | str) -> None:
        self.conf = Path(conf).resolve()
        self.dir = self.conf.parent
        self.ctl = self.dir / "run" / "asterisk.ctl"
        self.out_path = self.dir / "log" / "stdout.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Asterisk:
        """Run ``asterisk -f -C asterisk.conf`` and wait until fully booted."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.ctl.unlink(missing_ok=True)
        env = dict(os.environ)
        if PJPROJECT_LIB.is_dir():
            env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(PJPROJECT_LIB), env.get("LD_LIBRARY_PATH")]))
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([str(ASTERISK), "-f", "-n", "-C", str(self.conf)],
                                         cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.proc.returncode}; see {self.out_path}")
            if self.ctl.exists():
                done = self._rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                if done.returncode == 0 and "fully booted" in done.stdout:
                    return self
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"asterisk did not boot within {timeout} s; see {self.out_path}")
            time.sleep(0.1)

    def _rx(self, command: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ASTERISK), "-C", str(self.conf), "-rx", command],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def rx(self, command: str, timeout: float = 15) -> str:
        """Output of one console command (``asterisk -C ... -rx COMMAND``)."""
        done = self._rx(command, timeout)
        if done.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def wait_for(self, command: str, text: str, timeout: float = 15) -> str:
        """Repeat ``command`` until its output contains ``text``; returns that output."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.rx(command)
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command!r} never showed {text!r}; last output:\n{out}")
            time.sleep(0.2)

    def log(self, name: str = "full") -> str:
        try:
            return (self.dir / "log" / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, graceful: bool = True, timeout: float = 10) -> None:
        """``core stop now`` (graceful) or SIGTERM, SIGKILL after ``timeout``; always reaps."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if graceful:
            try:
                self._rx("core stop now", timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                pass
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Asterisk:  # noqa: PYI034 - start() returns self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _repo_on_path() -> None:
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))


def start_prosody(directory: Path | str, users: dict[str, str], port: int | None = None):
    """A loopback Prosody (tests/integration/xmpp_server.py) with ``users``; returns it started."""
    _repo_on_path()
    from tests.integration.xmpp_server import Prosody
    p = Prosody(Path(directory), users=users, muc=False, pubsub=False)
    if port:
        p.port = port
    return p.start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write a config dir")
    w.add_argument("dir")
    w.add_argument("--xmpp-port", type=int, required=True)
    w.add_argument("--jid", default="asterisk@localhost/asterisk")
    w.add_argument("--password", default="astpw")
    w.add_argument("--sip-port", type=int, default=0)
    w.add_argument("--dialplan", help="file with extensions.conf contexts (default: Answer+Echo)")
    w.add_argument("--no-tls", action="store_true")
    w.add_argument("--buddy", action="append", default=[])
    r = sub.add_parser("run", help="run Asterisk in the foreground on a config dir until Ctrl-C")
    r.add_argument("dir")
    x = sub.add_parser("rx", help="run one console command")
    x.add_argument("dir")
    x.add_argument("command")
    p = sub.add_parser("prosody", help="run a loopback Prosody until Ctrl-C")
    p.add_argument("dir")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="default: asterisk:astpw and peer:peerpw")
    a = ap.parse_args(argv)
    if a.cmd == "write":
        dialplan = Path(a.dialplan).read_text() if a.dialplan else DEFAULT_DIALPLAN
        conf = write_config(a.dir, xmpp_port=a.xmpp_port, jid=a.jid, password=a.password,
                            sip_port=a.sip_port, dialplan=dialplan, usetls=not a.no_tls,
                            buddies=tuple(a.buddy))
        print(conf)
    elif a.cmd == "run":
        ast = Asterisk(Path(a.dir) / "asterisk.conf").start()
        print(f"asterisk running (pid {ast.proc.pid}); console: {ASTERISK} -C {ast.conf} -r", flush=True)
        try:
            ast.proc.wait()
        except KeyboardInterrupt:
            ast.stop()
    elif a.cmd == "rx":
        print(Asterisk(Path(a.dir) / "asterisk.conf").rx(a.command), end="")
    elif a.cmd == "prosody":
        users = dict(u.split(":", 1) for u in a.user) or {"asterisk": "astpw", "peer": "peerpw"}
        prosody = start_prosody(a.dir, users, a.port or None)
        print(f"prosody on 127.0.0.1:{prosody.port} (pid {prosody.proc.pid}), users {sorted(users)}; "
              f"log {prosody.log_path}", flush=True)
        try:
            prosody.proc.wait()
        except KeyboardInterrupt:
            prosody.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
