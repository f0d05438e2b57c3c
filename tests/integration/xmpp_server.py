"""A real Prosody XMPP server on loopback for the tests (../shared/SERVICES.md section 3).

``Prosody(directory).start()`` runs ``prosody -F --config DIR/prosody.cfg.lua`` in the
foreground with c2s on a free TCP port of 127.0.0.1, ``.port`` (STARTTLS; encryption required
unless ``require_encryption=False``). The certificate is self-signed with SAN ``DNS:<domain>,
DNS:conference.<domain>, DNS:pubsub.<domain>, IP:127.0.0.1``; ``.cafile`` is usable as a CA
file. Users default to ``asterisk:astpw``, ``alice:alicepw`` and ``bob:bobpw``. Components:
``conference.<domain>`` (MUC, XEP-0045, rooms created on first join and never locked) unless
``muc=False``, and ``pubsub.<domain>`` (XEP-0060) unless ``pubsub=False``.

Users and rosters are written straight into Prosody's ``internal`` storage
(``DIR/data/<host>/accounts/<user>.dat`` with ``authentication = "internal_plain"``): it takes no
time, and Prosody reads those files at each login, so :meth:`Prosody.add_user` and
:meth:`Prosody.set_roster` work while the server runs too (``prosodyctl register`` also
works but costs about 0.2 s of Lua start-up per user). The data survives :meth:`restart`.

Prosody is one single process. As root it runs as root (``run_as_root = true``, else mod_posix
refuses), so ``directory`` may be pytest's 0700 tmp dir; as another user it runs as that user.
:meth:`freeze` / :meth:`thaw` SIGSTOP / SIGCONT it: a frozen server accepts TCP in the kernel
but never answers a stream header.

:class:`XmppUser` is a slixmpp client in a thread of its own (with its own asyncio loop), for
synchronous tests: ``XmppUser(server, "alice").start()``, ``.send(to, body)``, ``.messages``...

Facts worth knowing when writing tests against it:

* the log (``.log()``) is Prosody's console output at level ``info`` (``log_level="debug"``
  shows every stanza); it begins with a harmless "unable to find lua-unbound" banner;
* ``mod_offline`` is on (autoloaded): a chat message to a user without an online resource is
  stored and delivered at that user's next login (with a XEP-0203 delay), also across restarts;
* ``prosody --version`` does not exist in 0.12: it starts the system server from
  /etc/prosody (on *:5269 etc.); use ``prosodyctl about``;
* Prosody does not exit when a port cannot be bound (it logs "Failed to open server port"),
  so :meth:`start` waits for its own "Activated service 'c2s' on [127.0.0.1]:PORT" log line;
* SIGTERM ends Prosody in 0.01 s without sessions, but in 1.0 s with any client connected
  (they get ``<stream:error><system-shutdown/>``; mod_c2s then waits for the closes), so stop
  clients first (the ``xmpp_users`` fixture does);
* slixmpp: the ``presence`` list also holds the echo of one's own presence; ``show=dnd``
  raises ``presence_dnd`` not ``presence_available`` (this wrapper records every presence).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Self

import pytest

from tests.integration.imap_server import ServerProcess, free_port, self_signed_cert

USERS = {"asterisk": "astpw", "alice": "alicepw", "bob": "bobpw"}

# Every module loaded on the VirtualHost besides Prosody's autoloaded ones (posix, presence,
# message, iq, offline, c2s; s2s and s2s_auth_certs are disabled).
MODULES = ["roster", "saslauth", "tls", "disco", "ping", "carbons", "pep", "private",
           "blocklist", "vcard_legacy", "time", "version", "uptime", "admin_shell"]
MODULES_DISABLED = ["s2s", "s2s_auth_certs"]


def need_prosody() -> None:
    """Skip unless Prosody (Debian ``prosody``) and the slixmpp client library are installed."""
    for program in ("prosody", "prosodyctl"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed "
                        "(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prosody)")
    need_slixmpp()


def need_slixmpp() -> None:
    if importlib.util.find_spec("slixmpp") is None:
        pytest.skip("slixmpp is not installed (.venv/bin/pip install slixmpp)")


def _lua(value: object) -> str:
    """A Lua literal for a str, bool, int, list or dict (keys become ["..."])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = []
        for byte in value.encode():
            ch = chr(byte)
            out.append(ch if 0x20 <= byte < 0x7F and ch not in '"\\' else f"\\{byte:03d}")
        return '"' + "".join(out) + '"'
    if isinstance(value, (list, tuple)):
        return "{ " + "".join(f"{_lua(v)}; " for v in value) + "}"
    if isinstance(value, dict):
        return "{ " + "".join(f"[{_lua(k)}] = {_lua(v)}; " for k, v in value.items()) + "}"
    raise TypeError(value)


def _encode(name: str) -> str:
    """Prosody's datamanager path encoding: every non-alphanumeric byte becomes %xx."""
    return "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"%{b:02x}" for b in name.encode())


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Prosody(ServerProcess):
    """One Prosody instance; see the module docstring."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, domain: str = "localhost",
                 muc: bool = True, pubsub: bool = True, require_encryption: bool = True,
                 log_level: str = "info") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = dict(USERS if users is None else users)
        self.domain = domain
        self.muc_domain = f"conference.{domain}" if muc else None
        self.pubsub_domain = f"pubsub.{domain}" if pubsub else None
        self.require_encryption = require_encryption
        self.log_level = log_level
        self.port = free_port()
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        (self.dir / "certs").mkdir(exist_ok=True)  # else certmanager logs an error at start
        self.conf = self.dir / "prosody.cfg.lua"
        self.log_path = self.dir / "prosody.log"
        self.cafile = self.dir / "cert.pem"
        self.keyfile = self.dir / "key.pem"
        self.pidfile = self.dir / "prosody.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self._log_offset = 0
        self._write_cert()

    # -- setup ------------------------------------------------------------------------------

    def _write_cert(self) -> None:
        names = (self.domain, *(d for d in (self.muc_domain, self.pubsub_domain) if d))
        self_signed_cert(self.cafile, self.keyfile, names)

    @property
    def admin_socket(self) -> Path:
        return self.data_dir / "prosody.sock"

    def _write_config(self) -> None:
        ssl = f"{{ certificate = {_lua(str(self.cafile))}; key = {_lua(str(self.keyfile))}; }}"
        components = ""
        if self.muc_domain:
            components += f"""
Component {_lua(self.muc_domain)} "muc"
  restrict_room_creation = false
  -- else a new room stays locked until its creator configures it (XEP-0045 instant room)
  muc_room_locking = false
  muc_room_default_history_length = 20
"""
        if self.pubsub_domain:
            components += f"""
Component {_lua(self.pubsub_domain)} "pubsub"
  -- any local user may create nodes
  pubsub_max_items = 256
"""
        modules = list(MODULES)
        if len(str(self.admin_socket)) > 100:  # sun_path is 108 bytes
            modules.remove("admin_shell")
        root = "run_as_root = true\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"""-- written by tests/integration/xmpp_server.py
{root}pidfile = {_lua(str(self.pidfile))}
data_path = {_lua(str(self.data_dir))}
admin_socket = {_lua(str(self.admin_socket))}
log = {{ {{ levels = {{ min = {_lua(self.log_level)} }}, to = "console" }} }}

interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}

modules_enabled = {_lua(modules)}
modules_disabled = {_lua(MODULES_DISABLED)}
allow_registration = false
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = {_lua(self.require_encryption)}
certificates = {_lua(str(self.dir / "certs"))}
ssl = {ssl}

VirtualHost {_lua(self.domain)}
  ssl = {ssl}
{components}""")

    def _path(self, store: str, user: str, host: str | None = None) -> Path:
        return self.data_dir / _encode(host or self.domain) / store / f"{_encode(user)}.dat"

    def add_user(self, user: str, password: str) -> None:
        """Create (or set the password of) an account; works while the server runs."""
        self.users[user] = password
        _write_atomic(self._path("accounts", user), f"return {{ [\"password\"] = {_lua(password)}; }};\n")

    def set_roster(self, user: str, contacts: dict[str, str], name: str | None = None) -> None:
        """Replace ``user``'s roster with ``{bare_jid: subscription}`` ("both", "to", "from",
        "none"). Only while ``user`` has no session: an online session keeps its own copy."""
        entries = {jid: {"subscription": sub, "groups": {}, "name": name or jid.split("@")[0]}
                   for jid, sub in contacts.items()}
        body = "".join(f"[{_lua(jid)}] = {_lua(entry)};\n" for jid, entry in entries.items())
        _write_atomic(self._path("roster", user),
                      f"return {{\n[false] = {{ version = {int(time.time())}; pending = {{}}; }};\n{body}}};\n")

    def befriend(self, a: str, b: str) -> None:
        """Mutual "both" subscription between local users ``a`` and ``b`` (both offline),
        keeping the rest of their rosters."""
        for me, other in ((a, b), (b, a)):
            roster = self.roster_file(me)
            roster[f"{other}@{self.domain}"] = "both"
            self.set_roster(me, roster)

    def roster_file(self, user: str) -> dict[str, str]:
        """``{bare_jid: subscription}`` as stored on disk for ``user`` (ours or Prosody's writing)."""
        path = self._path("roster", user)
        if not path.exists():
            return {}
        text = path.read_text()
        heads = list(re.finditer(r'\["([^"]+)"\]\s*=\s*\{', text))  # ["jid"] = {, ["groups"] = {...
        found: dict[str, str] = {}
        owner: str | None = None
        for i, m in enumerate(heads):
            key = m.group(1)
            if key == "pending":
                owner = None
            elif key != "groups":   # an entry; its ["groups"] table belongs to it
                owner = key
            chunk = text[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            sub = re.search(r'\[?"?subscription"?\]?\s*=\s*"(\w+)"', chunk)
            if owner is not None and sub:
                found[owner] = sub.group(1)
        return found

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> Self:
        """Write the config and the accounts, run Prosody and wait until its c2s port answers a
        stream header with stream features; fails at once, with the log, if it exits."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._write_config()
        for user, password in self.users.items():
            self.add_user(user, password)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(["prosody", "-F", "--config", str(self.conf)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        activated = f"Activated service 'c2s' on [127.0.0.1]:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited with {self.proc.returncode}:\n{self.log()}")
            text = self._this_log()
            if "Failed to open server port" in text:
                self.stop(graceful=False)
                raise RuntimeError(f"prosody could not bind 127.0.0.1:{self.port}:\n{self.log()}")
            if activated in text and self._answers():
                return self
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"prosody did not answer on port {self.port} within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def _this_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _answers(self, timeout: float = 2) -> bool:
        """Whether the c2s port answers a stream header for our domain with stream features."""
        header = (f"<?xml version='1.0'?><stream:stream to='{self.domain}' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout) as s:
                s.settimeout(timeout)
                s.sendall(header)
                data = b""
                while b"</stream:features>" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return f"from='{self.domain}'".encode() in data or f'from="{self.domain}"'.encode() in data
        except OSError:
            return False

    def stop(self, graceful: bool = True) -> None:
        """Stop and reap the server. Graceful is SIGTERM (clients get a system-shutdown stream
        error; exits at once), SIGKILL after 10 s; ``graceful=False`` is SIGKILL (a crash: the
        clients' TCP connections are reset by the kernel)."""
        self._end(graceful)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def jid(self, user: str, resource: str | None = None) -> str:
        return f"{user}@{self.domain}" + (f"/{resource}" if resource else "")

    def prosodyctl(self, *args: str, timeout: float = 30) -> str:
        """``prosodyctl --config DIR/prosody.cfg.lua ARGS...``; stdout without the lua-unbound
        banner; raises with the output on failure. E.g. ``prosodyctl("shell", "c2s:show()")``
        (needs the running server)."""
        done = subprocess.run(["prosodyctl", "--config", str(self.conf), *args],
                              capture_output=True, timeout=timeout)
        out = done.stdout.decode(errors="replace")
        lines = out.splitlines()
        if lines and "lua-unbound" in lines[0]:
            # the banner: a line, then indented lines, then a blank line
            i = 1
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                i += 1
            out = "\n".join(lines[i:])
        if done.returncode != 0:
            raise RuntimeError(f"prosodyctl {' '.join(args)} failed ({done.returncode}):\n{out}"
                               f"{done.stderr.decode(errors='replace')}")
        return out


# -- a synchronous slixmpp client ---------------------------------------------------------------

class Received(NamedTuple):
    """A received message: sender's full JID, body ("" if none) and the stanza as XML text."""
    frm: str
    body: str
    xml: str


class PresenceSeen(NamedTuple):
    """A received presence. ``type`` is "available" when the stanza has no type attribute."""
    frm: str
    type: str
    show: str
    status: str
    xml: str


class _DropSendAfterClose(logging.Filter):
    """slixmpp logs a traceback ("Exception raised in send queue: NotConnectedError") when it
    answers a stanza that arrived just as we closed the stream (e.g. the server's caps disco
    query right after login). Harmless; dropped so that it does not clutter test output."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (type(exc).__name__ == "NotConnectedError" and "send queue" in record.getMessage())


_send_filter = _DropSendAfterClose()


class XmppUser:
    """A slixmpp ``ClientXMPP`` running in its own thread and asyncio loop.

    Every public method is synchronous and may be called from the test's thread; ``.client``
    is the slixmpp object (touch it only through :meth:`call`). Plugins registered: XEP-0030
    (disco), XEP-0045 (MUC), XEP-0060 (pubsub), XEP-0199 (ping), plus ``plugins``.
    """

    def __init__(self, server: Prosody, user: str, resource: str = "test", password: str | None = None,
                 auto_accept: bool | None = True, cafile: Path | str | None = None,
                 plugins: tuple[str, ...] = ()) -> None:
        """``auto_accept``: True accepts subscription requests and subscribes back, False
        declines them, None leaves them pending. ``cafile`` defaults to ``server.cafile``."""
        need_slixmpp()
        logger = logging.getLogger("slixmpp.xmlstream.xmlstream")
        if _send_filter not in logger.filters:
            logger.addFilter(_send_filter)
        self.server = server
        self.user = user
        self.jid = server.jid(user, resource)
        self.bare = server.jid(user)
        self.password = server.users[user] if password is None else password
        self.auto_accept = auto_accept
        self.cafile = Path(cafile) if cafile is not None else server.cafile
        self.plugins = ("xep_0030", "xep_0045", "xep_0060", "xep_0199", *plugins)
        self.messages: list[Received] = []
        self.muc_messages: list[Received] = []
        self.presences: list[PresenceSeen] = []
        self.events: list[tuple[str, str]] = []   # (name, detail) of connection-level events
        self._cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=f"xmpp-{self.jid}", daemon=True)
        self._thread.start()
        self.client: Any = self._in_loop(self._make_client(), 10)
        self.session_started = threading.Event()
        self.disconnected = threading.Event()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _in_loop(self, coro: Any, timeout: float | None) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    async def _make_client(self) -> Any:
        import slixmpp
        c = slixmpp.ClientXMPP(self.jid, self.password, loop=self.loop)
        c.enable_direct_tls = False   # the c2s port speaks STARTTLS only
        c.enable_starttls = True
        c.enable_plaintext = not self.server.require_encryption
        c.ca_certs = self.cafile
        c.use_ipv6 = False
        c.auto_authorize = self.auto_accept
        c.auto_subscribe = bool(self.auto_accept)
        for plugin in self.plugins:
            c.register_plugin(plugin)
        c.add_event_handler("message", self._on_message)
        c.add_event_handler("presence", self._on_presence)
        for name in ("connection_failed", "failed_all_auth", "stream_error", "ssl_invalid_chain",
                     "disconnected", "session_end", "killed"):
            c.add_event_handler(name, self._recorder(name))
        return c

    # -- event handlers (in the loop thread) --

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def handler(detail: Any) -> None:
            with self._cond:
                self.events.append((name, str(detail)))
                if name == "disconnected":
                    self.disconnected.set()
                self._cond.notify_all()
            if name == "ssl_invalid_chain":   # handled here, so slixmpp leaves the socket open
                self.client.abort()
        return handler

    def _on_message(self, msg: Any) -> None:
        item = Received(str(msg["from"]), msg["body"] or "", str(msg))
        with self._cond:
            (self.muc_messages if msg["type"] == "groupchat" else self.messages).append(item)
            self._cond.notify_all()

    def _on_presence(self, pres: Any) -> None:
        item = PresenceSeen(str(pres["from"]), pres.xml.get("type") or "available", pres["show"] or "",
                            pres["status"] or "", str(pres))
        with self._cond:
            self.presences.append(item)
            self._cond.notify_all()

    # -- life cycle --

    def start(self, timeout: float = 10, presence: bool = True) -> Self:
        """Connect to 127.0.0.1:server.port, STARTTLS (certificate verified against ``cafile``,
        name = the domain), authenticate, fetch the roster and (``presence``) send initial
        presence. Raises TimeoutError (frozen server) or ConnectionError with the events."""
        async def go() -> None:
            c = self.client
            started: asyncio.Future[None] = self.loop.create_future()

            def fail(name: str) -> Callable[[Any], None]:
                def handler(detail: Any) -> None:
                    if not started.done():
                        started.set_exception(ConnectionError(f"{name}: {detail}"))
                return handler
            handlers = [(n, fail(n)) for n in ("connection_failed", "failed_all_auth", "stream_error",
                                               "ssl_invalid_chain", "disconnected")]

            async def session_start(_: Any) -> None:
                try:
                    await c.get_roster(timeout=timeout)
                    if presence:
                        c.send_presence()
                    if not started.done():
                        started.set_result(None)
                except Exception as e:  # noqa: BLE001
                    if not started.done():
                        started.set_exception(e)
            handlers.append(("session_start", session_start))
            for n, h in handlers:
                c.add_event_handler(n, h)
            try:
                c.connect("127.0.0.1", self.server.port)
                await asyncio.wait_for(started, timeout)
            except BaseException:
                c.cancel_connection_attempt()
                c.abort()
                raise
            finally:
                for n, h in handlers:
                    c.del_event_handler(n, h)
        self.disconnected.clear()
        try:
            self._in_loop(go(), timeout + 2)
        except asyncio.TimeoutError as e:   # an alias of TimeoutError since 3.11
            raise TimeoutError(f"{self.jid}: no session within {timeout} s; events {self.events}") from e
        self.session_started.set()
        return self

    def stop(self, timeout: float = 3) -> None:
        """Close the stream (``</stream:stream>``, waiting up to ``timeout`` for the server's),
        then abort the socket and end the thread. Safe to call twice and after failures."""
        if not self._thread.is_alive():
            return

        async def go() -> None:
            c = self.client
            c.cancel_connection_attempt()
            if c.transport is not None:
                try:
                    await asyncio.wait_for(c.disconnect(wait=timeout), timeout + 1)
                except Exception:  # noqa: BLE001
                    pass
                c.abort()
        try:
            self._in_loop(go(), timeout + 3)
        except Exception:  # noqa: BLE001
            pass

        async def cancel_tasks() -> None:
            tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self._in_loop(cancel_tasks(), 3)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def tls_version(self) -> str | None:
        """"TLSv1.3" etc. of the current connection, None when not encrypted or not connected."""
        def get(c: Any) -> str | None:
            t = c.transport
            obj = t.get_extra_info("ssl_object") if t is not None else None
            return obj.version() if obj is not None else None
        return self.call(get)

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The server certificate as ``ssl.getpeercert()`` gives it: non-empty only when verified."""
        def get(c: Any) -> dict[str, Any] | None:
            t = c.transport
            obj = t.get_extra_info("ssl_object") if t is not None else None
            return obj.getpeercert() if obj is not None else None
        return self.call(get)

    # -- actions --

    def call(self, fn: Callable[[Any], Any], timeout: float = 10) -> Any:
        """Run ``fn(client)`` in the client's loop; awaits the result if it is awaitable.
        E.g. ``user.call(lambda c: c.plugin["xep_0060"].get_nodes(jid="pubsub.localhost"))``."""
        async def go() -> Any:
            result = fn(self.client)
            if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                result = await result
            return result
        return self._in_loop(go(), timeout)

    def send(self, to: str, body: str, mtype: str = "chat") -> None:
        self.call(lambda c: c.send_message(mto=to, mbody=body, mtype=mtype))

    def send_raw(self, xml: str | bytes) -> None:
        """Send bytes as they are on the stream (for bad-input tests)."""
        self.call(lambda c: c.send_raw(xml))

    def set_presence(self, show: str | None = None, status: str | None = None, ptype: str | None = None,
                     to: str | None = None, priority: int | None = None) -> None:
        """Broadcast (or direct, ``to``) presence. ``show``: None/"available", "away", "chat",
        "dnd", "xa"; ``ptype="unavailable"`` to go offline (the stream stays open)."""
        if show == "available":
            show = None
        if show == "unavailable":
            show, ptype = None, "unavailable"
        self.call(lambda c: c.send_presence(pshow=show, pstatus=status, ptype=ptype, pto=to, ppriority=priority))

    def subscribe(self, jid: str, wait: bool = True, timeout: float = 10) -> None:
        """Send a subscription request to bare ``jid``; ``wait``: until our roster item shows
        "to" or "both" (i.e. the contact accepted, e.g. an ``auto_accept`` XmppUser)."""
        self.call(lambda c: c.send_presence_subscription(pto=jid))
        if wait:
            deadline = time.monotonic() + timeout
            while self.roster(cached=True).get(jid) not in ("to", "both"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.bare}: subscription to {jid} not accepted; roster {self.roster()}")
                time.sleep(0.02)

    def roster(self, cached: bool = False) -> dict[str, str]:
        """``{bare_jid: subscription}``, fetched from the server unless ``cached``."""
        async def go() -> dict[str, str]:
            c = self.client
            if not cached:
                await c.get_roster()
            node = c.client_roster
            return {str(j): node[j]["subscription"] for j in node.keys() if node[j]["subscription"] != "remove"}
        return self._in_loop(go(), 10)

    def join_muc(self, room_jid: str, nick: str, timeout: float = 10) -> None:
        """Join (creating if needed) a room without history; returns once joined."""
        self.call(lambda c: c.plugin["xep_0045"].join_muc_wait(room_jid, nick, maxstanzas=0, timeout=timeout),
                  timeout + 1)

    def send_muc(self, room_jid: str, body: str) -> None:
        self.send(room_jid, body, mtype="groupchat")

    def disco_features(self, jid: str | None = None, node: str | None = None) -> list[str]:
        """XEP-0030 disco#info features of ``jid`` (default: our server)."""
        iq = self.call(lambda c: c.plugin["xep_0030"].get_info(jid=jid or self.server.domain, node=node, timeout=10))
        return list(iq["disco_info"]["features"])

    def disco_items(self, jid: str | None = None) -> list[str]:
        iq = self.call(lambda c: c.plugin["xep_0030"].get_items(jid=jid or self.server.domain, timeout=10))
        return [str(item[0]) for item in iq["disco_items"]["items"]]

    def ping(self, jid: str | None = None, timeout: float = 5) -> float:
        """XEP-0199 round trip in seconds (raises on error or timeout)."""
        return self.call(lambda c: c.plugin["xep_0199"].ping(jid=jid or self.server.domain, timeout=timeout),
                         timeout + 1)

    # -- waiting --

    def _wait(self, items: list[Any], predicate: Callable[[Any], bool] | None, since: int,
              timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in items[since:]:
                    if predicate is None or predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.jid}: no matching {what} within {timeout} s; got {items[since:]}")
                self._cond.wait(left)

    def wait_message(self, predicate: Callable[[Received], bool] | None = None, timeout: float = 10,
                     since: int = 0) -> Received:
        """The first of ``.messages[since:]`` (chat, normal, headline, error) that matches
        ``predicate`` (default: any with a body), waiting for it up to ``timeout`` seconds."""
        return self._wait(self.messages, predicate or (lambda m: bool(m.body)), since, timeout, "message")

    def wait_muc_message(self, predicate: Callable[[Received], bool] | None = None, timeout: float = 10,
                         since: int = 0) -> Received:
        return self._wait(self.muc_messages, predicate or (lambda m: bool(m.body)), since, timeout,
                          "groupchat message")

    def wait_presence(self, predicate: Callable[[PresenceSeen], bool] | None = None, timeout: float = 10,
                      since: int = 0) -> PresenceSeen:
        return self._wait(self.presences, predicate, since, timeout, "presence")

    def wait_disconnected(self, timeout: float = 10) -> bool:
        return self.disconnected.wait(timeout)


@pytest.fixture
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """A started Prosody on localhost with asterisk/alice/bob, MUC and pubsub; removed afterwards."""
    need_prosody()
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def xmpp_users(prosody: Prosody) -> Iterator[Callable[..., XmppUser]]:
    """A factory ``xmpp_users("alice", resource="test", start=True, **XmppUser kwargs)`` of
    clients of the ``prosody`` fixture; all are stopped before the server (which then stops in
    0.01 s instead of the 1 s that Prosody takes to shut down with sessions open)."""
    made: list[XmppUser] = []

    def make(user: str, resource: str = "test", start: bool = True, **kwargs: Any) -> XmppUser:
        u = XmppUser(prosody, user, resource, **kwargs)
        made.append(u)
        return u.start() if start else u
    try:
        yield make
    finally:
        for u in made:
            u.stop()
