"""Self-tests of the realtime store fixtures: OpenLDAP slapd (ldap_server.py) and PostgreSQL (pg_server.py)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.ldap_server import Slapd, md5secret, slapd  # noqa: F401
from tests.integration.pg_server import SIPPEERS_COLUMNS, VOICEMAIL_COLUMNS, Postgres, postgres  # noqa: F401

# ldap3 2.9.1 checks TLS host names with the deprecated ssl.match_hostname
pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


# -- slapd ------------------------------------------------------------------------------------


def _ldap3_connection(server: Slapd, mode: str, cafile: Path | None = None, timeout: float = 5):  # noqa: ANN202
    ldap3 = pytest.importorskip("ldap3")
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cafile or server.cafile))
    if mode == "ldaps":
        srv = ldap3.Server("127.0.0.1", port=server.ssl_port, use_ssl=True, tls=tls, connect_timeout=timeout)
    else:
        srv = ldap3.Server("127.0.0.1", port=server.port, tls=tls if mode == "starttls" else None,
                           connect_timeout=timeout)
    c = ldap3.Connection(srv, user=server.admin_dn, password=server.admin_pw, receive_timeout=timeout,
                         raise_exceptions=True)
    c.open()
    if mode == "starttls":
        c.start_tls()
    c.bind()
    return c


@pytest.mark.parametrize("mode", ["plain", "starttls", "ldaps"])
def test_ldap_admin_bind_and_search(slapd: Slapd, mode: str) -> None:
    dn = slapd.add_sip_user("alice", "sipsecret", callerid='"Alice" <1001>', mailbox="1001@default")
    assert dn == "uid=alice,ou=people,dc=example,dc=org"
    assert slapd.url == f"ldap://127.0.0.1:{slapd.port}" and slapd.ldaps_url == f"ldaps://127.0.0.1:{slapd.ssl_port}"
    c = _ldap3_connection(slapd, mode)
    try:
        if mode != "plain":
            assert c.socket.version().startswith("TLS")
        assert c.extend.standard.who_am_i() == f"dn:{slapd.admin_dn}"
        c.search(slapd.people_dn, "(&(objectClass=AsteriskSIPUser)(AstAccountName=alice))",
                 attributes=["AstAccountCallerID", "AstAccountContext", "AstVoicemailMailbox", "userPassword"])
        assert len(c.entries) == 1
        e = c.entries[0]
        assert e.entry_dn == dn
        assert e.AstAccountCallerID.value == '"Alice" <1001>'
        assert e.AstAccountContext.value == "LocalSets"
        assert e.AstVoicemailMailbox.value == "1001"
        realmed = hashlib.md5(b"alice:asterisk:sipsecret").hexdigest()
        assert e.userPassword.value == ("{md5}" + realmed).encode()
    finally:
        c.unbind()


def test_ldap_helpers_and_acl(slapd: Slapd) -> None:
    ldap3 = pytest.importorskip("ldap3")
    assert slapd.entry(slapd.suffix)["objectClass"] == ["top", "dcObject", "organization"]
    assert slapd.entry(slapd.people_dn) is not None
    assert slapd.entry(f"uid=nobody,{slapd.people_dn}") is None
    assert "ou=people" in Path(slapd.dir, "base.ldif").read_text()
    assert (slapd.dir / "schema" / "asterisk.schema").stat().st_size == 29248

    dn = slapd.add_sip_user("bob", "bobsip", bind_password="bobpw", context="internal")
    slapd.add_ldif("dn: ou=devices,dc=example,dc=org\nobjectClass: organizationalUnit\nou: devices\n")
    [bob] = slapd.search("(AstAccountName=BOB)", ["cn", "astaccountcontext", "userPassword"])
    assert bob["dn"] == dn and bob["cn"] == ["bob"] and bob["AstAccountContext"] == ["internal"]
    assert bob["userpassword"][0] == "{md5}" + md5secret("bob", "bobsip")
    assert [e["dn"] for e in slapd.search("(objectClass=organizationalUnit)", ["ou"])] == [
        slapd.people_dn, "ou=devices,dc=example,dc=org"]

    # anonymous: the entry, but not userPassword
    c = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port), auto_bind=True, receive_timeout=5)
    c.search(slapd.suffix, "(uid=bob)", attributes=["cn", "userPassword"])
    assert c.response[0]["attributes"]["cn"] == ["bob"]
    assert not c.response[0]["raw_attributes"].get("userPassword")  # ldap3 lists it, empty
    c.unbind()
    # the Asterisk-style {md5}<hex> is no LDAP hash: only the extra bind password binds
    with pytest.raises(ldap3.core.exceptions.LDAPInvalidCredentialsResult):
        slapd.connect(dn, "bobsip")
    slapd.connect(dn, "bobpw").unbind()


def test_ldap_tls_rejects_wrong_ca(slapd: Slapd, tmp_path: Path) -> None:
    ldap3 = pytest.importorskip("ldap3")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=localhost", "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, capture_output=True)
    with pytest.raises(ldap3.core.exceptions.LDAPSocketOpenError, match="CERTIFICATE_VERIFY_FAILED"):
        _ldap3_connection(slapd, "ldaps", cafile=tmp_path / "c.pem")
    with pytest.raises(ldap3.core.exceptions.LDAPStartTLSError):
        _ldap3_connection(slapd, "starttls", cafile=tmp_path / "c.pem")


def test_ldap_freeze_thaw_restart(slapd: Slapd) -> None:
    ldap3 = pytest.importorskip("ldap3")
    slapd.add_sip_user("carol", "pw")
    c = _ldap3_connection(slapd, "plain", timeout=1)
    slapd.freeze()
    try:
        t = time.monotonic()
        with pytest.raises(ldap3.core.exceptions.LDAPSocketReceiveError):
            c.search(slapd.suffix, "(uid=carol)")
        assert time.monotonic() - t < 2
        t = time.monotonic()
        with pytest.raises(ldap3.core.exceptions.LDAPSocketReceiveError):  # new connections too
            slapd.search("(uid=carol)", timeout=1)
        assert time.monotonic() - t < 2
    finally:
        slapd.thaw()
    assert [e["uid"] for e in slapd.search("(uid=carol)", ["uid"])] == [["carol"]]
    slapd.restart()
    assert len(slapd.search("(objectClass=AsteriskSIPUser)")) == 1
    slapd.restart(graceful=False)
    assert len(slapd.search("(objectClass=AsteriskSIPUser)")) == 1


def test_ldap_without_tls(tmp_path: Path) -> None:
    from tests.integration.ldap_server import need_slapd
    need_slapd()
    with Slapd(tmp_path, suffix="o=hookflash", admin_pw="secret", tls=False) as server:
        assert server.ssl_port is None and server.ldaps_url is None
        server.add_sip_user("dave", "pw", ou="phones")
        [e] = server.search("(cn=dave)", ["uid"])
        assert e["dn"] == "uid=dave,ou=phones,o=hookflash"
    assert not server.running


# -- PostgreSQL --------------------------------------------------------------------------------

REQUIRED_SIPPEERS = ["name", "type", "context", "host", "secret", "md5secret", "defaultuser", "callerid", "mailbox",
                     "ipaddr", "port", "regseconds", "useragent", "lastms", "fullcontact", "regserver", "nat",
                     "dtmfmode", "disallow", "allow", "qualify", "transport"]


def test_pg_tcp_login_tables_and_rows(postgres: Postgres) -> None:
    psycopg = pytest.importorskip("psycopg")
    assert postgres.dsn == f"postgresql://asterisk:pgpass@127.0.0.1:{postgres.port}/asterisk"
    with psycopg.connect(postgres.dsn, connect_timeout=5) as c:
        user, addr, listen = c.execute(
            "SELECT current_user, host(inet_server_addr()), current_setting('listen_addresses')").fetchone()
    assert (user, addr, listen) == ("asterisk", "127.0.0.1", "127.0.0.1")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.dsn.replace(":pgpass@", ":wrong@"), connect_timeout=5)

    postgres.create_asterisk_tables()
    postgres.create_asterisk_tables()  # idempotent
    cols = {t: [r[0] for r in postgres.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (t,))]
        for t in ("sippeers", "voicemail")}
    assert set(REQUIRED_SIPPEERS) <= set(cols["sippeers"])
    assert cols["sippeers"] == ["id"] + [n for n, _ in SIPPEERS_COLUMNS]
    assert cols["voicemail"][:8] == ["uniqueid", "context", "mailbox", "password", "fullname", "alias", "email", "pager"]
    assert {"imapuser", "imappassword"} <= set(cols["voicemail"])
    assert cols["voicemail"] == ["uniqueid"] + [n for n, _ in VOICEMAIL_COLUMNS]

    postgres.add_sippeer("alice", secret="s3cret", md5secret=md5secret("alice", "s3cret"), callerid='"Alice" <1001>',
                         mailbox="1001@default", port=5060)
    postgres.insert("sippeers", {"name": "bob", "call-limit": "2"})
    rows = postgres.query("SELECT name, type, host, context, secret, callerid, port, \"call-limit\" "
                          "FROM sippeers ORDER BY id")
    assert rows == [("alice", "friend", "dynamic", "LocalSets", "s3cret", '"Alice" <1001>', "5060", None),
                    ("bob", None, None, None, None, None, None, "2")]
    postgres.execute("UPDATE sippeers SET ipaddr = %s, regseconds = %s WHERE name = %s", ("127.0.0.1", "1700000000", "alice"))
    assert postgres.query("SELECT ipaddr, regseconds FROM sippeers WHERE name = 'alice'") == [("127.0.0.1", "1700000000")]
    postgres.insert("voicemail", {"context": "default", "mailbox": "1001", "password": "1234",
                                  "imapuser": "alice", "imappassword": "alicepw"})
    assert postgres.query("SELECT uniqueid, imapuser FROM voicemail") == [(1, "alice")]
    with pytest.raises(psycopg.errors.UniqueViolation):
        postgres.add_sippeer("alice")


def test_pg_typed_tables(postgres: Postgres) -> None:
    psycopg = pytest.importorskip("psycopg")
    postgres.create_asterisk_tables(typed=True)
    postgres.create_asterisk_tables(typed=True)
    postgres.add_sippeer("carol", port=5060, regseconds=0, transport="udp", dtmfmode="rfc2833")
    assert postgres.query("SELECT port, type::text FROM sippeers") == [(5060, "friend")]
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        postgres.add_sippeer("dave", type="bogus")


def test_pg_freeze_thaw_and_restart(postgres: Postgres) -> None:
    postgres.create_asterisk_tables()
    postgres.add_sippeer("alice", secret="pw")
    postgres.freeze()
    try:
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            postgres.query("SELECT name FROM sippeers", timeout=1)
        assert time.monotonic() - t < 2
    finally:
        postgres.thaw()
    assert postgres.query("SELECT name FROM sippeers") == [("alice",)]

    # an open session stalls while frozen and carries on after the thaw
    with postgres.connect(autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        postgres.freeze()
        postgres.thaw()
        assert c.execute("SELECT count(*) FROM sippeers").fetchone() == (1,)

    port = postgres.port
    postgres.restart()
    assert postgres.port == port and postgres.query("SELECT name FROM sippeers") == [("alice",)]
    postgres.add_sippeer("bob")
    postgres.restart(graceful=False)  # crash: SIGKILL to everything, crash recovery on start
    assert postgres.query("SELECT name FROM sippeers ORDER BY id") == [("alice",), ("bob",)]


def test_pg_query_inside_event_loop(postgres: Postgres) -> None:
    async def main() -> list[tuple[int]]:
        return postgres.query("SELECT 42")
    assert asyncio.run(main()) == [(42,)]
