"""A real Dovecot IMAP server on loopback for the tests (../shared/SERVICES.md section 2).

``Dovecot(directory).start()`` runs ``dovecot -F -c DIR/dovecot.conf`` in the foreground with
free TCP ports on 127.0.0.1: ``.port`` (plain IMAP and STARTTLS) and ``.ssl_port`` (IMAPS).
The certificate is self-signed with SAN ``DNS:localhost, IP:127.0.0.1``; ``.cafile`` is usable
as a CA file. Users default to ``alice:alicepw`` and ``bob:bobpw``; the master user
``master:masterpw`` logs in as anybody with ``LOGIN "alice*master" masterpw``.

Layout. Dovecot's auth runs as ``dovecot`` and its mail processes as ``nobody``, and pytest's
temporary directories are 0700 all the way up (``/tmp/pytest-of-root`` too), so those
processes could not reach files inside them. Everything they must reach (the passwd files,
the mail and the ``base_dir`` with its unix sockets) therefore lives in a short private
directory ``/tmp/dv-XXXXXXXX`` (mode 0755, removed by :meth:`Dovecot.close`), while
``directory`` holds what only root reads: ``dovecot.conf``, the certificate and key, the
state dir and ``dovecot.log``.

Process control for failure tests: :meth:`Dovecot.freeze` / :meth:`Dovecot.thaw` stop and
continue the master and all its children (a frozen server accepts TCP in the kernel but never
answers), :meth:`Dovecot.kill_imap_processes` kills the mail processes serving clients while
the master stays up, :meth:`Dovecot.restart` keeps the mail.

Facts worth knowing when writing tests against it:

* the hierarchy separator is "." (maildir, default namespace): a folder "Old" under INBOX is
  "INBOX.Old"; there are no special-use folders unless a client creates them;
* a failed login answers after up to 0.5 s (``auth_failure_delay = 0``; Dovecot flushes
  failures on a 500 ms timer) and the auth penalty is off, so it never slows later logins;
* tagged responses end with timings, e.g. ``NO [OVERQUOTA] Quota exceeded (mailbox for user
  is full) (0.001 + 0.000 secs).``; match on the response code, not the whole text;
* FETCH BODY[] sends a stored NUL byte as 0x80 and a bare LF as CRLF;
* ``doveadm`` needs the running server (user lookup through ``base_dir``), so it hangs while
  the server is frozen;
* after :meth:`Dovecot.stop` the log has "Warning: Killed with signal 15" lines (expected).
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

USERS = {"alice": "alicepw", "bob": "bobpw"}

# What Dovecot 2.3.19 sends after login (in the LOGIN tagged OK and to CAPABILITY), without
# IDLE. ``imap_capability`` replaces the whole list, in the greeting too (there followed by
# STARTTLS AUTH=PLAIN AUTH=LOGIN), and "+..." can only add, so the no-IDLE server names every
# capability itself. Plugins only add theirs (QUOTA) when ``imap_capability`` is empty or
# starts with "+", so QUOTA is appended here by hand. The IDLE command itself still works:
# only the advertisement is gone, which is what a client's polling fallback looks at.
CAPABILITY_WITHOUT_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (apt-get install --no-install-recommends dovecot-imapd)")


def need_dovecot() -> None:
    """Skip unless Dovecot is installed and we are root (it runs mail as nobody, auth as dovecot)."""
    need("dovecot")
    need("doveadm")
    if os.geteuid() != 0:
        pytest.skip("the Dovecot fixture needs root (its mail processes run as nobody, auth as dovecot)")


# -- processes ------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may contain spaces and parens
    return fields[0], int(fields[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """All living descendants of ``pid`` (children first), found via /proc by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] != "Z":
                children.setdefault(st[1], []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

def self_signed_cert(cert: Path, key: Path, names: tuple[str, ...] = ("localhost",)) -> None:
    """A self-signed certificate for ``names`` and 127.0.0.1, usable as its own CA file (an
    EC key takes milliseconds; RSA 2048 about 0.1 s)."""
    san = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "3650", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)


class ServerProcess:
    """What the server fixtures share: a foreground process (``self.proc``) with start and
    stop of their own, and restart, context manager, ``running``, freeze and thaw here.
    Freezing SIGSTOPs the process first (so it forks nothing new), then every descendant
    until none is left running; a frozen server still accepts TCP in the kernel but never
    answers."""

    proc: "subprocess.Popen[bytes] | None" = None
    frozen: bool = False

    def start(self, timeout: float = 15) -> Self:  # pragma: no cover - each server has its own
        raise NotImplementedError

    def stop(self, graceful: bool = True) -> None:  # pragma: no cover
        raise NotImplementedError

    def _end(self, graceful: bool) -> None:
        """The usual stop: SIGTERM and SIGKILL after 10 s (``graceful=False``: SIGKILL, a
        crash), any descendant left killed too; always reaps. Thaws a frozen server first."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if self.frozen:
                self.thaw()
            children = descendants(proc.pid)
            if graceful:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:
                proc.kill()
                proc.wait()
            for pid in _wait_dead(children, 5):
                _signal(pid, signal.SIGKILL)
        else:
            proc.wait()
        self.frozen = False
        self.proc = None

    def restart(self, graceful: bool = True) -> Self:
        """Stop, then start on the same ports with the same data."""
        self.stop(graceful=graceful)
        return self.start()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def freeze(self) -> None:
        assert self.running and self.proc is not None
        _signal(self.proc.pid, signal.SIGSTOP)
        stopped: set[int] = set()
        while True:
            new = [pid for pid in descendants(self.proc.pid) if pid not in stopped]
            if not new:
                break
            for pid in new:
                _signal(pid, signal.SIGSTOP)
                stopped.add(pid)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        for pid in reversed(descendants(self.proc.pid)):
            _signal(pid, signal.SIGCONT)
        _signal(self.proc.pid, signal.SIGCONT)
        self.frozen = False



def _wait_dead(pids: list[int], timeout: float) -> list[int]:
    """Wait until the processes are gone (or zombies); return the ones still alive."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


# -- helpers for imaplib ----------------------------------------------------------------------

def _mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3) for a mailbox name."""
    out, run = [], ""

    def flush() -> None:
        nonlocal run
        if run:
            b = base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b}-")
            run = ""
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run += ch
    flush()
    return "".join(out)


def _quote(name: str) -> str:
    text = _mutf7(name)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Dovecot(ServerProcess):
    """One Dovecot instance; see the module docstring."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None,
                 master: tuple[str, str] | None = ("master", "masterpw"), idle: bool = True,
                 quota_kb: int | None = None, quota_users: list[str] | None = None) -> None:
        """``quota_kb`` enables the quota and imap_quota plugins (backend ``count``) with a
        ``*:storage=<quota_kb>K`` rule for ``quota_users`` (default: every user)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = dict(USERS if users is None else users)
        self.master = master
        self.idle = idle
        self.quota_kb = quota_kb
        self.quota_users = quota_users
        self.port = free_port()
        self.ssl_port = free_port()
        while self.ssl_port == self.port:
            self.ssl_port = free_port()
        # short, world-traversable home for what the dovecot and nobody users must reach
        self.home = Path(tempfile.mkdtemp(prefix="dv-", dir="/tmp"))
        os.chmod(self.home, 0o755)
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.home), True)
        self.base_dir = self.home / "run"
        self.mail_dir = self.home / "mail"
        self.mail_dir.mkdir()
        shutil.chown(self.mail_dir, "nobody", "nogroup")
        self.conf = self.dir / "dovecot.conf"
        self.log_path = self.dir / "dovecot.log"
        self.cafile = self.dir / "cert.pem"
        self.keyfile = self.dir / "key.pem"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self._write_cert()

    # -- setup ------------------------------------------------------------------------------

    def _write_cert(self) -> None:
        self_signed_cert(self.cafile, self.keyfile)

    def _write_files(self) -> None:
        lines = []
        for user, password in self.users.items():
            extra = ""
            if self.quota_kb is not None and self.quota_users is not None and user in self.quota_users:
                extra = f"userdb_quota_rule=*:storage={self.quota_kb}K"
            lines.append(f"{user}:{{PLAIN}}{password}::::::{extra}\n")
        (self.home / "users").write_text("".join(lines))
        masters = f"{self.master[0]}:{{PLAIN}}{self.master[1]}::::::\n" if self.master else ""
        (self.home / "master-users").write_text(masters)
        h, d = self.home, self.dir
        master_passdb = f"""
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN {h}/master-users
  result_success = continue
}}""" if self.master else ""
        capability = ""
        if not self.idle:
            capability = "imap_capability = " + CAPABILITY_WITHOUT_IDLE + (" QUOTA" if self.quota_kb is not None else "")
        quota = imap_plugins = ""
        if self.quota_kb is not None:
            rule = f"  quota_rule = *:storage={self.quota_kb}K\n" if self.quota_users is None else ""
            quota = f"""mail_plugins = $mail_plugins quota
plugin {{
  quota = count:User quota
  quota_vsizes = yes
{rule}}}"""
            imap_plugins = "  mail_plugins = $mail_plugins imap_quota"
        self.conf.write_text(f"""# written by tests/integration/imap_server.py
protocols = imap
listen = 127.0.0.1
base_dir = {self.base_dir}
state_dir = {d}/state
instance_name = {self.home.name}
# the instance name in the banner tells start() that it is this server answering
login_greeting = Dovecot ready ({self.home.name}).
# process titles such as "dovecot-dv-x/imap [alice 127.0.0.1 IDLE]" (kill_imap_processes)
verbose_proctitle = yes
log_path = /dev/stderr
info_log_path = /dev/stderr
{capability}

ssl = yes
ssl_cert = <{self.cafile}
ssl_key = <{self.keyfile}
disable_plaintext_auth = no
auth_mechanisms = plain login
# a failed login answers at once (the default waits 2 s)
auth_failure_delay = 0
{master_passdb}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {h}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {h}/users
  default_fields = uid=nobody gid=nogroup home={self.mail_dir}/%u
}}
mail_location = maildir:~/Maildir
{quota}
protocol imap {{
  # default 10 sessions per user and IP; tests open many
  mail_max_userip_connections = 1000
{imap_plugins}
}}

# no auth penalty: otherwise after a failed login every login from 127.0.0.1, good or bad,
# waits up to 15 s (2 s, 4 s, 8 s... per failure)
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.ssl_port}
    ssl = yes
  }}
}}
""")

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> Self:
        """Write dovecot.conf and the passwd files from the attributes, run Dovecot and wait
        for its ``* OK`` banner on the plain port; fails at once, with the log, if it exits."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._write_files()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.settimeout(2)
                    banner = s.recv(4096)
                if banner.startswith(b"* OK") and self.home.name.encode() in banner:
                    return self  # ours, not some other server that grabbed the port
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"dovecot gave no banner on port {self.port} within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self, graceful: bool = True) -> None:
        """Stop the server and reap it; connected clients see ``* BYE Server shutting down.``.

        Graceful, like systemd's KillMode=control-group: SIGTERM to the ``imap`` processes,
        then to the master and all its other children at once; SIGKILL after 10 s. (SIGTERM to
        the master alone takes 1.1 s, and leaves the imap processes of connected clients
        running and serving them after the master has exited.) ``graceful=False`` is a crash:
        SIGKILL to the master and all its children, no BYE."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if self.frozen:
                self.thaw()
            if graceful:
                children = descendants(proc.pid)
                mail = [pid for pid in children if _comm(pid) == "imap"]
                for pid in mail:
                    _signal(pid, signal.SIGTERM)
                _wait_dead(mail, 2)  # so that their "Disconnected" lines still reach the log
                proc.terminate()
                for pid in children:
                    _signal(pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:
                _signal(proc.pid, signal.SIGSTOP)  # no respawning while we kill
                children = descendants(proc.pid)
                proc.kill()
                for pid in children:
                    _signal(pid, signal.SIGKILL)
                proc.wait()
            for pid in _wait_dead(children, 5):  # never leave a listener behind
                _signal(pid, signal.SIGKILL)
            _wait_dead(children, 5)
        else:
            proc.wait()
        # the children of a master that died on its own (or of an earlier run) by their title
        orphans = self._instance_pids()
        for pid in orphans:
            _signal(pid, signal.SIGKILL)
        _wait_dead(orphans, 5)
        self.frozen = False
        self.proc = None

    def close(self) -> None:
        """Stop and remove the private /tmp/dv-XXXXXXXX directory with the mail."""
        self.stop()
        self._cleanup()

    def _instance_pids(self) -> list[int]:
        """Living processes titled "dovecot-dv-XXXXXXXX/..." (this instance_name), by /proc."""
        prefix = f"dovecot-{self.home.name}/".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmdline.startswith(prefix) and _alive(int(entry)):
                    found.append(int(entry))
        return found

    def processes(self) -> dict[int, str]:
        """pid -> executable name (``imap``, ``imap-login``, ``auth``, ``log``...) of the children."""
        assert self.proc is not None
        return {pid: _comm(pid) for pid in descendants(self.proc.pid)}

    def kill_imap_processes(self, user: str | None = None, timeout: float = 5) -> list[int]:
        """SIGKILL the ``imap`` mail processes (all, or ``user``'s), as if the server died in the
        middle of a command; the master and the login processes stay up. Returns the pids."""
        assert self.proc is not None
        pids = []
        for pid, comm in self.processes().items():
            if comm != "imap":
                continue
            if user is not None:
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if f"/imap [{user} " not in title:  # "dovecot-dv-x/imap [alice 127.0.0.1 IDLE]"
                    continue
            pids.append(pid)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        _wait_dead(pids, timeout)
        return pids

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- inspection --------------------------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        """``doveadm -c DIR/dovecot.conf ARGS...``; returns stdout, raises with stderr on failure."""
        done = subprocess.run(["doveadm", "-c", str(self.conf), *args], capture_output=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def folders(self, user: str) -> list[str]:
        """Mailbox names (UTF-8, hierarchy separator ".") as ``doveadm mailbox list`` prints them."""
        return [line for line in self.doveadm("mailbox", "list", "-u", user).splitlines() if line]

    def flags(self, user: str, folder: str = "INBOX") -> list[tuple[int, set[str]]]:
        """(uid, flags) of every message in ``folder``, by uid; keywords included. ``\\Recent``
        is left out: it only says whether some session has selected the folder since."""
        out = self.doveadm("-f", "tab", "fetch", "-u", user, "uid flags", "mailbox", folder)
        rows = []
        for line in out.splitlines()[1:]:  # first line is the header "uid\tflags"
            if line.strip():
                uid, _, flags = line.partition("\t")
                rows.append((int(uid), set(flags.split()) - {"\\Recent"}))
        return sorted(rows)

    def login(self, user: str) -> imaplib.IMAP4:
        """An imaplib session on the plain port, as ``user`` (by password, else via the master user)."""
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        if user in self.users:
            c.login(user, self.users[user])
        elif self.master is not None:
            c.login(f"{user}*{self.master[0]}", self.master[1])
        else:
            raise KeyError(user)
        return c

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages (``BODY.PEEK[]``, CRLF line ends, byte-exact) of ``folder``, by uid.
        Dovecot sends a NUL byte as 0x80 and a bare LF as CRLF, as every IMAP client sees them."""
        return [raw for _, raw in self.uid_messages(user, folder)]

    def uid_messages(self, user: str, folder: str = "INBOX") -> list[tuple[int, bytes]]:
        c = self.login(user)
        try:
            typ, data = c.select(_quote(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"SELECT {folder}: {data}")
            if int(data[0] or 0) == 0:
                return []
            typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            if typ != "OK":
                raise RuntimeError(f"FETCH: {data}")
            found = []
            for item in data:
                if isinstance(item, tuple):
                    m = re.search(rb"UID (\d+)", item[0])
                    assert m is not None, item[0]
                    found.append((int(m.group(1)), item[1]))
            return sorted(found)
        finally:
            try:
                c.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def append(self, user: str, message: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """APPEND a raw message (creating ``folder`` if missing); returns its UID (APPENDUID)."""
        c = self.login(user)
        try:
            typ, data = c.append(_quote(folder), f"({flags})" if flags else None, None, message)
            if typ == "NO" and b"[TRYCREATE]" in data[0]:
                c.create(_quote(folder))
                typ, data = c.append(_quote(folder), f"({flags})" if flags else None, None, message)
            if typ != "OK":
                raise RuntimeError(f"APPEND {folder}: {data}")
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0])
            assert m is not None, data
            return int(m.group(1))
        finally:
            c.logout()


@pytest.fixture
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A started Dovecot with alice/bob and master user ``master``; removed afterwards."""
    need_dovecot()
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    try:
        server.start()
        yield server
    finally:
        server.close()
