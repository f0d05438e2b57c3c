"""Loops and indirect execution: While, EndWhile, ExitWhile, ContinueWhile, Exec, ExecIf, TryExec.

``While``/``EndWhile`` pairs are found when the dialplan is compiled (see
:func:`hookflash.dialplan.loader._finish_loops`), so a loop step is a jump, not a scan.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from hookflash.dialplan.args import condition_true, split_app_call, split_args
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, DialplanError

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.dialplan.model import Priority

log = logging.getLogger("hookflash.dialplan")


def _current(chan: "Channel", app: str) -> "Priority":
    prio = chan.current
    if prio is None:
        raise DialplanError(f"{app} can only run from the dialplan")
    return prio  # type: ignore[no-any-return]


def app_while(chan: "Channel", data: str) -> None:
    prio = _current(chan, "While")
    if condition_true(data):
        return
    if not prio.loop_pair:
        raise DialplanError("While without a matching EndWhile in the same extension")
    chan.goto(None, None, prio.loop_pair + 1)


def app_endwhile(chan: "Channel", data: str) -> None:
    prio = _current(chan, "EndWhile")
    if not prio.loop_pair:
        raise DialplanError("EndWhile without a matching While in the same extension")
    chan.goto(None, None, prio.loop_pair)


def _loop_head(chan: "Channel", app: str) -> "Priority":
    prio = _current(chan, app)
    head = prio.extension.priorities.get(prio.loop_head) if prio.loop_head else None
    if head is None:
        raise DialplanError(f"{app} outside of a While loop")
    return head


def app_exitwhile(chan: "Channel", data: str) -> None:
    head = _loop_head(chan, "ExitWhile")
    if not head.loop_pair:
        raise DialplanError("ExitWhile: the While has no matching EndWhile")
    chan.goto(None, None, head.loop_pair + 1)


def app_continuewhile(chan: "Channel", data: str) -> None:
    chan.goto(None, None, _loop_head(chan, "ContinueWhile").number)


async def exec_app(chan: "Channel", text: str) -> int | None:
    """Run ``App(args)`` on the channel (args already substituted)."""
    name, args = split_app_call(text)
    app = chan.pbx.registry.application(name)
    if app is None:
        raise DialplanError(f"Could not find application ({name})")
    result = app.execute(chan, args)
    if result is not None and inspect.isawaitable(result):
        result = await result
    return result  # type: ignore[no-any-return]


async def app_exec(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        return None
    return await exec_app(chan, data)


async def app_tryexec(chan: "Channel", data: str) -> None:
    name, _ = split_app_call(data)
    if chan.pbx.registry.application(name) is None:
        chan.set_var("TRYSTATUS", "NOAPP")
        return
    try:
        result = await exec_app(chan, data)
    except DialplanError:
        result = -1
    chan.set_var("TRYSTATUS", "FAILED" if result else "SUCCESS")


async def app_execif(chan: "Channel", data: str) -> int | None:
    cond, q, rest = data.partition("?")
    if not q:
        raise DialplanError("ExecIf requires an argument: expression?app[(args)][:app[(args)]]")
    branches = split_args(rest, ":", 1)
    if condition_true(cond):
        target = branches[0]
    else:
        target = branches[1] if len(branches) > 1 else ""
    if not target.strip():
        return None
    return await exec_app(chan, target)


class WhileModule(Module):
    description = "While Loops and Conditional Execution"

    def applications(self) -> list[Application]:
        return [
            Application("While", app_while, "Start a while loop.", "While(expr)",
                        "Runs the priorities up to the matching EndWhile while expr is true."),
            Application("EndWhile", app_endwhile, "End a while loop.", "EndWhile()"),
            Application("ExitWhile", app_exitwhile, "End a While loop.", "ExitWhile()"),
            Application("ContinueWhile", app_continuewhile, "Restart a While loop.", "ContinueWhile()"),
        ]


class ExecModule(Module):
    description = "Executes dialplan applications"

    def applications(self) -> list[Application]:
        return [
            Application("Exec", app_exec, "Executes dialplan application.", "Exec(appname(arguments))"),
            Application("TryExec", app_tryexec, "Executes dialplan application, always returning.",
                        "TryExec(appname(arguments))", "Sets TRYSTATUS to SUCCESS, FAILED or NOAPP."),
            Application("ExecIf", app_execif, "Executes dialplan application, conditionally.",
                        "ExecIf(expression?appiftrue[(args)][:appiffalse[(args)]])"),
        ]
