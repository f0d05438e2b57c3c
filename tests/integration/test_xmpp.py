"""res_xmpp against a real Prosody (tests/integration/xmpp_server.py) and slixmpp test
users: chapter 3.2 (screen pop, routing by reply, the Local-channel form), presence in
JABBER_STATUS and device state, chat rooms, 3.4's IncomingMessages over XMPP, and the
faults (server frozen and restarted while calls run). The PBX runs in this process on a
real Pbx with the chapter's dialplan."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hookflash.engine.cli_core import run_command
from tests.helpers import call, running_pbx
from tests.integration.xmpp_server import Prosody, XmppUser, need_prosody, need_slixmpp

XMPP = """
[general]

[asterisk]
type=client
serverhost=127.0.0.1
username=asterisk@localhost/pbx
secret=astpw
priority=1
port={port}
usetls=yes
usesasl=yes
status=available
statusmessage="Ohai from Asterisk"
timeout=5
buddy=alice@localhost
cafile={cafile}
sendtodialplan=yes
context=IncomingMessages
"""

DIALPLAN = """
[LocalSets]
exten => 104,1,Answer()
 same => n,JabberSend(asterisk,alice@localhost,Incoming call from ${CALLERID(all)})
 same => n,Set(DB(t/send104)=${JABBER_SEND_STATUS})

exten => 106,1,Answer()
 same => n,JabberSend(asterisk,alice@localhost,Incoming call from ${CALLERID(all)}. Press 1 to route to desk. Press 2 to send to voicemail.)
 same => n,Set(JabberResponse=${JABBER_RECEIVE(asterisk,alice@localhost,3)})
 same => n,GotoIf($["${JabberResponse}" = "1"]?dial,1)
 same => n,GotoIf($["${JabberResponse}" = "2"]?voicemail,1)
 same => n,Goto(dial,1)

exten => dial,1,Verbose(2,Calling our desk)
 same => n,Set(DB(t/route)=dial)

exten => voicemail,1,Verbose(2,VoiceMail)
 same => n,Set(DB(t/route)=voicemail)

exten => status,1,Set(DB(t/status)=${JABBER_STATUS(asterisk,alice@localhost)})
 same => n,Set(DB(t/status_res)=${JABBER_STATUS(asterisk,alice@localhost/phone)})
 same => n,Set(DB(t/status_unknown)=${JABBER_STATUS(asterisk,nobody@localhost)})
 same => n,JabberStatus(asterisk,alice@localhost,OLDSTATUS)
 same => n,Set(DB(t/old)=${OLDSTATUS})
 same => n,Set(DB(t/dev)=${DEVICE_STATE(XMPP/asterisk/alice@localhost)})

exten => room,1,JabberJoin(asterisk,lobby@conference.localhost,pbx)
 same => n,Wait(1)
 same => n,JabberSendGroup(asterisk,lobby@conference.localhost,Hello room)
 same => n,JabberLeave(asterisk,lobby@conference.localhost,pbx)

[IncomingMessages]
exten => s,1,NoOp()
 same => n,Verbose(2,Got message from ${MESSAGE(from)} destined for ${MESSAGE(to)} with body ${MESSAGE(body)})
 same => n,Set(MESSAGE(body)=Thank you for messaging the Shift-Eight PBX)
 same => n,MessageSend(${MESSAGE(from)},XMPP:asterisk)
"""


@pytest.fixture
def prosody(tmp_path: Path):  # type: ignore[no-untyped-def]
    need_prosody()
    need_slixmpp()
    server = Prosody(tmp_path / "prosody")
    server.befriend("asterisk", "alice")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def alice(prosody: Prosody):  # type: ignore[no-untyped-def]
    """alice@localhost/phone, online, a buddy of the PBX's account."""
    user = XmppUser(prosody, "alice", resource="phone").start()
    try:
        yield user
    finally:
        user.stop()


async def until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def files(server: Prosody) -> dict[str, str]:
    return {"xmpp_conf": XMPP.format(port=server.port, cafile=server.cafile)}


def test_chapter_3_2_screen_pop_and_routing_by_reply(prosody: Prosody, alice: XmppUser, tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN, **files(prosody)) as (pbx, lines):
            xmpp = pbx.modules.loaded["res_xmpp"]
            client = xmpp.client("asterisk")
            assert await until(lambda: client.connected)
            out = await run_command(pbx, "xmpp show connections")
            assert "[asterisk] asterisk@localhost/pbx     - Connected" in out
            assert "Number of clients: 1" in out

            # 104: the screen pop
            await call(pbx, "104@LocalSets", {"CALLERID(all)": '"Jane" <5551234>'})
            got = await asyncio.to_thread(alice.wait_message, lambda m: "Incoming call" in m.body)
            assert got.body.startswith("Incoming call from")
            assert pbx.astdb.get("t", "send104") == "SUCCESS"

            # 106: a reply routes the call
            for reply, route in (("2", "voicemail"), ("1", "dial")):
                alice.messages.clear()
                task = asyncio.ensure_future(call(pbx, "106@LocalSets", timeout=15))
                await asyncio.to_thread(alice.wait_message, lambda m: "Press 1" in m.body)
                started = time.monotonic()
                alice.send("asterisk@localhost/pbx", reply)
                await task
                assert pbx.astdb.get("t", "route") == route
                assert time.monotonic() - started < 2.0
            # no reply: falls through to the desk after the timeout
            pbx.astdb.put("t", "route", "")
            await call(pbx, "106@LocalSets", timeout=15)
            assert pbx.astdb.get("t", "route") == "dial"

    asyncio.run(main())


def test_presence_status_device_state_and_rooms(prosody: Prosody, alice: XmppUser, tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN, **files(prosody)) as (pbx, _):
            client = pbx.modules.loaded["res_xmpp"].client("asterisk")
            assert await until(lambda: client.connected)
            assert await until(lambda: client.status("alice@localhost") == 1)
            await call(pbx, "status@LocalSets")
            assert pbx.astdb.get("t", "status") == "1"
            assert pbx.astdb.get("t", "status_res") == "1"
            assert pbx.astdb.get("t", "status_unknown") == "7"
            assert pbx.astdb.get("t", "old") == "1"
            assert pbx.astdb.get("t", "dev") == "NOT_INUSE"
            for show, code, dev in (("away", "3", "UNAVAILABLE"), ("dnd", "5", "UNAVAILABLE"),
                                    ("xa", "4", "UNAVAILABLE"), ("chat", "2", "NOT_INUSE")):
                await asyncio.to_thread(alice.set_presence, show=show)
                assert await until(lambda: client.status("alice@localhost") == int(code))
                await call(pbx, "status@LocalSets")
                assert pbx.astdb.get("t", "status") == code
                assert pbx.astdb.get("t", "dev") == dev
            await asyncio.to_thread(alice.set_presence, ptype="unavailable")
            assert await until(lambda: client.status("alice@localhost") == 6)

            # a chat room
            await asyncio.to_thread(alice.join_muc, "lobby@conference.localhost", "alice")
            await call(pbx, "room@LocalSets", timeout=15)
            got = await asyncio.to_thread(alice.wait_muc_message, lambda m: m.body == "Hello room")
            assert got.frm.endswith("/pbx")

    asyncio.run(main())


def test_chapter_3_4_incoming_messages_over_xmpp(prosody: Prosody, alice: XmppUser, tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN, **files(prosody)) as (pbx, lines):
            client = pbx.modules.loaded["res_xmpp"].client("asterisk")
            assert await until(lambda: client.connected)
            alice.send("asterisk@localhost/pbx", "hello pbx")
            got = await asyncio.to_thread(alice.wait_message, lambda m: "Thank you" in m.body)
            assert got.body == "Thank you for messaging the Shift-Eight PBX"
            assert got.frm.startswith("asterisk@localhost")
            text = "\n".join(lines)
            assert "Got message from xmpp:alice@localhost/phone destined for xmpp:asterisk@localhost/pbx " \
                   "with body hello pbx" in text

    asyncio.run(main())


def test_server_frozen_and_restarted_while_calls_run(prosody: Prosody, alice: XmppUser, tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN, **files(prosody)) as (pbx, _):
            client = pbx.modules.loaded["res_xmpp"].client("asterisk")
            assert await until(lambda: client.connected)
            await asyncio.to_thread(prosody.freeze)
            try:
                started = time.monotonic()
                for _ in range(5):
                    await call(pbx, "104@LocalSets")
                assert time.monotonic() - started < 2.0  # JabberSend never waits on the server
            finally:
                await asyncio.to_thread(prosody.thaw)
            await asyncio.to_thread(prosody.restart)
            alice.stop()
            assert await until(lambda: not client.connected, 10)
            assert await until(lambda: client.connected, 40)  # back by itself
            alice2 = XmppUser(prosody, "alice", resource="phone2").start()
            try:
                await call(pbx, "104@LocalSets")
                await asyncio.to_thread(alice2.wait_message, lambda m: "Incoming call" in m.body)
                assert pbx.astdb.get("t", "send104") == "SUCCESS"
            finally:
                alice2.stop()

    asyncio.run(main())


HOSTILE = DIALPLAN + """
[LocalSets]
exten => alice,hint,XMPP/asterisk/alice@localhost
exten => badjid,1,JabberSend(asterisk,not-a-jid,hello)
 same => n,Set(DB(t/bad)=${JABBER_SEND_STATUS})
exten => badtimeout,1,Set(DB(t/bt)=x${JABBER_RECEIVE(asterisk,alice@localhost,-3)}x)
exten => wait,1,Set(DB(t/wait)=${JABBER_RECEIVE(asterisk,alice@localhost,5)})
"""


def test_hostile_input_and_hints(prosody: Prosody, alice: XmppUser, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, HOSTILE, **files(prosody)) as (pbx, lines):
            client = pbx.modules.loaded["res_xmpp"].client("asterisk")
            assert await until(lambda: client.connected)
            assert await until(lambda: client.status("alice@localhost") == 1)
            hints = await run_command(pbx, "core show hints")
            assert "alice@LocalSets" in hints and "XMPP/asterisk/alice@" in hints and "State:Idle" in hints
            await call(pbx, "badjid@LocalSets")
            assert pbx.astdb.get("t", "bad") == "FAILURE"
            await call(pbx, "badtimeout@LocalSets")
            assert pbx.astdb.get("t", "bt") == "xx"
            # a huge body and an unknown namespace: cut, logged, still delivered
            task = asyncio.ensure_future(call(pbx, "wait@LocalSets", timeout=15))
            await asyncio.sleep(0.3)
            alice.send_raw("<message xmlns='jabber:client' to='asterisk@localhost/pbx' type='chat'>"
                           "<body>" + "A" * 100_000 + "</body><x xmlns='urn:example:unknown'><y/></x></message>")
            await task
            assert len(pbx.astdb.get("t", "wait") or "") == 64 * 1024
            # the PBX is still connected and working
            assert client.connected
            await asyncio.to_thread(alice.set_presence, show="dnd")
            assert await until(lambda: client.status("alice@localhost") == 5)
            hints = await run_command(pbx, "core show hints")
            assert "Unavailable" in hints

    asyncio.run(main())
    text = caplog.text
    assert "not-a-jid" in text and "cut to 65536" in text and "invalid timeout" in text


RECEIPT = DIALPLAN + """
[LocalSets]
exten => receipt,1,JabberSend(asterisk,alice@localhost/phone,please confirm)
 same => n,Wait(1)
 same => n,Set(DB(t/receipt)=${JABBER_RECEIPT(asterisk,${JABBER_SEND_ID})})

[flood]
exten => s,1,Set(COUNT=${MESSAGE(body)})
 same => n,Set(GLOBAL(FLOODED)=${COUNT})
"""


def test_delivery_receipts_and_a_flood_does_not_delay_calls(prosody: Prosody, tmp_path: Path) -> None:
    alice = XmppUser(prosody, "alice", resource="phone", plugins=("xep_0184",)).start()
    alice.call(lambda c: setattr(c.plugin["xep_0184"], "auto_ack", True))
    try:
        async def main() -> None:
            async with running_pbx(tmp_path, RECEIPT, **files(prosody)) as (pbx, _):
                client = pbx.modules.loaded["res_xmpp"].client("asterisk")
                assert await until(lambda: client.connected)
                await call(pbx, "receipt@LocalSets", timeout=10)
                assert pbx.astdb.get("t", "receipt") == "1"
                # 1,000 inbound messages at once: calls are not held up
                from hookflash.message.core import Message, core
                started = time.monotonic()
                await call(pbx, "status@LocalSets")
                quiet = time.monotonic() - started
                for i in range(1000):
                    core(pbx).receive(Message(from_="xmpp:x@y", body=f"m{i}", context="flood"))
                started = time.monotonic()
                await call(pbx, "status@LocalSets")
                busy = time.monotonic() - started
                assert busy < max(0.5, quiet * 10), (quiet, busy)
                assert await until(lambda: pbx.globals.get("FLOODED") == "m999", 30)  # all run, in order

        asyncio.run(main())
    finally:
        alice.stop()


def test_a_caller_who_hangs_up_stops_waiting_and_takes_no_reply(prosody: Prosody, alice: XmppUser, tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, HOSTILE, **files(prosody)) as (pbx, _):
            client = pbx.modules.loaded["res_xmpp"].client("asterisk")
            assert await until(lambda: client.connected)
            one = await pbx.request("Local/wait@LocalSets/n")
            await one.tech.call(one, "wait@LocalSets", 5)
            assert await until(lambda: len(client.waiters) == 1)
            await one.hangup()
            assert await until(lambda: not client.waiters, 2)  # the dead call stopped waiting
            task = asyncio.ensure_future(call(pbx, "wait@LocalSets", timeout=15))
            assert await until(lambda: len(client.waiters) == 1)
            alice.send("asterisk@localhost/pbx", "for the live call")
            await task
            assert pbx.astdb.get("t", "wait") == "for the live call"

    asyncio.run(main())
