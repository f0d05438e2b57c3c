"""Chapter section 4 against real directory and database servers: the same checks as
test_realtime_sip.py (SIPp and baresip register with RussellBryant's password, his
context/caller ID/mailbox come from the backend, he calls and is called, the
registration is written back, a wrong password looks like an unknown user), with
LDAP (slapd with the Asterisk schema, the chapter's res_ldap.conf) and PostgreSQL.
Then failover between two directories, and a frozen directory that never delays calls
to static extensions."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.ldap_server import Slapd, md5secret, need_slapd
from tests.integration.pg_server import Postgres, need_postgres
from tests.integration.sip_peers import Server, free_port, need
from tests.integration.test_realtime_sip import PASSWORD, check_realtime_user, ha1
from tests.integration.test_voicemail import wait_for

# the chapter's res_ldap.conf, host and password changed
RES_LDAP = """
[_general]
url={url}
protocol=3
basedn=dc=example,dc=org
user={admin}
pass=adminpw

[sip]
name = cn
amaflags = AstAccountAMAFlags
callgroup = AstAccountCallGroup
callerid = AstAccountCallerID
lastms = AstAccountLastQualifyMilliseconds
useragent = AstAccountUserAgent
additionalFilter=(objectClass=AsteriskSIPUser)
"""

LDAP_COLUMNS = {"regseconds": "AstAccountExpirationTimestamp", "ipaddr": "AstAccountIPAddress",
                "port": "AstAccountPort", "fullcontact": "AstAccountFullContact",
                "regserver": "AstAccountRegistrationServer"}


def ldap_files(server: Slapd) -> dict[str, str]:
    return {"extconfig.conf": '[settings]\nsippeers => ldap,"ou=people,dc=example,dc=org",sip\n',
            "res_ldap.conf": RES_LDAP.format(url=server.url, admin=server.admin_dn)}


def test_sip_users_from_ldap(tmp_path: Path) -> None:
    need_slapd()
    with Slapd(tmp_path / "slapd") as server:
        server.add_sip_user("RussellBryant", PASSWORD, context="LocalSets", callerid='"Russell Bryant" <100>',
                            mailbox="100@shifteight")
        dn = "uid=RussellBryant,ou=people,dc=example,dc=org"

        def read_row() -> dict[str, str]:
            entry = server.entry(dn) or {}
            return {col: (entry.get(attr) or [""])[0] for col, attr in LDAP_COLUMNS.items()}

        assert server.entry(dn) is not None
        assert (server.entry(dn) or {})["userPassword"][0].lower() == "{md5}" + md5secret("RussellBryant", PASSWORD)
        check_realtime_user(tmp_path, ldap_files(server), read_row)


def test_sip_users_from_postgresql(tmp_path: Path) -> None:
    need_postgres()
    with Postgres(tmp_path / "pg") as pg:
        pg.create_asterisk_tables()
        pg.add_sippeer("RussellBryant", md5secret=ha1("RussellBryant", PASSWORD), callerid='"Russell Bryant" <100>',
                       mailbox="100@shifteight", disallow="all", allow="ulaw")
        host, port = "127.0.0.1", pg.port
        files = {"extconfig.conf": "[settings]\nsippeers => pgsql,asterisk,sippeers\n",
                 "res_pgsql.conf": f"[general]\ndbhost={host}\ndbport={port}\ndbname=asterisk\n"
                                   f"dbuser=asterisk\ndbpass=pgpass\n"}

        def read_row() -> dict[str, str]:
            rows = pg.query("SELECT regseconds, ipaddr, port, fullcontact, regserver FROM sippeers "
                            "WHERE name='RussellBryant'")
            if not rows:
                return {}
            return {k: "" if v is None else str(v) for k, v in
                    zip(("regseconds", "ipaddr", "port", "fullcontact", "regserver"), rows[0])}

        check_realtime_user(tmp_path, files, read_row)


FAILOVER_DIALPLAN = """
[LocalSets]
exten => 200,1,Answer()
 same => n,Hangup()
exten => static,1,Set(DB(rt/static)=ok)
"""


def test_failover_and_a_frozen_directory_never_delays_static_calls(tmp_path: Path) -> None:
    need_slapd()
    need("sipp")
    first = Slapd(tmp_path / "one").start()
    second = Slapd(tmp_path / "two").start()
    try:
        for server in (first, second):
            server.add_sip_user("RussellBryant", PASSWORD, context="LocalSets")
        conf = RES_LDAP.format(url=first.url, admin=first.admin_dn)
        # a second table section pointing at the second server is not possible in res_ldap.conf
        # (one connection); failover therefore uses a second extconfig mapping with a
        # per-table url (hookflash's 'url' in a table section)
        conf += "\n[sip2]\n" + f"url={second.url}\nname = cn\nadditionalFilter=(objectClass=AsteriskSIPUser)\n"
        files = {"extconfig.conf": "[settings]\nsippeers => ldap,\"ou=people,dc=example,dc=org\",sip,1\n"
                                   "sippeers => ldap,\"ou=people,dc=example,dc=org\",sip2,2\n"
                                   "[hookflash]\ntimeout=0.5\n",
                 "res_ldap.conf": conf}
        port = free_port()
        from tests.integration.test_realtime_sip import SIP, run_sipp
        server = Server(tmp_path / "etc", {"sip.conf": SIP.format(port=port), "extensions.conf": FAILOVER_DIALPLAN,
                                           "asterisk.conf": "[options]\nverbose=3\n", **files}).start()
        server.port = port  # type: ignore[attr-defined]
        sipp_dir = Path(__file__).parent / "sipp"
        try:
            first.stop()  # the first directory is down: the second answers
            rc, out = run_sipp(server, tmp_path, "-sf", str(sipp_dir / "register_auth.xml"), "-s", "RussellBryant",
                               "-au", "RussellBryant", "-ap", PASSWORD, "-m", "1")
            assert rc == 0, out
            server.rx("sip prune realtime all")
            first.start()
            second.freeze()  # now the first answers again, and a frozen second is never asked
            first.freeze()
            started = time.monotonic()
            out = server.rx("channel originate Local/static@LocalSets application NoOp")
            wait_for(lambda: "ok" in server.rx("database get rt static"), timeout=5, what="the static call")
            assert time.monotonic() - started < 1.0, out  # includes two console round trips
            # a realtime lookup while both are frozen fails within the timeouts, no crash
            rc, out = run_sipp(server, tmp_path, "-sf", str(sipp_dir / "register_auth.xml"), "-s", "RussellBryant",
                               "-au", "RussellBryant", "-ap", PASSWORD, "-m", "1", timeout=15)
            assert rc != 0
            assert "did not answer within 0.5 s" in server.output()
            first.thaw()
            second.thaw()
        finally:
            server.stop()
    finally:
        first.close()
        second.close()


def test_hostile_user_names_never_reach_the_directory_as_filter_syntax(tmp_path: Path) -> None:
    """User names with '*', '(', ')', '\\', NUL and non-ASCII in REGISTER and INVITE: all
    answered as an unknown user is, nothing found, nothing crashes, and the directory
    never finds anyone through a wildcard."""
    import socket
    need_slapd()
    with Slapd(tmp_path / "slapd") as directory:
        directory.add_sip_user("RussellBryant", PASSWORD, context="LocalSets")
        port = free_port()
        from tests.integration.test_realtime_sip import SIP
        server = Server(tmp_path / "etc", {"sip.conf": SIP.format(port=port), "extensions.conf": FAILOVER_DIALPLAN,
                                           "asterisk.conf": "[options]\nverbose=3\n", **ldap_files(directory)}).start()
        try:
            names = ["*", "Russell*", "*)(cn=*", "a\\2a", "x\x00y", "Rüssell", "(", ")", "NoSuchUser"]
            answers = {}
            for method in ("REGISTER", "INVITE"):
                for name in names:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.bind(("127.0.0.1", 0))
                        s.settimeout(3)
                        lport = s.getsockname()[1]
                        uri = f"sip:{name}@127.0.0.1:{port}" if method == "INVITE" else f"sip:127.0.0.1:{port}"
                        msg = (f"{method} sip:200@127.0.0.1:{port} SIP/2.0\r\n" if method == "INVITE"
                               else f"REGISTER {uri} SIP/2.0\r\n")
                        msg += (f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{time.time_ns()}\r\n"
                                f"From: <sip:{name}@127.0.0.1>;tag=1\r\nTo: <sip:{name}@127.0.0.1>\r\n"
                                f"Call-ID: {time.time_ns()}@x\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
                                f"Contact: <sip:x@127.0.0.1:{lport}>\r\nContent-Length: 0\r\n\r\n")
                        s.sendto(msg.encode("utf-8"), ("127.0.0.1", port))
                        answer = b"(no answer)"
                        try:
                            while True:
                                answer = s.recv(4096).split(b"\r\n")[0]
                                if not answer.startswith(b"SIP/2.0 1"):
                                    break
                        except socket.timeout:
                            pass
                        answers[(method, name)] = answer
            for method in ("REGISTER", "INVITE"):
                got = {answers[(method, n)] for n in names}
                assert len(got) == 1, (method, got)  # every hostile name looks like an unknown user
                assert next(iter(got)).startswith(b"SIP/2.0 401"), got
            assert "RussellBryant" not in server.rx("sip show peers")  # no wildcard found him
            assert server.proc is not None and server.proc.poll() is None
        finally:
            server.stop()
