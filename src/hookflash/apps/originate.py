"""Originate(): place a call and, when it answers, send it into the dialplan or an app.

``Originate(tech_data,type,arg1[,arg2[,arg3[,timeout[,options]]]])`` with type ``exten``
(arg1 context, arg2 extension, arg3 priority) or ``app`` (arg1 application, arg2 data).
It waits for the answer (``timeout`` seconds, default 30) unless option ``a`` is given,
and sets ORIGINATE_STATUS: SUCCESS, FAILED, BUSY, CONGESTION, HANGUP, RINGING (still
ringing at the timeout) or UNKNOWN. The new channel receives the caller's inheritable
(``_``/``__``) variables. Also the console command ``channel originate``.
"""

from __future__ import annotations

import asyncio
import logging

from hookflash.apps.dial import place_calls
from hookflash.channels.channel import Channel, Control
from hookflash.dialplan.args import split_args
from hookflash.engine.cdr import new_cdr
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand, DialplanError

log = logging.getLogger("hookflash.app.originate")


async def originate(pbx, tech_data: str, kind: str, arg1: str, arg2: str = "", arg3: str = "",  # type: ignore[no-untyped-def]
                    timeout: float = 30.0, requestor: Channel | None = None,
                    variables: dict[str, str] | None = None, callerid: tuple[str, str] | None = None) -> str:
    """Place the call and hand the answered channel on; returns ORIGINATE_STATUS."""
    try:
        peer = await pbx.request(tech_data, requestor)
    except LookupError as exc:
        log.warning("Unable to request channel %s: %s", tech_data, exc)
        return "FAILED"
    for name, value in (variables or {}).items():
        peer.set_var(name, value)
    if callerid:
        peer.caller.name, peer.caller.num = callerid
    await peer.tech.call(peer, tech_data.partition("/")[2], timeout)
    status = await _wait_answer(peer, timeout)
    if status != "SUCCESS":
        await peer.hangup()
        return status
    new_cdr(peer).mark_answered()
    if kind == "exten":
        peer.context = arg1 or "default"
        peer.exten = arg2 or "s"
        try:
            peer.priority = int(arg3 or "1")
        except ValueError:
            peer.priority = 1
        pbx.start_pbx(peer)
    else:
        pbx.spawn(_run_app(peer, arg1, arg2))
    return "SUCCESS"


async def _wait_answer(peer: Channel, timeout: float) -> str:
    ringing = False
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return "RINGING" if ringing else "FAILED"
        try:
            control = await asyncio.wait_for(peer.controls.get(), remaining)
        except TimeoutError:
            return "RINGING" if ringing else "FAILED"
        if control == Control.ANSWER:
            return "SUCCESS"
        if control == Control.RINGING:
            ringing = True
        elif control == Control.BUSY:
            return "BUSY"
        elif control == Control.CONGESTION:
            return "CONGESTION"
        elif control == Control.HANGUP:
            return "HANGUP"


async def _run_app(chan: Channel, app_name: str, data: str) -> None:
    from hookflash.apps.flow import exec_app
    try:
        await exec_app(chan, f"{app_name}({data})")
    except DialplanError as exc:
        log.warning("%s on %s", exc, chan.name)
    except Exception:
        log.exception("Application %s failed on %s", app_name, chan.name)
    finally:
        if chan.cdr is not None:
            chan.cdr.end_call(chan)
            chan.cdr.post(chan.pbx)
        await chan.hangup()


async def app_originate(chan: Channel, data: str) -> int | None:
    args = split_args(data)
    if len(args) < 3:
        raise DialplanError("Originate() requires arguments: tech_data,type,arg1[,arg2[,arg3[,timeout]]]")
    tech_data, kind = args[0].strip(), args[1].strip().lower()
    if kind not in ("exten", "app"):
        raise DialplanError(f"Incorrect type, it should be 'exten' or 'app': {kind}")
    rest = args[2:] + [""] * 4
    timeout = 30.0
    if rest[3].strip():
        try:
            timeout = float(rest[3])
        except ValueError:
            raise DialplanError(f"Invalid timeout: '{rest[3]}'. Setting timeout to 30 seconds") from None
    options = rest[4] if len(args) > 6 else ""
    chan.set_var("ORIGINATE_STATUS", "FAILED")
    coro = originate(chan.pbx, tech_data, kind, rest[0], rest[1], rest[2], timeout, requestor=chan)
    if "a" in options:
        chan.pbx.spawn(coro)
        chan.set_var("ORIGINATE_STATUS", "SUCCESS")
        return None
    status = await coro
    chan.set_var("ORIGINATE_STATUS", status)
    return None


async def cli_originate(args: CliArgs) -> str:
    argv = args.argv
    usage = ("Usage: channel originate <tech/data> application <appname> [appdata]\n"
             "       channel originate <tech/data> extension [exten@][context]\n")
    if len(argv) < 3:
        return usage
    tech_data, kind = argv[0], argv[1].lower()
    if kind == "application":
        args.pbx.spawn(originate(args.pbx, tech_data, "app", argv[2], " ".join(argv[3:])))
    elif kind == "extension":
        exten, at, context = argv[2].rpartition("@")
        if not at:
            exten, context = argv[2], "default"
        args.pbx.spawn(originate(args.pbx, tech_data, "exten", context or "default", exten or "s", "1"))
    else:
        return usage
    return ""


class OriginateModule(Module):
    description = "Originate call"

    def applications(self) -> list[Application]:
        return [Application(
            "Originate", app_originate, "Originate a call.",
            "Originate(tech_data,type,arg1[,arg2[,arg3[,timeout[,options]]]])",
            "type 'exten': arg1 context, arg2 extension, arg3 priority; type 'app': arg1 "
            "application, arg2 its data. Waits for the answer unless option 'a'. Sets "
            "ORIGINATE_STATUS to SUCCESS, FAILED, BUSY, CONGESTION, HANGUP, RINGING or UNKNOWN.")]

    def commands(self) -> list[CliCommand]:
        return [CliCommand(("channel", "originate"), cli_originate, "Originate a call",
                           "Usage: channel originate <tech/data> application <appname> [appdata]\n"
                           "       channel originate <tech/data> extension [exten@][context]")]


__all__ = ["originate", "place_calls"]
