"""What modules add to the PBX: applications, functions, console commands, channel drivers.

A module (see :mod:`hookflash.engine.modules`) registers these objects through the
:class:`Registry`; the registry remembers which module owns what so a module can be
unloaded or reloaded on its own.

Application and function callables take the channel first. An application returns
``None`` (carry on), a non-zero int (hang up, as Asterisk's ``-1``), or an awaitable of
either. A function reader returns the value as ``str``; a writer takes the value.
Raising :class:`DialplanError` from either ends the call with that message logged at the
dialplan location; it never stops the process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

AppResult = int | None
AppCallable = Callable[["Channel", str], "AppResult | Awaitable[AppResult]"]
FuncReader = Callable[["Channel | None", str], str]
FuncWriter = Callable[["Channel | None", str, str], None]
FuncAsyncReader = Callable[["Channel | None", str], Awaitable[str]]


class DialplanError(Exception):
    """An error in one call's dialplan: ends that call, logged with its location."""


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    execute: AppCallable
    synopsis: str = ""
    syntax: str = ""
    description: str = ""
    module: str = ""


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    read: FuncReader | None = None
    write: FuncWriter | None = None
    synopsis: str = ""
    syntax: str = ""
    description: str = ""
    module: str = ""
    aread: FuncAsyncReader | None = None
    """A read that waits (JABBER_RECEIVE): the executor awaits it when a priority's
    arguments name the function; ``read`` is what other (synchronous) callers get."""


@dataclass(frozen=True, slots=True)
class CliArgs:
    """What a console command handler gets: the words typed and where to write."""

    pbx: "Pbx"
    words: list[str]
    argv: list[str]  # the words after the command's own words


CliHandler = Callable[[CliArgs], "str | Awaitable[str]"]
CliCompleter = Callable[["Pbx", list[str], str], list[str]]


@dataclass(frozen=True, slots=True)
class CliCommand:
    """A console command: fixed leading words, then free arguments."""

    words: tuple[str, ...]
    handler: CliHandler
    summary: str = ""
    usage: str = ""
    complete: CliCompleter | None = None  # completes the argument being typed
    module: str = ""


class ChannelDriver(Protocol):
    """A channel technology (``Local``, ``SIP``, ...): makes outgoing channels."""

    name: str
    description: str

    async def request(
        self, pbx: "Pbx", data: str, requestor: "Channel | None"
    ) -> "Channel": ...


@dataclass
class Registry:
    applications: dict[str, Application] = field(default_factory=dict)  # key: lower name
    functions: dict[str, Function] = field(default_factory=dict)  # key: upper name
    commands: dict[tuple[str, ...], CliCommand] = field(default_factory=dict)
    drivers: dict[str, Any] = field(default_factory=dict)  # key: lower tech name
    async_functions: tuple[str, ...] = ()  # "NAME(" of every function with an aread

    def add_application(self, app: Application) -> None:
        self.applications[app.name.lower()] = app

    def add_function(self, func: Function) -> None:
        self.functions[func.name.upper()] = func
        self._async_names()

    def _async_names(self) -> None:
        self.async_functions = tuple(f"{name}(" for name, f in self.functions.items() if f.aread is not None)

    def add_command(self, cmd: CliCommand) -> None:
        self.commands[cmd.words] = cmd

    def add_driver(self, driver: Any) -> None:
        self.drivers[driver.name.lower()] = driver

    def application(self, name: str) -> Application | None:
        return self.applications.get(name.lower())

    def function(self, name: str) -> Function | None:
        return self.functions.get(name.upper())

    def driver(self, name: str) -> Any | None:
        return self.drivers.get(name.lower())

    def remove_module(self, module: str) -> None:
        """Forget everything the module registered."""
        for table in (self.applications, self.functions, self.commands):
            for key in [k for k, v in table.items() if v.module == module]:
                del table[key]
        for key in [k for k, v in self.drivers.items() if getattr(v, "module", "") == module]:
            del self.drivers[key]
        self._async_names()

    def find_command(self, words: list[str]) -> CliCommand | None:
        """The command whose words are the longest prefix of ``words``."""
        lowered = tuple(w.lower() for w in words)
        for n in range(len(lowered), 0, -1):
            cmd = self.commands.get(lowered[:n])
            if cmd is not None:
                return cmd
        return None
