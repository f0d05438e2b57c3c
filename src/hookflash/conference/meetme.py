"""app_meetme: ``MeetMe(confno[,options[,pin]])``, ``MEETME_INFO()``, meetme.conf and
the ``meetme`` console commands, over the shared mixer (:mod:`.room`).

meetme.conf: ``[rooms]`` with ``conf => confno[,pin[,adminpin]]`` lines (static
rooms; entering the admin PIN makes the caller an admin). A room exists at run time
while someone is in it; ``d``/``D`` create rooms not in the file.

Options, as app_meetme documents them:

=====  =================================================================
``a``  admin (``s`` gives the admin menu)
``A``  marked user
``c``  announce the number of users on joining
``C``  continue in the dialplan when kicked (else the call hangs up)
``d``  create the room dynamically if it does not exist
``D``  same, asking for a PIN to protect it (the third argument if given)
``l``  listen only
``m``  join muted
``M``  music on hold when alone in the room (``M(class)``)
``p``  leave on ``#`` (``p(keys)``: on any of those keys)
``q``  quiet: no enter/leave sounds, no "only person" and "wait for leader" prompts
``s``  menu on ``*``: users 1 toggle mute, 8 leave the menu; admins also 2 lock/unlock
       and 3 eject the last user
``t``  talk only
``T``  talker detection (``meetme list`` shows "(talking)")
``w``  wait, hearing music on hold, until a marked user joins
``x``  leave when the last marked user leaves
``1``  no "you are the only person" prompt for the first caller
``S(x)`` leave after x seconds
=====  =================================================================

When the leader (a marked user) arrives, waiting users hear "conf-placeintoconf" and
join the mix; when the last leader leaves, ``x`` users leave and ``w`` users hear
"conf-leaderhasleft" and wait again with music on hold. Enter and leave sounds are
short rising and falling tones played into the room.

Compatible choices: ``meetme list``, ``meetme kick``, ``meetme mute|unmute`` and
``meetme lock|unlock`` keep app_meetme's output layouts (kick and mute print nothing
on success, as there). Left out: recording (``r``), AGI (``b``), per-user volume keys,
name announcements (``i``/``I``), ``e``/``E`` (pick an empty room), ``F``, ``X``, ``L``,
``o``, ``P`` (accepted and ignored), realtime/scheduled conferences, SLA.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hookflash.apps.media import parse_options
from hookflash.channels.channel import ChannelState
from hookflash.conference.room import (
    ENTER_TONE,
    LEAVE_TONE,
    ConferenceModule,
    Member,
    Room,
    menu_digit,
    next_event,
)
from hookflash.dialplan.args import split_args
from hookflash.engine.registry import Application, CliArgs, CliCommand, Function
from hookflash.media import say
from hookflash.media.stream import getdata

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.conf import ConfigFile

log = logging.getLogger("hookflash.app.meetme")

PIN_TRIES = 3


@dataclass(frozen=True, slots=True)
class StaticRoom:
    confno: str
    pin: str = ""
    adminpin: str = ""


@dataclass(frozen=True, slots=True)
class MeetMeConfig:
    rooms: dict[str, StaticRoom] = field(default_factory=dict)


def parse_config(conf: ConfigFile | None) -> MeetMeConfig:
    """meetme.conf's ``[rooms]``; raises ConfigError naming the bad line."""
    rooms: dict[str, StaticRoom] = {}
    if conf is None:
        return MeetMeConfig(rooms)
    for section in conf.sections_named("rooms"):
        for var in section.variables:
            if var.name.lower() != "conf":
                continue
            parts = [p.strip() for p in var.value.split(",")]
            if not parts[0] or not re.fullmatch(r"[^\s,]+", parts[0]) or len(parts) > 3:
                raise var.error(f"bad room definition '{var.value}'", "conf => confno[,pin[,adminpin]]")
            parts += [""] * (3 - len(parts))
            rooms[parts[0]] = StaticRoom(parts[0], parts[1], parts[2])
    return MeetMeConfig(rooms)


class MeetMeModule(ConferenceModule):
    description = "MeetMe conference bridge"
    config_file = "meetme.conf"

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.config = MeetMeConfig()

    def parse(self, conf: Any) -> Any:
        return parse_config(conf)

    def applications(self) -> list[Application]:
        return [Application(
            "MeetMe", self.app_meetme, "MeetMe conference bridge.", "MeetMe([confno][,options][,pin])",
            "Enters the user into a specified MeetMe conference. Options: a A c C d D l m M(class) p(keys) "
            "q s t T w x 1 S(x); see docs/conferences.md.")]

    def functions(self) -> list[Function]:
        return [Function("MEETME_INFO", self.func_info, None, "Query a given conference of various properties.",
                         "MEETME_INFO(keyword,confno)", "keyword: lock, parties, activity or dynamic.")]

    def commands(self) -> list[CliCommand]:
        complete = self._complete
        return [
            CliCommand(("meetme", "list"), self.cli_list, "List all conferences or a specific conference.",
                       "Usage: meetme list [<confno>] [concise]\n       List all conferences or a specific "
                       "conference.\n", complete),
            CliCommand(("meetme", "kick"), self.cli_kick, "Kick a conference or a user in a conference.",
                       "Usage: meetme kick <confno> all|<userno>\n       Kick a conference or a user in a "
                       "conference.\n", complete),
            CliCommand(("meetme", "mute"), self.cli_mute, "Mute or unmute a conference or a user in a conference.",
                       "Usage: meetme mute|unmute <confno> all|<userno>\n", complete),
            CliCommand(("meetme", "unmute"), self.cli_unmute, "Mute or unmute a conference or a user in a "
                       "conference.", "Usage: meetme mute|unmute <confno> all|<userno>\n", complete),
            CliCommand(("meetme", "lock"), self.cli_lock, "Lock or unlock a conference to new users.",
                       "Usage: meetme lock|unlock <confno>\n", complete),
            CliCommand(("meetme", "unlock"), self.cli_unlock, "Lock or unlock a conference to new users.",
                       "Usage: meetme lock|unlock <confno>\n", complete),
        ]

    def _complete(self, pbx: Any, words: list[str], word: str) -> list[str]:
        return sorted(n for n in self.rooms if n.startswith(word))

    # ------------------------------------------------------------------ rooms
    def _room(self, confno: str, dynamic: bool) -> Room:
        room = self.rooms.get(confno)
        if room is None:
            room = Room(self.pbx, confno, kind="meetme", dynamic=dynamic,
                        on_empty=self._ended, on_change=self._changed)
            static = self.config.rooms.get(confno)
            if static is not None:
                room.pin, room.adminpin = static.pin, static.adminpin
            self.rooms[confno] = room
            self.pbx.verbose(3, f"Created MeetMe conference {confno}")
        return room

    def _ended(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        self.pbx.verbose(3, f"MeetMe conference {room.name} ended")

    def _changed(self, room: Room, who: Member, what: str) -> None:
        """Keep waiting/music-on-hold states right after a join or a leave."""
        marked = room.marked_count
        if what == "leave" and who.marked and marked == 0:
            for member in room.members.values():
                if "x" in member.options:
                    room.kick(member, "leaderleft")
        for member in room.members.values():
            opts = member.options
            waiting = "w" in opts and not member.marked and marked == 0
            if waiting != member.waiting:
                member.waiting = waiting
                room.refresh(member)
                if "q" not in opts and member is not who:
                    member.finish_private()  # "wait for the leader" is over, or moot
                    prompt = "conf-leaderhasleft" if waiting else "conf-placeintoconf"
                    member.private.append((room.prompt_frames(member.chan, [prompt]),
                                           asyncio.get_running_loop().create_future()))
            alone = "M" in opts and room.count == 1
            room.set_moh(member, waiting or alone, opts.get("M") or "")

    # ------------------------------------------------------------------ MeetMe()
    async def app_meetme(self, chan: Channel, data: str) -> int | None:
        parts = split_args(data)
        confno, options, pin = (parts + ["", "", ""])[:3]
        confno, pin = confno.strip(), pin.strip()
        opts = parse_options(options.strip())
        if chan.state != ChannelState.UP:
            await chan.answer()
        tries = 0
        while not confno:
            if tries >= 3 or chan.softhangup:
                return -1
            tries += 1
            _, confno = await getdata(chan, "conf-getconfno", 20, 0)
            confno = confno.strip()
        known = confno in self.rooms or confno in self.config.rooms
        if not known and not ("d" in opts or "D" in opts):
            self.pbx.verbose(3, f"MeetMe conference {confno} does not exist")
            await self._prompt(chan, ["conf-invalid"])
            return -1 if chan.softhangup else None
        admin = "a" in opts
        existing = self.rooms.get(confno)
        static = self.config.rooms.get(confno)
        creating = existing is None and static is None
        if creating and "D" in opts and not pin:
            _, pin = await getdata(chan, "conf-getpin", 20, 0)
        if creating:
            room = self._room(confno, dynamic=True)
            room.pin = pin if "D" in opts else ""
        else:
            room_pin = existing.pin if existing is not None else static.pin if static else ""
            adminpin = existing.adminpin if existing is not None else static.adminpin if static else ""
            if room_pin or adminpin:
                entered = await self._check_pin(chan, pin, room_pin, adminpin)
                if entered is None:
                    return -1
                admin = admin or (bool(adminpin) and entered == adminpin)
            room = self._room(confno, dynamic=existing.dynamic if existing is not None else False)
        if room.locked and not admin:
            await self._prompt(chan, ["conf-locked"])
            return -1 if chan.softhangup else None
        return await self._run(chan, room, opts, admin)

    async def _prompt(self, chan: Channel, names: list[str]) -> None:
        from hookflash.media.stream import SoundNotFound, play_file
        for name in names:
            try:
                await play_file(chan, name)
            except SoundNotFound:
                log.warning("File %s does not exist in any format", name)
            if chan.softhangup:
                return

    async def _check_pin(self, chan: Channel, given: str, pin: str, adminpin: str) -> str | None:
        """The PIN entered (the argument, else asked up to three times), or None."""
        for attempt in range(PIN_TRIES):
            entered = given if attempt == 0 and given else None
            if entered is None:
                _, entered = await getdata(chan, "conf-getpin", 20, 0)
                if chan.softhangup:
                    return None
            if entered and entered in (pin, adminpin):
                return entered
            if not pin and not entered:  # only an admin PIN: an empty entry joins as a user
                return ""
            await self._prompt(chan, ["conf-invalidpin"])
            if chan.softhangup:
                return None
        return None

    async def _run(self, chan: Channel, room: Room, opts: dict[str, str | None], admin: bool) -> int | None:
        quiet = "q" in opts
        member = room.join(chan, marked="A" in opts, admin=admin, talk="l" not in opts,
                           listen="t" not in opts, admin_muted="m" in opts,
                           talker_detection="T" in opts, options=opts)
        self.pbx.verbose(3, f"{chan.name} joined MeetMe conference {room.name} as user {member.user_no}")
        chan.set_var("MEETMEUNIQUEID", chan.uniqueid)
        try:
            reason = await self._stay(room, member, opts)
        finally:
            room.leave(member)
        if not quiet and not room.closed:
            room.announce(LEAVE_TONE)
        self.pbx.verbose(3, f"{chan.name} left MeetMe conference {room.name}")
        if chan.softhangup:
            return -1
        if reason in ("kick", "leaderleft") and "C" not in opts:
            return -1
        return None

    async def _stay(self, room: Room, member: Member, opts: dict[str, str | None]) -> str:
        """From joining to leaving: prompts, then events until hangup, kick or exit key."""
        chan = member.chan
        quiet = "q" in opts
        if not quiet:
            if member.waiting:
                await room.play(member, ["conf-waitforleader"])
            elif room.count == 1 and "1" not in opts:
                await room.play(member, ["conf-onlyperson"])
            elif "c" in opts and room.count > 1:
                others = room.count - 1
                await room.play(member, ["conf-thereare", *say.number_files(others, chan.language),
                                         "conf-otherinparty"] if others > 1 else ["conf-onlyone"])
            room.announce(ENTER_TONE)
        exit_keys = (opts.get("p") or "#") if "p" in opts else ""
        limit = _seconds(opts.get("S"))
        deadline = time.monotonic() + limit if limit else None
        reason = "hangup"
        while True:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
            event = await next_event(member, timeout)
            if event is None:
                reason = "timeout"
                break
            kind, value = event
            if kind in ("hangup", "kick", "leaderleft"):
                reason = kind
                break
            if kind != "dtmf":
                continue
            if value in exit_keys:
                reason = "dtmf"
                break
            if value == "*" and "s" in opts:
                await self._menu(room, member)
        if reason == "kick" and not chan.softhangup:
            await room.play(member, ["conf-kicked"])
        return reason

    async def _menu(self, room: Room, member: Member) -> None:
        prompt = "conf-adminmenu" if member.admin else "conf-usermenu"
        playing = asyncio.ensure_future(room.play(member, [prompt]))
        digit = await menu_digit(member, 10)
        room.stop_prompts(member)
        await playing
        if digit == "1":
            member.self_muted = not member.self_muted
            room.refresh(member)
            await room.play(member, ["conf-muted" if member.self_muted else "conf-unmuted"])
        elif digit == "2" and member.admin:
            room.locked = not room.locked
            await room.play(member, ["conf-lockednow" if room.locked else "conf-unlockednow"])
        elif digit == "3" and member.admin:
            others = [m for m in room.members.values() if m is not member and not m.admin]
            if others:
                room.kick(max(others, key=lambda m: m.user_no))
        elif digit not in (None, "8"):
            await room.play(member, ["conf-errormenu"])

    # ------------------------------------------------------------------ MEETME_INFO
    def func_info(self, chan: Channel | None, data: str) -> str:
        keyword, _, confno = data.partition(",")
        keyword, confno = keyword.strip().lower(), confno.strip()
        if not keyword or not confno:
            log.warning("MEETME_INFO() requires two arguments")
            return ""
        room = self.rooms.get(confno)
        if keyword == "lock":
            return "1" if room is not None and room.locked else "0"
        if keyword == "parties":
            return str(room.count if room is not None else 0)
        if keyword == "activity":
            return str(int(time.time() - room.created)) if room is not None else "0"
        if keyword == "dynamic":
            return "1" if room is not None and room.dynamic else "0"
        log.warning("Unknown keyword '%s' for MEETME_INFO()", keyword)
        return ""

    # ------------------------------------------------------------------ console
    def cli_list(self, args: CliArgs) -> str:
        argv = list(args.argv)
        concise = bool(argv) and argv[-1].lower() == "concise"
        if concise:
            argv.pop()
        if len(argv) > 1:
            return "Usage: meetme list [<confno>] [concise]\n"
        now = time.time()
        if not argv:
            if not self.rooms:
                return "" if concise else "No active MeetMe conferences.\n"
            header = (f"{'Conf Num':<14} {'Parties':<14} {'Marked':<10} {'Activity':<8}  "
                      f"{'Creation':<8}  {'Locked':<6}\n")
            out = [] if concise else [header]
            total = 0
            for room in self.rooms.values():
                h, m, s = _hms(now - room.created)
                marked = room.marked_count
                if concise:
                    out.append(f"{room.name}!{room.count}!{marked}!{h:02d}:{m:02d}:{s:02d}!"
                               f"{int(room.dynamic)}!{int(room.locked)}\n")
                else:
                    shown = "N/A " if not marked else f"{marked:04d}"
                    creation = "Dynamic" if room.dynamic else "Static"
                    out.append(f"{room.name:<12.12}   {room.count:04d}\t      {shown:>4.4}       "
                               f"{h:02d}:{m:02d}:{s:02d}  {creation:<8}  {'Yes' if room.locked else 'No':<6}\n")
                total += room.count
            if not concise:
                out.append(f"* Total number of MeetMe users: {total}\n")
            return "".join(out)
        if not self.rooms:
            return "" if concise else "No active MeetMe conferences.\n"
        found = self.rooms.get(argv[0])
        if found is None:
            return "" if concise else f"No such conference: {argv[0]}.\n"
        out = []
        for member in found.members.values():
            h, m, s = _hms(now - member.joined)
            caller = member.chan.caller
            part = found.mixer.participants.get(member.user_no)
            talking = bool(part and part.talking)
            if concise:
                out.append(f"{member.user_no}!{caller.num}!{caller.name}!{member.chan.name}!"
                           f"{'1' if member.admin else ''}!{'1' if not member.talk else ''}!"
                           f"{'1' if member.muted else ''}!!{int(talking) if member.talker_detection else -1}!"
                           f"{h:02d}:{m:02d}:{s:02d}\n")
                continue
            muted = "(Admin Muted)" if member.admin_muted else "(Muted)" if member.self_muted else ""
            talk = ("(talking)" if talking else "(not talking)") if member.talker_detection else "(unmonitored)"
            admin = "(Admin)" if member.admin else ""
            listen = "(Listen only)" if not member.talk else ""
            out.append(f"User #: {member.user_no:02d} {caller.num or '<unknown>':>12.12} "
                       f"{caller.name or '<no name>':<20.20} Channel: {member.chan.name} {admin} {listen} "
                       f"{muted}  {talk} {h:02d}:{m:02d}:{s:02d}\n")
        if not concise:
            out.append(f"{found.count} users in that conference.\n")
        return "".join(out)

    def _admin(self, args: CliArgs, usage: str, action: Any) -> str:
        if len(args.argv) != 2:
            return usage
        room = self.rooms.get(args.argv[0])
        if room is None:
            log.warning("Conference number '%s' not found!", args.argv[0])
            return ""
        targets = room.find(args.argv[1]) if args.argv[1].lower() == "all" or args.argv[1].isdigit() else []
        if not targets:
            log.warning("User %s not found in conference %s", args.argv[1], room.name)
        for member in targets:
            action(room, member)
        return ""

    def cli_kick(self, args: CliArgs) -> str:
        return self._admin(args, "Usage: meetme kick <confno> all|<userno>\n", lambda r, m: r.kick(m))

    def cli_mute(self, args: CliArgs) -> str:
        return self._admin(args, "Usage: meetme mute|unmute <confno> all|<userno>\n",
                           lambda r, m: _set_mute(r, m, True))

    def cli_unmute(self, args: CliArgs) -> str:
        return self._admin(args, "Usage: meetme mute|unmute <confno> all|<userno>\n",
                           lambda r, m: _set_mute(r, m, False))

    def _lock(self, args: CliArgs, locked: bool) -> str:
        if len(args.argv) != 1:
            return "Usage: meetme lock|unlock <confno>\n"
        room = self.rooms.get(args.argv[0])
        if room is None:
            log.warning("Conference number '%s' not found!", args.argv[0])
        else:
            room.locked = locked
        return ""

    def cli_lock(self, args: CliArgs) -> str:
        return self._lock(args, True)

    def cli_unlock(self, args: CliArgs) -> str:
        return self._lock(args, False)


def _set_mute(room: Room, member: Member, muted: bool) -> None:
    if muted and member.admin:
        return  # as MeetMeAdmin 'M': admins are not muted by others
    member.admin_muted = muted
    if not muted:
        member.self_muted = False
    room.refresh(member)


def _hms(seconds: float) -> tuple[int, int, int]:
    total = max(int(seconds), 0)
    return total // 3600, total % 3600 // 60, total % 60


def _seconds(text: str | None) -> float:
    try:
        return max(float(text or 0), 0.0)
    except ValueError:
        return 0.0
