"""The core console commands, in Asterisk's layouts.

``help``, ``core show version|uptime|loop|channels|channel|applications|application|functions|function``,
``core set verbose|debug``, ``core stop now|gracefully``, ``module show|load|unload|reload``,
``reload``, ``dialplan show globals``.
"""

from __future__ import annotations

import asyncio
import inspect
import platform
import shlex
import time
from typing import TYPE_CHECKING

from hookflash import __version__
from hookflash.engine.modules import Module, ModuleError
from hookflash.engine.registry import CliArgs, CliCommand

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _version(args: CliArgs) -> str:
    return (f"hookflash {__version__} (Asterisk 20 compatible dialplan and console) on "
            f"Python {platform.python_version()} {platform.system()} {platform.machine()}\n")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    parts = []
    for size, word in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count or (word == "second" and not parts):
            parts.append(f"{count} {word}{_s(count)}")
    return ", ".join(parts)


def _uptime(args: CliArgs) -> str:
    now = time.time()
    return (f"System uptime: {_duration(now - args.pbx.started)}\n"
            f"Last reload: {_duration(now - args.pbx.last_reload)}\n")


def _loop(args: CliArgs) -> str:
    return args.pbx.loopwatch.report()


def _channels(args: CliArgs) -> str:
    pbx = args.pbx
    mode = args.argv[0].lower() if args.argv else ""
    lines = []
    if mode == "concise":
        now = time.time()
        for c in pbx.channels:
            bridged = c.bridged.name if c.bridged else "(None)"
            lines.append("!".join([c.name, c.context, c.exten, str(c.priority), c.state.text,
                                   c.appl or "(None)", c.data, c.caller.num, c.accountcode, "",
                                   "3", str(int(now - c.created)), bridged, c.uniqueid]))
        return "".join(line + "\n" for line in lines)
    if mode == "count":
        lines = []
    else:
        lines.append(f"{'Channel':<20.20s} {'Location':<20.20s} {'State':<7.7s} {'Application(Data)':<30.30s}")
        for c in pbx.channels:
            location = f"{c.exten}@{c.context}:{c.priority}"
            appdata = f"{c.appl}({c.data})" if c.appl else "(None)"
            lines.append(f"{c.name:<20.20s} {location:<20.20s} {c.state.text:<7.7s} {appdata:<30.30s}")
    count = len(pbx.channels)
    calls = sum(1 for c in pbx.channels if c.cdr is not None)
    lines.append(f"{count} active channel{_s(count)}")
    lines.append(f"{calls} active call{_s(calls)}")
    lines.append(f"{pbx.channels.processed} call{_s(pbx.channels.processed)} processed")
    return "\n".join(lines) + "\n"


def _channel(args: CliArgs) -> str:
    if not args.argv:
        return "Usage: core show channel <channel>\n"
    chan = args.pbx.channels.get(args.argv[0])
    if chan is None:
        matches = args.pbx.channels.find_prefix(args.argv[0])
        if len(matches) != 1:
            return f"{args.argv[0]} is not a known channel\n"
        chan = matches[0]
    out = [" -- General --", f"           Name: {chan.name}", f"           Type: {chan.tech.tech_name}",
           f"       UniqueID: {chan.uniqueid}", f"       LinkedID: {chan.linkedid}",
           f"      Caller ID: {chan.caller.num or '(N/A)'}", f" Caller ID Name: {chan.caller.name or '(N/A)'}",
           f"          State: {chan.state.text} ({int(chan.state)})",
           f"  Bridged Channel: {chan.bridged.name if chan.bridged else '(Not bridged)'}",
           f"       Language: {chan.language}", "  --   PBX   --",
           f"        Context: {chan.context}", f"      Extension: {chan.exten}",
           f"       Priority: {chan.priority}", f"    Application: {chan.appl or '(N/A)'}",
           f"           Data: {chan.data or '(Empty)'}", "", "      Variables:"]
    out += [f"{k}={v}" for k, v in chan.vars.items()]
    return "\n".join(out) + "\n"


def _applications(args: CliArgs) -> str:
    reg = args.pbx.registry
    like = args.argv[1].lower() if len(args.argv) > 1 and args.argv[0] == "like" else None
    apps = sorted(reg.applications.values(), key=lambda a: a.name.lower())
    if like:
        apps = [a for a in apps if like in a.name.lower()]
    lines = ["    -= Registered Asterisk Applications =-" if not like else "    -= Matching Asterisk Applications =-"]
    lines += [f"  {a.name:>20s}: {a.synopsis}" for a in apps]
    lines.append(f"    -= {len(apps)} Applications {'Registered' if not like else 'Matching'} =-")
    return "\n".join(lines) + "\n"


def _application(args: CliArgs) -> str:
    if not args.argv:
        return "Usage: core show application <application> [<application> [<application> [...]]]\n"
    out = []
    for name in args.argv:
        app = args.pbx.registry.application(name)
        if app is None:
            out.append("Your application(s) is (are) not registered")
            continue
        out.append(f"\n  -= Info about application '{app.name}' =- \n\n[Synopsis]\n{app.synopsis}\n\n"
                   f"[Description]\n{app.description or app.synopsis}\n\n[Syntax]\n{app.syntax}\n\n"
                   f"[Arguments]\nSee the syntax above.\n\n[See Also]\nNot available")
    return "\n".join(out) + "\n"


def _functions(args: CliArgs) -> str:
    reg = args.pbx.registry
    like = args.argv[1].lower() if len(args.argv) > 1 and args.argv[0] == "like" else None
    funcs = sorted(reg.functions.values(), key=lambda f: f.name)
    if like:
        funcs = [f for f in funcs if like in f.name.lower()]
    lines = [f"{'Matching' if like else 'Installed'} Custom Functions:", "-" * 80]
    lines += [f"{f.name:<20.20s}  {f.syntax:<35.35s}  {f.synopsis}" for f in funcs]
    lines.append(f"{len(funcs)} {'matching' if like else 'custom'} functions installed.")
    return "\n".join(lines) + "\n"


def _function(args: CliArgs) -> str:
    if not args.argv:
        return "Usage: core show function <function>\n"
    func = args.pbx.registry.function(args.argv[0])
    if func is None:
        return "No function by that name registered.\n"
    mode = "read/write" if func.read and func.write else ("read-only" if func.read else "write-only")
    return (f"\n  -= Info about function '{func.name}' =- \n\n[Synopsis]\n{func.synopsis}\n\n"
            f"[Description]\n{func.description or func.synopsis} ({mode})\n\n[Syntax]\n{func.syntax}\n\n"
            f"[Arguments]\nSee the syntax above.\n\n[See Also]\nNot available\n")


def _set_level(args: CliArgs, what: str) -> str:
    usage = f"Usage: core set {what} [atleast] <level> | off\n"
    argv = [w for w in args.argv if w.lower() != "atleast"]
    if not argv:
        return usage
    word = argv[0].lower()
    if word in ("off", "zero"):
        new = 0
    elif word == "on":
        new = 1
    elif word.isdigit():
        new = int(word)
    else:
        return usage
    v = args.pbx.verbosity
    old = v.level if what == "verbose" else v.debug
    if "atleast" in (w.lower() for w in args.argv) and new < old:
        new = old

    def show(n: int) -> str:
        return "OFF" if n == 0 else str(n)

    if what == "verbose":
        v.level = new
        if getattr(args.pbx, "manage_log_level", False):
            args.pbx.apply_log_level()
        return f"Console verbose was {show(old)} and is now {show(new)}.\n"
    v.debug = new
    if getattr(args.pbx, "manage_log_level", False):
        args.pbx.apply_log_level()
    return f"Core debug was {show(old)} and is now {show(new)}.\n"


async def _stop(args: CliArgs) -> str:
    mode = args.argv[0].lower() if args.argv else ""
    pbx = args.pbx
    if mode == "now":
        pbx.spawn(_stop_soon(pbx))
        return "Shutting down now.\n"
    if mode in ("gracefully", "when-convenient"):
        pbx.accepting_calls = False  # type: ignore[attr-defined]
        pbx.spawn(_stop_when_idle(pbx))
        return "Shutting down when all calls have ended.\n"
    return "Usage: core stop now|gracefully|when-convenient\n"


async def _stop_soon(pbx: "Pbx") -> None:
    await asyncio.sleep(0.05)  # let the console send its answer first
    pbx.request_stop()  # type: ignore[attr-defined]


async def _stop_when_idle(pbx: "Pbx") -> None:
    while len(pbx.channels):
        await asyncio.sleep(0.2)
    await _stop_soon(pbx)


def _module_show(args: CliArgs) -> str:
    mods = args.pbx.modules.loaded
    like = args.argv[1].lower() if len(args.argv) > 1 and args.argv[0] == "like" else None
    lines = [f"{'Module':<30s} {'Description':<40.40s} {'Use Count':<10s} {'Status':<11s} {'Support Level':>13s}"]
    shown = 0
    for name in sorted(mods):
        if like and like not in name.lower():
            continue
        m = mods[name]
        lines.append(f"{name + '.so':<30s} {m.description:<40.40s} {m.use_count:<10d} {'Running':<11s} {m.support:>13s}")
        shown += 1
    lines.append(f"{shown} modules loaded")
    return "\n".join(lines) + "\n"


async def _module_load(args: CliArgs) -> str:
    if not args.argv:
        return "Usage: module load <module name>\n"
    try:
        await args.pbx.modules.load(args.argv[0])
    except ModuleError as exc:
        return f"Unable to load module {args.argv[0]}: {exc}\n"
    except Exception as exc:
        return f"Unable to load module {args.argv[0]}: {exc}\n"
    return f"Loaded {args.argv[0]}\n"


async def _module_unload(args: CliArgs) -> str:
    names = [a for a in args.argv if not a.startswith("-")]
    if not names:
        return "Usage: module unload [-f|-h] <module_1> [<module_2> ... ]\n"
    out = []
    for name in names:
        try:
            await args.pbx.modules.unload(name)
            out.append(f"Unloaded {name}")
        except ModuleError as exc:
            out.append(f"Unable to unload resource {name}: {exc}")
    return "\n".join(out) + "\n"


async def _module_reload(args: CliArgs) -> str:
    pbx = args.pbx
    try:
        messages = await pbx.modules.reload(args.argv[0] if args.argv else None)
    except ModuleError as exc:
        return f"{exc}\n"
    pbx.last_reload = time.time()
    if messages:
        return "\n".join(messages) + "\n"
    return f"Module '{args.argv[0]}' reloaded successfully.\n" if args.argv else "Reloaded all modules.\n"


def _globals(args: CliArgs) -> str:
    lines = [f"   {k}={v}" for k, v in args.pbx.globals.items()]
    lines.append(f"\n    -- {len(args.pbx.globals)} variable(s)")
    return "\n".join(lines) + "\n"


def _help(args: CliArgs) -> str:
    reg = args.pbx.registry
    prefix = [w.lower() for w in args.argv]
    cmds = sorted(reg.commands.values(), key=lambda c: c.words)
    if prefix:
        exact = reg.commands.get(tuple(prefix))
        if exact is not None:
            return (exact.usage or " ".join(exact.words)) + "\n"
        cmds = [c for c in cmds if list(c.words[:len(prefix)]) == prefix]
        if not cmds:
            return f"No such command '{' '.join(args.argv)}'.\n"
    return "".join(f"{' '.join(c.words):<30.30s} {c.summary}\n" for c in cmds)


def _complete_apps(pbx: "Pbx", words: list[str], word: str) -> list[str]:
    return sorted(a.name for a in pbx.registry.applications.values() if a.name.lower().startswith(word.lower()))


def _complete_funcs(pbx: "Pbx", words: list[str], word: str) -> list[str]:
    return sorted(f.name for f in pbx.registry.functions.values() if f.name.lower().startswith(word.lower()))


def _complete_modules(pbx: "Pbx", words: list[str], word: str) -> list[str]:
    return sorted(n + ".so" for n in pbx.modules.known if n.startswith(word.replace(".so", "")))


def _complete_channels(pbx: "Pbx", words: list[str], word: str) -> list[str]:
    return sorted(c.name for c in pbx.channels if c.name.lower().startswith(word.lower()))


class CoreModule(Module):
    description = "Core console commands"
    core = True

    def commands(self) -> list[CliCommand]:
        C = CliCommand
        return [
            C(("help",), _help, "Display help list, or specific help on a command", "Usage: help [topic]"),
            C(("core", "show", "help"), _help, "Display help list, or specific help on a command",
              "Usage: core show help [topic]"),
            C(("core", "show", "version"), _version, "Display version info", "Usage: core show version"),
            C(("core", "show", "uptime"), _uptime, "Show uptime information", "Usage: core show uptime"),
            C(("core", "show", "loop"), _loop, "Show event-loop lag, collector pauses and stalls (hookflash)",
              "Usage: core show loop"),
            C(("core", "show", "channels"), _channels, "Display information on channels",
              "Usage: core show channels [concise|count]"),
            C(("core", "show", "channel"), _channel, "Display information on a specific channel",
              "Usage: core show channel <channel>", _complete_channels),
            C(("core", "show", "applications"), _applications, "Shows registered dialplan applications",
              "Usage: core show applications [like <text>]"),
            C(("core", "show", "application"), _application, "Describe a specific dialplan application",
              "Usage: core show application <application>", _complete_apps),
            C(("core", "show", "functions"), _functions, "Shows registered dialplan functions",
              "Usage: core show functions [like <text>]"),
            C(("core", "show", "function"), _function, "Describe a specific dialplan function",
              "Usage: core show function <function>", _complete_funcs),
            C(("core", "set", "verbose"), lambda a: _set_level(a, "verbose"), "Set level of verbose messages",
              "Usage: core set verbose [atleast] <level> | off"),
            C(("core", "set", "debug"), lambda a: _set_level(a, "debug"), "Set level of debug chattiness",
              "Usage: core set debug [atleast] <level> | off"),
            C(("core", "stop"), _stop, "Shut down hookflash", "Usage: core stop now|gracefully|when-convenient",
              lambda pbx, words, word: [w for w in ("now", "gracefully", "when-convenient") if w.startswith(word)]),
            C(("module", "show"), _module_show, "List modules and info", "Usage: module show [like keyword]"),
            C(("module", "load"), _module_load, "Load a module by name", "Usage: module load <module name>",
              _complete_modules),
            C(("module", "unload"), _module_unload, "Unload a module by name",
              "Usage: module unload [-f|-h] <module_1> [<module_2> ... ]", _complete_modules),
            C(("module", "reload"), _module_reload, "Reload configuration for a module",
              "Usage: module reload [module ...]", _complete_modules),
            C(("reload",), _module_reload, "Reload configuration for a module", "Usage: reload [module ...]"),
            C(("dialplan", "show", "globals"), _globals, "Show global dialplan variables",
              "Usage: dialplan show globals"),
        ]


async def run_command(pbx: "Pbx", line: str) -> str:
    """Run one console command line and return its output."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return ""
    cmd = pbx.registry.find_command(words)
    if cmd is None:
        return f"No such command '{line.strip()}' (type 'core show help {words[0]}' for other possible commands)\n"
    argv = words[len(cmd.words):]
    try:
        result = cmd.handler(CliArgs(pbx, words, argv))
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # a failing command must not hurt the PBX
        import logging
        logging.getLogger("hookflash.cli").exception("Command '%s' failed", line)
        return f"Command '{line.strip()}' failed: {exc}\n"
    return str(result)


def complete(pbx: "Pbx", line: str) -> list[str]:
    """Candidates for the word being typed at the end of ``line``."""
    words = line.split()
    if line.endswith(" ") or not words:
        words.append("")
    done, word = [w.lower() for w in words[:-1]], words[-1]
    options: set[str] = set()
    for cmd in pbx.registry.commands.values():
        n = len(done)
        if n < len(cmd.words):
            if list(cmd.words[:n]) == done and cmd.words[n].startswith(word.lower()):
                options.add(cmd.words[n])
        elif list(cmd.words) == done[:len(cmd.words)] and cmd.complete is not None:
            options.update(cmd.complete(pbx, words[:-1], word))
    return sorted(options)
