"""Local channels: ``Local/exten@context[/options]``.

A request makes a pair: ``Local/exten@context-XXXXXXXX;1`` goes to whoever asked for it
(Dial, Originate), ``;2`` runs the dialplan at exten@context when ``;1`` is called.
What happens on one half is reported on the other: answer, ringing, busy, congestion,
hangup, media frames and DTMF. ``;2`` receives every variable ``;1`` holds (the
inherited ones its requester passed) and the caller ID.

Optimisation: once ``;1`` is bridged to a channel A and ``;2`` to a channel B, the pair
takes itself out: A and B are bridged directly and both halves hang up. Option ``/n``
forbids it. (``/j`` and ``/m`` are accepted and ignored: there is no jitterbuffer or
music on hold yet.)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import Channel, ChannelState, ChannelTech, Control, Frame
from hookflash.engine.cdr import new_cdr
from hookflash.engine.modules import Module
from hookflash.engine.registry import CliArgs, CliCommand

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.local")


class LocalPair:
    def __init__(self, exten: str, context: str, options: str) -> None:
        self.exten = exten
        self.context = context
        self.options = options
        self.owner: Channel | None = None  # ;1
        self.chan: Channel | None = None  # ;2
        self.optimised = False

    @property
    def can_optimise(self) -> bool:
        return "n" not in self.options and not self.optimised


class LocalTech(ChannelTech):
    tech_name = "Local"

    def __init__(self, pair: LocalPair, side: int) -> None:
        self.pair = pair
        self.side = side

    def other(self) -> Channel | None:
        return self.pair.chan if self.side == 1 else self.pair.owner

    async def call(self, chan: Channel, dest: str, timeout: float) -> None:
        pair = self.pair
        two = pair.chan
        assert two is not None and self.side == 1
        two.vars.update(chan.vars)
        two.inherit.update(chan.inherit)
        two.caller = chan.caller.copy()
        two.language = chan.language
        two.accountcode = chan.accountcode
        two.linkedid = chan.linkedid
        two.state = ChannelState.RING
        new_cdr(two)
        chan.pbx.start_pbx(two)

    async def answer(self, chan: Channel) -> None:
        other = self.other()
        if self.side == 2 and other is not None and not other.softhangup:
            other.set_up()
            other.queue_control(Control.ANSWER)

    async def indicate(self, chan: Channel, control: Control) -> None:
        other = self.other()
        if self.side == 2 and other is not None and not other.softhangup:
            other.queue_control(control)

    async def hangup(self, chan: Channel) -> None:
        other = self.other()
        if other is not None and not other.softhangup and not self.pair.optimised:
            other.hangupcause = chan.hangupcause
            other.request_hangup(chan.hangupcause)
            if self.side == 2:
                other.queue_control(Control.HANGUP)

    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        other = self.other()
        if other is not None and not other.softhangup:
            other.queue_frame(frame)  # dropped when nobody reads, as a real line would

    async def send_digit(self, chan: Channel, digit: str, duration_ms: int) -> None:
        other = self.other()
        if other is not None:
            other.queue_dtmf(digit)

    def on_bridged(self, chan: Channel) -> None:
        try_optimise(chan)


def try_optimise(chan: Channel) -> bool:
    """Called when ``chan`` enters a bridge: if it is half of a Local pair whose other half
    is bridged too, join the two outer channels and drop the pair."""
    tech = chan.tech
    if not isinstance(tech, LocalTech) or not tech.pair.can_optimise:
        return False
    pair = tech.pair
    one, two = pair.owner, pair.chan
    if one is None or two is None:
        return False
    b1, b2 = one.bridge, two.bridge
    if b1 is None or b2 is None:
        return False
    outer_a, outer_b = b1.peer_of(one), b2.peer_of(two)
    if outer_a.softhangup or outer_b.softhangup:
        return False
    pair.optimised = True
    b1.swap(one, outer_b)
    chan.pbx.verbose(3, f"Local channel {one.name}/{two.name} optimised away: "
                        f"{outer_a.name} <-> {outer_b.name}")
    one.request_hangup()
    two.request_hangup()  # ends the Dial on ;2, which leaves outer_b alone (it moved)
    chan.pbx.spawn(one.hangup())
    return True


class LocalDriver:
    name = "Local"
    description = "Local Proxy Channel Driver"
    module = "chan_local"

    async def request(self, pbx: "Pbx", data: str, requestor: Channel | None) -> Channel:
        target, _, options = data.partition("/")
        exten, at, context = target.partition("@")
        if not at:
            context = "default"
        if not exten:
            raise LookupError(f"Local channel needs exten@context, got '{data}'")
        pair = LocalPair(exten, context, options)
        ident = pbx.next_id()
        base = f"Local/{exten}@{context}-{ident}"
        one = pbx.new_channel(f"{base};1", LocalTech(pair, 1), context=context, exten=exten)
        two = pbx.new_channel(f"{base};2", LocalTech(pair, 2), context=context, exten=exten)
        pair.owner, pair.chan = one, two
        return one


def _show_channels(args: CliArgs) -> str:
    lines = []
    for chan in args.pbx.channels:
        tech: Any = chan.tech
        if isinstance(tech, LocalTech) and tech.side == 1:
            lines.append(f"{chan.name} -- {tech.pair.exten}@{tech.pair.context}")
    if not lines:
        return "No local channels in use\n"
    return "\n".join(lines) + "\n"


class LocalModule(Module):
    description = "Local Proxy Channel Driver"
    core = True

    def drivers(self) -> list[object]:
        return [LocalDriver()]

    def commands(self) -> list[CliCommand]:
        return [CliCommand(("local", "show", "channels"), _show_channels, "List status of local channels",
                           "Usage: local show channels")]
