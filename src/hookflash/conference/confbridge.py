"""app_confbridge: ``ConfBridge(conference[,bridge_profile[,user_profile[,menu]]])``,
``CONFBRIDGE_INFO()``, confbridge.conf and the ``confbridge`` console commands, over
the shared mixer (:mod:`.room`).

confbridge.conf: sections with ``type=bridge``, ``type=user`` or ``type=menu``
(templates work); ``default_bridge`` and ``default_user`` exist even when the file
does not define them. Unknown options are refused with the file and line, as
Asterisk refuses to load such a profile.

Bridge profile: ``max_members`` (further non-admins hear ``sound_locked``),
``language``, the ``sound_*`` overrides; accepted and not used: ``internal_sample_rate``
(the mixer runs at 8 kHz; other rates are resampled per participant),
``mixing_interval`` (always 20 ms), ``record_conference``, ``record_file``,
``video_mode``, ``regcontext``.

User profile: ``admin``, ``marked``, ``startmuted``, ``pin`` (asked with
``sound_get_pin``, three tries), ``wait_marked`` (wait, with music on hold if
``music_on_hold_when_empty``, until a marked user joins; hear ``sound_wait_for_leader``
then ``sound_place_into_conference``), ``end_marked`` (leave when the last marked user
leaves: CONFBRIDGE_RESULT=ENDMARKED), ``music_on_hold_when_empty``,
``music_on_hold_class``, ``quiet`` (no join/leave sounds and no prompts),
``announce_only_user``, ``announce_user_count``, ``announce_user_count_all``
(``yes`` or a number: announced to everyone once that many are in), ``announce_join_leave``
(the caller records a name, played to the others with "has joined"/"has left"),
``announcement`` (played before joining), ``timeout`` (seconds before being removed:
CONFBRIDGE_RESULT=TIMEOUT), ``talk_detection_events``, ``dtmf_passthrough``; accepted
and not used: ``denoise``, ``jitterbuffer``, ``dsp_drop_silence``,
``dsp_silence_threshold``, ``dsp_talking_threshold``, ``send_events``,
``echo_events``, ``text_messaging``, ``announce_join_leave_review``.

Menus: ``DTMF sequence = action[,action...]`` with ``playback(file&...)``,
``playback_and_continue(file&...)``, ``toggle_mute``, ``leave_conference``, ``no_op``,
``participant_count``, ``admin_kick_last``, ``admin_toggle_conference_lock``,
``admin_toggle_mute_participants``, ``increase_listening_volume``,
``decrease_listening_volume``, ``reset_listening_volume``, ``increase_talking_volume``,
``decrease_talking_volume``, ``reset_talking_volume``.

Console: ``confbridge list [<name>]``, ``confbridge kick <name> <channel|all|participants>``,
``confbridge mute|unmute <name> <channel|all|participants>``, ``confbridge lock|unlock
<name>``, in app_confbridge's layouts. Left out: recording, video, ``CONFBRIDGE()``
dynamic profiles, ``dialplan_exec`` and ``set_as_single_video_src`` menu actions,
AMI events.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import ChannelState
from hookflash.conf import ConfigError
from hookflash.conf.parser import parse_bool
from hookflash.conference.room import (
    ConferenceModule,
    Member,
    Room,
    menu_digit,
    next_event,
)
from hookflash.dialplan.args import split_args
from hookflash.engine.registry import Application, CliArgs, CliCommand, Function
from hookflash.media import say
from hookflash.media.files import SoundWriter
from hookflash.media.stream import getdata, record

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.conf import ConfigFile
    from hookflash.conf.parser import ConfigSection, ConfigVariable

log = logging.getLogger("hookflash.app.confbridge")

DEFAULT_SOUNDS: dict[str, str] = {
    "join": "confbridge-join", "leave": "confbridge-leave", "has_joined": "conf-hasjoin",
    "has_left": "conf-hasleft", "kicked": "conf-kicked", "muted": "conf-muted",
    "unmuted": "conf-unmuted", "only_person": "conf-onlyperson", "only_one": "conf-onlyone",
    "there_are": "conf-thereare", "other_in_party": "conf-otherinparty",
    "place_into_conference": "conf-placeintoconf", "wait_for_leader": "conf-waitforleader",
    "leader_has_left": "conf-leaderhasleft", "get_pin": "conf-getpin",
    "invalid_pin": "conf-invalidpin", "locked": "conf-locked", "locked_now": "conf-lockednow",
    "unlocked_now": "conf-unlockednow", "error_menu": "conf-errormenu",
    "participants_muted": "conf-now-muted", "participants_unmuted": "conf-now-unmuted",
    "begin": "confbridge-conf-begin", "binaural_on": "confbridge-binaural-on",
    "binaural_off": "confbridge-binaural-off",
}
_BRIDGE_IGNORED = {"internal_sample_rate", "mixing_interval", "record_conference", "record_file",
                   "record_file_append", "record_file_timestamp", "record_options", "record_command",
                   "video_mode", "regcontext", "video_update_discard", "remb_send_interval",
                   "remb_behavior", "remb_estimated_bitrate", "enable_events_per_channel",
                   "maximum_sample_rate", "binaural_active", "max_members_announce"}
_USER_BOOLS = {"admin", "marked", "startmuted", "music_on_hold_when_empty", "quiet",
               "announce_user_count", "announce_only_user", "wait_marked", "end_marked",
               "announce_join_leave", "talk_detection_events", "dtmf_passthrough"}
_USER_IGNORED = {"denoise", "jitterbuffer", "dsp_drop_silence", "dsp_silence_threshold",
                 "dsp_talking_threshold", "send_events", "echo_events", "text_messaging",
                 "announce_join_leave_review", "answer_channel", "hear_own_join_sound",
                 "remb_behavior", "talk_detection_events"}
MENU_ACTIONS = {"playback", "playback_and_continue", "toggle_mute", "leave_conference", "no_op",
                "participant_count", "admin_kick_last", "admin_toggle_conference_lock",
                "admin_toggle_mute_participants", "increase_listening_volume",
                "decrease_listening_volume", "reset_listening_volume", "increase_talking_volume",
                "decrease_talking_volume", "reset_talking_volume"}


@dataclass(frozen=True, slots=True)
class BridgeProfile:
    name: str = "default_bridge"
    max_members: int = 0
    language: str = ""
    sounds: dict[str, str] = field(default_factory=dict)

    def sound(self, key: str) -> str:
        return self.sounds.get(key) or DEFAULT_SOUNDS[key]


@dataclass(frozen=True, slots=True)
class UserProfile:
    name: str = "default_user"
    admin: bool = False
    marked: bool = False
    startmuted: bool = False
    music_on_hold_when_empty: bool = False
    music_on_hold_class: str = ""
    quiet: bool = False
    announce_user_count: bool = False
    announce_user_count_all: int = 0  # 0: off; n: announce to all once n are in
    announce_only_user: bool = True
    wait_marked: bool = False
    end_marked: bool = False
    announce_join_leave: bool = False
    talk_detection_events: bool = False
    dtmf_passthrough: bool = False
    pin: str = ""
    announcement: str = ""
    timeout: int = 0


@dataclass(frozen=True, slots=True)
class Menu:
    name: str
    entries: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfBridgeConfig:
    bridges: dict[str, BridgeProfile] = field(default_factory=dict)
    users: dict[str, UserProfile] = field(default_factory=dict)
    menus: dict[str, Menu] = field(default_factory=dict)


def _bool(var: ConfigVariable) -> bool:
    return var.as_bool()


def _int(var: ConfigVariable, minimum: int = 0) -> int:
    try:
        value = int(var.value.strip())
    except ValueError:
        value = -1
    if value < minimum:
        raise var.error(f"{var.name} value '{var.value}' is not a number", f"{var.name} = <number>")
    return value


def _bridge(section: ConfigSection) -> BridgeProfile:
    max_members, language, sounds = 0, "", {}
    for var in section.variables:
        key = var.name.lower()
        if key == "type":
            continue
        if key == "max_members":
            max_members = _int(var)
        elif key == "language":
            language = var.value.strip()
        elif key.startswith("sound_") and key[6:] in DEFAULT_SOUNDS:
            sounds[key[6:]] = var.value.strip()
        elif key not in _BRIDGE_IGNORED:
            raise var.error(f"unknown bridge profile option '{var.name}'",
                            "a bridge option (max_members, language, sound_*...)")
    return BridgeProfile(section.name, max_members, language, sounds)


def _user(section: ConfigSection) -> UserProfile:
    values: dict[str, Any] = {}
    for var in section.variables:
        key = var.name.lower()
        if key == "type":
            continue
        if key in _USER_BOOLS:
            values[key] = _bool(var)
        elif key == "announce_user_count_all":
            text = var.value.strip()
            values[key] = int(text) if text.isdigit() else (1 if parse_bool_or(var) else 0)
        elif key in ("pin", "announcement", "music_on_hold_class"):
            values[key] = var.value.strip()
        elif key == "timeout":
            values[key] = _int(var)
        elif key not in _USER_IGNORED:
            raise var.error(f"unknown user profile option '{var.name}'",
                            "a user option (admin, marked, wait_marked, end_marked, pin...)")
    return UserProfile(section.name, **values)


def parse_bool_or(var: ConfigVariable) -> bool:
    try:
        return parse_bool(var.value)
    except ValueError:
        raise var.error(f"{var.name} value '{var.value}' is neither yes/no nor a number",
                        f"{var.name} = yes|no|<number>") from None


def _menu(section: ConfigSection) -> Menu:
    entries: dict[str, tuple[tuple[str, str], ...]] = {}
    for var in section.variables:
        if var.name.lower() == "type":
            continue
        keys = var.name.strip()
        if not keys or any(c not in "0123456789*#ABCD" for c in keys):
            raise var.error(f"bad menu DTMF sequence '{var.name}'", "<digits> = action[,action...]")
        actions = []
        for part in split_args(var.value):
            part = part.strip()
            name, _, arg = part.partition("(")
            name = name.strip().lower()
            if name not in MENU_ACTIONS:
                raise var.error(f"unknown menu action '{part}'", "a confbridge menu action (toggle_mute, "
                                "leave_conference, playback(file)...)")
            actions.append((name, arg.rstrip(")").strip()))
        entries[keys] = tuple(actions)
    return Menu(section.name, entries)


def parse_config(conf: ConfigFile | None) -> ConfBridgeConfig:
    bridges = {"default_bridge": BridgeProfile()}
    users = {"default_user": UserProfile()}
    menus: dict[str, Menu] = {}
    if conf is not None:
        for section in conf.sections:
            if section.is_template or section.name.lower() == "general":
                continue
            kind = (section.get("type") or "").strip().lower()
            if kind == "bridge":
                bridges[section.name] = _bridge(section)
            elif kind == "user":
                users[section.name] = _user(section)
            elif kind == "menu":
                menus[section.name] = _menu(section)
            else:
                raise ConfigError(section.filename, section.lineno,
                                  f"section [{section.name}] has no valid type",
                                  "type = bridge, type = user or type = menu")
    return ConfBridgeConfig(bridges, users, menus)


class ConfBridgeModule(ConferenceModule):
    description = "Conference Bridge Application"
    config_file = "confbridge.conf"

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.config = ConfBridgeConfig({"default_bridge": BridgeProfile()}, {"default_user": UserProfile()}, {})

    def parse(self, conf: Any) -> Any:
        return parse_config(conf)

    def applications(self) -> list[Application]:
        return [Application(
            "ConfBridge", self.app_confbridge, "Conference bridge application.",
            "ConfBridge(conference[,bridge_profile[,user_profile[,menu]]])",
            "Enters the channel into a conference; profiles and menus come from confbridge.conf. "
            "Sets CONFBRIDGE_RESULT: HANGUP, KICKED, ENDMARKED, DTMF or TIMEOUT.")]

    def functions(self) -> list[Function]:
        return [Function("CONFBRIDGE_INFO", self.func_info, None, "Get information about a ConfBridge conference.",
                         "CONFBRIDGE_INFO(type,conf)", "type: parties, admins, marked, locked or muted.")]

    def commands(self) -> list[CliCommand]:
        c = self._complete
        return [
            CliCommand(("confbridge", "list"), self.cli_list, "List conference bridges and participants.",
                       "Usage: confbridge list [<name>]\n       Lists all currently active conference bridges "
                       "or a specific conference bridge.\n", c),
            CliCommand(("confbridge", "kick"), self.cli_kick, "Kick participants out of conference bridges.",
                       "Usage: confbridge kick <conference> <channel>\n", c),
            CliCommand(("confbridge", "mute"), self.cli_mute, "Mute participants.",
                       "Usage: confbridge mute <conference> <channel>\n", c),
            CliCommand(("confbridge", "unmute"), self.cli_unmute, "Unmute participants.",
                       "Usage: confbridge unmute <conference> <channel>\n", c),
            CliCommand(("confbridge", "lock"), self.cli_lock, "Lock a conference.",
                       "Usage: confbridge lock <conference>\n", c),
            CliCommand(("confbridge", "unlock"), self.cli_unlock, "Unlock a conference.",
                       "Usage: confbridge unlock <conference>\n", c),
        ]

    def _complete(self, pbx: Any, words: list[str], word: str) -> list[str]:
        if len(words) >= 3 and words[2] in self.rooms:
            return sorted(m.chan.name for m in self.rooms[words[2]].members.values()
                          if m.chan.name.startswith(word))
        return sorted(n for n in self.rooms if n.startswith(word))

    # ------------------------------------------------------------------ rooms
    def _room(self, name: str, bridge: BridgeProfile) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = Room(self.pbx, name, kind="confbridge", on_empty=self._ended, on_change=self._changed)
            room.options["bridge"] = bridge
            self.rooms[name] = room
            self.pbx.verbose(3, f"Conference '{name}' created")
        return room

    def _ended(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        self.pbx.verbose(3, f"Conference '{room.name}' removed")

    def _changed(self, room: Room, who: Member, what: str) -> None:
        bridge: BridgeProfile = room.options["bridge"]
        marked = room.marked_count
        if what == "leave" and who.marked and marked == 0:
            for member in room.members.values():
                if member.options["user"].end_marked:
                    room.kick(member, "endmarked")
        for member in room.members.values():
            user: UserProfile = member.options["user"]
            waiting = user.wait_marked and not member.marked and marked == 0
            if waiting != member.waiting:
                member.waiting = waiting
                room.refresh(member)
                if not user.quiet and member is not who:
                    member.finish_private()  # "wait for the leader" is over, or moot
                    key = "leader_has_left" if waiting else "place_into_conference"
                    member.private.append((room.prompt_frames(member.chan, [bridge.sound(key)]),
                                           asyncio.get_running_loop().create_future()))
        active = sum(1 for m in room.members.values() if not m.waiting)
        for member in room.members.values():
            user = member.options["user"]
            alone = active <= 1 and not member.waiting
            room.set_moh(member, user.music_on_hold_when_empty and (member.waiting or alone),
                         user.music_on_hold_class)

    # ------------------------------------------------------------------ ConfBridge()
    async def app_confbridge(self, chan: Channel, data: str) -> int | None:
        parts = split_args(data)
        name, bname, uname, mname = [p.strip() for p in (parts + ["", "", "", ""])[:4]]
        if not name:
            log.warning("ConfBridge requires an argument (conference name[,options])")
            return -1
        bridge = self.config.bridges.get(bname or "default_bridge")
        user = self.config.users.get(uname or "default_user")
        menu = self.config.menus.get(mname) if mname else None
        if bridge is None:
            log.warning("Conference bridge profile %s does not exist", bname)
            return -1
        if user is None:
            log.warning("Conference user profile %s does not exist", uname)
            return -1
        if mname and menu is None:
            log.warning("Conference menu %s does not exist", mname)
            return -1
        if bridge.language:
            chan.language = bridge.language
        if chan.state != ChannelState.UP:
            await chan.answer()
        chan.set_var("CONFBRIDGE_RESULT", "")
        if user.pin and not await self._check_pin(chan, bridge, user.pin):
            return -1
        name_file: Path | None = None
        if user.announce_join_leave and not user.quiet:
            name_file = await self._record_name(chan)
        if user.announcement:
            await _prompt(chan, [user.announcement])
        if chan.softhangup:
            return _hangup(chan)
        room = self._room(name, bridge)
        bridge = room.options["bridge"]  # the profile of whoever made the conference
        if not user.admin and (room.locked or (bridge.max_members and room.count >= bridge.max_members)):
            await _prompt(chan, [bridge.sound("locked")])
            return -1
        member = room.join(chan, marked=user.marked, admin=user.admin, self_muted=user.startmuted,
                           talker_detection=user.talk_detection_events,
                           options={"user": user, "menu": menu, "bridge": bridge})
        self.pbx.verbose(3, f"{chan.name} joined conference '{name}'")
        try:
            reason = await self._stay(room, member, bridge, user, menu, name_file)
        finally:
            room.leave(member)
            if name_file is not None:
                name_file.unlink(missing_ok=True)
                try:
                    name_file.parent.rmdir()
                except OSError:
                    pass
        self.pbx.verbose(3, f"{chan.name} left conference '{name}'")
        chan.set_var("CONFBRIDGE_RESULT", {"hangup": "HANGUP", "kick": "KICKED", "endmarked": "ENDMARKED",
                                           "dtmf": "DTMF", "timeout": "TIMEOUT"}[reason])
        if reason == "hangup" or chan.softhangup:
            return -1
        return None

    async def _stay(self, room: Room, member: Member, bridge: BridgeProfile, user: UserProfile,
                    menu: Menu | None, name_file: Path | None) -> str:
        chan = member.chan
        if not user.quiet:
            if member.waiting:
                await room.play(member, [bridge.sound("wait_for_leader")])
            elif room.count == 1 and user.announce_only_user:
                await room.play(member, [bridge.sound("only_person")])
            elif user.announce_user_count:
                await room.play(member, self._count_prompts(chan, bridge, room.count - 1))
            if user.announce_user_count_all and room.count >= user.announce_user_count_all and room.count > 1:
                room.announce(room.prompt_frames(chan, [bridge.sound("there_are"),
                                                        *say.number_files(room.count, chan.language),
                                                        bridge.sound("other_in_party")]))
            if name_file is not None:
                room.announce(room.prompt_frames(chan, [str(name_file.with_suffix("")),
                                                        bridge.sound("has_joined")]))
            elif room.count > 1:
                room.announce_prompts([bridge.sound("join")], chan)
        deadline = time.monotonic() + user.timeout if user.timeout else None
        pending = ""
        reason = "hangup"
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            event = await next_event(member, wait)
            if event is None:
                reason = "timeout"
                break
            kind, value = event
            if kind in ("hangup", "kick", "endmarked"):
                reason = kind
                break
            if kind != "dtmf" or menu is None:
                continue
            pending += value
            while any(k.startswith(pending) and k != pending for k in menu.entries) and pending not in menu.entries:
                digit = await menu_digit(member, 3.0)
                if digit is None:
                    break
                pending += digit
            actions = menu.entries.get(pending)
            pending = ""
            if actions is None:
                continue
            if await self._menu_actions(room, member, bridge, actions):
                reason = "dtmf"
                break
        if reason == "kick" and not chan.softhangup:
            await room.play(member, [bridge.sound("kicked")])
        if not user.quiet and room.count > 1:
            if name_file is not None:
                room.announce(room.prompt_frames(chan, [str(name_file.with_suffix("")), bridge.sound("has_left")]))
            else:
                room.announce_prompts([bridge.sound("leave")], chan)
        return reason

    def _count_prompts(self, chan: Channel, bridge: BridgeProfile, others: int) -> list[str]:
        if others <= 0:
            return [bridge.sound("only_person")]
        if others == 1:
            return [bridge.sound("only_one")]
        return [bridge.sound("there_are"), *say.number_files(others, chan.language), bridge.sound("other_in_party")]

    async def _menu_actions(self, room: Room, member: Member, bridge: BridgeProfile,
                            actions: tuple[tuple[str, str], ...]) -> bool:
        """Run one menu entry; True when it leaves the conference."""
        part = room.mixer.participants.get(member.user_no)
        for action, arg in actions:
            if action == "leave_conference":
                return True
            if action == "toggle_mute":
                member.self_muted = not member.self_muted
                room.refresh(member)
                await room.play(member, [bridge.sound("muted" if member.self_muted else "unmuted")])
            elif action in ("playback", "playback_and_continue"):
                await room.play(member, [f for f in arg.split("&") if f])
            elif action == "participant_count":
                await room.play(member, self._count_prompts(member.chan, bridge, room.count - 1))
            elif action == "admin_kick_last" and member.admin:
                others = [m for m in room.members.values() if m is not member and not m.admin]
                if others:
                    room.kick(max(others, key=lambda m: m.user_no))
            elif action == "admin_toggle_conference_lock" and member.admin:
                room.locked = not room.locked
                await room.play(member, [bridge.sound("locked_now" if room.locked else "unlocked_now")])
            elif action == "admin_toggle_mute_participants" and member.admin:
                mute = not room.options.get("muted", False)
                room.options["muted"] = mute
                for other in room.members.values():
                    if not other.admin:
                        other.admin_muted = mute
                        room.refresh(other)
                await room.play(member, [bridge.sound("participants_muted" if mute else "participants_unmuted")])
            elif part is not None and action.endswith("_volume"):
                attr = "listen_gain" if "listening" in action else "talk_gain"
                value = getattr(part, attr)
                value = 1.0 if action.startswith("reset") else value * (1.41 if action.startswith("increase") else 0.71)
                setattr(part, attr, min(max(value, 0.125), 8.0))
        return False

    async def _check_pin(self, chan: Channel, bridge: BridgeProfile, pin: str) -> bool:
        for _ in range(3):
            _, entered = await getdata(chan, bridge.sound("get_pin"), len(pin) + 5, 0)
            if chan.softhangup:
                return False
            if entered == pin:
                return True
            await _prompt(chan, [bridge.sound("invalid_pin")])
        return False

    async def _record_name(self, chan: Channel) -> Path | None:
        """announce_join_leave: the caller says their name (up to 3 s)."""
        await _prompt(chan, ["vm-rec-name"])
        if chan.softhangup:
            return None
        path = Path(tempfile.mkdtemp(prefix="confbridge-")) / f"name-{chan.uniqueid}.wav"
        writer = SoundWriter(path, "wav")
        chan.flush_media()
        try:
            await record(chan, writer, max_seconds=3, silence_seconds=2, terminators="#")
        finally:
            await asyncio.to_thread(writer.close)  # flush, fsync, rename: off the event loop
        return path

    # ------------------------------------------------------------------ CONFBRIDGE_INFO
    def func_info(self, chan: Channel | None, data: str) -> str:
        kind, _, name = data.partition(",")
        kind, name = kind.strip().lower(), name.strip()
        if not kind or not name:
            log.warning("CONFBRIDGE_INFO() requires two arguments")
            return ""
        room = self.rooms.get(name)
        members = list(room.members.values()) if room is not None else []
        if kind == "parties":
            return str(len(members))
        if kind == "admins":
            return str(sum(1 for m in members if m.admin))
        if kind == "marked":
            return str(sum(1 for m in members if m.marked))
        if kind == "locked":
            return "1" if room is not None and room.locked else "0"
        if kind == "muted":
            return "1" if room is not None and room.options.get("muted") else "0"
        log.warning("Invalid type '%s' for CONFBRIDGE_INFO()", kind)
        return ""

    # ------------------------------------------------------------------ console
    def cli_list(self, args: CliArgs) -> str:
        if not args.argv:
            out = ["Conference Bridge Name           Users  Marked Locked?\n",
                   "================================ ====== ====== ========\n"]
            for room in self.rooms.values():
                state = "locked" if room.locked else "unlocked"
                out.append(f"{room.name:<32} {room.count:6d} {room.marked_count:6d} {state}\n")
            return "".join(out)
        if len(args.argv) != 1:
            return "Usage: confbridge list [<name>]\n"
        found = self.rooms.get(args.argv[0])
        if found is None:
            return f"No conference bridge named '{args.argv[0]}' found!\n"
        out = ["Channel                        Flags  User Profile     Bridge Profile   Menu             CallerID\n",
               ("============================== ====== ================ ================ ================ "
                "================\n")]
        members = sorted(found.members.values(), key=lambda m: m.waiting)
        for member in members:
            user: UserProfile = member.options["user"]
            menu: Menu | None = member.options["menu"]
            flags = "".join(f for f, on in (("A", user.admin), ("M", user.marked), ("W", user.wait_marked),
                                            ("E", user.end_marked), ("m", member.muted),
                                            ("w", member.waiting)) if on)
            bridge_name = member.options["bridge"].name
            menu_name = menu.name if menu else ""
            out.append(f"{member.chan.name:<30} {flags:<6} {user.name:<16} {bridge_name:<16} {menu_name:<16} "
                       f"{member.chan.caller.num or '<unknown>'}\n")
        return "".join(out)

    def _targets(self, room: Room, who: str) -> list[Member]:
        if who.lower() == "all":
            return list(room.members.values())
        if who.lower() == "participants":
            return [m for m in room.members.values() if not m.admin]
        found = [m for m in room.members.values() if m.chan.name.lower().startswith(who.lower())]
        exact = [m for m in found if m.chan.name == who]
        return exact or found[:1]

    def cli_kick(self, args: CliArgs) -> str:
        if len(args.argv) != 2:
            return "Usage: confbridge kick <conference> <channel>\n"
        name, who = args.argv
        room = self.rooms.get(name)
        if room is None:
            return f"No conference bridge named '{name}' found!\n"
        targets = self._targets(room, who)
        if not targets:
            if who.lower() in ("all", "participants"):
                return "No participants found!\n"
            return f"No participant named '{who}' found!\n"
        for member in targets:
            room.kick(member)
        return f"Kicked '{who}' out of conference '{name}'\n"

    def _mute(self, args: CliArgs, mute: bool) -> str:
        if len(args.argv) != 2:
            return f"Usage: confbridge {'mute' if mute else 'unmute'} <conference> <channel>\n"
        name, who = args.argv
        room = self.rooms.get(name)
        if room is None:
            return f"No conference bridge named '{name}' found!\n"
        targets = self._targets(room, who)
        if not targets:
            if who.lower() in ("all", "participants"):
                return f"No participants found in conference {name}\n"
            return f"No channel named '{who}' found in conference {name}\n"
        for member in targets:
            member.self_muted = mute
            member.admin_muted = False if not mute else member.admin_muted
            room.refresh(member)
        return f"{'Muting' if mute else 'Unmuting'} {who} from confbridge {name}\n"

    def cli_mute(self, args: CliArgs) -> str:
        return self._mute(args, True)

    def cli_unmute(self, args: CliArgs) -> str:
        return self._mute(args, False)

    def _lock(self, args: CliArgs, lock: bool) -> str:
        if len(args.argv) != 1:
            return f"Usage: confbridge {'lock' if lock else 'unlock'} <conference>\n"
        room = self.rooms.get(args.argv[0])
        if room is None:
            return f"Conference {args.argv[0]} is not found\n"
        room.locked = lock
        return f"Conference {args.argv[0]} is {'locked' if lock else 'unlocked'}.\n"

    def cli_lock(self, args: CliArgs) -> str:
        return self._lock(args, True)

    def cli_unlock(self, args: CliArgs) -> str:
        return self._lock(args, False)


async def _prompt(chan: Channel, names: list[str]) -> None:
    from hookflash.media.stream import SoundNotFound, play_file
    for name in names:
        try:
            await play_file(chan, name)
        except SoundNotFound:
            log.warning("File %s does not exist in any format", name)
        if chan.softhangup:
            return


def _hangup(chan: Channel) -> int:
    chan.set_var("CONFBRIDGE_RESULT", "HANGUP")
    return -1


__all__ = ["BridgeProfile", "ConfBridgeModule", "Menu", "UserProfile", "parse_config"]
