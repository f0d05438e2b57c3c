"""Subroutines: Gosub, GosubIf, Return, StackPop, LOCAL(); Macro and MacroExit.

Gosub pushes a frame (where to return, and the ARGn/LOCAL values it hides) and jumps;
the main loop carries on, so a Gosub costs no nested loop. ``run_sub`` and ``run_macro``
run a subroutine to its end in a nested loop, for Dial's ``U()`` and ``M()`` options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hookflash.apps.goto import resolve
from hookflash.dialplan.args import condition_true, split_args, split_condition
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, DialplanError, Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

MAX_STACK = 128


@dataclass
class StackFrame:
    context: str
    exten: str
    priority: int  # where Return continues
    saved: dict[str, str | None] = field(default_factory=dict)  # hidden values to restore
    is_special: bool = False  # pushed by run_sub: Return ends the nested loop


def _split_target(text: str) -> tuple[str, list[str]]:
    """``label(args)`` -> (label, [args])."""
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0:
        return text, []
    inner = text[open_at + 1:]
    if inner.endswith(")"):
        inner = inner[:-1]
    return text[:open_at], split_args(inner)


def _hide(chan: "Channel", frame: StackFrame, name: str, value: str | None) -> None:
    if name not in frame.saved:
        frame.saved[name] = chan.vars.get(name)
    chan.set_var(name, value)


def gosub(chan: "Channel", target: str, *, special: bool = False) -> None:
    if len(chan.stack) >= MAX_STACK:
        raise DialplanError(f"Gosub stack is full ({MAX_STACK} frames)")
    label, args = _split_target(target)
    context, exten, priority = resolve(chan, label)
    if chan.dialplan_for_lookup().find(context, exten, priority, chan.caller.num) is None:
        raise DialplanError(f"Attempt to reach a non-existent destination for Gosub: "
                            f"(Context:{context}, Extension:{exten}, Priority:{priority})")
    ret_priority = chan.priority if special else chan.priority + 1
    frame = StackFrame(chan.context, chan.exten, ret_priority, is_special=special)
    previous = chan.stack[-1] if chan.stack else None
    for i, value in enumerate(args, 1):
        _hide(chan, frame, f"ARG{i}", value)
    # arguments the caller had beyond ours must not leak in
    if previous is not None:
        for name in list(previous.saved):
            if name.startswith("ARG") and name[3:].isdigit() and int(name[3:]) > len(args):
                _hide(chan, frame, name, None)
    _hide(chan, frame, "ARGC", str(len(args)))
    chan.stack.append(frame)
    chan.goto(context, exten, priority)


def _pop(chan: "Channel") -> StackFrame:
    if not chan.stack:
        raise DialplanError("Return without Gosub: stack is empty")
    frame = chan.stack.pop()
    for name, value in frame.saved.items():
        chan.set_var(name, value)
    return frame


def app_gosub(chan: "Channel", data: str) -> None:
    if not data.strip():
        raise DialplanError("Gosub requires an argument: [[context,]exten,]priority[(arg1[,...])]")
    gosub(chan, data)


def app_gosubif(chan: "Channel", data: str) -> None:
    cond, iftrue, iffalse = split_condition(data)
    if "?" not in data:
        raise DialplanError("GosubIf requires an argument: condition?label1([args])[:label2([args])]")
    target = iftrue if condition_true(cond) else iffalse
    if target.strip():
        gosub(chan, target)


def app_return(chan: "Channel", data: str) -> None:
    frame = _pop(chan)
    chan.set_var("GOSUB_RETVAL", data)
    chan.goto(frame.context, frame.exten, frame.priority)


def app_stackpop(chan: "Channel", data: str) -> None:
    if chan.stack:
        frame = chan.stack.pop()
        for name, value in frame.saved.items():
            chan.set_var(name, value)


def _local_read(chan: "Channel | None", args: str) -> str:
    if chan is None:
        return ""
    return chan.vars.get(args.strip(), "")


def _local_write(chan: "Channel | None", args: str, value: str) -> None:
    if chan is None:
        return
    name = args.strip()
    if chan.stack:
        _hide(chan, chan.stack[-1], name, value)
    else:
        chan.set_var(name, value)


async def run_sub(chan: "Channel", target: str) -> str:
    """Run ``[[context,]exten,]priority[(args)]`` to its Return (Dial's U() option)."""
    from hookflash.dialplan.executor import run_priorities
    saved = (chan.context, chan.exten, chan.priority)
    depth = len(chan.stack)
    gosub(chan, target.replace("^", ","), special=True)
    try:
        outcome = await run_priorities(chan, chan.dialplan_for_lookup(), nested=True, stop_depth=depth + 1)
    finally:
        del chan.stack[depth:]
        chan.context, chan.exten, chan.priority = saved
    return outcome


# ---------------------------------------------------------------------- Macro
MACRO_VARS = ("MACRO_EXTEN", "MACRO_CONTEXT", "MACRO_PRIORITY", "MACRO_OFFSET")


async def run_macro(chan: "Channel", data: str) -> str:
    """Run ``macro-<name>`` from ``s`` to its end; returns 'end', 'hangup' or 'jumped'."""
    from hookflash.dialplan.executor import HANGUP, run_priorities
    args = split_args(data)
    name = args[0].strip()
    if not name:
        raise DialplanError("Macro() requires arguments. See \"core show application macro\" for help.")
    context = f"macro-{name}"
    dialplan = chan.dialplan_for_lookup()
    if dialplan.find(context, "s", 1, chan.caller.num) is None:
        if context not in dialplan.contexts:
            raise DialplanError(f"No such context '{context}' for macro '{name}'")
        raise DialplanError(f"Context '{context}' for macro '{name}' lacks 's' extension, priority 1")
    depth = int(chan.vars.get("MACRO_DEPTH", "0") or 0)
    if depth >= 7:
        raise DialplanError("Macro():  possible infinite loop detected.  Returning early.")
    saved_vars = {n: chan.vars.get(n) for n in ("MACRO_DEPTH", *MACRO_VARS)}
    old_args: dict[str, str | None] = {}
    i = 1
    while f"ARG{i}" in chan.vars or i < len(args):
        old_args[f"ARG{i}"] = chan.vars.get(f"ARG{i}")
        i += 1
    position = (chan.context, chan.exten, chan.priority)
    chan.set_var("MACRO_EXTEN", chan.exten)
    chan.set_var("MACRO_CONTEXT", chan.context)
    chan.set_var("MACRO_PRIORITY", str(chan.priority))
    chan.set_var("MACRO_DEPTH", str(depth + 1))
    for n in old_args:
        chan.vars.pop(n, None)
    for idx, value in enumerate(args[1:], 1):
        chan.set_var(f"ARG{idx}", value)
    chan.context, chan.exten, chan.priority = context, "s", 1
    outcome = await run_priorities(chan, dialplan, nested=True, scope=context)
    jumped = outcome != HANGUP and chan.context != context and not chan.context.startswith("macro-")
    for n, value in {**saved_vars, **old_args}.items():
        chan.set_var(n, value)
    if jumped:
        chan.pbx.verbose(2, f"Channel '{chan.name}' jumping out of macro '{name}'")
        chan.jumped = True
        return "jumped"
    chan.context, chan.exten, chan.priority = position
    return outcome


async def app_macro(chan: "Channel", data: str) -> int | None:
    outcome = await run_macro(chan, data)
    if outcome == "hangup" or chan.softhangup:
        return -1
    result = chan.vars.get("MACRO_RESULT", "")
    if result and outcome != "jumped":
        return _macro_result(chan, result)
    return None


def _macro_result(chan: "Channel", result: str) -> int | None:
    upper = result.upper()
    if upper == "ABORT":
        return -1
    if upper in ("BUSY", "CONGESTION"):
        chan.set_var("DIALSTATUS", upper)
        return -1
    if upper.startswith("GOTO:"):
        target = result[5:].replace("^", ",")
        context, exten, priority = resolve(chan, target)
        chan.goto(context, exten, priority)
    return None


def app_macroexit(chan: "Channel", data: str) -> None:
    chan.goto(None, None, 10**9)  # past any priority: the nested run ends


class StackModule(Module):
    description = "Dialplan subroutines (Gosub, Return, etc)"

    def applications(self) -> list[Application]:
        return [
            Application("Gosub", app_gosub, "Jump to label, saving return address.",
                        "Gosub([[context,]exten,]priority[(arg1[,...][,argN])])",
                        "Arguments are available as ARG1..ARGn and ARGC until Return."),
            Application("GosubIf", app_gosubif, "Conditionally jump to label, saving return address.",
                        "GosubIf(condition?labeliftrue[(args)][:labeliffalse[(args)]])"),
            Application("Return", app_return, "Return from gosub routine.", "Return([value])",
                        "Sets GOSUB_RETVAL to value."),
            Application("StackPop", app_stackpop, "Remove one address from gosub stack.", "StackPop()"),
        ]

    def functions(self) -> list[Function]:
        return [Function("LOCAL", _local_read, _local_write,
                         "Manage variables local to the gosub stack frame.", "LOCAL(varname)")]


class MacroModule(Module):
    description = "Extension Macros"

    def applications(self) -> list[Application]:
        return [
            Application("Macro", app_macro, "Macro Implementation.", "Macro(name[,arg1[,arg2[,...]]])",
                        "Runs the context macro-<name> from its s extension with ARG1..ARGn, "
                        "MACRO_EXTEN, MACRO_CONTEXT, MACRO_PRIORITY and MACRO_DEPTH set. "
                        "MACRO_RESULT may be ABORT, BUSY, CONGESTION, CONTINUE or GOTO:ctx^ext^pri."),
            Application("MacroExit", app_macroexit, "Exit from Macro.", "MacroExit()"),
        ]
