"""System and TrySystem: run a shell command without blocking calls.

The command is what the dialplan wrote, after substitution; hookflash adds no quoting
of its own. A dialplan that puts caller-controlled text (caller ID, calendar fields,
chat messages) into System() must FILTER() it first, as CHAPTER.md advises.
SYSTEMSTATUS: SUCCESS (exit 0), APPERROR (other exit), FAILURE (could not run, or the
shell's 127 for a command not found), as Asterisk sets it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hookflash.engine.modules import Module
from hookflash.engine.registry import Application

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.app.system")


async def run_command(chan: "Channel", command: str) -> str:
    if not command.strip():
        log.warning("System requires an argument(command) on %s", chan.name)
        return "FAILURE"
    try:
        proc = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        code = await proc.wait()
    except OSError as exc:
        log.warning("Unable to execute '%s' on %s: %s", command, chan.name, exc)
        return "FAILURE"
    if code == 127:
        log.warning("Unable to execute '%s' on %s: command not found", command, chan.name)
        return "FAILURE"
    return "SUCCESS" if code == 0 else "APPERROR"


async def app_system(chan: "Channel", data: str) -> int | None:
    status = await run_command(chan, data)
    chan.set_var("SYSTEMSTATUS", status)
    return -1 if status == "FAILURE" else None


async def app_trysystem(chan: "Channel", data: str) -> None:
    chan.set_var("SYSTEMSTATUS", await run_command(chan, data))


class SystemModule(Module):
    description = "Generic System() application"

    def applications(self) -> list[Application]:
        return [
            Application("System", app_system, "Execute a system command.", "System(command)",
                        "Sets SYSTEMSTATUS to SUCCESS, FAILURE or APPERROR; hangs up on FAILURE."),
            Application("TrySystem", app_trysystem, "Try executing a system command.", "TrySystem(command)",
                        "As System, but never hangs up."),
        ]
