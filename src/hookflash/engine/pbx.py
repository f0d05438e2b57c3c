"""The Pbx: one running exchange. Owns its modules, dialplan, channels and stores.

There is no global state: tests run several Pbx objects in one process.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash import __version__
from hookflash.channels.channel import Channel, Control, HangupCause
from hookflash.conf import ConfigError, ConfigFile, load
from hookflash.conf.asterisk_conf import AsteriskConf, load_asterisk_conf
from hookflash.dialplan.model import Dialplan
from hookflash.engine.loopwatch import LoopWatch
from hookflash.engine.modules import ModuleManager
from hookflash.engine.registry import Registry
from hookflash.engine.verbose import ConsoleLogHandler, Verbosity

if TYPE_CHECKING:
    from hookflash.engine.astdb import AstDb
    from hookflash.engine.cdr import CdrWriter

log = logging.getLogger("hookflash.pbx")


def embedded_config_dir() -> Path:
    """The built-in demo configuration shipped inside the package."""
    return Path(str(resources.files("hookflash") / "defaults"))


class ChannelList:
    def __init__(self) -> None:
        self.by_name: dict[str, Channel] = {}
        self.processed = 0

    def add(self, chan: Channel) -> None:
        self.by_name[chan.name] = chan

    def remove(self, chan: Channel) -> None:
        if self.by_name.get(chan.name) is chan:
            del self.by_name[chan.name]

    def get(self, name: str) -> Channel | None:
        return self.by_name.get(name)

    def find_prefix(self, prefix: str) -> list[Channel]:
        return [c for n, c in self.by_name.items() if n.lower().startswith(prefix.lower())]

    def __iter__(self) -> Iterator[Channel]:
        return iter(list(self.by_name.values()))

    def __len__(self) -> int:
        return len(self.by_name)


class Pbx:
    def __init__(self, config_dir: Path | None = None, *, state_dir: Path | None = None,
                 verbose: int | None = None, systemname: str | None = None) -> None:
        self.config_dir = Path(config_dir) if config_dir else embedded_config_dir()
        default_root = Path(state_dir) if state_dir else _default_state_dir(config_dir)
        self.asterisk_conf: AsteriskConf = load_asterisk_conf(self.config_dir, default_root=default_root)
        self.dirs = self.asterisk_conf.directories
        options = self.asterisk_conf.options
        self.systemname = systemname if systemname is not None else (getattr(options, "systemname", "") or "")
        level = verbose if verbose is not None else int(getattr(options, "verbose", 0) or 0)
        self.verbosity = Verbosity(level, int(getattr(options, "debug", 0) or 0))
        self.registry = Registry()
        self.modules = ModuleManager(self)
        self.globals: dict[str, str] = {}
        self.dialplan = Dialplan({})
        self.channels = ChannelList()
        self.astdb: "AstDb | None" = None
        self.cdr_writers: list["CdrWriter"] = []
        self.started = time.time()
        self.last_reload = self.started
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._seq = 0
        self.loop_limit = 2_000_000
        self._log_handler = ConsoleLogHandler(self.verbosity)
        self.accepting_calls = True
        self.stop_requested = asyncio.Event()
        self.loopwatch = LoopWatch()

    # ------------------------------------------------------------------ lifecycle
    def apply_log_level(self) -> None:
        """Build log records only for what someone will see: DEBUG with ``core set debug``,
        INFO (shown as NOTICE) from verbose 1, else WARNING (log calls cost almost nothing)."""
        v = self.verbosity
        level = logging.DEBUG if v.debug else logging.INFO if v.level >= 1 else logging.WARNING
        logging.getLogger("hookflash").setLevel(level)

    async def start(self) -> None:
        logging.getLogger("hookflash").addHandler(self._log_handler)
        for path in (self.dirs.astspooldir, self.dirs.astlogdir, self.dirs.astrundir, self.dirs.astdbdir):
            Path(path).mkdir(parents=True, exist_ok=True)
        await self.modules.load_from_config()
        self.loopwatch.start()  # after the first load: imports block the loop before any call exists
        self.verbose(1, f"hookflash {__version__} ready; configuration from {self.config_dir}")

    async def stop(self) -> None:
        for chan in list(self.channels):
            chan.request_hangup(HangupCause.NORMAL_CLEARING)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for name in reversed(list(self.modules.loaded)):
            module = self.modules.loaded[name]
            try:
                await module.stop()
            except Exception:
                log.exception("Module %s failed to stop", name)
        logging.getLogger("hookflash").removeHandler(self._log_handler)
        self.loopwatch.stop()
        self.stopping.set()

    def request_stop(self) -> None:
        """Ask whoever runs this PBX (the server loop) to stop it."""
        self.stop_requested.set()

    # ------------------------------------------------------------------ configuration
    def config_path(self, name: str) -> Path:
        return self.config_dir / name

    def read_config(self, name: str, *, required: bool = False) -> ConfigFile | None:
        """Parse a config file of the config directory; None if absent and not required.
        Raises ConfigError on a malformed file."""
        path = self.config_path(name)
        if not path.exists():
            if required:
                raise ConfigError(str(path), 0, "file not found", f"a readable {name}")
            return None
        return load(path)

    # ------------------------------------------------------------------ output
    def verbose(self, level: int, text: str) -> None:
        self.verbosity.verbose(level, text)

    # ------------------------------------------------------------------ channels
    def next_id(self) -> str:
        self._seq += 1
        return f"{self._seq:08x}"

    def new_channel(self, name: str, tech: Any = None, **kwargs: Any) -> Channel:
        chan = Channel(self, name, tech, **kwargs)
        self.channels.add(chan)
        return chan

    async def request(self, tech_data: str, requestor: Channel | None = None) -> Channel:
        """Create an outgoing channel for ``Tech/data`` (not yet called)."""
        tech, slash, data = tech_data.partition("/")
        driver = self.registry.driver(tech)
        if driver is None or not slash:
            raise LookupError(f"No channel type registered for '{tech}'")
        chan: Channel = await driver.request(self, data, requestor)
        if requestor is not None:
            chan.inherit_from(requestor)
            chan.linkedid = requestor.linkedid
        return chan

    def spawn(self, coro: Any, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def start_pbx(self, chan: Channel) -> asyncio.Task[Any]:
        """Run the dialplan on ``chan`` in its own task (``ast_pbx_start``)."""
        from hookflash.dialplan.executor import run_pbx
        return self.spawn(run_pbx(chan), name=chan.name)


def _default_state_dir(config_dir: Path | None) -> Path:
    """Where spool, AstDB, logs and sockets go when asterisk.conf does not say:
    ``./var`` beside a user config directory; ``$XDG_STATE_HOME/hookflash`` (or
    ``~/.local/state/hookflash``) for the embedded one."""
    import os
    if config_dir is not None:
        return Path(config_dir).resolve() / "var"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hookflash"


def hostname() -> str:
    return socket.gethostname()


__all__ = ["Pbx", "Control", "embedded_config_dir"]
