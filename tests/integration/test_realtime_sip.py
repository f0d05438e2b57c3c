"""Chapter section 4 with the realtime layer: SIP users live in a database, not in
sip.conf. The hookflash process reads RussellBryant from the ``sippeers`` family, SIPp
and baresip register with his password (digest against his ``md5secret``), he gets his
context, caller ID and mailbox from the record, calls and is called, and his
registration is written back. A wrong password looks exactly like an unknown user.

Backends: SQLite here (the embedded default, nothing to start); LDAP (slapd) and
PostgreSQL run the same checks in test_realtime_sip_servers.py."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from tests.integration.sip_peers import Baresip, Server, free_port, need, sipp, tone_wav
from tests.integration.test_voicemail import _rtp_conf, wait_for

SIPP_DIR = Path(__file__).parent / "sipp"
PASSWORD = "S3cret!pw"

SIP = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no
rtcachefriends=yes
rtupdate=yes
rtsavesysname=yes
"""

DIALPLAN = """
[LocalSets]
exten => 200,1,Answer()
 same => n,Set(DB(rt/cid)=${CALLERID(all)})
 same => n,Set(DB(rt/peer)=${CHANNEL(peername)})
 same => n,Wait(1)
 same => n,Hangup()
exten => 300,1,Dial(SIP/RussellBryant,10)
"""

SIPPEERS_COLUMNS = ("name", "type", "host", "context", "secret", "md5secret", "callerid", "mailbox",
                    "ipaddr", "port", "regseconds", "useragent", "fullcontact", "regserver", "lastms",
                    "defaultuser", "disallow", "allow", "nat")


def ha1(user: str, password: str, realm: str = "asterisk") -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def sqlite_backend(directory: Path) -> tuple[dict[str, str], Path]:
    db = directory / "realtime.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE sippeers ({', '.join(c + ' TEXT' for c in SIPPEERS_COLUMNS)})")
    conn.execute("INSERT INTO sippeers (name, type, host, context, md5secret, callerid, mailbox, disallow, allow) "
                 "VALUES (?,?,?,?,?,?,?,?,?)",
                 ("RussellBryant", "friend", "dynamic", "LocalSets", ha1("RussellBryant", PASSWORD),
                  '"Russell Bryant" <100>', "100@shifteight", "all", "ulaw"))
    conn.commit()
    conn.close()
    files = {"extconfig.conf": "[settings]\nsippeers => sqlite3,asterisk,sippeers\n",
             "res_config_sqlite3.conf": f"[asterisk]\ndbfile => {db}\n"}
    return files, db


def row(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    found = conn.execute("SELECT * FROM sippeers WHERE name='RussellBryant'").fetchone()
    conn.close()
    return {k: found[k] for k in found.keys()} if found else {}


def run_sipp(server: Server, tmp_path: Path, *args: str, timeout: float = 20) -> tuple[int, str]:
    return sipp([f"127.0.0.1:{server.port}", "-i", "127.0.0.1", "-p", str(free_port()),  # type: ignore[attr-defined]
                 "-mp", str(free_port(pair=True)), *args], tmp_path, timeout)


def check_realtime_user(tmp_path: Path, files: dict[str, str], read_row) -> None:  # type: ignore[no-untyped-def]
    need("sipp")
    need("baresip")
    port = free_port()
    server = Server(tmp_path / "etc", {
        "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN, "rtp.conf": _rtp_conf(),
        "asterisk.conf": "[options]\nverbose=3\n", **files}).start()
    server.port = port  # type: ignore[attr-defined]
    phone = None
    try:
        # SIPp with his directory password; then a wrong password, then an unknown user
        rc, out = run_sipp(server, tmp_path, "-sf", str(SIPP_DIR / "register_auth.xml"), "-s", "RussellBryant",
                           "-au", "RussellBryant", "-ap", PASSWORD, "-m", "1")
        assert rc == 0, out
        assert "RussellBryant" in server.rx("sip show peers")
        wait_for(lambda: read_row().get("regseconds") not in (None, "", "0"), what="registration written back")
        data = read_row()
        assert data["ipaddr"] == "127.0.0.1" and int(data["port"]) > 0
        assert int(data["regseconds"]) > time.time()
        assert data["fullcontact"].startswith("sip:RussellBryant@127.0.0.1")
        assert data.get("regserver")
        answers = []
        for user, password in (("RussellBryant", "wrong"), ("NoSuchUser", "wrong")):
            rc, out = run_sipp(server, tmp_path, "-sf", str(SIPP_DIR / "register_auth.xml"), "-s", user,
                               "-au", user, "-ap", password, "-m", "1", "-trace_err", timeout=10)
            assert rc != 0
            errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
            answers.append(errors.count("SIP/2.0 403"))
            for p in tmp_path.glob("*_errors.log"):
                p.unlink()
        assert answers[0] == answers[1] and answers[0] >= 1, answers

        shown = server.rx("realtime load sippeers name RussellBryant")
        assert "Column Name" in shown and "context" in shown and "LocalSets" in shown
        peer = server.rx("sip show peer RussellBryant")
        assert "LocalSets" in peer and "Russell Bryant" in peer and "100@shifteight" in peer
        assert "Realtime     : Yes" in peer

        # baresip registers with the same password, calls, and is called
        d = tmp_path / "baresip"
        account = f"<sip:RussellBryant@127.0.0.1:{port}>;auth_pass={PASSWORD};audio_codecs=pcmu;regint=60"
        phone = Baresip(d, account, tone_wav(tmp_path / "mic.wav", 440, 10)).start()
        wait_for(lambda: server.output().count("Registered SIP 'RussellBryant'") >= 2, what="baresip registration")
        phone.command("dial", f"sip:200@127.0.0.1:{port}")
        phone.wait_event("CALL_ESTABLISHED")
        phone.wait_event("CALL_CLOSED", timeout=15)
        assert server.rx("database get rt cid").strip().endswith('"Russell Bryant" <100>')
        server.rx("channel originate Local/300@LocalSets application Wait 5")
        phone.wait_event("CALL_INCOMING", timeout=10)
        assert "Realtime Peers:         Yes" in server.rx("sip show settings")
    finally:
        if phone is not None:
            phone.stop()
        server.stop()


def test_sip_users_from_sqlite(tmp_path: Path) -> None:
    files, db = sqlite_backend(tmp_path)
    check_realtime_user(tmp_path, files, lambda: row(db))
