"""Mailboxes from realtime (the ``voicemail`` family) on a real Pbx with the embedded
SQLite driver: a caller leaves a message for a mailbox that exists only in the database,
the owner logs in with the database password and hears it, VM_INFO sees it, and a
row with a bad option value is used without that option. LDAP and PostgreSQL run the
same lookups in tests/integration/test_realtime_drivers.py."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.helpers import run
from tests.unit.test_voicemail import db, dial, spool, vm_pbx

DIALPLAN = """
[default]
exten => 100,1,Set(CALLERID(all)="Alice" <1001>)
 same => n,VoiceMail(200@default,u)
 same => n,Set(DB(vm/status)=${VMSTATUS})
 same => n,Hangup()
exten => 500,1,VoiceMailMain(200@default)
 same => n,Hangup()
exten => 700,1,Set(DB(vm/info)=${VM_INFO(200@default,fullname)}:${VM_INFO(200@default,count)}:${VM_INFO(201@default,exists)})
"""

VM = """
[general]
format=wav
minsecs=1
[default]
100 => 1234,Static Box
"""


def realtime_files(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    dbfile = tmp_path / "rt.sqlite3"
    conn = sqlite3.connect(dbfile)
    conn.execute("CREATE TABLE voicemail (uniqueid INTEGER PRIMARY KEY, context TEXT, mailbox TEXT, password TEXT, "
                 "fullname TEXT, email TEXT, pager TEXT, saycid TEXT, maxmsg TEXT)")
    conn.execute("INSERT INTO voicemail (context, mailbox, password, fullname, saycid, maxmsg) VALUES "
                 "('default','200','4321','Realtime Person','yes','not-a-number')")
    conn.commit()
    conn.close()
    (etc / "extconfig.conf").write_text("[settings]\nvoicemail => sqlite3,asterisk,voicemail\n")
    (etc / "res_config_sqlite3.conf").write_text(f"[asterisk]\ndbfile => {dbfile}\n")


def test_mailbox_only_in_realtime(tmp_path: Path) -> None:
    realtime_files(tmp_path)

    async def main() -> None:
        async with vm_pbx(tmp_path, DIALPLAN, VM) as (pbx, lines):
            phone = await dial(pbx, "100@default")
            await asyncio.sleep(0.2)
            await phone.keys("#")
            await asyncio.sleep(0.3)
            await phone.audio(440, 1.5)
            await phone.keys("#")
            await phone.done()
            assert db(pbx, "status") == "SUCCESS"
            assert pbx.mailbox_counts("200@default") == (1, 0)  # type: ignore[attr-defined]
            phone = await dial(pbx, "700@default")
            await phone.done()
            assert db(pbx, "info") == "Realtime Person:1:0"
            phone = await dial(pbx, "500@default")
            await asyncio.sleep(0.2)
            await phone.keys("4321#")
            await asyncio.sleep(0.4)
            await phone.keys("1")
            await asyncio.sleep(2.0)
            await phone.keys("#")
            await phone.done()
            text = "\n".join(lines)
            assert "logged in to mailbox 200@default" in text
            assert pbx.mailbox_counts("200@default") == (0, 1)  # type: ignore[attr-defined]
    run(main())
    assert list((spool(tmp_path, "200") / "Old").glob("msg0000.txt"))


def test_mailbox_only_in_postgresql(tmp_path: Path) -> None:
    """The same with the mailbox in PostgreSQL (a server started for the test)."""
    from tests.integration.pg_server import Postgres, need_postgres
    need_postgres()
    with Postgres(tmp_path / "pg") as pg:
        pg.create_asterisk_tables()
        pg.insert("voicemail", {"context": "default", "mailbox": "200", "password": "4321",
                                "fullname": "Realtime Person", "saycid": "yes"})
        etc = tmp_path / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "extconfig.conf").write_text("[settings]\nvoicemail => pgsql,asterisk,voicemail\n")
        (etc / "res_pgsql.conf").write_text(f"[general]\ndbhost=127.0.0.1\ndbport={pg.port}\ndbname=asterisk\n"
                                            "dbuser=asterisk\ndbpass=pgpass\n")

        async def main() -> None:
            async with vm_pbx(tmp_path, DIALPLAN, VM) as (pbx, lines):
                phone = await dial(pbx, "100@default")
                await asyncio.sleep(0.2)
                await phone.keys("#")
                await asyncio.sleep(0.3)
                await phone.audio(440, 1.5)
                await phone.keys("#")
                await phone.done()
                assert db(pbx, "status") == "SUCCESS"
                phone = await dial(pbx, "700@default")
                await phone.done()
                assert db(pbx, "info") == "Realtime Person:1:0"
        run(main())
