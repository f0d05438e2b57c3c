"""The ldap and pgsql realtime drivers against real servers on loopback: OpenLDAP slapd with
the Asterisk schema (tests/integration/ldap_server.py) and PostgreSQL
(tests/integration/pg_server.py).

Each driver: load by name (found / not found), load_multi with LIKE, update writing back
what chan_sip writes on REGISTER (ipaddr, port, regseconds, useragent, fullcontact), store +
destroy, an injection attempt that finds nothing, a frozen server -> DriverUnavailable within
the timeout, a stopped server -> DriverUnavailable at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hookflash.conf.parser import ConfigFile, parse_text
from hookflash.realtime.core import record_dict
from hookflash.realtime.driver import DriverUnavailable, RealtimeDriver, RealtimeError
from tests.integration.ldap_server import Slapd, md5secret, need_slapd
from tests.integration.pg_server import Postgres, need_postgres

TIMEOUT = 1.0


class FakePbx:
    """What a driver needs of the PBX: read_config(name) -> ConfigFile | None."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_config(self, name: str) -> ConfigFile | None:
        text = self.files.get(name)
        return None if text is None else parse_text(text, name)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def started(driver: RealtimeDriver) -> RealtimeDriver:
    await driver.start()
    return driver


# ----------------------------------------------------------------------------- LDAP

LDAP_SIP = """
[sip]
name = cn
amaflags = AstAccountAMAFlags
callgroup = AstAccountCallGroup
callerid = AstAccountCallerID
context = AstAccountContext
host = AstAccountHost
type = AstAccountType
mailbox = AstAccountMailbox
md5secret = userPassword
md5secret = AstAccountRealmedPassword
fullcontact = AstAccountFullContact
ipaddr = AstAccountIPAddress
port = AstAccountPort
regseconds = AstAccountExpirationTimestamp
regserver = AstAccountRegistrationServer
useragent = AstAccountUserAgent
lastms = AstAccountLastQualifyMilliseconds
defaultuser = AstAccountDefaultUser
nat = AstAccountNAT
storeObjectClass = inetOrgPerson
storeObjectClass = AsteriskSIPUser
additionalFilter = (objectClass=AsteriskSIPUser)
"""


def ldap_conf(server: Slapd, url: str | None = None, extra: str = "") -> str:
    return (f"[_general]\nurl = {url or server.url}\nprotocol = 3\nbasedn = {server.suffix}\n"
            f"user = {server.admin_dn}\npass = {server.admin_pw}\ntimeout = {TIMEOUT:g}\n"
            f"cafile = {server.cafile}\n{extra}" + LDAP_SIP)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    need_slapd()
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    try:
        server.add_sip_user("RussellBryant", "canada", callerid="Russell Bryant", mailbox="101@shifteight")
        server.add_sip_user("alice", "alicepw", callerid='"Alice" <1001>')
        server.add_sip_user("alfred", "alfredpw", attrs={"AstAccountAllowedCodec": "ulaw;alaw"})
        server.add_sip_user("bob", "bobpw")
        server.add_sip_user("Jürgen", "pw")
        yield server
    finally:
        server.close()


def ldap_driver(server: Slapd, **kw: Any) -> Any:
    from hookflash.realtime.ldap import LdapDriver
    return LdapDriver(FakePbx({"res_ldap.conf": ldap_conf(server, **kw)}))


def test_ldap_load_found_and_not_found(slapd: Slapd) -> None:
    async def go() -> None:
        d = await started(ldap_driver(slapd))
        try:
            rec = await d.load(slapd.people_dn, "sip", [("name", "RussellBryant")])
            got = record_dict(rec)
            assert got["name"] == "RussellBryant"
            assert got["callerid"] == "Russell Bryant"
            assert got["context"] == "LocalSets"
            assert got["md5secret"] == md5secret("RussellBryant", "canada")  # {md5} stripped
            assert got["mailbox"] == "101@shifteight"
            assert await d.load(slapd.people_dn, "sip", [("name", "nobody")]) == []
            # the base DN of the extconfig line: "|" already turned into "," by the layer
            assert await d.load("ou=elsewhere," + slapd.suffix, "sip", [("name", "alice")]) == []
            # non-ASCII value
            assert record_dict(await d.load(slapd.people_dn, "sip", [("name", "Jürgen")]))["name"] == "Jürgen"
            assert d.status().startswith(f"Connected to '{slapd.url}', baseDN {slapd.suffix} with username "
                                         f"{slapd.admin_dn} for ")
        finally:
            await d.stop()
    run(go())


def test_ldap_load_multi_like_and_split(slapd: Slapd) -> None:
    async def go() -> None:
        d = await started(ldap_driver(slapd))
        try:
            rows = await d.load_multi(slapd.people_dn, "sip", [("name LIKE", "al%")])
            names = sorted(record_dict(r)["name"] for r in rows)
            assert names == ["alfred", "alice"]
            alfred = next(r for r in rows if record_dict(r)["name"] == "alfred")
            assert [v for c, v in alfred if c == "allow"] == ["ulaw", "alaw"]  # the schema default mapping
            # load (single) concatenates every matching entry, as Asterisk's realtime_ldap
            both = await d.load(slapd.people_dn, "sip", [("name LIKE", "al%")])
            assert sorted(v for c, v in both if c == "name") == ["alfred", "alice"]
            # LIKE with a literal "%": nothing
            assert await d.load_multi(slapd.people_dn, "sip", [("name LIKE", "al\\%")]) == []
        finally:
            await d.stop()
    run(go())


def test_ldap_update_writes_back(slapd: Slapd) -> None:
    async def go() -> None:
        d = await started(ldap_driver(slapd))
        try:
            contact = "sip:bob@127.0.0.1:5062;transport=udp;ob"
            n = await d.update(slapd.people_dn, "sip", "name", "bob", [
                ("ipaddr", "127.0.0.1"), ("port", "5062"), ("regseconds", "1900000000"),
                ("useragent", "baresip v1.0.0 (x86_64/linux)"), ("fullcontact", contact)])
            assert n == 1
            entry = slapd.entry(f"uid=bob,{slapd.people_dn}")
            assert entry is not None
            assert entry["AstAccountIPAddress"] == ["127.0.0.1"]
            assert entry["AstAccountPort"] == ["5062"]
            assert entry["AstAccountExpirationTimestamp"] == ["1900000000"]
            assert entry["AstAccountUserAgent"] == ["baresip v1.0.0 (x86_64/linux)"]
            assert entry["AstAccountFullContact"] == [contact]
            got = record_dict(await d.load(slapd.people_dn, "sip", [("name", "bob")]))
            assert got["fullcontact"] == contact and got["port"] == "5062"
            # empty value deletes (and deleting an absent attribute is no error)
            assert await d.update2(slapd.people_dn, "sip", [("name", "bob")],
                                   [("fullcontact", ""), ("lastms", "")]) == 1
            entry = slapd.entry(f"uid=bob,{slapd.people_dn}")
            assert entry is not None and "AstAccountFullContact" not in entry
            assert await d.update(slapd.people_dn, "sip", "name", "nobody", [("port", "1")]) == 0
        finally:
            await d.stop()
    run(go())


def test_ldap_store_and_destroy(slapd: Slapd) -> None:
    async def go() -> None:
        d = await started(ldap_driver(slapd))
        try:
            n = await d.store(slapd.people_dn, "sip", [("name", "carol, jr"), ("sn", "Carol"),
                                                         ("context", "internal"), ("host", "dynamic")])
            assert n == 1
            entry = slapd.entry(f"cn=carol\\, jr,{slapd.people_dn}")
            assert entry is not None and entry["AstAccountContext"] == ["internal"]
            assert record_dict(await d.load(slapd.people_dn, "sip", [("name", "carol, jr")]))["host"] == "dynamic"
            with pytest.raises(RealtimeError):  # already exists
                await d.store(slapd.people_dn, "sip", [("name", "carol, jr"), ("sn", "Carol")])
            assert await d.destroy(slapd.people_dn, "sip", "name", "carol, jr", []) == 1
            assert await d.load(slapd.people_dn, "sip", [("name", "carol, jr")]) == []
            assert await d.destroy(slapd.people_dn, "sip", "name", "carol, jr", []) == 0
        finally:
            await d.stop()
    run(go())


def test_ldap_injection_finds_nothing(slapd: Slapd) -> None:
    async def go() -> None:
        d = await started(ldap_driver(slapd))
        try:
            for value in ("*)(uid=*", "*", "alice)(|(cn=*", "al*", "\\2a", "alice\\"):
                assert await d.load(slapd.people_dn, "sip", [("name", value)]) == [], value
            assert await d.load_multi(slapd.people_dn, "sip", [("name LIKE", "*)(uid=*%")]) == []
            # an update aimed at everybody through the lookup value changes nothing
            assert await d.update(slapd.people_dn, "sip", "name", "*", [("port", "6666")]) == 0
            with pytest.raises(RealtimeError):
                await d.load(slapd.people_dn, "sip", [("name", "alice\x00")])
            with pytest.raises(RealtimeError):  # a column name is not a place for filter syntax
                await d.load(slapd.people_dn, "sip", [("cn=*)(uid", "x")])
        finally:
            await d.stop()
    run(go())


def test_ldap_starttls_and_ldaps(slapd: Slapd) -> None:
    async def go() -> None:
        for kw in ({"extra": "starttls = yes\n"}, {"url": slapd.ldaps_url}):
            d = await started(ldap_driver(slapd, **kw))
            try:
                assert record_dict(await d.load(slapd.people_dn, "sip", [("name", "alice")]))["name"] == "alice"
            finally:
                await d.stop()
    run(go())


def test_ldap_frozen_then_stopped(tmp_path_factory: pytest.TempPathFactory) -> None:
    need_slapd()
    server = Slapd(tmp_path_factory.mktemp("slapd-fail"), tls=False)
    server.start()
    try:
        server.add_sip_user("alice", "alicepw")

        async def go() -> None:
            d = await started(ldap_driver(server))
            try:
                assert await d.load(server.people_dn, "sip", [("name", "alice")])
                server.freeze()
                t0 = time.monotonic()
                with pytest.raises(DriverUnavailable):
                    await asyncio.wait_for(d.load(server.people_dn, "sip", [("name", "alice")]), 5)
                assert time.monotonic() - t0 < TIMEOUT + 1.0
                server.thaw()
                assert await d.load(server.people_dn, "sip", [("name", "alice")])  # recovers
                server.stop()
                t0 = time.monotonic()
                for _ in range(3):
                    with pytest.raises(DriverUnavailable):
                        await d.load(server.people_dn, "sip", [("name", "alice")])
                assert time.monotonic() - t0 < 0.5
                assert d.status().startswith("Not connected")
                server.start()
                assert await d.load(server.people_dn, "sip", [("name", "alice")])  # reconnects
            finally:
                await d.stop()
        run(go())
    finally:
        server.close()


# ----------------------------------------------------------------------------- PostgreSQL

def pg_conf(server: Postgres, extra: str = "") -> str:
    return (f"[general]\ndbhost = 127.0.0.1\ndbport = {server.port}\ndbname = {server.dbname}\n"
            f"dbuser = {server.user}\ndbpass = {server.password}\ntimeout = {TIMEOUT:g}\n{extra}")


def pg_driver(server: Postgres, extra: str = "") -> Any:
    from hookflash.realtime.pgsql import PgsqlDriver
    return PgsqlDriver(FakePbx({"res_pgsql.conf": pg_conf(server, extra)}))


@pytest.fixture(scope="module", params=[False, True], ids=["text", "typed"])
def pg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    need_postgres()
    pytest.importorskip("asyncpg")
    server = Postgres(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        server.create_asterisk_tables(typed=request.param)
        server.add_sippeer("RussellBryant", md5secret=md5secret("RussellBryant", "canada"),
                           callerid="Russell Bryant", allow="ulaw;alaw")
        server.add_sippeer("alice", "alicepw")
        server.add_sippeer("alfred", "alfredpw")
        server.add_sippeer("bob", "bobpw")
        server.add_sippeer("Jürgen", "pw")
        yield server
    finally:
        server.close()


def test_pgsql_load_found_and_not_found(pg: Postgres) -> None:
    async def go() -> None:
        d = await started(pg_driver(pg))
        try:
            rec = await d.load("asterisk", "sippeers", [("name", "RussellBryant")])
            got = record_dict(rec)
            assert got["name"] == "RussellBryant" and got["callerid"] == "Russell Bryant"
            assert got["md5secret"] == md5secret("RussellBryant", "canada")
            assert [v for c, v in rec if c == "allow"] == ["ulaw", "alaw"]  # Asterisk's ';' split
            assert await d.load("asterisk", "sippeers", [("name", "nobody")]) == []
            assert record_dict(await d.load("", "sippeers", [("name", "Jürgen")]))["name"] == "Jürgen"
            with pytest.raises(RealtimeError):
                await d.load("asterisk", "no_such_table", [("name", "alice")])
            with pytest.raises(RealtimeError):
                await d.load("asterisk", "sippeers", [("no_such_column", "x")])
            assert d.status().startswith(f"Connected to asterisk@127.0.0.1, port {pg.port} with username "
                                         "asterisk for ")
        finally:
            await d.stop()
    run(go())


def test_pgsql_load_multi_like(pg: Postgres) -> None:
    async def go() -> None:
        d = await started(pg_driver(pg))
        try:
            rows = await d.load_multi("asterisk", "sippeers", [("name LIKE", "al%")])
            assert [record_dict(r)["name"] for r in rows] == ["alfred", "alice"]  # ORDER BY name
            assert await d.load_multi("asterisk", "sippeers", [("name LIKE", "al\\%")]) == []
            rows = await d.load_multi("asterisk", "sippeers", [("name LIKE", "%"), ("name NOT LIKE", "a%")])
            assert sorted(record_dict(r)["name"] for r in rows) == ["Jürgen", "RussellBryant", "bob"]
        finally:
            await d.stop()
    run(go())


def test_pgsql_update_writes_back(pg: Postgres) -> None:
    async def go() -> None:
        d = await started(pg_driver(pg))
        try:
            contact = "sip:bob@127.0.0.1:5062;transport=udp;ob"
            n = await d.update("asterisk", "sippeers", "name", "bob", [
                ("ipaddr", "127.0.0.1"), ("port", "5062"), ("regseconds", "1900000000"),
                ("useragent", "baresip v1.0.0"), ("fullcontact", contact), ("no_such_column", "x")])
            assert n == 1
            row = pg.query("SELECT ipaddr, port::text, regseconds::text, useragent, fullcontact "
                           "FROM sippeers WHERE name = 'bob'")
            assert row == [("127.0.0.1", "5062", "1900000000", "baresip v1.0.0", contact)]
            got = record_dict(await d.load("asterisk", "sippeers", [("name", "bob")]))
            assert got["fullcontact"] == contact and got["port"] == "5062"
            # comparison by the column's type (INTEGER in the typed table, TEXT in the other)
            rows = await d.load_multi("asterisk", "sippeers", [("regseconds >", "1000000000")])
            assert [record_dict(r)["name"] for r in rows] == ["bob"]
            assert await d.update2("asterisk", "sippeers", [("name", "nobody")], [("port", "1")]) == 0
        finally:
            await d.stop()
    run(go())


def test_pgsql_store_destroy_require(pg: Postgres) -> None:
    async def go() -> None:
        d = await started(pg_driver(pg))
        try:
            assert await d.store("asterisk", "sippeers", [("name", "carol"), ("context", "internal"),
                                                          ("host", "dynamic"), ("type", "friend")]) == 1
            assert record_dict(await d.load("asterisk", "sippeers", [("name", "carol")]))["context"] == "internal"
            with pytest.raises(RealtimeError):  # UNIQUE (name)
                await d.store("asterisk", "sippeers", [("name", "carol")])
            assert await d.destroy("asterisk", "sippeers", "name", "carol", []) == 1
            assert await d.load("asterisk", "sippeers", [("name", "carol")]) == []
            assert await d.require("asterisk", "sippeers", [("name", "char", 10), ("ipaddr", "char", 15)])
            assert not await d.require("asterisk", "sippeers", [("brandnew", "char", 10)])
        finally:
            await d.stop()
        d = await started(pg_driver(pg, "requirements = createchar\n"))
        try:
            assert await d.require("asterisk", "rt_extra", [("name", "char", 40), ("hits", "integer4", 4)])
            assert await d.store("asterisk", "rt_extra", [("name", "x"), ("hits", "3")]) == 1
            assert record_dict(await d.load("asterisk", "rt_extra", [("name", "x")])) == {"name": "x", "hits": "3"}
        finally:
            await d.stop()
            pg.execute("DROP TABLE IF EXISTS rt_extra")
    run(go())


def test_pgsql_injection_finds_nothing(pg: Postgres) -> None:
    async def go() -> None:
        d = await started(pg_driver(pg))
        try:
            for value in ("*)(uid=*", "' OR '1'='1", "alice'; DROP TABLE sippeers; --", "%"):
                assert await d.load("asterisk", "sippeers", [("name", value)]) == [], value
            with pytest.raises(RealtimeError):
                await d.load("asterisk", "sippeers", [('name" OR 1=1 --', "x")])
            with pytest.raises(RealtimeError):
                await d.load("asterisk", 'sippeers" --', [("name", "alice")])
            assert pg.query("SELECT count(*) FROM sippeers")[0][0] >= 5
        finally:
            await d.stop()
    run(go())


def test_pgsql_frozen_then_stopped(tmp_path_factory: pytest.TempPathFactory) -> None:
    need_postgres()
    pytest.importorskip("asyncpg")
    server = Postgres(tmp_path_factory.mktemp("pg-fail"))
    server.start()
    try:
        server.create_asterisk_tables()
        server.add_sippeer("alice", "alicepw")

        async def go() -> None:
            d = await started(pg_driver(server))
            try:
                assert await d.load("asterisk", "sippeers", [("name", "alice")])
                server.freeze()
                try:
                    t0 = time.monotonic()
                    with pytest.raises(DriverUnavailable):
                        await asyncio.wait_for(d.load("asterisk", "sippeers", [("name", "alice")]), 5)
                    assert time.monotonic() - t0 < TIMEOUT + 0.5
                    # a new connection (the pool's was closed) times out the same way
                    t0 = time.monotonic()
                    with pytest.raises(DriverUnavailable):
                        await asyncio.wait_for(d.load("asterisk", "sippeers", [("name", "alice")]), 5)
                    assert time.monotonic() - t0 < TIMEOUT + 0.5
                finally:
                    server.thaw()
                assert await d.load("asterisk", "sippeers", [("name", "alice")])  # recovers
                server.stop()
                t0 = time.monotonic()
                for _ in range(3):
                    with pytest.raises(DriverUnavailable):
                        await d.load("asterisk", "sippeers", [("name", "alice")])
                assert time.monotonic() - t0 < 0.5
                assert d.status().startswith("Unable to connect")
                server.start()
                assert await d.load("asterisk", "sippeers", [("name", "alice")])  # reconnects
            finally:
                await d.stop()
        run(go())
    finally:
        server.close()
