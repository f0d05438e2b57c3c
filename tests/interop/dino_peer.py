"""Dino (Debian ``dino-im`` 0.4.2) as a real, independent XMPP Jingle audio peer, headless.

Not a test module (no ``test_`` prefix): a helper for interop tests of hookflash's Jingle
(XEP-0166/0167, ICE-UDP XEP-0176, DTLS-SRTP XEP-0320, Opus) against a real client::

    prosody = Prosody(tmp / "prosody", users={"dino": "dinopw", "rec": "recpw"}, muc=False, pubsub=False)
    prosody.befriend("dino", "rec")                 # roster "both" both ways, before either logs in
    prosody.start()
    with DinoPeer(prosody, "dino@localhost", "dinopw") as dino:   # start() .. stop()
        dino.call("rec@localhost")                  # UI: open chat, "Start call" -> audio
        dino.accept_incoming()                      # UI: "Accept" on the ringing call
        dino.hangup()                               # UI: close the call window
        dino.calls()                                # rows of Dino's own call table

:class:`JingleRecorder` is a slixmpp peer (Jingle audio caps, raw log of every stanza, XEP-0353
proceed, signalling-only offers/answers); ``python -m tests.interop.dino_peer record DIR`` records
``tests/data/jingle/dino-0.4.2-initiate.xml`` and ``dino-0.4.2-accept.xml`` with both.

Packages (Debian 12, as root; recorded on a fresh machine of the project's kind)::

    apt-get install -y --no-install-recommends dino-im xvfb dbus pulseaudio \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
        gstreamer1.0-nice gstreamer1.0-pulseaudio at-spi2-core python3-pyatspi gcc prosody
    # optional: imagemagick (screenshot()), xdotool, x11-utils, sqlite3 (debugging by hand)

(dino-im pulls libnice10, libsrtp2, GTK 4, libadwaita and GStreamer's core; gstreamer1.0-nice
is the libnice GStreamer element, -plugins-good has rtpbin/opus RTP payloaders and pulse is in
gstreamer1.0-pulseaudio; -plugins-bad has the DTLS/SRTP and Opus-parse bits.) slixmpp and
cryptography come from the project's venv. The AT-SPI driver runs under /usr/bin/python3
(Debian's python3-pyatspi; the venv has no PyGObject).

What :meth:`DinoPeer.start` does, and why:

1. **Isolated profile**: HOME and XDG_* under ``workdir``; ``GSETTINGS_BACKEND=memory``.
2. **Xvfb** on a free display (``-displayfd``), ``-nolisten tcp``; GTK with ``GDK_BACKEND=x11``
   and ``GSK_RENDERER=cairo`` (no GL needed).
3. **A private session D-Bus** (``dbus-daemon --session``): GApplication forwarding of
   ``dino-im xmpp:JID?message`` to the running instance, and the AT-SPI bus (at-spi2-core's
   bus launcher is D-Bus activated on it).
4. **PulseAudio** (``pulseaudio -n -F pulse.pa``) with ``module-null-sink`` and
   ``module-null-source``: Dino shows the call button only when GStreamer's device monitor
   finds a non-monitor source and a sink, and only advertises ``urn:xmpp:jingle:apps:rtp:audio``
   then. No sound card needed; Dino sends silence from the null source.
5. **DNS**: Dino connects where SRV ``_xmpp-client._tcp.<domain>`` says, else to
   ``<domain>:5222``, and falls back to STUN at ``stun.dino.im``. Dino runs in a **mount
   namespace** of its own (``unshare -m``, needs root / CAP_SYS_ADMIN) with a bind-mounted
   ``/etc/resolv.conf`` naming a :class:`DnsStub` on ``127.x.y.z:53``, which answers the SRV
   with the Prosody fixture's port and NXDOMAIN to everything else: any port works, and no DNS
   query leaves the machine (the log shows "Failed looking up IP address of stun.dino.im";
   Dino then has no STUN server, which is what we want: host candidates only).
6. **TLS**: Dino 0.4 refuses an unknown CA (only .onion domains are exempt) and has no option
   for it; glib-networking/GnuTLS reads ``/etc/ssl/certs/ca-certificates.crt``, so the same
   namespace bind-mounts Prosody's self-signed ``cafile`` over that path (SAN ``localhost``
   matches Dino's ``xmpp-client`` identity check). Plain c2s is not an option: Dino always
   sends STARTTLS.
7. **ICE on loopback only**: an ``LD_PRELOAD`` shim (C source in :data:`IFADDRS_SHIM_C`,
   compiled once with gcc into ``~/.cache/hookflash-dino-peer``) makes ``getifaddrs()`` report
   only ``lo`` and clears its IFF_LOOPBACK flag (libnice skips loopback interfaces while any
   other exists, and would otherwise offer only eth0's address; with ``lo`` flagged it offers
   nothing at all). Dino's candidates are then 127.0.0.1 and ::1 only.
8. **Account**: the first run creates ``~/.local/share/dino/dino.db`` (schema 26); Dino is
   stopped, a row goes into ``account`` (bare_jid, resourcepart, plaintext password, enabled=1)
   and Dino starts again with ``--print-xmpp=all`` (every stanza, pretty-printed, in
   ``workdir/dino.log``); login is detected by the bound JID in that log.

UI driving: AT-SPI (GTK 4.8's built-in accessibility) via :data:`ATSPI_DO`. The chat titlebar's
"Start call" menu button (accessible description "Start call") exposes its menu's actions
``call.audio``/``call.video`` directly; the incoming-call widget has "Accept"/"Reject"
buttons (Dino keeps hidden ones of earlier calls, so the last SHOWING one is used); hang-up is
the ``window.close`` action of the frame "DinoUiCallWindow" (Dino ends the call on close).
Screen coordinates are not available over AT-SPI with GTK 4 on X11, so nothing is clicked by
position; xdotool is not needed. ``screenshot()`` shows the screen (ImageMagick ``import``).

What Dino 0.4.2 does on the wire (see the golden files):

* outgoing: XEP-0353 ``<propose id=SID><description media='audio'/></propose>`` in a
  type='chat' message to the contact's **bare** JID; on ``<proceed id=SID>`` from a full JID
  it sends ``session-initiate`` (sid = the JMI id) to that full JID, about 1 s later, with all
  ICE candidates inside (gathering finished first: no ``transport-info`` trickle was seen).
  Content ``name='audio' creator='initiator' senders='both'``; payload types opus/111
  48000/2 with ``useinbandfec=1`` only, speex 112/113/114 (32k/16k/8k), PCMU 0, PCMA 8 (no
  telephone-event; G.722 is skipped without gst-libav); ``<rtcp-mux/>``; also an XEP-0167
  SDES ``<encryption><crypto AES_CM_128_HMAC_SHA1_80 inline:...>``; ICE-UDP transport
  ``ufrag``/``pwd``, ``<fingerprint hash='sha-256' setup='actpass'>``; host candidates for
  components 1 **and** 2 (RTCP) on 127.0.0.1 and ::1 although it offers rtcp-mux.
* incoming: it rings on a JMI ``propose`` (a "Incoming call" widget in the chat with
  Accept/Reject); Accept sends ``<proceed id=SID>`` carrying
  ``<device xmlns='http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification' id=.../>``,
  then it waits for our ``session-initiate`` and answers at once with ``session-accept``:
  only the chosen codec (opus 111, useinbandfec=1), ``<rtcp-mux/>``, fingerprint
  ``setup='active'``, candidates for components 1 and 2.
* hang-up from the UI of a call whose ICE never connected: ``session-terminate`` with
  ``<reason><cancel/></reason>``.

Known limitations:

* Media: :class:`JingleRecorder` only signals (its candidate is a UDP socket that never
  answers, its DTLS fingerprint belongs to a certificate it never uses), so no ICE pair, DTLS
  handshake or RTP was completed in the recordings; a peer that does ICE (aioice) + DTLS
  (pyOpenSSL) + SRTP (pylibsrtp) on 127.0.0.1 is what hookflash itself must be.
* Needs root (mount namespace, DNS stub on port 53) and gcc at run time.
* No notification daemon: Dino logs "org.freedesktop.Notifications was not provided" for
  incoming calls; harmless (the in-chat widget is used).
* ``call()`` needs the contact online with Jingle audio caps, else the button stays hidden
  and AT-SPI finds it insensitive/absent (TimeoutError).
* One Dino per :class:`DinoPeer`; start takes about 5-10 s (two Dino launches the first time).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

DINO_VERSION = "0.4.2"

# LD_PRELOAD shim: getifaddrs() reports the loopback interface only, without its IFF_LOOPBACK
# flag, so that libnice offers (and Dino checks) ICE host candidates on 127.0.0.1/::1 only,
# never on eth0's address (without the flag change libnice would offer no candidate at all).
IFADDRS_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <string.h>
#include <stdlib.h>
#include <net/if.h>

struct pair { struct ifaddrs *shown, *orig; };
static struct pair pairs[256];

static struct ifaddrs dummy_head;

int getifaddrs(struct ifaddrs **out) {
    static int (*real)(struct ifaddrs **) = 0;
    if (!real) real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
    struct ifaddrs *all = 0;
    int rc = real(&all);
    if (rc != 0) return rc;
    struct ifaddrs *head = 0, **tail = &head;
    for (struct ifaddrs *i = all; i; i = i->ifa_next) {
        if (i->ifa_name && strcmp(i->ifa_name, "lo") == 0) {
            /* libnice skips IFF_LOOPBACK interfaces when it gathers host candidates */
            i->ifa_flags &= ~IFF_LOOPBACK;
            *tail = i; tail = &i->ifa_next;
        }
    }
    *tail = 0;
    if (!head) { head = &dummy_head; memset(head, 0, sizeof *head); }  /* never reached: lo exists */
    for (int k = 0; k < 256; k++) {
        if (!__atomic_load_n(&pairs[k].orig, __ATOMIC_SEQ_CST)) {
            struct ifaddrs *none = 0;
            if (__atomic_compare_exchange_n(&pairs[k].orig, &none, all, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
                pairs[k].shown = head;
                break;
            }
        }
    }
    *out = head;
    return 0;
}

void freeifaddrs(struct ifaddrs *ifa) {
    static void (*real)(struct ifaddrs *) = 0;
    if (!real) real = (void (*)(struct ifaddrs *))dlsym(RTLD_NEXT, "freeifaddrs");
    for (int k = 0; k < 256; k++) {
        if (pairs[k].orig && pairs[k].shown == ifa) {
            struct ifaddrs *orig = pairs[k].orig;
            pairs[k].shown = 0;
            __atomic_store_n(&pairs[k].orig, 0, __ATOMIC_SEQ_CST);
            real(orig);
            return;
        }
    }
    /* unknown (or a leaked slot): leave it, a small leak beats a bad free() */
}
"""


def _shim(cache_dir: Path) -> Path:
    """Compile (once, cached by source hash) the getifaddrs shim; needs gcc (Debian ``gcc``)."""
    digest = hashlib.sha256(IFADDRS_SHIM_C.encode()).hexdigest()[:12]
    so = cache_dir / f"ifaddrs-lo-{digest}.so"
    if not so.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        src = cache_dir / f"ifaddrs-lo-{digest}.c"
        src.write_text(IFADDRS_SHIM_C)
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(src), "-ldl"],
                       check=True, capture_output=True)
        os.replace(tmp, so)
    return so


# -- a DNS stub on 127.x.y.z:53 ------------------------------------------------------------------

def _qname(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    while True:
        n = data[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".") if p) + b"\0"


class DnsStub:
    """Answers ``_xmpp-client._tcp.<domain>`` SRV with ``<target>:<port>`` and NXDOMAIN to
    everything else (``stun.dino.im``, ``_xmpps-client``...), so that Dino finds a Prosody on
    any port and sends no DNS query off the machine. Dino sees it through a private
    ``/etc/resolv.conf`` (bind mount in a mount namespace of its own)."""

    def __init__(self, domain: str, port: int, target: str = "localhost") -> None:
        self.srv = {f"_xmpp-client._tcp.{domain}".lower(): (port, target)}
        self.queries: list[tuple[str, int]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        last: OSError | None = None
        for _ in range(50):
            self.addr = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            try:
                self.sock.bind((self.addr, 53))
                break
            except OSError as e:   # taken, or not root (port 53 needs CAP_NET_BIND_SERVICE)
                last = e
        else:
            raise RuntimeError(f"no 127.x.y.z:53 to bind for the DNS stub: {last}")
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(1500)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:  # noqa: BLE001, S112 - a bad packet: no answer
                continue
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def _answer(self, data: bytes) -> bytes:
        qid, flags, _qdcount = struct.unpack("!HHH", data[:6])
        name, off = _qname(data, 12)
        qtype, _qclass = struct.unpack("!HH", data[off:off + 4])
        question = data[12:off + 4]
        self.queries.append((name, qtype))
        rd = flags & 0x0100
        hit = self.srv.get(name.lower().rstrip("."))
        if hit and qtype == 33:
            port, target = hit
            rdata = struct.pack("!HHH", 0, 0, port) + _name(target)
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 60, len(rdata)) + rdata
            return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + question + answer
        rcode = 0 if hit else 3   # the SRV name exists (NOERROR, no data) / NXDOMAIN
        return struct.pack("!HHHHHH", qid, 0x8400 | rd | rcode, 1, 0, 0, 0) + question

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


# Run by /usr/bin/python3 (Debian python3-pyatspi; the venv has no gi): finds, in the
# accessibility tree of the application "dino-im", the first widget with role ROLE whose
# attribute KEY ("name" or "description") is VALUE and that offers action ACTION, and runs it
# on the last SHOWING one (else the last one): Dino keeps the hidden Accept/Reject buttons of
# earlier calls in the tree.
ATSPI_DO = r"""
import sys, pyatspi
role, key, value, action = sys.argv[1:5]
found = []
def walk(a, depth=0):
    if depth > 60:
        return
    try:
        if a.getRoleName() == role and getattr(a, key) == value:
            ai = a.queryAction()
            names = [ai.getName(i) for i in range(ai.nActions)]
            if action in names:
                found.append((a.getState().contains(pyatspi.STATE_SHOWING), ai, names.index(action)))
    except Exception:
        pass
    for i in range(a.childCount):
        try:
            walk(a.getChildAtIndex(i), depth + 1)
        except Exception:
            pass
desk = pyatspi.Registry.getDesktop(0)
for i in range(desk.childCount):
    app = desk.getChildAtIndex(i)
    if app is not None and app.name == "dino-im":
        walk(app)
showing = [f for f in found if f[0]]
pick = (showing or found)[-1:]
for _, ai, index in pick:
    ai.doAction(index)
print(f"OK {len(found)} found, {len(showing)} showing" if pick else "NOTFOUND")
sys.exit(0 if pick else 1)
"""


# -- the peer ------------------------------------------------------------------------------------

def _wait(pred: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise TimeoutError(f"{what}: not within {timeout} s\n{tail}")
        time.sleep(step)


class DinoPeer:
    """One Dino under Xvfb logged in as ``jid`` on ``prosody`` (a
    ``tests.integration.xmpp_server.Prosody``, or anything with ``.port``, ``.domain``,
    ``.cafile`` and ``.log_path``). See the module docstring."""

    def __init__(self, prosody: Any, jid: str, password: str, workdir: Path | str | None = None,
                 resource: str = "dino", debug: bool = False, size: str = "1280x800") -> None:
        import tempfile
        self.prosody = prosody
        self.jid = jid
        self.password = password
        self.resource = resource
        self.full_jid = f"{jid}/{resource}"
        self.debug = debug
        self.size = size
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dino-peer-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"
        self.runtime = self.dir / "run"
        self.db_path = self.home / ".local/share/dino/dino.db"
        self.dino_log = self.dir / "dino.log"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.display: str | None = None
        self.dns: DnsStub | None = None
        self.env: dict[str, str] = {}

    # -- helpers --

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
               **kw: Any) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps its own copy
        try:
            p = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=env if env is not None else self.env, **kw)
        finally:
            log.close()
        self.procs[name] = p
        return p

    def _end(self, name: str, timeout: float = 5) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    # -- life cycle --

    def start(self, timeout: float = 60) -> DinoPeer:
        for d in (self.home, self.runtime, self.home / ".local/share", self.home / ".config",
                  self.home / ".cache"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime, 0o700)
        self.dns = DnsStub(self.prosody.domain, self.prosody.port)
        resolv = self.dir / "resolv.conf"
        resolv.write_text(f"nameserver {self.dns.addr}\noptions timeout:1 attempts:1\n")
        ca = self.dir / "ca-certificates.crt"
        ca.write_bytes(Path(self.prosody.cafile).read_bytes())
        shim = _shim(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hookflash-dino-peer")
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM")}
        base.update(HOME=str(self.home), XDG_RUNTIME_DIR=str(self.runtime),
                    XDG_DATA_HOME=str(self.home / ".local/share"), XDG_CONFIG_HOME=str(self.home / ".config"),
                    XDG_CACHE_HOME=str(self.home / ".cache"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
        self.env = dict(base)
        # X server: -displayfd picks a free display number
        rfd, wfd = os.pipe()
        try:
            x = self._spawn("xvfb", ["Xvfb", "-displayfd", str(wfd), "-screen", "0", f"{self.size}x24",
                                     "-nolisten", "tcp"],
                            pass_fds=(wfd,))
            os.close(wfd)
            wfd = -1
            buf = b""
            deadline = time.monotonic() + 15
            while not buf.endswith(b"\n"):
                if time.monotonic() > deadline or x.poll() is not None:
                    raise RuntimeError("Xvfb did not start: " + (self.dir / "xvfb.log").read_text(errors="replace"))
                chunk = os.read(rfd, 16)
                if not chunk:
                    raise RuntimeError("Xvfb did not start: " + (self.dir / "xvfb.log").read_text(errors="replace"))
                buf += chunk
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        self.display = ":" + buf.decode().strip()
        self.env["DISPLAY"] = self.display
        # session bus (also carries the AT-SPI bus and Dino's org.gtk.Actions)
        bus = self.runtime / "bus"
        self._spawn("dbus", ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address=unix:path={bus}"])
        _wait(bus.exists, 10, "dbus-daemon", self.procs["dbus"], self.dir / "dbus.log")
        self.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"
        # sound: a PulseAudio with a null sink and a null source (Dino hides the call button
        # unless GStreamer's device monitor finds a microphone and a speaker; monitors don't count)
        pa = self.dir / "pulse.pa"
        sock = self.runtime / "pulse-native"
        pa.write_text(f"load-module module-native-protocol-unix socket={sock} auth-anonymous=1\n"
                      "load-module module-null-sink sink_name=nullsink\n"
                      "load-module module-null-source source_name=nullsrc\n"
                      "set-default-sink nullsink\nset-default-source nullsrc\n")
        self._spawn("pulse", ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                              "--disallow-exit", "--log-target=stderr", "-F", str(pa)])
        _wait(sock.exists, 15, "pulseaudio", self.procs["pulse"], self.dir / "pulse.log")
        self.env["PULSE_SERVER"] = f"unix:{sock}"
        self.env.update(GDK_BACKEND="x11", GSK_RENDERER="cairo", LIBGL_ALWAYS_SOFTWARE="1",
                        GSETTINGS_BACKEND="memory", GTK_A11Y="atspi", NO_AT_BRIDGE="0")
        self.dino_env = dict(self.env, LD_PRELOAD=str(shim))
        if self.debug:
            self.dino_env["G_MESSAGES_DEBUG"] = "all"
        self._resolv, self._ca = resolv, ca
        # first run creates the database; then the account row goes in
        if not self._has_account():
            self._run_dino()
            _wait(lambda: self._table_exists("account"), 30, "dino database", self.procs["dino"], self.dino_log)
            time.sleep(0.5)
            self._end("dino")
            with sqlite3.connect(self.db_path) as db:
                db.execute("INSERT INTO account (bare_jid, resourcepart, password, alias, enabled) "
                           "VALUES (?, ?, ?, ?, 1)", (self.jid, self.resource, self.password, self.jid))
        self._log_mark = self._prosody_log_size()
        self._run_dino()
        _wait(self.logged_in, timeout, "dino login", self.procs["dino"], self.dino_log)
        return self

    def logged_in(self) -> bool:
        """Whether Dino's stream has bound its resource (seen in its --print-xmpp log)."""
        text = self.dino_log.read_text(errors="replace") if self.dino_log.exists() else ""
        return re.search(r"xmpp-bind}:jid>\s*" + re.escape(self.full_jid) + r"\s*<", text) is not None

    def _run_dino(self) -> None:
        script = ('mount --bind "$0" /etc/resolv.conf && '
                  'mount --bind "$1" /etc/ssl/certs/ca-certificates.crt && shift && exec "$@"')
        self._spawn("dino", ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", script,
                             str(self._resolv), str(self._ca), "dino-im", "--print-xmpp=all"], env=self.dino_env)

    def _prosody_log_size(self) -> int:
        try:
            return Path(self.prosody.log_path).stat().st_size
        except FileNotFoundError:
            return 0

    def _prosody_log_since(self, mark: int) -> str:
        with open(self.prosody.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def _table_exists(self, table: str) -> bool:
        if not self.db_path.exists():
            return False
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1) as db:
                return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None
        except sqlite3.Error:
            return False

    def _has_account(self) -> bool:
        if not self._table_exists("account"):
            return False
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT 1 FROM account WHERE bare_jid=?", (self.jid,)).fetchone() is not None

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read Dino's database (read-only), e.g. its ``call`` and ``conversation`` tables."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=2) as db:
            return db.execute(sql, args).fetchall()

    # -- driving the UI (AT-SPI through /usr/bin/python3 + pyatspi) --

    def atspi(self, role: str, key: str, value: str, action: str, timeout: float = 20) -> None:
        """Run ``action`` on the first accessible of Dino with that role and name/description,
        retrying until it appears (``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(["/usr/bin/python3", "-c", ATSPI_DO, role, key, value, action],
                                  env=self.env, capture_output=True, timeout=60, check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"AT-SPI: no {role} with {key}={value!r} offering {action!r}: "
                                   f"{done.stdout.decode()}{done.stderr.decode()[-2000:]}")
            time.sleep(0.3)

    def open_conversation(self, jid: str) -> None:
        """Open (and select) the chat with ``jid``: ``dino-im xmpp:JID?message`` is handed to the
        running instance over D-Bus (GApplication open)."""
        subprocess.run(["dino-im", f"xmpp:{jid}?message"], env=self.dino_env, capture_output=True, timeout=30, check=False)

    def call(self, jid: str, timeout: float = 20) -> None:
        """Place an audio call to ``jid`` as a person would: open the chat, then the titlebar's
        "Start call" menu button, "Audio call" (the button exposes the menu's actions
        ``call.audio``/``call.video`` through AT-SPI). The button is shown only once Dino has
        seen a resource of ``jid`` with Jingle RTP audio + ICE-UDP in its disco#info."""
        self.open_conversation(jid)
        self.atspi("push button", "description", "Start call", "call.audio", timeout)

    def accept_incoming(self, timeout: float = 30) -> None:
        """Click "Accept" on the incoming-call widget in the open chat (the chat of an incoming
        call opens by itself)."""
        self.atspi("push button", "name", "Accept", "click", timeout)

    def reject_incoming(self, timeout: float = 30) -> None:
        self.atspi("push button", "name", "Reject", "click", timeout)

    def hangup(self, timeout: float = 10) -> None:
        """Close the call window; Dino's CallWindowController ends the call on close_request
        (JMI retract before session-initiate, else session-terminate)."""
        self.atspi("frame", "name", "DinoUiCallWindow", "window.close", timeout)

    def calls(self) -> list[tuple[Any, ...]]:
        """Rows of Dino's ``call`` table (id, direction, state, ...) for inspection."""
        return self.query("SELECT * FROM call")

    def stop(self) -> None:
        for name in ("dino", "pulse", "dbus", "xvfb"):
            self._end(name)
        for name in list(self.procs):
            self._end(name)
        if self.dns:
            self.dns.close()
            self.dns = None

    def __enter__(self) -> DinoPeer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def screenshot(self, path: Path | str) -> Path:
        """A PNG of the whole virtual screen (needs ImageMagick's ``import``)."""
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True,
                       capture_output=True, timeout=20)
        return Path(path)


# -- a scripted Jingle peer (slixmpp) that records every stanza ---------------------------------

JINGLE = "urn:xmpp:jingle:1"
JMI = "urn:xmpp:jingle-message:0"
RTP = "urn:xmpp:jingle:apps:rtp:1"
ICE_UDP = "urn:xmpp:jingle:transports:ice-udp:1"
DTLS = "urn:xmpp:jingle:apps:dtls:0"
JINGLE_AUDIO_FEATURES = (JINGLE, RTP, "urn:xmpp:jingle:apps:rtp:audio", ICE_UDP, DTLS, JMI,
                         "urn:xmpp:jingle:apps:rtp:rtcp-fb:0", "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0")


def dtls_certificate() -> tuple[Any, Any, str]:
    """A fresh self-signed EC certificate, its key and its sha-256 fingerprint (AA:BB:...)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookflash-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    fp = cert.fingerprint(hashes.SHA256()).hex().upper()
    return cert, key, ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))


class JingleRecorder:
    """A slixmpp client (``tests.integration.xmpp_server.XmppUser``) that advertises Jingle
    audio (disco#info + XEP-0115 caps), logs every stanza in and out as raw XML
    (``.log``: ``[(monotonic time, "in"|"out", xml)]``), answers XEP-0353 ``<propose>`` with
    ``<proceed>`` (``auto_proceed``), acks every Jingle iq, and can place a call itself
    (:meth:`propose`, :meth:`session_initiate`)."""

    def __init__(self, prosody: Any, user: str, resource: str = "rec", auto_proceed: bool = True) -> None:
        from tests.integration.xmpp_server import XmppUser
        self.user = XmppUser(prosody, user, resource, plugins=("xep_0115",))
        self.jid = self.user.jid
        self.auto_proceed = auto_proceed
        self.log: list[tuple[float, str, str]] = []
        self.jingle: list[Any] = []         # received Jingle iqs (slixmpp stanzas)
        self.jmi: list[Any] = []            # received JMI messages
        self._cond = threading.Condition()
        self.user.call(self._setup)

    def _setup(self, c: Any) -> None:
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        disco = c.plugin["xep_0030"]
        for f in JINGLE_AUDIO_FEATURES:
            disco.add_feature(f)
        disco.add_identity("client", "pc", name="hookflash jingle recorder")
        c.add_filter("in", self._filter("in"))
        c.add_filter("out", self._filter("out"))
        c.register_handler(Callback("jmi", MatchXPath(f"{{jabber:client}}message/{{{JMI}}}*"), self._on_jmi))
        c.register_handler(Callback("jingle", MatchXPath(f"{{jabber:client}}iq/{{{JINGLE}}}jingle"), self._on_jingle))

    def _filter(self, direction: str) -> Any:
        def f(stanza: Any) -> Any:
            with self._cond:
                self.log.append((time.monotonic(), direction, str(stanza)))
                self._cond.notify_all()
            return stanza
        return f

    def _on_jmi(self, msg: Any) -> None:
        with self._cond:
            self.jmi.append(msg)
            self._cond.notify_all()
        el = msg.xml.find(f"{{{JMI}}}propose")
        if el is not None and self.auto_proceed:
            self.send_jmi("proceed", str(msg["from"]), el.get("id"))

    def _on_jingle(self, iq: Any) -> None:
        with self._cond:
            self.jingle.append(iq)
            self._cond.notify_all()
        if iq["type"] == "set":
            iq.reply(clear=True).send()

    # -- use --

    def start(self) -> JingleRecorder:
        self.user.start()
        return self

    def stop(self) -> None:
        self.user.stop()

    def send_raw(self, xml: str) -> None:
        """Send XML (a stanza); the out filter does not see raw sends, so log it here."""
        with self._cond:
            self.log.append((time.monotonic(), "out", xml))
        if threading.current_thread() is self.user._thread:   # in a handler: the loop is ours
            self.user.client.send_raw(xml)
        else:
            self.user.send_raw(xml)

    def send_jmi(self, what: str, to: str, sid: str, media: str = "audio") -> None:
        """XEP-0353: ``propose`` (with an RTP description), ``proceed``, ``accept``, ``reject``, ``retract``."""
        inner = f"<description xmlns='{RTP}' media='{media}'/>" if what == "propose" else ""
        mid = f"jmi-{what}-{random.randrange(1 << 30)}"
        self.send_raw(f"<message xmlns='jabber:client' to='{to}' id='{mid}' type='chat'>"
                      f"<{what} xmlns='{JMI}' id='{sid}'>{inner}</{what}>"
                      "<store xmlns='urn:xmpp:hints'/></message>")

    def wait(self, predicate: Any, timeout: float = 20, what: str = "stanza", since: float = 0.0) -> Any:
        """The first logged (time, direction, xml), logged at ``since`` (monotonic) or later,
        for which ``predicate(direction, xml)`` holds. (The log also has stream-level
        elements such as STARTTLS's ``<proceed>``.)"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.log:
                    if item[0] >= since and predicate(item[1], item[2]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.jid}: no {what} within {timeout} s")
                self._cond.wait(left)

    def wait_in(self, needle: str, timeout: float = 20, since: float = 0.0) -> str:
        return self.wait(lambda d, x: d == "in" and needle in x, timeout, repr(needle), since)[2]

    def transcript(self, since: float = 0.0) -> str:
        """The log as XML text, one stanza per block, with direction comments."""
        out = []
        t0 = self.log[0][0] if self.log else 0
        for t, d, x in self.log:
            if t >= since:
                out.append(f"<!-- {d.upper()} t={t - t0:.3f}s -->\n{x}\n")
        return "\n".join(out)

    # -- Jingle offers and answers (signalling only: nothing answers ICE checks or DTLS) --

    def media_endpoint(self) -> tuple[str, str, str, list[tuple[str, int]]]:
        """(ufrag, pwd, sha-256 fingerprint, [(ip, port)]) for a transport: a fresh DTLS
        certificate and one UDP socket bound on 127.0.0.1 (kept open, never read) per call."""
        import secrets
        if not hasattr(self, "_socks"):
            self._socks: list[socket.socket] = []
            self._certs: list[Any] = []
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self._socks.append(s)
        cert, key, fp = dtls_certificate()
        self._certs.append((cert, key))
        return secrets.token_hex(4), secrets.token_urlsafe(18), fp, [s.getsockname()]

    @staticmethod
    def audio_description() -> str:
        return (f"<description xmlns='{RTP}' media='audio'>"
                "<payload-type id='111' name='opus' clockrate='48000' channels='2'>"
                "<parameter name='useinbandfec' value='1'/></payload-type>"
                "<payload-type id='0' name='PCMU' clockrate='8000'/>"
                "<payload-type id='8' name='PCMA' clockrate='8000'/>"
                "<payload-type id='101' name='telephone-event' clockrate='8000'/>"
                "<rtcp-mux/></description>")

    @staticmethod
    def ice_transport(ufrag: str, pwd: str, fingerprint: str, setup: str,
                      addrs: list[tuple[str, int]]) -> str:
        cands = "".join(
            f"<candidate component='1' foundation='1' generation='0' id='c{n}' ip='{ip}' network='0' "
            f"port='{port}' priority='{2130706431 - n}' protocol='udp' type='host'/>"
            for n, (ip, port) in enumerate(addrs))
        return (f"<transport xmlns='{ICE_UDP}' ufrag='{ufrag}' pwd='{pwd}'>"
                f"<fingerprint xmlns='{DTLS}' hash='sha-256' setup='{setup}'>{fingerprint}</fingerprint>"
                f"{cands}</transport>")

    def jingle_iq(self, to: str, action: str, sid: str, body: str, initiator: str | None = None,
                  responder: str | None = None) -> str:
        attrs = f" initiator='{initiator}'" if initiator else ""
        attrs += f" responder='{responder}'" if responder else ""
        iid = f"jingle-{action}-{random.randrange(1 << 30)}"
        return (f"<iq xmlns='jabber:client' type='set' to='{to}' id='{iid}'>"
                f"<jingle xmlns='{JINGLE}' action='{action}' sid='{sid}'{attrs}>{body}</jingle></iq>")

    def session_accept(self, initiate_xml: str) -> str:
        """Answer a received session-initiate (its XML text) with a session-accept: Opus/PCMU,
        rtcp-mux, setup='active', one 127.0.0.1 host candidate. Returns what was sent."""
        import xml.etree.ElementTree as ET
        iq = ET.fromstring(initiate_xml)
        j = iq.find(f"{{{JINGLE}}}jingle")
        assert j is not None
        content = j.find(f"{{{JINGLE}}}content")
        assert content is not None
        ufrag, pwd, fp, addrs = self.media_endpoint()
        body = (f"<content creator='{content.get('creator')}' name='{content.get('name')}' senders='both'>"
                + self.audio_description() + self.ice_transport(ufrag, pwd, fp, "active", addrs) + "</content>")
        xml = self.jingle_iq(iq.get("from") or "", "session-accept", j.get("sid") or "", body, responder=self.jid)
        self.send_raw(xml)
        return xml

    def session_initiate(self, to: str, sid: str) -> str:
        """Send a session-initiate (content 'audio', creator initiator) to full JID ``to``."""
        ufrag, pwd, fp, addrs = self.media_endpoint()
        body = ("<content creator='initiator' name='audio' senders='both'>" + self.audio_description()
                + self.ice_transport(ufrag, pwd, fp, "actpass", addrs) + "</content>")
        xml = self.jingle_iq(to, "session-initiate", sid, body, initiator=self.jid)
        self.send_raw(xml)
        return xml

    def session_terminate(self, to: str, sid: str, reason: str = "success") -> None:
        self.send_raw(self.jingle_iq(to, "session-terminate", sid, f"<reason><{reason}/></reason>"))


# -- recording the golden data -------------------------------------------------------------------

def _header(what: str) -> str:
    return f"""<!--
  {what}
  Recorded with tests/interop/dino_peer.py (python -m tests.interop.dino_peer record DIR):
  Dino {DINO_VERSION} (Debian 12 dino-im, libnice 0.1.21, GStreamer 1.22) logged in as
  dino@localhost/dino under Xvfb, driven through AT-SPI; the other side is the slixmpp
  JingleRecorder rec@localhost/rec (raw XML of every stanza it sent and received, in order).
  Server: Prosody 0.12.3 on 127.0.0.1 (the tests/integration/xmpp_server.py fixture).
  Dino saw only the loopback interface (LD_PRELOAD getifaddrs shim), so its ICE host
  candidates are 127.0.0.1 and ::1; it had no STUN/TURN server. The recorder's transport
  (candidate, fingerprint) is a placeholder: nothing answered ICE checks or DTLS, so no media.
  Timestamps t= are seconds since the recorder's first stanza.
-->
"""


def record(out_dir: Path, work: Path | None = None) -> None:
    """Record tests/data/jingle/dino-<version>-initiate.xml (Dino calls the recorder) and
    dino-<version>-accept.xml (the recorder calls Dino, which accepts through the UI)."""
    import sys
    import tempfile
    import uuid
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.integration.xmpp_server import Prosody
    work = Path(work or tempfile.mkdtemp(prefix="dino-record-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    prosody = Prosody(work / "prosody", users={"dino": "dinopw", "rec": "recpw"}, muc=False, pubsub=False)
    prosody.befriend("dino", "rec")
    prosody.start()
    dino = DinoPeer(prosody, "dino@localhost", "dinopw", workdir=work / "dino")
    rec = JingleRecorder(prosody, "rec")
    try:
        dino.start()
        rec.start()
        # Dino learns rec's caps (disco#info) from its presence; give it a moment
        rec.wait(lambda d, x: d == "out" and "urn:xmpp:jingle:apps:rtp:audio" in x and "result" in x, 20,
                 "disco#info answer to Dino")
        # -- A: Dino calls out
        mark = time.monotonic()
        dino.call("rec@localhost")
        rec.wait_in("urn:xmpp:jingle-message:0", 30, mark)
        initiate = rec.wait_in("session-initiate", 30, mark)
        time.sleep(2)
        rec.session_accept(initiate)
        time.sleep(5)   # any transport-info / session-info Dino sends after the accept
        dino.hangup()
        try:
            rec.wait_in("session-terminate", 15, mark)
        except TimeoutError:
            pass
        time.sleep(1)
        (out_dir / f"dino-{DINO_VERSION}-initiate.xml").write_text(
            _header("Dino calls: XEP-0353 propose -> proceed -> session-initiate (Dino) -> "
                    "session-accept (recorder) -> hang-up in Dino's UI")
            + "<recording>\n" + rec.transcript(mark) + "</recording>\n")
        time.sleep(2)
        # -- B: the recorder calls Dino
        mark = time.monotonic()
        sid = str(uuid.uuid4())
        rec.send_jmi("propose", "dino@localhost", sid)
        time.sleep(3)
        dino.screenshot(work / "incoming.png")
        dino.accept_incoming()
        proceed = rec.wait(lambda d, x: d == "in" and f"<proceed xmlns=\"{JMI}\"" in x, 30, "proceed", mark)[2]
        import xml.etree.ElementTree as ET
        full = ET.fromstring(proceed).get("from") or dino.full_jid
        rec.session_initiate(full, sid)
        try:
            rec.wait_in("session-accept", 30, mark)
        except TimeoutError:
            pass
        time.sleep(5)
        dino.screenshot(work / "in-call.png")
        rec.session_terminate(full, sid)
        time.sleep(2)
        (out_dir / f"dino-{DINO_VERSION}-accept.xml").write_text(
            _header("The recorder calls: XEP-0353 propose (recorder) -> Accept clicked in Dino -> "
                    "proceed (Dino) -> session-initiate (recorder) -> session-accept (Dino) -> "
                    "session-terminate (recorder)")
            + "<recording>\n" + rec.transcript(mark) + "</recording>\n")
        dino.screenshot(work / "last.png")
    finally:
        rec.stop()
        dino.stop()
        prosody.stop()
    print("work dir", work)


if __name__ == "__main__":
    import sys
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        record(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        print("usage: python -m tests.interop.dino_peer record OUT_DIR [WORK_DIR]")
