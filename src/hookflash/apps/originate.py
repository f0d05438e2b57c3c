"""Originate(): place a call and, when it answers, send it into the dialplan or an app.

``Originate(tech_data,type,arg1[,arg2[,arg3[,timeout[,options]]]])`` with type ``exten``
(arg1 context, arg2 extension — ``s`` when absent —, arg3 priority, default 1) or
``app`` (arg1 application, arg2 its data). It waits up to ``timeout`` seconds (default
30) for the answer and sets ORIGINATE_STATUS: SUCCESS, FAILED, BUSY, CONGESTION,
HANGUP, RINGING (still ringing at the timeout) or UNKNOWN. Options (Asterisk 20's):
``a`` do not wait (status SUCCESS at once), ``b(ctx^exten^pri(args))`` Gosub on the new
channel before it is called, ``B(...)`` Gosub on this channel before the call,
``c(num)``/``n(name)`` caller ID of the new channel, ``v(var=val^var2=val2)`` variables
of the new channel, ``C`` (codecs) accepted and ignored. The new channel receives the
caller's inheritable (``_``/``__``) variables.

As Asterisk: wrong arguments (fewer than three, no ``/`` in tech_data, an unknown type,
an unknown option, a priority that is not a number) set ORIGINATE_STATUS to FAILED, are
logged and hang the calling channel up; a bad timeout is logged and 30 s used.
Asterisk's bug of ignoring the priority whenever a timeout follows it is not copied.

Also the console command ``channel originate`` and :func:`originate`, which call files
(:mod:`hookflash.apps.spool`) use.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hookflash.apps.dial import parse_options, place_calls
from hookflash.channels.channel import Channel, Control, HangupCause
from hookflash.dialplan.args import split_args
from hookflash.engine.cdr import new_cdr
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand, DialplanError

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.app.originate")

STATUSES = ("SUCCESS", "FAILED", "BUSY", "CONGESTION", "HANGUP", "RINGING", "UNKNOWN")


@dataclass
class Origination:
    """One call to place: where to, and what the answered channel does."""

    tech_data: str
    kind: str = "exten"  # "exten" or "app"
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app: str = ""
    data: str = ""
    timeout: float = 30.0
    callerid: tuple[str, str] | None = None  # (name, number)
    variables: list[tuple[str, str]] = field(default_factory=list)
    account: str = ""
    predial_callee: str = ""  # Gosub target run on the new channel before the call


async def originate(pbx: Pbx, tech_data: str | Origination, kind: str = "exten", arg1: str = "",
                    arg2: str = "", arg3: str = "", timeout: float = 30.0,
                    requestor: Channel | None = None, variables: dict[str, str] | None = None,
                    callerid: tuple[str, str] | None = None) -> str:
    """Place the call and hand the answered channel on; returns ORIGINATE_STATUS.

    Either an :class:`Origination` or the positional form of the application."""
    if isinstance(tech_data, Origination):
        order = tech_data
    else:
        order = Origination(tech_data, kind, timeout=timeout, callerid=callerid,
                            variables=list((variables or {}).items()))
        if kind == "exten":
            order.context, order.exten = arg1 or "default", arg2 or "s"
            order.priority = int(arg3) if arg3.strip().isdigit() and int(arg3) > 0 else 1
        else:
            order.app, order.data = arg1, arg2
    status, _ = await place(pbx, order, requestor)
    return status


async def place(pbx: Pbx, order: Origination, requestor: Channel | None = None,
                wait_done: bool = False) -> tuple[str, asyncio.Task[Any] | None]:
    """Call ``order.tech_data``; on answer start the dialplan or the application.

    Returns (ORIGINATE_STATUS, the task running the answered channel). With
    ``wait_done`` the call is followed to its end before returning (call files)."""
    try:
        peer = await pbx.request(order.tech_data, requestor)
    except LookupError as exc:
        log.warning("Unable to request channel %s: %s", order.tech_data, exc)
        return "FAILED", None
    except Exception:
        log.exception("Unable to request channel %s", order.tech_data)
        return "FAILED", None
    try:
        _prepare(peer, order)
        if order.predial_callee:
            await _predial(peer, order.predial_callee)
        await peer.tech.call(peer, order.tech_data.partition("/")[2], order.timeout)
    except Exception as exc:  # noqa: BLE001 - a broken driver fails this call only
        log.warning("Call to %s failed: %s", order.tech_data, exc)
        await peer.hangup(HangupCause.DESTINATION_OUT_OF_ORDER)
        return "FAILED", None
    status = await _wait_answer(peer, order.timeout)
    if status != "SUCCESS":
        if not peer.hangupcause:
            peer.hangupcause = HangupCause.NO_ANSWER if status == "RINGING" else HangupCause.NORMAL_CLEARING
        await peer.hangup(peer.hangupcause)
        return status, None
    if order.kind == "exten":
        assert peer.cdr is not None
        peer.cdr.mark_answered()
        peer.context, peer.exten, peer.priority = order.context, order.exten, order.priority
        task = pbx.start_pbx(peer)
    else:
        if peer.cdr is not None:
            peer.cdr.mark_answered()
        task = pbx.spawn(run_app(peer, order.app, order.data))
    if wait_done:
        await asyncio.shield(task)
    return "SUCCESS", task


def _prepare(peer: Channel, order: Origination) -> None:
    from hookflash.apps.builtins import set_variable
    if order.callerid is not None:
        name, num = order.callerid
        peer.caller.name, peer.caller.num = name, num
    if order.account:
        peer.accountcode = order.account
    cdr = new_cdr(peer)  # before the variables: Set: CDR(userfield)=... must work
    cdr.accountcode = peer.accountcode
    for name, value in order.variables:
        try:
            set_variable(peer, name, value)
        except DialplanError as exc:
            log.warning("Cannot set %s on %s: %s", name, peer.name, exc)


async def _predial(chan: Channel, target: str) -> None:
    from hookflash.apps.stack import run_sub
    jumped = chan.jumped  # run_sub puts the position back; the caller's next step must not change
    try:
        await run_sub(chan, target.replace("^", ","))
    except DialplanError as exc:
        log.warning("Pre-dial Gosub %s on %s: %s", target, chan.name, exc)
    finally:
        chan.jumped = jumped


async def _wait_answer(peer: Channel, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    ringing = False
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
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


async def run_app(chan: Channel, app_name: str, data: str) -> None:
    """Run one application on an answered channel, then end its CDR and hang it up."""
    from hookflash.apps.flow import exec_app
    chan.pbx.verbose(4, f"Launching {app_name}({data}) on {chan.name}")
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


# ---------------------------------------------------------------------- the application
def _fail(chan: Channel, message: str) -> DialplanError:
    chan.set_var("ORIGINATE_STATUS", "FAILED")
    return DialplanError(message)


def parse_app_args(chan: Channel, data: str) -> tuple[Origination, dict[str, str]]:
    """Originate()'s arguments -> (what to place, options); DialplanError when wrong."""
    args = split_args(data) if data.strip() else []
    if len(args) < 3:
        raise _fail(chan, "Originate() requires arguments: tech_data,type,arg1[,arg2[,arg3[,timeout[,options]]]]")
    tech_data, kind = args[0].strip(), args[1].strip().lower()
    tech, slash, resource = tech_data.partition("/")
    if not tech or not slash or not resource:
        raise _fail(chan, f"Channel Tech/Data invalid: '{tech_data}'")
    rest = args[2:] + [""] * (5 - len(args[2:]))
    timeout = 30.0
    if rest[3].strip():
        try:
            timeout = float(rest[3])
            if not timeout > 0:
                raise ValueError
        except ValueError:
            log.warning("Invalid timeout: '%s'. Setting timeout to 30 seconds (on %s)", rest[3], chan.name)
            timeout = 30.0
    options = parse_options(rest[4])
    unknown = set(options) - set("abBcCnv")
    if unknown:
        raise _fail(chan, f"Invalid options: '{rest[4]}'")
    order = Origination(tech_data, timeout=timeout)
    if kind == "exten":
        order.context = rest[0].strip() or "default"
        order.exten = rest[1].strip() if len(args) > 3 and rest[1].strip() else "s"
        if rest[2].strip():
            if not rest[2].strip().isdigit() or int(rest[2]) < 1:
                raise _fail(chan, f"Invalid priority: '{rest[2]}'")
            order.priority = int(rest[2])
    elif kind == "app":
        order.kind = "app"
        order.app, order.data = rest[0].strip(), rest[1]
    else:
        raise _fail(chan, f"Incorrect type, it should be 'exten' or 'app': {args[1]}")
    if options.get("c") or options.get("n"):
        order.callerid = (options.get("n", ""), options.get("c", ""))
    for item in options.get("v", "").split("^"):
        name, eq, value = item.partition("=")
        if eq and name.strip():
            order.variables.append((name.strip(), value))
    order.predial_callee = options.get("b", "")
    return order, options


async def app_originate(chan: Channel, data: str) -> int | None:
    order, options = parse_app_args(chan, data)
    if options.get("B"):
        await _predial(chan, options["B"])
    if "a" in options:
        chan.pbx.spawn(place(chan.pbx, order, chan))
        chan.set_var("ORIGINATE_STATUS", "SUCCESS")
        return None
    status, _ = await place(chan.pbx, order, chan)
    chan.set_var("ORIGINATE_STATUS", status)
    return None


# ---------------------------------------------------------------------- the console command
CLI_USAGE = ("Usage: channel originate <tech/data> application <appname> [appdata]\n"
             "       channel originate <tech/data> extension [exten@][context]\n"
             "  Originate a call. There are two ways to use this command. A call can be originated\n"
             "to an application or to an extension (in a context; 's' and 'default' when left out).\n"
             "The call is placed in the background with a 30 second answer timeout.\n")


async def cli_originate(args: CliArgs) -> str:
    argv = args.argv
    if len(argv) < 3 or "/" not in argv[0]:
        return CLI_USAGE
    tech_data, kind = argv[0], argv[1].lower()
    if kind == "application":
        order = Origination(tech_data, "app", app=argv[2], data=" ".join(argv[3:]))
    elif kind == "extension":
        exten, at, context = argv[2].partition("@")
        if not at:
            exten, context = argv[2], ""
        order = Origination(tech_data, "exten", context=context or "default", exten=exten or "s")
    else:
        return CLI_USAGE
    args.pbx.spawn(place(args.pbx, order))
    return ""


def _complete(pbx: Pbx, words: list[str], word: str) -> list[str]:
    argv = words[2:]  # after "channel originate"
    if len(argv) == 1:
        return [w for w in ("application", "extension") if w.startswith(word.lower())]
    if len(argv) == 2 and argv[1].lower() == "application":
        return sorted(a.name for a in pbx.registry.applications.values() if a.name.lower().startswith(word.lower()))
    return []


class OriginateModule(Module):
    description = "Originate call"

    def applications(self) -> list[Application]:
        return [Application(
            "Originate", app_originate, "Originate a call.",
            "Originate(tech_data,type,arg1[,arg2[,arg3[,timeout[,options]]]])",
            "type 'exten': arg1 context, arg2 extension (s), arg3 priority (1); type 'app': arg1 "
            "application, arg2 its data. Waits timeout seconds (30) for the answer unless option "
            "'a'. Options: a, b(ctx^exten^pri(args)), B(...), c(num), n(name), v(var=val^...), C. "
            "Sets ORIGINATE_STATUS to SUCCESS, FAILED, BUSY, CONGESTION, HANGUP, RINGING or UNKNOWN.")]

    def commands(self) -> list[CliCommand]:
        return [CliCommand(("channel", "originate"), cli_originate, "Originate a call", CLI_USAGE,
                           complete=_complete)]


__all__ = ["STATUSES", "Origination", "originate", "place", "place_calls"]
