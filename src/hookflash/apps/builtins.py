"""The applications every dialplan uses (Asterisk's pbx builtins and app_verbose).

Answer, Hangup, NoOp, Set, MSet, Goto, GotoIf, GotoIfTime, ExecIfTime, Wait, Busy,
Congestion, Progress, Ringing; Verbose and Log.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from hookflash.apps.goto import jump
from hookflash.channels.channel import ChannelState, Control, HangupCause
from hookflash.dialplan.args import condition_true, split_args, split_condition
from hookflash.dialplan.subst import split_function
from hookflash.dialplan.timespec import TimeSpecError, parse_timespec
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, DialplanError

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.dialplan")
applog = logging.getLogger("hookflash.app")


def _seconds(text: str, default: float = 0.0) -> float:
    try:
        return float(text) if text.strip() else default
    except ValueError:
        return default


# ---------------------------------------------------------------------- variables
def set_variable(chan: "Channel", name: str, value: str) -> Any:
    """Assign ``name`` (a variable, or ``FUNC(args)``) as Set does. A function writer that
    must wait (CALENDAR_WRITE talks to a server) returns an awaitable: it is returned
    here so Set awaits it without holding up other calls."""
    name = name.strip()
    if name.endswith(")") and "(" in name:
        func_name, args = split_function(name)
        func = chan.pbx.registry.function(func_name)
        if func is None:
            log.error("Function %s not registered (on %s at %s)", func_name, chan.name, chan.location)
            return
        if func.write is None:
            log.error("Function %s cannot be written to (on %s at %s)", func_name, chan.name,
                      chan.location)
            return
        result = func.write(chan, args, value)  # type: ignore[func-returns-value]
        return result if inspect.isawaitable(result) else None
    chan.set_var(name, value)
    return None


def app_set(chan: "Channel", data: str) -> Any:
    name, eq, value = data.partition("=")
    if not eq or not name.strip():
        log.warning("Set requires an argument (variable=value), got '%s' on %s", data, chan.name)
        return None
    return set_variable(chan, name, value)


def app_mset(chan: "Channel", data: str) -> None:
    for pair in split_args(data):
        name, eq, value = pair.partition("=")
        if not eq:
            log.warning("MSet: ignoring entry '%s' with no '=' on %s", pair, chan.name)
            continue
        set_variable(chan, name, value)


# ---------------------------------------------------------------------- flow
def app_noop(chan: "Channel", data: str) -> None:
    return None


def app_goto(chan: "Channel", data: str) -> None:
    jump(chan, data)


def app_gotoif(chan: "Channel", data: str) -> None:
    cond, iftrue, iffalse = split_condition(data)
    if "?" not in data:
        log.warning("GotoIf requires an argument (condition?label1[:label2]) on %s", chan.name)
        return
    target = iftrue if condition_true(cond) else iffalse
    if target.strip():
        jump(chan, target)


def _time_condition(chan: "Channel", data: str, app: str) -> tuple[bool, str, str]:
    spec, q, rest = data.partition("?")
    if not q:
        raise DialplanError(f"{app} requires an argument: <time range>,<days of week>,"
                            "<days of month>,<months>[,<timezone>]?...")
    try:
        timespec = parse_timespec(spec.replace("|", ","))
    except TimeSpecError as exc:
        raise DialplanError(f"{app}: {exc}") from None
    return timespec.matches(), rest, spec


def app_gotoiftime(chan: "Channel", data: str) -> None:
    active, rest, _ = _time_condition(chan, data, "GotoIfTime")
    iftrue, _, iffalse = rest.partition(":")
    target = iftrue if active else iffalse
    if target.strip():
        jump(chan, target)


async def app_execiftime(chan: "Channel", data: str) -> int | None:
    from hookflash.apps.flow import exec_app
    active, rest, _ = _time_condition(chan, data, "ExecIfTime")
    if not active:
        return None
    return await exec_app(chan, rest)


# ---------------------------------------------------------------------- call state
async def app_answer(chan: "Channel", data: str) -> None:
    await chan.answer()
    delay = _seconds(split_args(data)[0]) / 1000.0
    if delay > 0:
        await chan.wait(delay)


def app_hangup(chan: "Channel", data: str) -> int:
    cause = data.strip()
    if cause:
        if cause.isdigit():
            chan.hangupcause = int(cause)
        else:
            try:
                chan.hangupcause = int(HangupCause[cause.upper()])
            except KeyError:
                log.warning("Invalid cause given to Hangup(): \"%s\"", cause)
    if not chan.hangupcause:
        chan.hangupcause = HangupCause.NORMAL_CLEARING
    chan.request_hangup(chan.hangupcause)
    return -1


async def app_wait(chan: "Channel", data: str) -> int | None:
    return None if await chan.wait(_seconds(data)) else -1


async def _indicate_and_wait(chan: "Channel", data: str, control: Control, cause: int) -> int:
    await chan.indicate(control)
    if chan.state != ChannelState.UP:
        chan.state = ChannelState.BUSY if control == Control.BUSY else chan.state
    timeout = _seconds(data)
    if timeout > 0:
        await chan.wait(timeout)
    else:
        await chan.hangup_event.wait()
    if not chan.hangupcause:
        chan.hangupcause = cause
    return -1


async def app_busy(chan: "Channel", data: str) -> int:
    return await _indicate_and_wait(chan, data, Control.BUSY, HangupCause.USER_BUSY)


async def app_congestion(chan: "Channel", data: str) -> int:
    return await _indicate_and_wait(chan, data, Control.CONGESTION, HangupCause.CONGESTION)


async def app_progress(chan: "Channel", data: str) -> None:
    await chan.indicate(Control.PROGRESS)


async def app_ringing(chan: "Channel", data: str) -> None:
    await chan.indicate(Control.RINGING)


# ---------------------------------------------------------------------- output
def app_verbose(chan: "Channel", data: str) -> None:
    args = split_args(data, ",", 1)
    if len(args) == 1:
        level_text, message = "0", args[0]
    else:
        level_text, message = args
    level_text = level_text.strip()
    if level_text.isdigit():
        level = int(level_text)
    else:
        log.warning("'%s' is not a verboser number", level_text)
        level = 0
    chan.pbx.verbose(min(level, 4), message)


_LOG_LEVELS = {"ERROR": logging.ERROR, "WARNING": logging.WARNING, "NOTICE": logging.INFO,
               "DEBUG": logging.DEBUG, "VERBOSE": logging.INFO, "DTMF": logging.DEBUG}


def app_log(chan: "Channel", data: str) -> None:
    level_text, comma, message = data.partition(",")
    if not comma:
        log.warning("Log requires an argument (level,message) on %s", chan.name)
        return
    level = _LOG_LEVELS.get(level_text.strip().upper())
    if level is None:
        log.warning("Unknown log level '%s' on %s", level_text, chan.name)
        return
    applog.log(level, "[%s@%s:%d] %s", chan.exten, chan.context, chan.priority, message)


def _app(name: str, fn, synopsis: str, syntax: str, description: str = "") -> Application:  # type: ignore[no-untyped-def]
    return Application(name, fn, synopsis, syntax, description)


class BuiltinsModule(Module):
    description = "Builtin dialplan applications"
    core = True

    def applications(self) -> list[Application]:
        return [
            _app("Answer", app_answer, "Answer a channel if ringing.", "Answer([delay])",
                 "Answers the channel, then waits delay milliseconds."),
            _app("Hangup", app_hangup, "Hang up the calling channel.", "Hangup([causecode])"),
            _app("NoOp", app_noop, "Do Nothing (No Operation).", "NoOp([text])"),
            _app("Set", app_set, "Set channel variable or function value.", "Set(name=value)",
                 "A name starting with _ is inherited by channels this one creates; __ by all "
                 "their descendants. name may be a writable function, e.g. CDR(userfield)."),
            _app("MSet", app_mset, "Set channel variable(s) or function value(s).",
                 "MSet(name1=value1,name2=value2[,...])"),
            _app("Goto", app_goto, "Jump to a particular priority, extension, or context.",
                 "Goto([[context,]extension,]priority)"),
            _app("GotoIf", app_gotoif, "Conditional goto.",
                 "GotoIf(condition?[labeliftrue]:[labeliffalse])"),
            _app("GotoIfTime", app_gotoiftime, "Conditional Goto based on the current time.",
                 "GotoIfTime(times,weekdays,mdays,months[,timezone]?[labeliftrue]:[labeliffalse])"),
            _app("ExecIfTime", app_execiftime, "Conditional application execution based on the current time.",
                 "ExecIfTime(times,weekdays,mdays,months[,timezone]?appname[(appargs)])"),
            _app("Wait", app_wait, "Waits for some time.", "Wait(seconds)"),
            _app("Busy", app_busy, "Indicate the Busy condition.", "Busy([timeout])"),
            _app("Congestion", app_congestion, "Indicate the Congestion condition.", "Congestion([timeout])"),
            _app("Progress", app_progress, "Indicate progress.", "Progress()"),
            _app("Ringing", app_ringing, "Indicate ringing tone.", "Ringing()"),
        ]


class VerboseModule(Module):
    description = "Send verbose output"

    def applications(self) -> list[Application]:
        return [
            _app("Verbose", app_verbose, "Send arbitrary text to verbose output.", "Verbose([level,]message)",
                 "Level 0 always prints; otherwise when the console's verbosity is at least level."),
            _app("Log", app_log, "Send arbitrary text to a selected log level.", "Log(level,message)",
                 "level: ERROR, WARNING, NOTICE, DEBUG, VERBOSE or DTMF."),
        ]
