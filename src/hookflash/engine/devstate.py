"""Device state: what a device (``SIP/alice``, ``Calendar:work``, ``Custom:door``) is doing,
the hints that map extensions to devices, and the pushes that tell watchers.

A provider answers for every device whose name starts with its prefix (``Calendar:``,
``Custom:``, ``SIP/``); a provider that knows a change first (a calendar at an event's
start or end) pushes it with :meth:`DeviceStates.changed`, which caches it and calls
every subscriber. A device nobody provides for is ``INUSE`` while a channel of that
name exists (``SIP/alice-0000002a`` makes ``SIP/alice`` busy), else ``UNKNOWN`` when its
technology is registered and ``INVALID`` when it is not — Asterisk's fallback.

Hints: ``exten => 100,hint,Calendar:work&SIP/alice`` — the extension's state is the
aggregate of its devices (:func:`aggregate`), mapped to an extension state as
Asterisk's ``ast_devstate_to_extenstate`` does.

Module ``func_devstate``: ``DEVICE_STATE(device)`` (writable for ``Custom:`` devices,
kept in AstDB family ``CustomDevstate`` as Asterisk does), ``EXTENSION_STATE(exten[@context])``,
and the console commands ``core show hints``, ``devstate list``, ``devstate change``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from hookflash.engine.modules import Module
from hookflash.engine.registry import CliArgs, CliCommand, Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.devstate")


class DeviceState(enum.Enum):
    """Asterisk's device states, by the names DEVICE_STATE() returns."""

    UNKNOWN = "UNKNOWN"
    NOT_INUSE = "NOT_INUSE"
    INUSE = "INUSE"
    BUSY = "BUSY"
    INVALID = "INVALID"
    UNAVAILABLE = "UNAVAILABLE"
    RINGING = "RINGING"
    RINGINUSE = "RINGINUSE"
    ONHOLD = "ONHOLD"

    @classmethod
    def parse(cls, text: str) -> DeviceState | None:
        return cls.__members__.get(text.strip().upper())


class ExtensionState(enum.Enum):
    """Extension (hint) states: value = (EXTENSION_STATE() name, ``core show hints`` text)."""

    NOT_INUSE = ("NOT_INUSE", "Idle")
    INUSE = ("INUSE", "InUse")
    BUSY = ("BUSY", "Busy")
    UNAVAILABLE = ("UNAVAILABLE", "Unavailable")
    RINGING = ("RINGING", "Ringing")
    RINGINUSE = ("RINGINUSE", "InUse&Ringing")
    ONHOLD = ("ONHOLD", "Hold")
    HOLDINUSE = ("HOLDINUSE", "InUse&Hold")
    UNKNOWN = ("UNKNOWN", "Unknown")

    @property
    def func_name(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


_TO_EXTEN = {
    DeviceState.NOT_INUSE: ExtensionState.NOT_INUSE, DeviceState.UNKNOWN: ExtensionState.NOT_INUSE,
    DeviceState.INUSE: ExtensionState.INUSE, DeviceState.BUSY: ExtensionState.BUSY,
    DeviceState.UNAVAILABLE: ExtensionState.UNAVAILABLE, DeviceState.INVALID: ExtensionState.UNAVAILABLE,
    DeviceState.RINGING: ExtensionState.RINGING, DeviceState.RINGINUSE: ExtensionState.RINGINUSE,
    DeviceState.ONHOLD: ExtensionState.ONHOLD,
}


def aggregate(states: list[DeviceState]) -> DeviceState:
    """The state of several devices seen as one (a hint ``A&B``)."""
    have = set(states)
    if not have:
        return DeviceState.INVALID
    ringing = bool(have & {DeviceState.RINGING, DeviceState.RINGINUSE})
    in_use = bool(have & {DeviceState.INUSE, DeviceState.BUSY, DeviceState.RINGINUSE, DeviceState.ONHOLD})
    if ringing and in_use:
        return DeviceState.RINGINUSE
    if ringing:
        return DeviceState.RINGING
    for state in (DeviceState.BUSY, DeviceState.INUSE, DeviceState.ONHOLD, DeviceState.NOT_INUSE,
                  DeviceState.UNKNOWN, DeviceState.UNAVAILABLE):
        if state in have:
            return state
    return DeviceState.INVALID


Provider = Callable[[str], DeviceState]  # gets the whole device name
Subscriber = Callable[[str, DeviceState], None]


class DeviceStates:
    """The PBX's device-state table: providers, the cache of pushed states, subscribers."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.providers: dict[str, Provider] = {}  # lower-case prefix -> provider
        self.cache: dict[str, tuple[str, DeviceState]] = {}  # lower name -> (name, state)
        self.subscribers: list[Subscriber] = []

    # ---------------------------------------------------------------- providers
    def add_provider(self, prefix: str, provider: Provider) -> None:
        self.providers[prefix.lower()] = provider

    def remove_provider(self, prefix: str) -> None:
        self.providers.pop(prefix.lower(), None)
        for key in [k for k in self.cache if k.startswith(prefix.lower())]:
            del self.cache[key]

    def _provider(self, device: str) -> Provider | None:
        low = device.lower()
        best = ""
        for prefix in self.providers:
            if low.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.providers.get(best) if best else None

    # ---------------------------------------------------------------- queries
    def state(self, device: str) -> DeviceState:
        device = device.strip()
        cached = self.cache.get(device.lower())
        if cached is not None:
            return cached[1]
        provider = self._provider(device)
        if provider is not None:
            try:
                return provider(device)
            except Exception:
                log.exception("Device state provider failed for '%s'", device)
                return DeviceState.UNKNOWN
        return self._from_channels(device)

    def _from_channels(self, device: str) -> DeviceState:
        tech, slash, _ = device.partition("/")
        if not slash or self.pbx.registry.driver(tech) is None:
            return DeviceState.INVALID
        prefix = device.lower() + "-"
        if any(c.name.lower().startswith(prefix) for c in self.pbx.channels):
            return DeviceState.INUSE
        return DeviceState.UNKNOWN

    def hint_devices(self, hint: str) -> list[str]:
        return [d.strip() for d in hint.split("&") if d.strip()]

    def extension_state(self, context: str, exten: str) -> ExtensionState | None:
        """The hint's state, or None when the extension has no hint."""
        hint = self.pbx.dialplan.hint(context, exten)
        if hint is None:
            return None
        devices = self.hint_devices(hint)
        return _TO_EXTEN[aggregate([self.state(d) for d in devices])]

    # ---------------------------------------------------------------- pushes
    def changed(self, device: str, state: DeviceState, cachable: bool = True) -> None:
        """A provider reports a new state: cache it (unless not cachable) and tell subscribers."""
        key = device.lower()
        previous = self.cache.get(key)
        if cachable:
            self.cache[key] = (device, state)
        else:
            self.cache.pop(key, None)
        if previous is not None and previous[1] == state:
            return
        log.debug("Device state of %s is now %s", device, state.value)
        for subscriber in list(self.subscribers):
            try:
                subscriber(device, state)
            except Exception:
                log.exception("Device state subscriber failed for '%s'", device)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(device, state)`` at each change; returns the unsubscribe function."""
        self.subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)
        return unsubscribe

    def watch_hint(self, context: str, exten: str,
                   callback: Callable[[ExtensionState], None]) -> Callable[[], None]:
        """Call ``callback(state)`` whenever a device of the extension's hint changes."""
        last: list[ExtensionState | None] = [self.extension_state(context, exten)]

        def on_change(device: str, state: DeviceState) -> None:
            hint = self.pbx.dialplan.hint(context, exten)
            if hint is None or device.lower() not in (d.lower() for d in self.hint_devices(hint)):
                return
            now = self.extension_state(context, exten)
            if now is not None and now != last[0]:
                last[0] = now
                callback(now)
        return self.subscribe(on_change)


def device_states(pbx: Pbx) -> DeviceStates:
    """The PBX's device-state table (created on first use)."""
    table = getattr(pbx, "device_states", None)
    if table is None:
        table = DeviceStates(pbx)
        pbx.device_states = table
    return table


# ---------------------------------------------------------------------- SIP peers
def sip_peer_state(pbx: Pbx, device: str) -> DeviceState:
    """``SIP/<peer>``: UNAVAILABLE when unregistered/unreachable, INUSE with a call, else NOT_INUSE."""
    module = pbx.modules.loaded.get("chan_sip")
    stack = getattr(module, "stack", None)
    if stack is None:
        return DeviceState.UNAVAILABLE
    name = device.partition("/")[2]
    peer = stack.peers.get(name)
    if peer is None:
        return DeviceState.INVALID
    if peer.reachable_addr() is None or peer.lastms == 0:
        return DeviceState.UNAVAILABLE
    in_call = peer.calls > 0 or any(c.name.lower().startswith(f"sip/{name.lower()}-") for c in pbx.channels)
    return DeviceState.INUSE if in_call else DeviceState.NOT_INUSE


# ---------------------------------------------------------------------- dialplan functions
def _custom_key(device: str) -> str:
    return device.partition(":")[2]


class DevStateModule(Module):
    description = "Gets or sets a device state in the dialplan"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.table = device_states(pbx)

    async def start(self) -> None:
        self.table.add_provider("Custom:", self._custom_state)
        self.table.add_provider("SIP/", lambda device: sip_peer_state(self.pbx, device))

    async def stop(self) -> None:
        self.table.remove_provider("Custom:")
        self.table.remove_provider("SIP/")

    def _custom_state(self, device: str) -> DeviceState:
        db = self.pbx.astdb
        value = db.get("CustomDevstate", _custom_key(device)) if db is not None else None
        return DeviceState.parse(value or "") or DeviceState.UNKNOWN

    def _read_device(self, chan: Channel | None, args: str) -> str:
        if not args.strip():
            log.warning("DEVICE_STATE requires an argument")
            return ""
        return self.table.state(args).value

    def _write_device(self, chan: Channel | None, args: str, value: str) -> None:
        device = args.strip()
        if not device.lower().startswith("custom:") or not _custom_key(device):
            log.warning("The DEVICE_STATE function can only be used to set 'Custom:' device state!")
            return
        state = DeviceState.parse(value)
        if state is None:
            log.warning("DEVICE_STATE: unknown state '%s' for %s; expected one of %s", value, device,
                        ", ".join(DeviceState.__members__))
            state = DeviceState.UNKNOWN
        if self.pbx.astdb is not None:
            self.pbx.astdb.put("CustomDevstate", _custom_key(device), state.value)
        self.table.changed(device, state)

    def _read_extension(self, chan: Channel | None, args: str) -> str:
        exten, _, context = args.strip().partition("@")
        if not exten:
            log.warning("EXTENSION_STATE requires an extension")
            return ""
        if not context:
            context = chan.context if chan is not None else "default"
        state = self.table.extension_state(context, exten)
        return (state or ExtensionState.UNKNOWN).func_name

    def functions(self) -> list[Function]:
        return [
            Function("DEVICE_STATE", self._read_device, self._write_device,
                     "Get or Set a device state.", "DEVICE_STATE(device)",
                     "Reads the state of any device (SIP/peer, Calendar:name, Custom:name); "
                     "writes Custom: devices."),
            Function("EXTENSION_STATE", self._read_extension, None,
                     "Get an extension's state.", "EXTENSION_STATE(extension[@context])",
                     "The state of the extension's hint: UNKNOWN, NOT_INUSE, INUSE, BUSY, "
                     "UNAVAILABLE, RINGING, RINGINUSE, HOLDINUSE, ONHOLD."),
        ]

    # ------------------------------------------------------------------ console
    def _hints(self, args: CliArgs) -> str:
        rows = []
        dialplan = self.pbx.dialplan
        for cname in sorted(dialplan.contexts):
            for exten in sorted(dialplan.contexts[cname].extensions):
                hint = dialplan.hint(cname, exten)
                if hint is None:
                    continue
                state = self.table.extension_state(cname, exten) or ExtensionState.UNKNOWN
                rows.append(f"{f'{exten}@{cname}':<20.20s}: {hint:<20.20s}  State:{state.text:<15.15s} "
                            f"Presence:{'not_set':<15.15s} Subtype:{'':<15.15s} Message:{'':s} "
                            f"Watchers {0:2d}")
        if not rows:
            return "There are no registered dialplan hints\n"
        return ("\n    -= Registered Asterisk Dial Plan Hints =-\n" + "\n".join(rows) +
                f"\n----------------\n- {len(rows)} hints registered\n")

    def _list(self, args: CliArgs) -> str:
        out = ["", "---------------------------------------------------------------------",
               "--- Device States ---------------------------------------------------",
               "---------------------------------------------------------------------", "---"]
        for _, (name, state) in sorted(self.table.cache.items()):
            out.append(f"--- Name: '{name}'  State: '{state.value}'")
        out += ["---------------------------------------------------------------------",
                "---------------------------------------------------------------------", ""]
        return "\n".join(out) + "\n"

    def _change(self, args: CliArgs) -> str:
        if len(args.argv) != 2:
            return "Usage: devstate change <device> <state>\n"
        device, value = args.argv
        if not device.lower().startswith("custom:"):
            return "The devstate command can only be used to set 'Custom:' device state!\n"
        if DeviceState.parse(value) is None:
            return f"Unknown device state '{value}'\n"
        self._write_device(None, device, value)
        return f"Changing {device} to {value.upper()}\n"

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("core", "show", "hints"), self._hints, "Show dialplan hints",
                       "Usage: core show hints\n       List registered hints."),
            CliCommand(("devstate", "list"), self._list, "List cached device states",
                       "Usage: devstate list\n       List the device states pushed by providers."),
            CliCommand(("devstate", "change"), self._change, "Change a custom device state",
                       "Usage: devstate change <device> <state>"),
        ]
