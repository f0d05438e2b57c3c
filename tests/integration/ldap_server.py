"""A real OpenLDAP slapd on loopback with the Asterisk schema (../shared/SERVICES.md section 4).

``Slapd(directory).start()`` runs ``slapd -d 0 -h "ldap://127.0.0.1:PORT/ ldaps://127.0.0.1:SSLPORT/"
-f DIR/slapd.conf`` in the foreground (as root, no ``-u``), with the mdb backend under
``DIR/data`` and free TCP ports on 127.0.0.1: ``.port`` (``.url``, plain LDAP, StartTLS capable
when ``tls=True``) and ``.ssl_port`` (``.ldaps_url``, LDAPS; ``None`` when ``tls=False``). The
certificate is self-signed with SAN ``DNS:localhost, IP:127.0.0.1``; ``.cafile`` is usable as
a CA file. The schemas are core, cosine, inetorgperson, nis and the Asterisk schema
(``../shared/data/ldap/asterisk.schema``, an exact copy of Asterisk's
``contrib/scripts/asterisk.ldap-schema``, copied to ``DIR/schema/asterisk.schema``).

The tree: ``DIR/base.ldif`` holds the suffix entry (``dc=example,dc=org``, a
dcObject+organization) and ``ou=people``; it is loaded offline with ``slapadd`` before the first
start. The root DN is ``cn=admin,<suffix>`` (``.admin_dn``, password ``.admin_pw``); it bypasses
the ACLs. ACLs: ``userPassword`` is readable by nobody but the root DN (anonymous may bind
with it), everything else is world-readable.

SIP users like the chapter's RussellBryant (CHAPTER.md section 4): :meth:`Slapd.add_sip_user`
creates ``uid=NAME,ou=people,<suffix>`` with objectClass inetOrgPerson + AsteriskSIPUser
(+ AsteriskVoiceMail when a mailbox is given), ``cn``/``uid``/``AstAccountName`` = NAME and
``userPassword: {md5}<hex md5 of "NAME:REALM:PASSWORD">``, the realmed hash chan_sip uses as
``md5secret`` (res_config_ldap strips a leading ``{md5}``, case-insensitively, from the value
of whatever attribute res_ldap.conf maps to ``md5secret``; realm default "asterisk").

Facts worth knowing when writing tests against it:

* that ``{md5}<hex>`` value is *not* an LDAP password hash: slapd reads ``{MD5}`` as
  base64(md5(password)), so such a user cannot simple-bind with any password (the directory
  only serves the digest to the PBX); ``add_sip_user(..., bind_password=...)`` adds a second
  ``userPassword`` value the user can bind with;
* the ``userPassword`` attribute comes back only to the admin (``search``/``entry`` bind as
  admin); anonymous searches get the entry without it;
* Asterisk attributes are caseIgnoreMatch: filters like ``(AstAccountName=alice)`` ignore case;
* :meth:`Slapd.freeze` stops slapd with SIGSTOP: the kernel still accepts TCP connections but
  no bind or search is ever answered, so clients need a receive timeout;
* slapd exits at once on SIGTERM (rc 0), even with clients connected; the data survives
  :meth:`Slapd.restart`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from tests.integration.imap_server import ServerProcess, free_port, self_signed_cert

SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ldap" / "asterisk.schema"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def need_slapd() -> None:
    """Skip unless slapd, slapadd and ldapmodify are installed, ldap3 imports, we are root
    and the Asterisk schema file exists."""
    for program in ("slapd", "slapadd", "ldapmodify"):
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists():
            pytest.skip(f"{program} is not installed (apt-get install --no-install-recommends slapd ldap-utils)")
    pytest.importorskip("ldap3")
    if not SCHEMA.exists():
        pytest.skip(f"the Asterisk LDAP schema is missing: {SCHEMA}")
    if os.geteuid() != 0:
        pytest.skip("the slapd fixture needs root (it reads the system schemas and runs as root)")


def md5secret(name: str, password: str, realm: str = "asterisk") -> str:
    """chan_sip's md5secret: hex md5 of ``name:realm:password``."""
    return hashlib.md5(f"{name}:{realm}:{password}".encode()).hexdigest()


def ldap_md5(password: str) -> str:
    """An LDAP ``{MD5}`` password value slapd can bind with: base64 of the binary digest."""
    return "{MD5}" + base64.b64encode(hashlib.md5(password.encode()).digest()).decode()


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def _slapd_binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Slapd(ServerProcess):
    """One slapd instance; see the module docstring."""

    def __init__(self, directory: Path, suffix: str = "dc=example,dc=org", admin_pw: str = "adminpw",
                 tls: bool = True) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.admin_dn = f"cn=admin,{suffix}"
        self.admin_pw = admin_pw
        self.people_dn = f"ou=people,{suffix}"
        self.tls = tls
        self.port = free_port()
        self.ssl_port: int | None = None
        if tls:
            self.ssl_port = free_port()
            while self.ssl_port == self.port:
                self.ssl_port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ssl_port}" if tls else None
        self.conf = self.dir / "slapd.conf"
        self.data_dir = self.dir / "data"
        self.schema_dir = self.dir / "schema"
        self.base_ldif = self.dir / "base.ldif"
        self.log_path = self.dir / "slapd.log"
        self.cafile = self.dir / "cert.pem"
        self.keyfile = self.dir / "key.pem"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.schema_dir.mkdir(exist_ok=True)
        shutil.copyfile(SCHEMA, self.schema_dir / "asterisk.schema")
        if tls:
            self._write_cert()
        self._write_conf()
        self._write_base_ldif()

    # -- setup ------------------------------------------------------------------------------

    def _write_cert(self) -> None:
        self_signed_cert(self.cafile, self.keyfile)

    def _write_conf(self) -> None:
        d = self.dir
        includes = "".join(f"include   /etc/ldap/schema/{s}.schema\n" for s in SYSTEM_SCHEMAS)
        tls = (f"TLSCertificateFile    {self.cafile}\n"
               f"TLSCertificateKeyFile {self.keyfile}\n"
               f"TLSCACertificateFile  {self.cafile}\n") if self.tls else ""
        self.conf.write_text(f"""# written by tests/integration/ldap_server.py
{includes}include   {self.schema_dir}/asterisk.schema

pidfile   {d}/slapd.pid
argsfile  {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
{tls}
database  mdb
maxsize   104857600
suffix    "{self.suffix}"
rootdn    "{self.admin_dn}"
rootpw    {_ssha(self.admin_pw)}
directory {self.data_dir}
index     objectClass eq
index     uid,cn,AstAccountName eq

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to * by * read
""")

    def _top_entry(self) -> str:
        rdn = self.suffix.split(",")[0]
        attr, _, value = rdn.partition("=")
        attr = attr.strip().lower()
        if attr == "dc":
            return (f"dn: {self.suffix}\nobjectClass: top\nobjectClass: dcObject\n"
                    f"objectClass: organization\no: {value}\ndc: {value}\n")
        if attr == "o":
            return f"dn: {self.suffix}\nobjectClass: top\nobjectClass: organization\no: {value}\n"
        if attr == "ou":
            return f"dn: {self.suffix}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {value}\n"
        raise ValueError(f"unsupported suffix {self.suffix!r} (first RDN must be dc=, o= or ou=)")

    def _write_base_ldif(self) -> None:
        self.base_ldif.write_text(
            self._top_entry() + f"\ndn: {self.people_dn}\nobjectClass: organizationalUnit\nou: people\n")

    def _load_base(self) -> None:
        """slapadd the base entries into a fresh database (offline, before the first start)."""
        self.data_dir.mkdir(exist_ok=True)
        if (self.data_dir / "data.mdb").exists():
            return
        done = subprocess.run([_slapd_binary("slapadd"), "-f", str(self.conf), "-b", self.suffix,
                               "-l", str(self.base_ldif)], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"slapadd failed ({done.returncode}):\n{done.stderr.decode(errors='replace')}")

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> Self:
        """Run slapd and wait until an anonymous rootDSE search on the plain port names our
        suffix (and the LDAPS port accepts TCP); fails at once, with the log, if it exits."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._load_base()
        urls = self.url + "/" + (f" {self.ldaps_url}/" if self.tls else "")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([_slapd_binary("slapd"), "-d", "0", "-h", urls, "-f", str(self.conf)],
                                         cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}:\n{self.log()}")
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop(graceful=False)
                raise RuntimeError(f"slapd did not answer on port {self.port} within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1):
                pass
            if self.ssl_port is not None:
                with socket.create_connection(("127.0.0.1", self.ssl_port), 1):
                    pass
        except OSError:
            return False
        import ldap3
        try:
            c = ldap3.Connection(ldap3.Server("127.0.0.1", port=self.port, connect_timeout=1),
                                 receive_timeout=2, auto_bind=True)
            try:
                c.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["namingContexts"])
                contexts = [str(v).lower() for e in c.response or [] for v in e.get("attributes", {}).get("namingContexts", [])]
            finally:
                c.unbind()
        except Exception:  # noqa: BLE001 - not up yet (or not ours)
            return False
        return self.suffix.lower() in contexts

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM (slapd exits at once, rc 0), SIGKILL after 10 s; ``graceful=False`` is a
        crash (SIGKILL). Always reaps."""
        self._end(graceful)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- clients -----------------------------------------------------------------------------

    def connect(self, user: str | None = None, password: str | None = None, *, timeout: float = 5,
                mode: str = "plain") -> Any:
        """A bound ldap3 Connection (sync strategy) as ``user`` (default: the admin).
        ``mode``: "plain", "starttls" (verified against ``.cafile``) or "ldaps"."""
        import ldap3
        user = self.admin_dn if user is None else user
        password = self.admin_pw if password is None else password
        tls = None
        if mode in ("starttls", "ldaps"):
            assert self.tls, "this server runs without TLS"
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.cafile))
        port = self.ssl_port if mode == "ldaps" else self.port
        server = ldap3.Server("127.0.0.1", port=port, use_ssl=mode == "ldaps", tls=tls, connect_timeout=timeout)
        c = ldap3.Connection(server, user=user, password=password, receive_timeout=timeout, raise_exceptions=True)
        c.open()
        if mode == "starttls":
            c.start_tls()
        c.bind()
        return c

    def add_ldif(self, text: str) -> None:
        """Apply LDIF as the admin with ``ldapmodify -a`` (plain records are adds; records with
        ``changetype:`` work too); raises with ldapmodify's output on failure."""
        done = subprocess.run(["ldapmodify", "-a", "-x", "-H", self.url, "-D", self.admin_dn, "-w", self.admin_pw],
                              input=text.encode(), capture_output=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ldapmodify failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')}{done.stdout.decode(errors='replace')}")

    def add_sip_user(self, name: str, password: str, context: str = "LocalSets", callerid: str | None = None,
                     mailbox: str | None = None, ou: str = "people", *, realm: str = "asterisk",
                     vm_password: str = "1234", secret: bool = False, bind_password: str | None = None,
                     attrs: dict[str, Any] | None = None) -> str:
        """Add a SIP user like the chapter's RussellBryant; returns its DN.

        ``uid``, ``cn``, ``sn`` and ``AstAccountName`` are ``name``; ``userPassword`` is
        ``{md5}`` + md5secret(name, password, realm) (hex); ``AstAccountType: friend``,
        ``AstAccountHost: dynamic``, ``AstAccountContext: context``. ``mailbox`` ("101@ctx" or
        "101") sets ``AstAccountMailbox`` and adds AsteriskVoiceMail (``AstVoicemailMailbox``,
        ``AstContext`` = its context or "default", ``AstVoicemailPassword`` = vm_password).
        ``secret=True`` also stores the plain password as ``AstAccountSecret``;
        ``bind_password`` adds an LDAP ``{MD5}`` userPassword value the user can bind with;
        ``attrs`` adds or overrides attributes. The ``ou`` is created if missing."""
        self._ensure_ou(ou)
        dn = f"uid={name},ou={ou},{self.suffix}"
        classes = ["inetOrgPerson", "AsteriskSIPUser"]
        passwords = ["{md5}" + md5secret(name, password, realm)]
        if bind_password is not None:
            passwords.append(ldap_md5(bind_password))
        entry: dict[str, Any] = {
            "uid": name, "cn": name, "sn": name, "AstAccountName": name,
            "userPassword": passwords, "AstAccountContext": context,
            "AstAccountType": "friend", "AstAccountHost": "dynamic",
        }
        if callerid is not None:
            entry["AstAccountCallerID"] = callerid
        if secret:
            entry["AstAccountSecret"] = password
        if mailbox is not None:
            classes.append("AsteriskVoiceMail")
            box, _, vm_context = mailbox.partition("@")
            entry["AstAccountMailbox"] = mailbox
            entry["AstVoicemailMailbox"] = box
            entry["AstContext"] = vm_context or "default"
            entry["AstVoicemailPassword"] = vm_password
        entry.update(attrs or {})
        c = self.connect()
        try:
            c.add(dn, classes, entry)
        finally:
            c.unbind()
        return dn

    def _ensure_ou(self, ou: str) -> None:
        if ou == "people" or self.entry(f"ou={ou},{self.suffix}") is not None:
            return
        self.add_ldif(f"dn: ou={ou},{self.suffix}\nobjectClass: organizationalUnit\nou: {ou}\n")

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        """Replace attributes of ``dn`` (a value of None or [] deletes the attribute)."""
        import ldap3
        c = self.connect()
        try:
            c.modify(dn, {k: [(ldap3.MODIFY_REPLACE, [] if v is None else (v if isinstance(v, list) else [v]))]
                          for k, v in changes.items()})
        finally:
            c.unbind()

    def delete(self, dn: str) -> None:
        c = self.connect()
        try:
            c.delete(dn)
        finally:
            c.unbind()

    def search(self, filter: str = "(objectClass=*)", attrs: list[str] | None = None, base: str | None = None,
               scope: str = "sub", timeout: float = 5) -> list[dict[str, Any]]:
        """Search as the admin. Each entry is a case-insensitive dict: ``"dn"`` -> str and every
        attribute -> list of str (raw values decoded as UTF-8), in server order."""
        import ldap3
        from ldap3.utils.ciDict import CaseInsensitiveDict
        scopes = {"sub": ldap3.SUBTREE, "one": ldap3.LEVEL, "base": ldap3.BASE}
        c = self.connect(timeout=timeout)
        try:
            try:
                c.search(self.suffix if base is None else base, filter, search_scope=scopes[scope],
                         attributes=attrs or ["*"])
            except ldap3.core.exceptions.LDAPNoSuchObjectResult:
                return []
            found = []
            for item in c.response or []:
                if item.get("type") != "searchResEntry":
                    continue
                entry = CaseInsensitiveDict()
                entry["dn"] = item["dn"]
                for key, values in item["raw_attributes"].items():
                    entry[key] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
                found.append(entry)
            return found
        finally:
            c.unbind()

    def entry(self, dn: str) -> dict[str, Any] | None:
        """The entry at ``dn`` (as in :meth:`search`), or None."""
        found = self.search("(objectClass=*)", base=dn, scope="base")
        return found[0] if found else None


@pytest.fixture
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A started slapd (TLS on) with the base tree; removed afterwards."""
    need_slapd()
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    try:
        server.start()
        yield server
    finally:
        server.close()
