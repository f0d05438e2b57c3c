"""A conference room at run time: one task per room mixing its members every 20 ms.

The room task ticks on the event loop's clock: tick *n* is due at ``start + n * 20 ms``,
so the rate never drifts (a late tick runs at once and the next ones catch up; after a
stall of more than half a second the schedule is re-anchored instead of bursting). Each
tick it

1. takes every voice frame the members' channels queued (``Channel.media``) into the
   :class:`~hookflash.conference.mixer.Mixer`, and their DTMF into each member's event
   queue (the member's application handles digits: menus, exit keys);
2. notices members whose channel hung up and takes them out;
3. mixes one frame, and writes to every member, in this order of preference, a prompt
   played to that member alone, music on hold, or its mix.

Sounds for everyone (join/leave tones, "X has joined") go through an extra mixer
source that talks and does not listen. The room ends when its last member leaves; the
module that made it is told through ``on_empty`` (dynamic rooms disappear then; a
static room of meetme.conf is simply made again at the next join).

What a member may do (talk, listen, muted, waiting for the leader, music on hold) is
set by the application owning it (MeetMe or ConfBridge) through :meth:`Room.refresh`
and :meth:`Room.set_moh`; ``on_change`` lets that application react to joins and leaves
(leader arrives, last marked user leaves, someone is alone).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import Frame
from hookflash.conf import ConfigError
from hookflash.conference.mixer import Mixer
from hookflash.engine.modules import Module
from hookflash.media.files import SoundFileError, open_sound
from hookflash.media.stream import load_moh_classes, locate, loop_sounds, stop_generator
from hookflash.media.tone import tone_frames

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.conference")

TICK = 0.020
_MAX_BEHIND = 25  # ticks: further behind than this, re-anchor the schedule
_ANNOUNCER = "__announcer__"


@dataclass
class RoomStats:
    ticks: int = 0
    late: int = 0  # ticks that started more than one period after their due time
    busy: float = 0.0  # seconds spent inside ticks
    worst: float = 0.0  # longest tick, seconds


@dataclass(eq=False)
class Member:
    """One channel in a room, with what its application decided about it."""

    chan: Channel
    user_no: int
    joined: float = field(default_factory=time.time)
    marked: bool = False
    admin: bool = False
    talk: bool = True  # False: listen only
    listen: bool = True  # False: talk only
    self_muted: bool = False
    admin_muted: bool = False
    waiting: bool = False  # waiting for a marked user: not in the mix
    talker_detection: bool = False
    left: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # the application's own settings
    events: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    private: deque[tuple[Iterator[bytes], asyncio.Future[None]]] = field(default_factory=deque)
    moh: Iterator[bytes] | None = None

    @property
    def muted(self) -> bool:
        return self.self_muted or self.admin_muted

    def next_private(self) -> bytes | None:
        while self.private:
            frames, done = self.private[0]
            frame = next(frames, None)
            if frame is not None:
                return frame
            self.private.popleft()
            if not done.done():
                done.set_result(None)
        return None

    def finish_private(self) -> None:
        while self.private:
            _, done = self.private.popleft()
            if not done.done():
                done.set_result(None)


class Room:
    def __init__(self, pbx: Pbx, name: str, *, kind: str = "conference", dynamic: bool = True,
                 on_empty: Callable[[Room], None] | None = None,
                 on_change: Callable[[Room, Member, str], None] | None = None,
                 mixer: Mixer | None = None) -> None:
        self.pbx = pbx
        self.name = name
        self.kind = kind
        self.dynamic = dynamic
        self.created = time.time()
        self.mixer = mixer or Mixer()
        self.members: dict[int, Member] = {}
        self.locked = False
        self.pin = ""
        self.adminpin = ""
        self.options: dict[str, Any] = {}
        self.stats = RoomStats()
        self.closed = False
        self._on_empty = on_empty
        self._on_change = on_change
        self._numbers = itertools.count(1)
        self._announcements: deque[Iterator[bytes]] = deque()
        self._task: asyncio.Task[Any] | None = None

    # ------------------------------------------------------------------ membership
    def join(self, chan: Channel, **flags: Any) -> Member:
        """Put ``chan`` in the room (starting the room's task if needed)."""
        if self.closed:
            raise RuntimeError(f"conference {self.name} has ended")
        member = Member(chan, next(self._numbers), **flags)
        stop_generator(chan)  # nothing else writes to the channel while it is here
        chan.flush_media()
        self.members[member.user_no] = member
        self.mixer.add(member.user_no)
        self.refresh(member)
        if self._task is None:
            self._task = self.pbx.spawn(self._run(), name=f"conference {self.name}")
        self._changed(member, "join")
        return member

    def leave(self, member: Member) -> None:
        if member.left:
            return
        member.left = True
        member.finish_private()
        member.moh = None
        self.members.pop(member.user_no, None)
        self.mixer.remove(member.user_no)
        if not self.members:
            self.closed = True
            self._announcements.clear()
            if self._on_empty is not None:
                self._on_empty(self)
            return
        self._changed(member, "leave")

    def _changed(self, member: Member, what: str) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self, member, what)
            except Exception:
                log.exception("Conference %s: error handling %s of %s", self.name, what, member.chan.name)

    def refresh(self, member: Member) -> None:
        """Apply the member's flags to its place in the mixer."""
        part = self.mixer.participants.get(member.user_no)
        if part is None:
            return
        part.talk = member.talk
        part.muted = member.muted or member.waiting
        part.listen = member.listen and not member.waiting

    def kick(self, member: Member, reason: str = "kick") -> None:
        member.events.put_nowait((reason, ""))

    def find(self, user: str) -> list[Member]:
        """Members by user number, channel name (or its prefix), or all of them."""
        if user.lower() == "all":
            return list(self.members.values())
        if user.isdigit() and int(user) in self.members:
            return [self.members[int(user)]]
        exact = [m for m in self.members.values() if m.chan.name == user]
        return exact or [m for m in self.members.values() if m.chan.name.lower().startswith(user.lower())]

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def marked_count(self) -> int:
        return sum(1 for m in self.members.values() if m.marked)

    # ------------------------------------------------------------------ sounds
    def prompt_frames(self, chan: Channel, names: Iterable[str]) -> Iterator[bytes]:
        for name in names:
            found = locate(chan, name)
            if found is None:
                log.warning("File %s does not exist in any format", name)
                continue
            self.pbx.verbose(3, f"<{chan.name}> Playing '{name}.{found[1]}' (language '{chan.language}')")
            try:
                yield from open_sound(*found)
            except SoundFileError as exc:
                log.warning("Unable to play %s on %s: %s", name, chan.name, exc)

    async def play(self, member: Member, names: list[str] | Iterator[bytes]) -> None:
        """Play prompts (a list of names, or an iterator of frames) to one member,
        instead of its mix; returns when they have been sent, or the member left."""
        if member.left:
            return
        frames = self.prompt_frames(member.chan, names) if isinstance(names, list) else names
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        member.private.append((frames, done))
        await done

    def stop_prompts(self, member: Member) -> None:
        member.finish_private()

    def announce(self, frames: Iterable[bytes]) -> None:
        """Play frames to everyone in the room (queued after earlier announcements)."""
        if not self.closed:
            self._announcements.append(iter(frames))

    def announce_prompts(self, names: Iterable[str], chan: Channel) -> None:
        """Prompt files for everyone (looked up in ``chan``'s language)."""
        self.announce(self.prompt_frames(chan, list(names)))

    def set_moh(self, member: Member, on: bool, wanted: str = "") -> None:
        if not on:
            member.moh = None
        elif member.moh is None:
            member.moh = moh_frames(member.chan, wanted)

    # ------------------------------------------------------------------ the task
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        try:
            while not self.closed:
                n += 1
                due = start + n * TICK
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                behind = loop.time() - due
                if behind > TICK:
                    self.stats.late += 1
                    if behind > _MAX_BEHIND * TICK:
                        start += behind
                if self.closed:
                    break
                began = time.perf_counter()
                writes = self.tick()
                for chan, frame in writes:
                    try:
                        await chan.write_frame(frame)
                    except Exception:  # a broken leg ends that member only, not the room
                        log.exception("Conference %s: writing to %s failed; taking it out",
                                      self.name, chan.name)
                        for member in [m for m in self.members.values() if m.chan is chan]:
                            member.events.put_nowait(("hangup", ""))
                            self.leave(member)
                spent = time.perf_counter() - began
                self.stats.busy += spent
                self.stats.worst = max(self.stats.worst, spent)
        except Exception:
            log.exception("Conference %s: mixing stopped", self.name)
            for member in list(self.members.values()):
                member.events.put_nowait(("hangup", ""))
                self.leave(member)

    def tick(self) -> list[tuple[Channel, Frame]]:
        """One mixing period; returns the frames to write (the task writes them)."""
        self.stats.ticks += 1
        mixer = self.mixer
        for member in list(self.members.values()):
            chan = member.chan
            if chan.softhangup:
                member.events.put_nowait(("hangup", ""))
                self.leave(member)
                continue
            media = chan.media
            while not media.empty():
                frame = media.get_nowait()
                if frame.kind == "voice":
                    mixer.push(member.user_no, frame.payload)
            dtmf = chan.dtmf
            while not dtmf.empty():
                member.events.put_nowait(("dtmf", dtmf.get_nowait()))
        self._feed_announcement()
        outputs = mixer.tick()
        writes = []
        for member in self.members.values():
            data = member.next_private()
            if data is None and member.moh is not None:
                data = next(member.moh, None)
                if data is None:
                    member.moh = None
            if data is None:
                data = outputs.get(member.user_no)
            if data is not None:
                writes.append((member.chan, Frame("voice", data, len(data) // 2)))
        return writes

    def _feed_announcement(self) -> None:
        while self._announcements:
            frame = next(self._announcements[0], None)
            if frame is None:
                self._announcements.popleft()
                continue
            if _ANNOUNCER not in self.mixer:
                self.mixer.add(_ANNOUNCER, listen=False)
            self.mixer.push(_ANNOUNCER, frame)
            return
        if _ANNOUNCER in self.mixer:
            self.mixer.remove(_ANNOUNCER)


def moh_frames(chan: Channel, wanted: str = "") -> Iterator[bytes] | None:
    """Music on hold as musiconhold.conf (res_musiconhold's classes) defines it: the
    channel's class, else ``wanted``, else ``default``; None when nothing is playable."""
    classes = getattr(chan.pbx.modules.loaded.get("res_musiconhold"), "classes", None)
    if not isinstance(classes, dict):
        classes = load_moh_classes(None)
    for name in (chan.musicclass, wanted, "default"):
        moh = classes.get(name.lower()) if name else None
        if moh is None:
            continue
        names = moh.sounds(chan.pbx.dirs.astdatadir)
        if not names:
            chan.pbx.verbose(3, f"Files not found in {moh.directory} for moh class:{moh.name}")
            return None
        chan.pbx.verbose(3, f"Started music on hold, class '{moh.name}', on channel '{chan.name}'")
        return loop_sounds(chan, names, moh.sort)
    return None


def beep(freqs: Iterable[tuple[str, int]]) -> list[bytes]:
    """A short tone sequence: (frequency spec, frames) pairs."""
    frames: list[bytes] = []
    for spec, count in freqs:
        frames.extend(itertools.islice(tone_frames(spec, amplitude=6000), count))
    return frames


ENTER_TONE = beep([("600", 4), ("900", 6)])  # rising: someone joined (app_meetme's enter sound)
LEAVE_TONE = beep([("900", 4), ("600", 6)])  # falling: someone left


async def next_event(member: Member, timeout: float | None = None) -> tuple[str, str] | None:
    """The member's next event (``dtmf``, ``hangup``, ``kick``, ``leave``...), or None
    after ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(member.events.get(), timeout)
    except TimeoutError:
        return None


async def menu_digit(member: Member, timeout: float) -> str | None:
    """A digit for a menu; any other event is put back for the main loop."""
    event = await next_event(member, timeout)
    if event is None:
        return None
    if event[0] != "dtmf":
        member.events.put_nowait(event)
        return None
    return event[1]


class ConferenceModule(Module):
    """What MeetMe and ConfBridge share as modules: a config file parsed at start and on
    reload (a bad one keeps the running configuration), the live rooms by name, and
    everyone kicked out on unload."""

    config_file = ""

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.rooms: dict[str, Room] = {}

    def parse(self, conf: Any) -> Any:
        raise NotImplementedError

    async def start(self) -> None:
        self.config = self.parse(self.pbx.read_config(self.config_file))

    async def reload(self) -> str | None:
        try:
            self.config = self.parse(self.pbx.read_config(self.config_file))
        except ConfigError as exc:
            return str(exc)
        return None

    async def stop(self) -> None:
        for room in list(self.rooms.values()):
            for member in list(room.members.values()):
                room.kick(member)

    @property
    def use_count(self) -> int:
        return sum(r.count for r in self.rooms.values())
