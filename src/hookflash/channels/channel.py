"""The Channel: one leg of a call, whatever technology carries it.

A channel has a state (Asterisk's ``ast_state``), dialplan position, variables with
``_``/``__`` inheritance, a CDR, datastores, a queue of control events (ringing,
answer, busy, hangup...) read by whoever placed the call, a DTMF queue and a media
interface. The technology-specific half lives in a :class:`ChannelTech` object: the
engine never looks inside it, so a SIP driver plugs in by implementing that interface.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hookflash.engine.cdr import Cdr
    from hookflash.engine.pbx import Pbx


class ChannelState(enum.IntEnum):
    """Asterisk's channel states, with the names ``core show channels`` prints."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7

    @property
    def text(self) -> str:
        return {0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring",
                5: "Ringing", 6: "Up", 7: "Busy"}[self.value]


class Control(enum.Enum):
    """Events a channel driver reports about an outgoing call."""

    RINGING = "ringing"
    PROGRESS = "progress"
    ANSWER = "answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    HANGUP = "hangup"


class HangupCause(enum.IntEnum):
    """Q.850 causes, as HANGUPCAUSE reports them."""

    UNALLOCATED = 1
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    CALL_REJECTED = 21
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    NORMAL_UNSPECIFIED = 31
    CONGESTION = 34
    CHANNEL_UNACCEPTABLE = 6
    NOT_DEFINED = 0


@dataclass
class CallerId:
    num: str = ""
    name: str = ""
    ani: str = ""
    dnid: str = ""
    rdnis: str = ""
    pres: str = "allowed_not_screened"
    ton: int = 0

    def all(self) -> str:
        if self.name and self.num:
            return f'"{self.name}" <{self.num}>'
        if self.name:
            return f'"{self.name}" <>'
        return f"<{self.num}>" if self.num else ""

    def copy(self) -> "CallerId":
        return CallerId(self.num, self.name, self.ani, self.dnid, self.rdnis, self.pres, self.ton)


@dataclass(frozen=True, slots=True)
class Frame:
    """A media frame: ``kind`` is 'voice' (payload = 16-bit signed linear 8 kHz),
    'dtmf' (payload = the digit as bytes) or 'control'."""

    kind: str
    payload: bytes = b""
    samples: int = 0


class ChannelTech:
    """The technology half of a channel. Drivers subclass it; the default does nothing,
    which is what an offline (``dialplan try``) channel needs."""

    tech_name = "Null"

    async def call(self, chan: "Channel", dest: str, timeout: float) -> None:
        """Start the outgoing call; report progress with ``chan.queue_control``."""

    async def answer(self, chan: "Channel") -> None:
        """Answer an incoming call."""

    async def hangup(self, chan: "Channel") -> None:
        """Tear the call down on the wire."""

    async def indicate(self, chan: "Channel", control: Control) -> None:
        """Send ringing/progress/busy/congestion to the far end."""

    async def write_frame(self, chan: "Channel", frame: Frame) -> None:
        """Send a frame of media (or DTMF) to the far end."""

    async def send_digit(self, chan: "Channel", digit: str, duration_ms: int) -> None:
        """Send one DTMF digit."""

    def on_bridged(self, chan: "Channel") -> None:
        """The channel just entered a bridge (Local channels optimise themselves here)."""

    def native_bridge(self, other: "ChannelTech") -> bool:
        """Start moving media straight between this leg and ``other`` without the
        bridge's frame relay (e.g. RTP forwarded as is); False if not possible."""
        return False

    def stop_native(self) -> None:
        """Undo native_bridge."""


DEAD_TECH = ChannelTech()  # what a hung-up channel is left with
_sequence = itertools.count()


class Channel:
    """One call leg. Created by a driver; run by the PBX's dialplan executor."""

    def __init__(self, pbx: "Pbx", name: str, tech: ChannelTech | None = None, *,
                 context: str = "default", exten: str = "s", priority: int = 1,
                 state: ChannelState = ChannelState.DOWN,
                 language: str = "en", accountcode: str = "") -> None:
        now = time.time()
        self.pbx = pbx
        self.name = name
        self.tech = tech or ChannelTech()
        self.uniqueid = f"{now:.6f}".replace(".", "")[:-2] + f".{next(_sequence)}"
        self.linkedid = self.uniqueid
        self.created = now
        self.context = context
        self.exten = exten
        self.priority = priority
        self.state = state
        self.language = language
        self.accountcode = accountcode
        self.musicclass = ""
        self.caller = CallerId()
        self.connected = CallerId()
        self.vars: dict[str, str] = {}
        self.inherit: dict[str, int] = {}  # name -> 1 (_VAR) or 2 (__VAR)
        self.datastores: dict[str, Any] = {}
        self.hangupcause = 0
        self.appl = ""  # application running now
        self.data = ""  # its argument
        self.cdr: "Cdr | None" = None
        self.bridged: "Channel | None" = None  # the channel on the other side of our bridge
        self.bridge: Any = None  # the Bridge we are in
        self.in_pbx = False
        self.jumped = False  # a Goto moved the dialplan position
        self.stack: list[tuple[str, str, int, dict[str, str] | None]] = []  # Gosub frames
        self.hung_up = False
        self.hangup_event = asyncio.Event()
        self.controls: asyncio.Queue[Control] = asyncio.Queue()
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()
        self.media: asyncio.Queue[Frame] = asyncio.Queue(maxsize=100)
        self.softhangup = False
        self.waiters: list[asyncio.Future[None]] = []  # woken by a control or a hangup (see wake_on)
        self.current: Any = None  # the Priority being run
        self.dialplan: Any = None  # the Dialplan this call runs on (kept across reloads)

    # ------------------------------------------------------------------ variables
    def set_var(self, name: str, value: str | None) -> None:
        """``Set(NAME=value)`` semantics: leading ``_``/``__`` mark inheritance;
        ``None`` or an empty value... sets empty (Asterisk deletes on NULL only)."""
        level = 0
        if name.startswith("_"):
            level = 2 if name.startswith("__") else 1
            name = name.lstrip("_")
        if value is None:
            self.vars.pop(name, None)
            self.inherit.pop(name, None)
            return
        self.vars[name] = value
        if level:
            self.inherit[name] = level
        elif name in self.inherit:
            del self.inherit[name]

    def get_var(self, name: str) -> str | None:
        """A variable as ``${NAME}`` reads it: built-ins, then channel, then global."""
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self)
        value = self.vars.get(name)
        if value is None:
            value = self.pbx.globals.get(name)
        return value

    def inheritable(self) -> dict[str, tuple[str, int]]:
        """Variables a channel created from this one receives: ``__X`` stays ``__X``,
        ``_X`` becomes plain ``X``."""
        return {n: (self.vars[n], lvl) for n, lvl in self.inherit.items() if n in self.vars}

    def inherit_from(self, parent: "Channel") -> None:
        for name, (value, level) in parent.inheritable().items():
            self.vars[name] = value
            if level == 2:
                self.inherit[name] = 2

    # ------------------------------------------------------------------ dialplan position
    def goto(self, context: str | None, exten: str | None, priority: int) -> None:
        if context:
            self.context = context
        if exten:
            self.exten = exten
        self.priority = priority
        self.jumped = True

    def dialplan_for_lookup(self) -> Any:
        return self.dialplan if self.dialplan is not None else self.pbx.dialplan

    @property
    def location(self) -> str:
        return f"{self.exten}@{self.context}:{self.priority}"

    # ------------------------------------------------------------------ call control
    def queue_control(self, control: Control) -> None:
        self.controls.put_nowait(control)
        if self.waiters:
            self._wake_waiters()

    def wake_on(self, future: "asyncio.Future[None]") -> None:
        """Resolve ``future`` at the next control queued or at hangup: one future can
        watch several channels (Dial's legs and its caller) with no task per channel.
        The owner removes it from ``waiters`` when done."""
        self.waiters.append(future)

    def _wake_waiters(self) -> None:
        for future in self.waiters:
            if not future.done():
                future.set_result(None)

    def queue_dtmf(self, digit: str) -> None:
        self.dtmf.put_nowait(digit)

    async def answer(self) -> None:
        if self.state == ChannelState.UP:
            return
        await self.tech.answer(self)
        self.set_up()

    def set_up(self) -> None:
        """Mark the channel answered (a driver calls this when the far end answers)."""
        if self.state != ChannelState.UP:
            self.state = ChannelState.UP
            if self.cdr is not None:
                self.cdr.mark_answered()

    async def indicate(self, control: Control) -> None:
        if control == Control.RINGING and self.state != ChannelState.UP:
            self.state = ChannelState.RINGING
        await self.tech.indicate(self, control)

    def request_hangup(self, cause: int = HangupCause.NORMAL_CLEARING) -> None:
        """Ask the channel to hang up: the executor stops at the next priority and
        anything waiting on this channel wakes."""
        if not self.softhangup:
            self.softhangup = True
            if not self.hangupcause:
                self.hangupcause = int(cause)
            self.hangup_event.set()
            if self.bridge is not None:
                self.bridge.wake()
            if self.waiters:
                self._wake_waiters()

    async def hangup(self, cause: int = HangupCause.NORMAL_CLEARING) -> None:
        """Tear the channel down (idempotent)."""
        if self.hung_up:
            return
        self.request_hangup(cause)
        self.hung_up = True
        try:
            await self.tech.hangup(self)
        finally:
            self.controls.put_nowait(Control.HANGUP)
            self.pbx.channels.remove(self)
            # the technology half points back at us (SIP call, Local pair): drop it so
            # reference counting frees the call now, not a later full GC pass
            self.tech = DEAD_TECH

    async def wait(self, seconds: float) -> bool:
        """Sleep unless the channel hangs up first; True if still up."""
        if self.softhangup:
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self.hangup_event.wait(), seconds)
        except TimeoutError:
            return True
        return False

    # ------------------------------------------------------------------ media
    async def write_frame(self, frame: Frame) -> None:
        """Send a frame (signed-linear 8 kHz voice, 20 ms = 160 samples) to the far end."""
        if not self.softhangup:
            await self.tech.write_frame(self, frame)

    async def read_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame from the far end, or None on timeout or hangup."""
        return await self._next(self.media, timeout)

    async def _next(self, queue: "asyncio.Queue[Any]", timeout: float | None) -> Any:
        """The next item of ``queue``, or None on timeout (None = wait forever) or hangup."""
        if self.softhangup:
            return None
        if not queue.empty():
            return queue.get_nowait()
        getter = asyncio.ensure_future(queue.get())
        hangup = asyncio.ensure_future(self.hangup_event.wait())
        try:
            done, _ = await asyncio.wait({getter, hangup}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return None

    def queue_frame(self, frame: Frame) -> None:
        """A driver hands an incoming frame over; dropped if nobody reads (queue full)."""
        try:
            self.media.put_nowait(frame)
        except asyncio.QueueFull:
            pass

    def flush_media(self) -> None:
        """Forget frames that arrived before now (e.g. before recording starts)."""
        while not self.media.empty():
            self.media.get_nowait()

    async def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        if not self.softhangup:
            await self.tech.send_digit(self, digit, duration_ms)

    async def wait_digit(self, timeout: float) -> str | None:
        """The next DTMF digit, or None on timeout (a negative timeout waits forever) or hangup."""
        return await self._next(self.dtmf, timeout if timeout >= 0 else None)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Channel {self.name} {self.state.text} {self.location}>"


def _epoch(chan: Channel) -> str:
    return str(int(time.time()))


_BUILTINS = {
    "EXTEN": lambda c: c.exten,
    "CONTEXT": lambda c: c.context,
    "PRIORITY": lambda c: str(c.priority),
    "CHANNEL": lambda c: c.name,
    "UNIQUEID": lambda c: c.uniqueid,
    "HANGUPCAUSE": lambda c: str(c.hangupcause),
    "LANGUAGE": lambda c: c.language,
    "EPOCH": _epoch,
    "CALLERID": lambda c: c.caller.all(),
    "CALLERIDNUM": lambda c: c.caller.num,
    "CALLERIDNAME": lambda c: c.caller.name,
    "CALLERANI": lambda c: c.caller.ani,
    "DNID": lambda c: c.caller.dnid,
    "RDNIS": lambda c: c.caller.rdnis,
    "SYSTEMNAME": lambda c: c.pbx.systemname,
    "ACCOUNTCODE": lambda c: c.accountcode,
}
