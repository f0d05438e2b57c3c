"""Two-party bridges: relay media and DTMF between two answered channels.

A bridge lasts until one member hangs up. A member can be swapped for another
channel while the bridge runs (``swap``): that is how a Local channel pair takes
itself out of the path ("optimisation"), leaving the two outer channels bridged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel


class Bridge:
    def __init__(self, a: "Channel", b: "Channel") -> None:
        self.members = [a, b]
        a.bridge = b.bridge = self
        a.bridged, b.bridged = b, a
        self._wake: asyncio.Future[None] | None = None  # run() waits on it: a hangup or a swap
        self._relays: list[asyncio.Task[None]] = []
        self._native = False
        self.direct_media = True  # members may send media to each other directly (SIP directmedia)

    def peer_of(self, chan: "Channel") -> "Channel":
        return self.members[1] if self.members[0] is chan else self.members[0]

    def swap(self, old: "Channel", new: "Channel") -> None:
        """Put ``new`` where ``old`` is (``old`` leaves without hanging the bridge up)."""
        index = self.members.index(old)
        self.members[index] = new
        old.bridge = None
        new.bridge = self
        new.bridged = self.peer_of(new)
        self.peer_of(new).bridged = new
        self.wake()

    def wake(self) -> None:
        """A member hung up (Channel.request_hangup) or was swapped: run() looks again."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _relay(self, src: "Channel", dst: "Channel") -> None:
        while True:
            frame = await src.media.get()
            await dst.tech.write_frame(dst, frame)

    def _start_relays(self) -> None:
        a, b = self.members
        # either side may know how to relay with the other (a Motif leg relays with SIP)
        if a.tech.native_bridge(b.tech) or b.tech.native_bridge(a.tech):
            self._native = True
            return
        self._relays = [asyncio.ensure_future(self._relay(a, b)),
                        asyncio.ensure_future(self._relay(b, a))]

    def _stop_relays(self) -> None:
        if self._native:
            for chan in self.members:
                chan.tech.stop_native()
            self._native = False
        for task in self._relays:
            task.cancel()
        self._relays = []

    async def run(self) -> "Channel":
        """Bridge until a member hangs up; return the member that did."""
        for chan in list(self.members):
            chan.tech.on_bridged(chan)
        try:
            while True:
                a, b = self.members
                if a.softhangup:
                    return a
                if b.softhangup:
                    return b
                # one future woken by a callback, not a task per event to watch
                self._wake = asyncio.get_running_loop().create_future()
                self._start_relays()
                try:
                    await self._wake
                finally:
                    self._wake = None
                    self._stop_relays()
        finally:
            for chan in self.members:
                if chan.bridge is self:
                    chan.bridge = None
                    chan.bridged = None
