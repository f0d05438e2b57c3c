"""The realtime modules: ``core_realtime`` (extconfig.conf and the ``realtime``
console commands) and one module per driver (``res_config_sqlite3``,
``res_config_ldap``, ``res_config_pgsql``), each loadable and unloadable on its own."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hookflash.conf import ConfigError
from hookflash.engine.modules import Module, ModuleDeclined
from hookflash.engine.registry import CliArgs, CliCommand
from hookflash.realtime.core import parse_extconfig, realtime
from hookflash.realtime.driver import RealtimeDriver, RealtimeError

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.realtime")


class RealtimeModule(Module):
    description = "Realtime configuration (extconfig.conf)"
    support = "core"

    async def start(self) -> None:
        rt = realtime(self.pbx)
        rt.configure(parse_extconfig(self.pbx.read_config("extconfig.conf")))
        families = len(rt.cfg.mappings)
        if families:
            self.pbx.verbose(2, f"Realtime: {families} families mapped in extconfig.conf")

    async def reload(self) -> str | None:
        try:
            cfg = parse_extconfig(self.pbx.read_config("extconfig.conf"))
        except ConfigError as exc:
            log.error("extconfig.conf not reloaded, the running mappings are kept: %s", exc)
            return str(exc)
        realtime(self.pbx).configure(cfg)
        return None

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("realtime", "load"), self._load, "Used to print out RealTime variables.",
                       "Usage: realtime load <family> <colmatch> <value>"),
            CliCommand(("realtime", "update"), self._update, "Used to update RealTime variables.",
                       "Usage: realtime update <family> <colmatch> <valuematch> <colupdate> <newvalue>"),
            CliCommand(("realtime", "update2"), self._update2, "Used to test the RealTime update2 method",
                       "Usage: realtime update2 <family> <colmatch> <valuematch> [... <colmatch5> "
                       "<valuematch5>] NULL <colupdate> <newvalue>"),
            CliCommand(("realtime", "store"), self._store, "Store a new RealTime entry",
                       "Usage: realtime store <family> <colname1> <value1> [<colname2> <value2> [... ]]"),
            CliCommand(("realtime", "destroy"), self._destroy, "Delete a RealTime entry",
                       "Usage: realtime destroy <family> <colmatch> <value> [... <colmatch5> <value5>]"),
            CliCommand(("core", "show", "config", "mappings"), self._mappings, "Display config mappings "
                       "(file names to config engines)", "Usage: core show config mappings"),
        ]

    async def _load(self, args: CliArgs) -> str:
        a = args.argv
        if len(a) < 3:
            return "Usage: realtime load <family> <colmatch> <value>\n"
        try:
            record = await realtime(self.pbx).load(a[0], [(a[1], a[2])])
        except RealtimeError as exc:
            return f"Realtime lookup failed: {exc}\n"
        if not record:
            return "No rows found matching search criteria.\n"
        out = ["%30s  %-30s\n" % ("Column Name", "Column Value"),
               "%30s  %-30s\n" % ("-" * 30, "-" * 30)]
        for name, value in record:
            out.append("%30s  %-30s\n" % (name, value))
        return "".join(out)

    async def _update(self, args: CliArgs) -> str:
        a = args.argv
        if len(a) < 5:
            return "Usage: realtime update <family> <colmatch> <valuematch> <colupdate> <newvalue>\n"
        try:
            n = await realtime(self.pbx).update(a[0], a[1], a[2], [(a[3], a[4])])
        except RealtimeError as exc:
            return f"Failed to update. Check the debug log for possible SQL related entries. ({exc})\n"
        if n < 0:
            return "Failed to update. Check the debug log for possible SQL related entries.\n"
        return f"Updated {n} RealTime record{'s' if n != 1 else ''}.\n"

    async def _update2(self, args: CliArgs) -> str:
        a = args.argv
        if "NULL" not in a or len(a) < 6:
            return ("Usage: realtime update2 <family> <colmatch> <valuematch> [... ] NULL <colupdate> "
                    "<newvalue>\n")
        cut = a.index("NULL")
        lookup = list(zip(a[1:cut:2], a[2:cut:2]))
        fields = list(zip(a[cut + 1::2], a[cut + 2::2]))
        try:
            n = await realtime(self.pbx).update2(a[0], lookup, fields)
        except RealtimeError as exc:
            return f"Failed to update. Check the debug log for possible SQL related entries. ({exc})\n"
        if n < 0:
            return "Failed to update. Check the debug log for possible SQL related entries.\n"
        return f"Updated {n} RealTime record{'s' if n != 1 else ''}.\n"

    async def _store(self, args: CliArgs) -> str:
        a = args.argv
        if len(a) < 3 or len(a) % 2 == 0:
            return "Usage: realtime store <family> <colname1> <value1> [<colname2> <value2> [... ]]\n"
        try:
            n = await realtime(self.pbx).store(a[0], list(zip(a[1::2], a[2::2])))
        except RealtimeError as exc:
            return f"Failed to store record: {exc}\n"
        if n < 0:
            return "Failed to store record. Check the debug log for possible SQL related entries.\n"
        return "Stored RealTime record.\n"

    async def _destroy(self, args: CliArgs) -> str:
        a = args.argv
        if len(a) < 3 or len(a) % 2 == 0:
            return "Usage: realtime destroy <family> <colmatch> <value> [... <colmatch5> <value5>]\n"
        try:
            n = await realtime(self.pbx).destroy(a[0], a[1], a[2], list(zip(a[3::2], a[4::2])))
        except RealtimeError as exc:
            return f"Failed to remove record: {exc}\n"
        if n < 0:
            return "Failed to remove record. Check the debug log for possible SQL related entries.\n"
        return f"Removed {n} RealTime record{'s' if n != 1 else ''}.\n"

    def _mappings(self, args: CliArgs) -> str:
        rt = realtime(self.pbx)
        out = []
        by_driver: dict[str, list[Any]] = {}
        for maps in rt.cfg.mappings.values():
            for m in maps:
                by_driver.setdefault(m.driver, []).append(m)
        for driver, maps in by_driver.items():
            out.append(f"\nConfig Engine: {driver}\n")
            for m in maps:
                out.append(f"===> {m.family} (db={m.database}, table={m.table})\n")
        return "".join(out) or "No config mappings found.\n"


class DriverModule(Module):
    """Registers one realtime driver."""

    driver_class: type[RealtimeDriver]
    support = "extended"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.driver = self.driver_class(pbx)

    async def start(self) -> None:
        await self.driver.start()
        realtime(self.pbx).register(self.driver)

    async def stop(self) -> None:
        realtime(self.pbx).unregister(self.driver.name)
        await self.driver.stop()

    async def reload(self) -> str | None:
        old = self.driver
        new = self.driver_class(self.pbx)
        try:
            await new.start()
        except ConfigError as exc:
            log.error("%s not reloaded: %s", new.config_file, exc)
            return str(exc)
        realtime(self.pbx).register(new)
        self.driver = new
        await old.stop()
        return None

    def commands(self) -> list[CliCommand]:
        name = self.driver_class.name
        if name not in ("ldap", "pgsql"):
            return []
        return [CliCommand(("realtime", "show", name, "status"), lambda args: self.driver.status() or
                           f"{name}: not connected\n", f"Shows connection information for the {name} "
                           "RealTime driver", f"Usage: realtime show {name} status")]


def _driver_module(path: str, cls_name: str, description: str) -> type[DriverModule]:
    def load() -> type[RealtimeDriver]:
        import importlib
        try:
            return getattr(importlib.import_module(path), cls_name)  # type: ignore[no-any-return]
        except ImportError as exc:  # its client library is not installed
            raise ModuleDeclined(f"{description}: {exc}") from None

    class _M(DriverModule):
        def __init__(self, pbx: Pbx) -> None:
            self.driver_class = load()
            super().__init__(pbx)

    _M.description = description
    return _M


SqliteModule = _driver_module("hookflash.realtime.sqlite", "SqliteDriver", "SQLite 3 realtime config engine")
LdapModule = _driver_module("hookflash.realtime.ldap", "LdapDriver", "LDAP realtime interface")
PgsqlModule = _driver_module("hookflash.realtime.pgsql", "PgsqlDriver", "PostgreSQL RealTime Configuration Driver")
