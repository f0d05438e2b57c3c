"""Modules: the units that add applications, functions, commands and drivers.

Each module has an Asterisk name (``app_dial``, ``res_calendar``...) so that
``modules.conf`` and ``module load app_dial.so`` read as they do in Asterisk. A module
is a class; loading it registers what it offers and runs ``start``; ``reload`` re-reads
its configuration; ``unload`` stops it and removes what it registered.

``modules.conf``: ``[modules]`` with ``autoload=yes|no`` and repeatable
``load =>``, ``noload =>``, ``preload =>`` and ``require =>`` lines (``.so`` optional).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hookflash.engine.registry import Application, CliCommand, Function

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.modules")


class ModuleError(Exception):
    pass


class ModuleDeclined(ModuleError):
    """A module chose not to load (e.g. chan_sip without a sip.conf), as Asterisk's
    AST_MODULE_LOAD_DECLINE: noted, not an error."""


class Module:
    name = "unnamed"
    description = ""
    support = "core"
    core = False  # a core module cannot be unloaded

    def __init__(self, pbx: "Pbx") -> None:
        self.pbx = pbx

    def applications(self) -> Iterable[Application]:
        return ()

    def functions(self) -> Iterable[Function]:
        return ()

    def commands(self) -> Iterable[CliCommand]:
        return ()

    def drivers(self) -> Iterable[object]:
        return ()

    async def start(self) -> None:
        """Read configuration and start background work."""

    async def stop(self) -> None:
        """Stop background work."""

    async def reload(self) -> str | None:
        """Re-read configuration; return an error text to refuse (and keep the old one)."""
        return None

    @property
    def use_count(self) -> int:
        return 0


# Asterisk module name -> "python.module:Class". Order is load order.
KNOWN_MODULES: dict[str, str] = {
    "core_cli": "hookflash.engine.cli_core:CoreModule",
    "pbx_builtins": "hookflash.apps.builtins:BuiltinsModule",
    "pbx_config": "hookflash.dialplan.module:PbxConfigModule",
    "chan_local": "hookflash.channels.local:LocalModule",
    "res_astdb": "hookflash.engine.astdb:AstDbModule",
    "cdr_csv": "hookflash.engine.cdr:CdrCsvModule",
    "app_dial": "hookflash.apps.dial:DialModule",
    "app_originate": "hookflash.apps.originate:OriginateModule",
    "app_macro": "hookflash.apps.stack:MacroModule",
    "app_stack": "hookflash.apps.stack:StackModule",
    "app_while": "hookflash.apps.flow:WhileModule",
    "app_exec": "hookflash.apps.flow:ExecModule",
    "app_system": "hookflash.apps.system:SystemModule",
    "app_sendtext": "hookflash.apps.sendtext:SendTextModule",
    "app_verbose": "hookflash.apps.builtins:VerboseModule",
    "func_strings": "hookflash.apps.func_strings:StringsModule",
    "func_cut": "hookflash.apps.func_strings:CutModule",
    "func_logic": "hookflash.apps.func_logic:LogicModule",
    "func_rand": "hookflash.apps.func_logic:RandModule",
    "func_math": "hookflash.apps.func_math:MathModule",
    "func_db": "hookflash.engine.astdb:FuncDbModule",
    "func_global": "hookflash.apps.func_logic:GlobalModule",
    "func_env": "hookflash.apps.func_logic:EnvModule",
    "func_callerid": "hookflash.apps.func_channel:CallerIdModule",
    "func_cdr": "hookflash.engine.cdr:FuncCdrModule",
    "func_channel": "hookflash.apps.func_channel:ChannelFuncModule",
    "core_realtime": "hookflash.realtime.module:RealtimeModule",
    "res_config_sqlite3": "hookflash.realtime.module:SqliteModule",
    "res_config_ldap": "hookflash.realtime.module:LdapModule",
    "res_config_pgsql": "hookflash.realtime.module:PgsqlModule",
    "core_message": "hookflash.message.module:MessageModule",
    "res_xmpp": "hookflash.xmpp.module:XmppModule",
    "chan_motif": "hookflash.motif.module:MotifModule",
    "app_playback": "hookflash.apps.media:PlaybackModule",
    "app_read": "hookflash.apps.media:ReadModule",
    "app_record": "hookflash.apps.media:RecordModule",
    "app_senddtmf": "hookflash.apps.media:SendDtmfModule",
    "app_echo": "hookflash.apps.media:EchoModule",
    "app_milliwatt": "hookflash.apps.media:MilliwattModule",
    "app_playtones": "hookflash.apps.media:PlaytonesModule",
    "res_musiconhold": "hookflash.apps.media:MusicOnHoldModule",
    "pbx_media_builtins": "hookflash.apps.media:MediaBuiltinsModule",
    "func_timeout": "hookflash.apps.media:TimeoutModule",
    "app_festival": "hookflash.tts.module:FestivalModule",
    "app_voicemail": "hookflash.voicemail.module:VoicemailModule",
    "app_meetme": "hookflash.conference.meetme:MeetMeModule",
    "app_confbridge": "hookflash.conference.confbridge:ConfBridgeModule",
    "func_devstate": "hookflash.engine.devstate:DevStateModule",
    "res_calendar": "hookflash.calendar.module:CalendarModule",
    "res_calendar_icalendar": "hookflash.calendar.ical:ICalModule",
    "res_calendar_caldav": "hookflash.calendar.caldav:CalDavModule",
    "res_calendar_ews": "hookflash.calendar.ews:EwsModule",
    "res_calendar_exchange": "hookflash.calendar.exchange:ExchangeModule",
    # last: the SIP port is opened when everything else is loaded, so the first request
    # is answered at once (phones retransmitted while the rest of the modules loaded);
    # call files are picked up once SIP can place them
    "chan_sip": "hookflash.sip.module:SipModule",
    "pbx_spool": "hookflash.apps.spool:SpoolModule",
}


def normalise(name: str) -> str:
    name = name.strip()
    return name[:-3] if name.endswith(".so") else name


class ModuleManager:
    def __init__(self, pbx: "Pbx", known: dict[str, str] | None = None) -> None:
        self.pbx = pbx
        self.known = dict(KNOWN_MODULES if known is None else known)
        self.loaded: dict[str, Module] = {}

    def register_known(self, name: str, target: str) -> None:
        self.known[name] = target

    def _class(self, name: str) -> type[Module]:
        target = self.known.get(name)
        if target is None:
            raise ModuleError(f"No such module '{name}.so'")
        path, _, cls = target.partition(":")
        return getattr(importlib.import_module(path), cls)  # type: ignore[no-any-return]

    async def load(self, name: str) -> Module:
        name = normalise(name)
        if name in self.loaded:
            raise ModuleError(f"Module '{name}.so' already loaded")
        module = self._class(name)(self.pbx)
        module.name = name
        registry = self.pbx.registry
        for app in module.applications():
            registry.add_application(_own(app, name))
        for func in module.functions():
            registry.add_function(_own(func, name))
        for cmd in module.commands():
            registry.add_command(_own(cmd, name))
        for driver in module.drivers():
            driver.module = name  # type: ignore[attr-defined]
            registry.add_driver(driver)
        self.loaded[name] = module
        try:
            await module.start()
        except Exception:
            registry.remove_module(name)
            del self.loaded[name]
            raise
        return module

    async def unload(self, name: str) -> None:
        name = normalise(name)
        module = self.loaded.get(name)
        if module is None:
            raise ModuleError(f"Module '{name}.so' is not loaded")
        if module.core:
            raise ModuleError(f"Module '{name}.so' is a core module and cannot be unloaded")
        await module.stop()
        self.pbx.registry.remove_module(name)
        del self.loaded[name]

    async def reload(self, name: str | None = None) -> list[str]:
        """Reload one module (or all); returns the messages to show."""
        names = [normalise(name)] if name else list(self.loaded)
        messages = []
        for mod_name in names:
            module = self.loaded.get(mod_name)
            if module is None:
                raise ModuleError(f"Module '{mod_name}.so' is not loaded")
            error = await module.reload()
            if error:
                messages.append(f"Module '{mod_name}.so' not reloaded: {error}")
        return messages

    async def load_from_config(self) -> None:
        """Load per modules.conf (everything known when there is none)."""
        conf = self.pbx.read_config("modules.conf", required=False)
        autoload, wanted, refused = True, [], set()
        if conf is not None:
            autoload = conf.get("modules", "autoload", "yes").lower() in ("yes", "true", "1", "on")
            for section in conf.sections_named("modules"):
                for var in section.variables:
                    key = var.name.lower()
                    if key in ("load", "preload", "require", "preload-require"):
                        wanted.append(normalise(var.value))
                    elif key == "noload":
                        refused.add(normalise(var.value))
        order = [m for m in self.known if autoload or m in wanted or self.known_core(m)]
        order += [m for m in wanted if m not in order]
        for name in order:
            if name in refused and not self.known_core(name):
                continue
            if name not in self.known:
                log.warning("modules.conf: unknown module '%s.so'", name)
                continue
            try:
                await self.load(name)
            except ModuleDeclined as exc:
                log.info("Module '%s.so' declined to load: %s", name, exc)
            except Exception as exc:  # one bad module must not stop the PBX
                log.error("Module '%s.so' failed to load: %s", name, exc)

    def known_core(self, name: str) -> bool:
        return name in ("core_cli", "pbx_builtins", "pbx_config", "chan_local", "res_astdb")


def _own(obj, module: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace
    return replace(obj, module=module)
