"""Device state: providers by prefix, pushes to subscribers, hints, DEVICE_STATE(),
EXTENSION_STATE(), SIP peers' state, and the console commands."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from hookflash.engine.devstate import DeviceState as D
from hookflash.engine.devstate import aggregate, device_states
from hookflash.engine.registry import CliArgs
from tests.helpers import call, running_pbx
from tests.integration.sip_peers import free_port


def aio(fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


def test_aggregate() -> None:
    assert aggregate([D.NOT_INUSE, D.INUSE]) == D.INUSE
    assert aggregate([D.RINGING, D.INUSE]) == D.RINGINUSE
    assert aggregate([D.RINGING, D.NOT_INUSE]) == D.RINGING
    assert aggregate([D.BUSY, D.INUSE]) == D.BUSY
    assert aggregate([D.UNAVAILABLE, D.NOT_INUSE]) == D.NOT_INUSE
    assert aggregate([D.UNAVAILABLE, D.INVALID]) == D.UNAVAILABLE
    assert aggregate([]) == D.INVALID


DIALPLAN = """
[test]
exten => 100,hint,Custom:door&SIP/alice
exten => 101,hint,SIP/static
exten => s,1,Set(DEVICE_STATE(Custom:door)=INUSE)
 same => n,Set(A=${DEVICE_STATE(Custom:door)})
 same => n,Set(B=${EXTENSION_STATE(100)})
 same => n,Set(C=${EXTENSION_STATE(101@test)})
 same => n,Set(D=${DEVICE_STATE(SIP/alice)})
 same => n,Set(E=${DEVICE_STATE(SIP/nobody)})
 same => n,Set(F=${DEVICE_STATE(Calendar:nosuch)})
 same => n,Set(G=${EXTENSION_STATE(999)})
 same => n,Set(DEVICE_STATE(SIP/alice)=BUSY)
"""


@aio
async def test_functions_hints_sip_peers_and_console(tmp_path: Path) -> None:
    sip = (f"[general]\nbindaddr=127.0.0.1\nbindport={free_port()}\n"
           f"[alice]\ntype=friend\nhost=dynamic\nsecret=x\n"
           f"[static]\ntype=friend\nhost=127.0.0.1\nport={free_port()}\n")
    async with running_pbx(tmp_path, DIALPLAN, sip_conf=sip) as (pbx, lines):
        table = device_states(pbx)
        pushed: list[tuple[str, D]] = []
        table.subscribe(lambda d, s: pushed.append((d, s)))
        seen: list[str] = []
        table.watch_hint("test", "100", lambda s: seen.append(s.func_name))
        chan = await call(pbx, "s@test")
        v = chan.vars
        assert (v["A"], v["B"], v["C"]) == ("INUSE", "INUSE", "NOT_INUSE")
        assert (v["D"], v["E"], v["F"], v["G"]) == ("UNAVAILABLE", "INVALID", "INVALID", "UNKNOWN")
        assert pushed == [("Custom:door", D.INUSE)] and seen == ["INUSE"]
        assert pbx.astdb is not None and pbx.astdb.get("CustomDevstate", "door") == "INUSE"

        async def cli(line: str) -> str:
            words = line.split()
            cmd = pbx.registry.find_command(words)
            assert cmd is not None
            return cmd.handler(CliArgs(pbx, words, words[len(cmd.words):]))  # type: ignore[return-value]

        hints = await cli("core show hints")
        assert "100@test            : Custom:door&SIP/alic  State:InUse" in hints
        assert "101@test            : SIP/static            State:Idle" in hints
        assert "- 2 hints registered" in hints
        assert "--- Name: 'Custom:door'  State: 'INUSE'" in await cli("devstate list")
        assert await cli("devstate change Custom:door NOT_INUSE") == "Changing Custom:door to NOT_INUSE\n"
        assert seen == ["INUSE", "NOT_INUSE"]
        assert "only be used to set 'Custom:'" in await cli("devstate change SIP/alice BUSY")
