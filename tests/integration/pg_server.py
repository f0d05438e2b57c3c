"""A real PostgreSQL cluster on loopback, one per test (../shared/SERVICES.md section 8).

``Postgres(directory).start()`` runs the ``postgres`` server binary itself in the foreground
(no ``pg_ctl``, no ``runuser``: ``subprocess.Popen(..., user="postgres")``, so ``.proc`` is
the postmaster and freeze/stop signal exactly our processes), listening on 127.0.0.1 only
(``listen_addresses=127.0.0.1``) on a free port ``.port``, with its unix socket in a short
private directory ``/tmp/pg-XXXXXXXX`` (``.home``, owned by postgres, removed by
:meth:`Postgres.close`). On the first start it creates the login role ``user``/``password``
and the database ``dbname`` owned by it; ``.dsn`` is the libpq URI for a TCP login as that
role (``postgresql://asterisk:pgpass@127.0.0.1:PORT/asterisk``), the way the PBX logs in
(pg_hba: scram-sha-256 for host connections, trust for the local socket).

Speed: ``initdb`` (0.8 s or more) runs once per process into a template cluster that every
instance copies with ``cp -a`` (0.1 s). ``fsync`` and ``full_page_writes`` are off, which only
matters for an OS crash: a commit still write()s its WAL to the kernel before it returns, so
every committed row survives ``stop(graceful=False)`` (SIGKILL) and the crash recovery of the
next start. (``synchronous_commit=off`` would not: commits acknowledged in the last ~200 ms
live only in shared WAL buffers and were lost to a SIGKILL in testing.)

Process control for failure tests: :meth:`Postgres.freeze` / :meth:`Postgres.thaw` SIGSTOP /
SIGCONT the postmaster and every backend and helper (a frozen server accepts TCP in the kernel
but never answers, also on established sessions); :meth:`Postgres.restart` keeps the data.

Facts worth knowing when writing tests against it:

* :meth:`execute` / :meth:`query` open a new TCP connection as ``user`` each time (autocommit)
  and give up after ``timeout`` seconds with :class:`TimeoutError` (psycopg's async API under
  ``asyncio.wait_for``, so a frozen server cannot hang the test); from inside a running event
  loop they run in a helper thread;
* a plain SIGTERM is PostgreSQL's *smart* shutdown, which waits for every client to
  disconnect: :meth:`stop` sends SIGINT (fast shutdown: clients are disconnected with
  "terminating connection due to administrator command");
* :meth:`create_asterisk_tables` creates ``sippeers`` and ``voicemail`` with Asterisk's column
  names (contrib/realtime/postgresql/postgresql_config.sql); by default every column but the
  keys is TEXT, ``typed=True`` gives Asterisk's own types (VARCHAR(n), INTEGER, its ENUMs).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import weakref
from collections.abc import Coroutine, Iterator, Sequence
from glob import glob
from pathlib import Path
from typing import Any, Self

import pytest

from tests.integration.imap_server import ServerProcess, _signal, _wait_dead, descendants, free_port

SUPERUSER = "postgres"
SUPERUSER_PW = "pgsuperpw"


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with a ``postgres`` binary."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def need_postgres() -> None:
    """Skip unless PostgreSQL's server binaries, the ``postgres`` user and psycopg exist and we
    are root (the server refuses to run as root and is started as ``postgres``)."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install --no-install-recommends postgresql)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("there is no postgres user (apt-get install postgresql creates it)")
    pytest.importorskip("psycopg")
    if os.geteuid() != 0:
        pytest.skip("the Postgres fixture needs root (it runs the server as the postgres user)")


# -- one initdb per process ---------------------------------------------------------------------

_template_lock = threading.Lock()
_template: Path | None = None


def _as_postgres() -> dict[str, Any]:
    return {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": "/var/lib/postgresql"}}


def _template_cluster() -> Path:
    """A fresh cluster made by initdb once per process (removed at exit); instances copy it."""
    global _template
    with _template_lock:
        if _template is not None and (_template / "data" / "PG_VERSION").exists():
            return _template / "data"
        bindir = pg_bindir()
        assert bindir is not None
        home = Path(tempfile.mkdtemp(prefix="pgtpl-", dir="/tmp"))
        atexit.register(shutil.rmtree, str(home), True)
        shutil.chown(home, "postgres", "postgres")
        pwfile = home / "pw"
        pwfile.write_text(SUPERUSER_PW + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        done = subprocess.run(
            [str(bindir / "initdb"), "-D", str(home / "data"), "-U", SUPERUSER, "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale", "--no-sync"],
            capture_output=True, timeout=120, **_as_postgres())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout.decode(errors='replace')}"
                               f"{done.stderr.decode(errors='replace')}")
        pwfile.unlink()
        _template = home
        return home / "data"


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, also when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# -- Asterisk's realtime tables ---------------------------------------------------------------------
# contrib/realtime/postgresql/postgresql_config.sql (alembic contrib/ast-db-manage/config, revision
# 4da0c5f79a9c "create tables", plus 1758e8bbf6b useragent VARCHAR(255), 339a3bdf53fc accountcode
# VARCHAR(80) and 10aedae86a32 directmedia gaining 'outgoing'). (column, Asterisk's type)

_YN = "yes_no_values"
ENUM_TYPES = {
    "type_values": ("friend", "user", "peer"),
    "sip_transport_values": ("udp", "tcp", "tls", "ws", "wss", "udp,tcp", "tcp,udp"),
    "sip_dtmfmode_values": ("rfc2833", "info", "shortinfo", "inband", "auto"),
    "sip_directmedia_values_v2": ("yes", "no", "nonat", "update", "outgoing"),
    "yes_no_values": ("yes", "no"),
    "sip_progressinband_values": ("yes", "no", "never"),
    "sip_session_timers_values": ("accept", "refuse", "originate"),
    "sip_session_refresher_values": ("uac", "uas"),
    "sip_callingpres_values": ("allowed_not_screened", "allowed_passed_screen", "allowed_failed_screen", "allowed",
                               "prohib_not_screened", "prohib_passed_screen", "prohib_failed_screen", "prohib"),
}

SIPPEERS_COLUMNS: list[tuple[str, str]] = [
    ("name", "VARCHAR(40)"), ("ipaddr", "VARCHAR(45)"), ("port", "INTEGER"), ("regseconds", "INTEGER"),
    ("defaultuser", "VARCHAR(40)"), ("fullcontact", "VARCHAR(80)"), ("regserver", "VARCHAR(20)"),
    ("useragent", "VARCHAR(255)"), ("lastms", "INTEGER"), ("host", "VARCHAR(40)"), ("type", "type_values"),
    ("context", "VARCHAR(40)"), ("permit", "VARCHAR(95)"), ("deny", "VARCHAR(95)"), ("secret", "VARCHAR(40)"),
    ("md5secret", "VARCHAR(40)"), ("remotesecret", "VARCHAR(40)"), ("transport", "sip_transport_values"),
    ("dtmfmode", "sip_dtmfmode_values"), ("directmedia", "sip_directmedia_values_v2"), ("nat", "VARCHAR(29)"),
    ("callgroup", "VARCHAR(40)"), ("pickupgroup", "VARCHAR(40)"), ("language", "VARCHAR(40)"),
    ("disallow", "VARCHAR(200)"), ("allow", "VARCHAR(200)"), ("insecure", "VARCHAR(40)"), ("trustrpid", _YN),
    ("progressinband", "sip_progressinband_values"), ("promiscredir", _YN), ("useclientcode", _YN),
    ("accountcode", "VARCHAR(80)"), ("setvar", "VARCHAR(200)"), ("callerid", "VARCHAR(40)"),
    ("amaflags", "VARCHAR(40)"), ("callcounter", _YN), ("busylevel", "INTEGER"), ("allowoverlap", _YN),
    ("allowsubscribe", _YN), ("videosupport", _YN), ("maxcallbitrate", "INTEGER"), ("rfc2833compensate", _YN),
    ("mailbox", "VARCHAR(40)"), ("session-timers", "sip_session_timers_values"), ("session-expires", "INTEGER"),
    ("session-minse", "INTEGER"), ("session-refresher", "sip_session_refresher_values"),
    ("t38pt_usertpsource", "VARCHAR(40)"), ("regexten", "VARCHAR(40)"), ("fromdomain", "VARCHAR(40)"),
    ("fromuser", "VARCHAR(40)"), ("qualify", "VARCHAR(40)"), ("defaultip", "VARCHAR(45)"),
    ("rtptimeout", "INTEGER"), ("rtpholdtimeout", "INTEGER"), ("sendrpid", _YN), ("outboundproxy", "VARCHAR(40)"),
    ("callbackextension", "VARCHAR(40)"), ("timert1", "INTEGER"), ("timerb", "INTEGER"),
    ("qualifyfreq", "INTEGER"), ("constantssrc", _YN), ("contactpermit", "VARCHAR(95)"),
    ("contactdeny", "VARCHAR(95)"), ("usereqphone", _YN), ("textsupport", _YN), ("faxdetect", _YN),
    ("buggymwi", _YN), ("auth", "VARCHAR(40)"), ("fullname", "VARCHAR(40)"), ("trunkname", "VARCHAR(40)"),
    ("cid_number", "VARCHAR(40)"), ("callingpres", "sip_callingpres_values"), ("mohinterpret", "VARCHAR(40)"),
    ("mohsuggest", "VARCHAR(40)"), ("parkinglot", "VARCHAR(40)"), ("hasvoicemail", _YN), ("subscribemwi", _YN),
    ("vmexten", "VARCHAR(40)"), ("autoframing", _YN), ("rtpkeepalive", "INTEGER"), ("call-limit", "INTEGER"),
    ("g726nonstandard", _YN), ("ignoresdpversion", _YN), ("allowtransfer", _YN), ("dynamic", _YN),
    ("path", "VARCHAR(256)"), ("supportpath", _YN),
]

VOICEMAIL_COLUMNS: list[tuple[str, str]] = [
    ("context", "VARCHAR(80)"), ("mailbox", "VARCHAR(80)"), ("password", "VARCHAR(80)"),
    ("fullname", "VARCHAR(80)"), ("alias", "VARCHAR(80)"), ("email", "VARCHAR(80)"), ("pager", "VARCHAR(80)"),
    ("attach", _YN), ("attachfmt", "VARCHAR(10)"), ("serveremail", "VARCHAR(80)"), ("language", "VARCHAR(20)"),
    ("tz", "VARCHAR(30)"), ("deletevoicemail", _YN), ("saycid", _YN), ("sendvoicemail", _YN), ("review", _YN),
    ("tempgreetwarn", _YN), ("operator", _YN), ("envelope", _YN), ("sayduration", "INTEGER"), ("forcename", _YN),
    ("forcegreetings", _YN), ("callback", "VARCHAR(80)"), ("dialout", "VARCHAR(80)"),
    ("exitcontext", "VARCHAR(80)"), ("maxmsg", "INTEGER"), ("volgain", "NUMERIC(5, 2)"),
    ("imapuser", "VARCHAR(80)"), ("imappassword", "VARCHAR(80)"), ("imapserver", "VARCHAR(80)"),
    ("imapport", "VARCHAR(8)"), ("imapflags", "VARCHAR(80)"), ("stamp", "TIMESTAMP WITHOUT TIME ZONE"),
]

_NOT_NULL = {("sippeers", "name"), ("voicemail", "context"), ("voicemail", "mailbox"), ("voicemail", "password")}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def asterisk_tables_sql(typed: bool = False) -> str:
    """DDL for ``sippeers`` and ``voicemail`` (with Asterisk's indexes)."""
    out = []
    if typed:
        for enum, values in ENUM_TYPES.items():
            labels = ", ".join("'" + v + "'" for v in values)
            out.append(f"DO $$ BEGIN CREATE TYPE {enum} AS ENUM ({labels}); "
                       f"EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
    for table, key, columns in (("sippeers", "id", SIPPEERS_COLUMNS), ("voicemail", "uniqueid", VOICEMAIL_COLUMNS)):
        cols = [f"{key} SERIAL PRIMARY KEY"]
        for name, kind in columns:
            null = " NOT NULL" if (table, name) in _NOT_NULL else ""
            cols.append(f"{_ident(name)} {kind if typed else 'TEXT'}{null}")
        if table == "sippeers":
            cols.append("UNIQUE (name)")
        out.append(f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(cols) + "\n);")
    out += [
        "CREATE INDEX IF NOT EXISTS sippeers_name ON sippeers (name);",
        "CREATE INDEX IF NOT EXISTS sippeers_name_host ON sippeers (name, host);",
        "CREATE INDEX IF NOT EXISTS sippeers_ipaddr_port ON sippeers (ipaddr, port);",
        "CREATE INDEX IF NOT EXISTS sippeers_host_port ON sippeers (host, port);",
        "CREATE INDEX IF NOT EXISTS voicemail_mailbox ON voicemail (mailbox);",
        "CREATE INDEX IF NOT EXISTS voicemail_context ON voicemail (context);",
        "CREATE INDEX IF NOT EXISTS voicemail_mailbox_context ON voicemail (mailbox, context);",
        "CREATE INDEX IF NOT EXISTS voicemail_imapuser ON voicemail (imapuser);",
    ]
    return "\n".join(out)


class Postgres(ServerProcess):
    """One PostgreSQL cluster; see the module docstring."""

    def __init__(self, directory: Path, user: str = "asterisk", password: str = "pgpass",
                 dbname: str = "asterisk") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        self.dbname = dbname
        bindir = pg_bindir()
        assert bindir is not None, "PostgreSQL is not installed"
        self.bindir = bindir
        self.port = free_port()
        # short home owned by postgres: the data dir and the unix socket (path limit 107 bytes)
        self.home = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        os.chmod(self.home, 0o755)
        shutil.chown(self.home, "postgres", "postgres")
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.home), True)
        self.data_dir = self.home / "data"
        self.socket_dir = self.home
        self.log_path = self.dir / "postgres.log"
        q = urllib.parse.quote
        self.dsn = f"postgresql://{q(user, safe='')}:{q(password, safe='')}@127.0.0.1:{self.port}/{q(dbname, safe='')}"
        self.superuser_dsn = (f"postgresql://{SUPERUSER}:{SUPERUSER_PW}@127.0.0.1:{self.port}/postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self._created = False

    # -- life cycle --------------------------------------------------------------------------

    def _init_cluster(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        template = _template_cluster()
        done = subprocess.run(["cp", "-a", str(template), str(self.data_dir)], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"copying the template cluster failed: {done.stderr.decode(errors='replace')}")

    def start(self, timeout: float = 30) -> Self:
        """Start the postmaster and wait until it accepts a superuser login on its socket; on the
        first start create the role and database. Fails at once, with the log, if it exits."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._init_cluster()
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir),
                "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", "max_connections=100", "-c", "shared_buffers=16MB",
                "-c", "log_min_messages=warning", "-c", "log_connections=off"]
        with open(self.log_path, "ab") as log:  # opened by root, inherited by the postgres process
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         **_as_postgres())
        import psycopg
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname="postgres",
                                     connect_timeout=2, autocommit=True) as c:
                    if not self._created:
                        self._create_role_and_db(c)
                return self
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"postgres did not accept logins within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def _create_role_and_db(self, c: Any) -> None:
        from psycopg import sql
        if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)).fetchone() is None:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(self.user),
                                                                        sql.Literal(self.password)))
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone() is None:
            c.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.dbname),
                                                                   sql.Identifier(self.user)))
        self._created = True

    def stop(self, graceful: bool = True) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected, a checkpoint is
        written), SIGKILL to all after 10 s. ``graceful=False`` is a crash: SIGKILL to the
        postmaster and every backend; the next start runs crash recovery. Always reaps."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if self.frozen:
                self.thaw()
            children = descendants(proc.pid)
            if graceful:
                _signal(proc.pid, signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    children = descendants(proc.pid)
                    proc.kill()
                    proc.wait()
            else:
                _signal(proc.pid, signal.SIGSTOP)  # no new backends while we kill
                children = descendants(proc.pid)
                proc.kill()
                proc.wait()
            for pid in children:  # a killed postmaster leaves its backends behind
                _signal(pid, signal.SIGKILL)
            _wait_dead(children, 5)
        else:
            proc.wait()
        self.frozen = False
        self.proc = None

    def close(self) -> None:
        """Stop and remove /tmp/pg-XXXXXXXX with the data."""
        self.stop()
        self._cleanup()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- SQL ---------------------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> Any:
        """A sync psycopg connection over TCP as ``user`` (keyword arguments go to psycopg.connect)."""
        import psycopg
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.dsn, **kwargs)

    async def _aexecute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None, fetch: bool,
                        dsn: str) -> list[tuple[Any, ...]]:
        import psycopg
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            cur = await conn.execute(sql, params)  # type: ignore[arg-type]
            if fetch and cur.description is not None:
                return await cur.fetchall()
            return []
        finally:
            await conn.close()

    def _call(self, sql: str, params: Sequence[Any] | dict[str, Any] | None, fetch: bool, timeout: float,
              superuser: bool) -> list[tuple[Any, ...]]:
        dsn = self.superuser_dsn if superuser else self.dsn

        async def bounded() -> list[tuple[Any, ...]]:
            try:
                return await asyncio.wait_for(self._aexecute(sql, params, fetch, dsn), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no answer from postgres on port {self.port} within {timeout} s") from None
        return _run(bounded())

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, timeout: float = 10,
                superuser: bool = False) -> None:
        """Run SQL (several statements allowed when ``params`` is None) in autocommit mode over
        TCP as ``user`` (or the superuser); :class:`TimeoutError` after ``timeout`` seconds."""
        self._call(sql, params, False, timeout, superuser)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, timeout: float = 10,
              superuser: bool = False) -> list[tuple[Any, ...]]:
        """Like :meth:`execute`, returning the rows of the (last) statement as tuples."""
        return self._call(sql, params, True, timeout, superuser)

    def create_asterisk_tables(self, typed: bool = False) -> None:
        """Create Asterisk's realtime tables ``sippeers`` and ``voicemail`` (idempotent)."""
        self.execute(asterisk_tables_sql(typed))

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """INSERT one row (column names are quoted, so "call-limit" works)."""
        cols = ", ".join(_ident(c) for c in row)
        marks = ", ".join(["%s"] * len(row))
        self.execute(f"INSERT INTO {_ident(table)} ({cols}) VALUES ({marks})", list(row.values()))

    def add_sippeer(self, name: str, secret: str | None = None, **columns: Any) -> None:
        """A sippeers row with chan_sip-like defaults (type friend, host dynamic, context
        LocalSets); keyword arguments set further columns (use a dict via ``insert`` for names
        with a dash)."""
        row: dict[str, Any] = {"name": name, "type": "friend", "host": "dynamic", "context": "LocalSets"}
        if secret is not None:
            row["secret"] = secret
        row.update(columns)
        self.insert("sippeers", row)


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A started PostgreSQL with role and database ``asterisk`` (password ``pgpass``); removed afterwards."""
    need_postgres()
    server = Postgres(tmp_path_factory.mktemp("postgres"))
    try:
        server.start()
        yield server
    finally:
        server.close()
