"""The message core on a real Pbx: inbound messages run the dialplan on
Message/ast_msg_queue with MESSAGE()/MESSAGE_DATA(), MessageSend picks the technology
by prefix and sets MESSAGE_SEND_STATUS, and functions that wait (aread) are awaited by
the executor. The recording technology below stands in for a network one (sip and xmpp
are tested against baresip and Prosody in tests/integration)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hookflash.engine.registry import Function
from hookflash.message.core import Message, MessageError, core
from tests.helpers import call, run, running_pbx

DIALPLAN = """
[IncomingMessages]
exten => s,1,NoOp()
 same => n,Verbose(2,Got message from ${MESSAGE(from)} destined for ${MESSAGE(to)} with body ${MESSAGE(body)})
 same => n,Set(DB(msg/header)=${MESSAGE_DATA(X-Custom)})
 same => n,Set(MESSAGE(body)=Thank you for messaging the Shift-Eight PBX)
 same => n,Set(MESSAGE_DATA(X-Reply)=yes)
 same => n,MessageSend(rec:${MESSAGE(from)},rec:asterisk)
 same => n,Set(DB(msg/status)=${MESSAGE_SEND_STATUS})
 same => n,MessageSend(nosuch:x)
 same => n,Set(DB(msg/status2)=${MESSAGE_SEND_STATUS})
 same => n,MessageSend(fail:x)
 same => n,Set(DB(msg/status3)=${MESSAGE_SEND_STATUS})

[waits]
exten => 1,1,Set(R=${SLOW(abc)}-${LEN(${SLOW(xy)})})
 same => n,Set(DB(w/r)=${R})
"""


class Recorder:
    name = "rec"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, str]]] = []

    async def send(self, msg: Message, to: str, from_: str) -> None:
        self.sent.append((to, from_, msg.body, {k: msg.data[k] for k in msg.outbound}))


class Failing:
    name = "fail"

    async def send(self, msg: Message, to: str, from_: str) -> None:
        raise MessageError("refused")


def test_inbound_message_runs_the_dialplan_and_replies(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, lines):
            rec = Recorder()
            core(pbx).register(rec)
            core(pbx).register(Failing())
            msg = Message(to="xmpp:asterisk@localhost", from_="alice@localhost/pc",
                          body="hello\x00\x07 there", context="IncomingMessages",
                          data={"X-Custom": "42"})
            assert core(pbx).receive(msg)
            for _ in range(200):
                if pbx.astdb.get("msg", "status3") is not None:
                    break
                await asyncio.sleep(0.01)
            assert rec.sent == [("rec:alice@localhost/pc", "rec:asterisk",
                                 "Thank you for messaging the Shift-Eight PBX", {"X-Reply": "yes"})]
            assert pbx.astdb.get("msg", "header") == "42"
            assert pbx.astdb.get("msg", "status") == "SUCCESS"
            assert pbx.astdb.get("msg", "status2") == "INVALID_PROTOCOL"
            assert pbx.astdb.get("msg", "status3") == "FAILURE"
            text = "\n".join(lines)
            assert "with body hello there" in text  # control characters removed
            assert "Message/ast_msg_queue" in text

    run(main())


def test_functions_that_wait_are_awaited(tmp_path: Path) -> None:
    async def slow(chan, args):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        return args.upper()

    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _):
            pbx.registry.add_function(Function("SLOW", lambda chan, args: "", None, aread=slow))
            await call(pbx, "1@waits")
            assert pbx.astdb.get("w", "r") == "ABC-2"

    run(main())
