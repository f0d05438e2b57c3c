"""VoiceMailMain([mailbox][@context][,options]): the mailbox owner's menu.

Options: ``s`` (no password), ``p`` (the mailbox argument is a prefix for the number
entered), ``a(folder)`` (start in that folder: a number 0-4 or a name), ``g(#)``
(accepted, not applied).

Login as app_voicemail does it ("Comedian Mail. Mailbox?", "password", up to
``maxlogins`` attempts, then "Goodbye"), then "You have N new and M old messages" and
the main menu: ``1`` play the first message of the folder, ``2`` change folder (0 INBOX,
1 Old, 2 Work, 3 Family, 4 Friends), ``0`` mailbox options, ``*`` help, ``#`` exit.
With a message: ``4`` previous, ``5`` repeat, ``6`` next, ``7`` delete/undelete, ``8``
forward to another mailbox, ``9`` save to a folder, ``3`` advanced options (``3``
envelope), ``*``/``#`` while a message plays move back/forward ``skipms``.
Mailbox options: ``1`` unavailable greeting, ``2`` busy greeting, ``3`` name, ``4``
temporary greeting (record or erase), ``5`` password, ``*`` back.

Urgent messages are played first in INBOX (both count as new). As in Asterisk, a
message heard from INBOX moves to Old, and deleted messages go, when the folder is
left or the call ends (hangup included); the remaining ones are renumbered and the
lamps updated then. Save to folder and forward take effect at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from hookflash.apps.media import parse_options
from hookflash.dialplan.args import split_args
from hookflash.media.stream import getdata
from hookflash.voicemail.apps import _answer, login, service
from hookflash.voicemail.config import Mailbox, split_box
from hookflash.voicemail.notify import zone_info
from hookflash.voicemail.prompts import (
    ANY_KEY,
    beep,
    date_prompts,
    digits,
    number,
    play_message_audio,
    play_names,
    play_path,
    record_formats,
)
from hookflash.voicemail.store import StoredMessage, StoreError, new_msg_id

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.voicemail.module import VoicemailModule

log = logging.getLogger("hookflash.voicemail")

MENU_FOLDERS = ("INBOX", "Old", "Work", "Family", "Friends")
MENU_WAIT = 6.0


class Session:
    def __init__(self, chan: Channel, vm: VoicemailModule, box: Mailbox) -> None:
        self.chan = chan
        self.vm = vm
        self.box = box
        self.ref = (box.context, box.mailbox)
        self.folder = "INBOX"
        self.messages: list[StoredMessage] = []
        self.deleted: set[int] = set()
        self.heard: set[int] = set()
        self.gone: set[int] = set()  # saved elsewhere already
        self.cur = 0
        self.starting = True
        self.general = vm.cfg.general

    # ------------------------------------------------------------------ folders
    async def open(self, folder: str) -> None:
        self.folder = folder
        store = self.vm.store
        if folder == "INBOX":
            self.messages = await store.alist(self.ref, "Urgent") + await store.alist(self.ref, "INBOX")
        else:
            self.messages = await store.alist(self.ref, folder)
        self.deleted, self.heard, self.gone = set(), set(), set()
        self.cur = 0
        self.starting = True

    async def close(self) -> None:
        """Apply deletes and move heard new messages to Old, then renumber."""
        touched = {self.folder} | ({"Urgent"} if self.folder == "INBOX" else set())
        changed = False
        moveheard = bool(self.box.option("moveheard", self.general))
        try:
            for i, msg in enumerate(self.messages):
                if i in self.gone:
                    continue
                if i in self.deleted:
                    await self.vm.store.delete(msg)
                    changed = True
                elif i in self.heard and msg.folder in ("INBOX", "Urgent") and moveheard:
                    await self.vm.store.move(msg, "Old")
                    touched.add("Old")
                    changed = True
            for folder in touched:
                await self.vm.store.resequence(self.ref, folder)
        except (StoreError, OSError) as exc:
            log.error("%s: closing %s/%s failed: %s", self.chan.name, self.box.id, self.folder, exc)
        self.messages, self.deleted, self.heard, self.gone = [], set(), set(), set()
        if changed:
            self.vm.changed(self.box)

    # ------------------------------------------------------------------ speaking
    async def intro(self) -> str | None:
        new, old, urgent = await self.vm.store.acounts(self.ref)
        names = ["vm-youhave"]
        if urgent:
            names += number(urgent) + ["vm-Urgent", "vm-message" if urgent == 1 else "vm-messages"]
            new -= urgent
            if new or old:
                names.append("vm-and")
        if new:
            names += number(new) + ["vm-INBOX", "vm-message" if new == 1 else "vm-messages"]
            if old:
                names.append("vm-and")
        if old:
            names += number(old) + ["vm-Old", "vm-message" if old == 1 else "vm-messages"]
        if not (urgent or new or old):
            names += ["vm-no", "vm-messages"]
        return await play_names(self.chan, names, ANY_KEY)

    def instructions(self) -> list[str]:
        names: list[str] = []
        if self.starting:
            if self.messages:
                names += ["vm-onefor", f"vm-{self.folder}", "vm-messages"]
            names.append("vm-opts")
        else:
            if self.cur:
                names.append("vm-prev")
            names.append("vm-advopts")
            names.append("vm-repeat")
            if self.cur < len(self.messages) - 1:
                names.append("vm-next")
            names.append("vm-undelete" if self.cur in self.deleted else "vm-delete")
            names += ["vm-toforward", "vm-savemessage"]
        names.append("vm-helpexit")
        return names

    def envelope(self, msg: StoredMessage) -> list[str]:
        names: list[str] = []
        info = msg.info
        if info.origtime:
            tz = zone_info(self.vm.cfg, self.box)
            when = datetime.fromtimestamp(info.origtime, tz=tz)
            now = datetime.now(tz=tz)
            names += ["vm-received", *date_prompts(when, now)]
        if self.box.option("saycid", self.general):
            num = info.cid_num
            if num:
                internal = self.vm.find(num, self.box.context) is not None
                names += ["vm-from-extension" if internal else "vm-from-phonenumber", *digits(num)]
            else:
                names.append("vm-unknown-caller")
        if self.box.option("sayduration", self.general):
            minutes = info.duration // 60
            if minutes >= max(int(self.general.saydurationm), 1):
                names += ["vm-duration", *number(minutes), "vm-minutes"]
        return names

    async def play_current(self) -> str | None:
        if not self.messages:
            return await play_names(self.chan, ["vm-no", "vm-messages"], ANY_KEY)
        self.starting = False
        msg = self.messages[self.cur]
        names: list[str] = []
        if self.cur == 0:
            names.append("vm-first")
        elif self.cur == len(self.messages) - 1:
            names.append("vm-last")
        names.append("vm-message")
        if 0 < self.cur < len(self.messages) - 1:
            names += number(self.cur + 1)
        digit = await play_names(self.chan, names, ANY_KEY)
        if digit:
            return digit
        if self.box.option("envelope", self.general):
            digit = await play_names(self.chan, self.envelope(msg), ANY_KEY)
            if digit:
                return digit
        found = await self.vm.store.aaudio(msg)
        self.heard.add(self.cur)
        if found is None:
            log.warning("%s: message %s/%s of %s has no audio", self.chan.name, msg.folder, msg.name,
                        self.box.id)
            return None
        return await play_message_audio(self.chan, *found, skipms=int(self.general.skipms),
                                        interrupt="0123456789")

    async def read_key(self, names: list[str]) -> str | None:
        digit = await play_names(self.chan, names, ANY_KEY)
        if digit or self.chan.softhangup:
            return digit
        return await self.chan.wait_digit(MENU_WAIT)

    # ------------------------------------------------------------------ menu actions
    async def choose_folder(self, prompt: str, start: int) -> str | None:
        names = [prompt]
        for i in range(start, len(MENU_FOLDERS)):
            names += ["vm-press", *digits(str(i)), "vm-for", f"vm-{MENU_FOLDERS[i]}", "vm-messages"]
        names.append("vm-tocancel")
        digit = await self.read_key(names)
        if digit is None or digit == "#" or not digit.isdigit() or not start <= int(digit) < len(MENU_FOLDERS):
            return None
        return MENU_FOLDERS[int(digit)]

    async def save_to_folder(self) -> str | None:
        folder = await self.choose_folder("vm-savefolder", 1)
        if folder is None or self.chan.softhangup:
            return None
        msg = self.messages[self.cur]
        try:
            await self.vm.store.move(msg, folder, int(self.box.option("maxmsg", self.general)))
        except (StoreError, OSError) as exc:
            log.warning("%s: saving message to %s failed: %s", self.chan.name, folder, exc)
            return await play_names(self.chan, ["vm-mailboxfull"], ANY_KEY)
        self.gone.add(self.cur)
        self.deleted.discard(self.cur)
        self.vm.changed(self.box)
        names = ["vm-message", *number(self.cur + 1), "vm-savedto", f"vm-{folder}", "vm-messages"]
        return await play_names(self.chan, names, ANY_KEY)

    async def forward(self) -> str | None:
        _result, entered = await getdata(self.chan, "vm-extension", 80, 0)
        if self.chan.softhangup or not entered:
            return None
        number_, context = split_box(entered, self.box.context)
        dest = await self.vm.afind(number_, context)
        if dest is None:
            return await play_names(self.chan, ["vm-incorrect-mailbox"], ANY_KEY)
        msg = self.messages[self.cur]
        from dataclasses import replace
        info = replace(msg.info, origmailbox=dest.mailbox, msg_id=new_msg_id())
        try:
            copy = await self.vm.store.copy(msg, (dest.context, dest.mailbox), "INBOX", info,
                                            int(dest.option("maxmsg", self.general)))
        except (StoreError, OSError) as exc:
            log.warning("%s: forwarding to %s failed: %s", self.chan.name, dest.id, exc)
            return await play_names(self.chan, ["vm-mailboxfull"], ANY_KEY)
        self.vm.message_left(dest, copy)
        return await play_names(self.chan, ["vm-msgforwarded"], ANY_KEY)

    async def advanced(self) -> str | None:
        digit = await self.read_key(["vm-tohearenv", "vm-starmain"])
        if digit == "3" and self.messages:
            return await play_names(self.chan, self.envelope(self.messages[self.cur]), ANY_KEY)
        if digit not in (None, "*"):
            return await play_names(self.chan, ["vm-sorry"], ANY_KEY)
        return None

    # ------------------------------------------------------------------ mailbox options
    async def record_greeting(self, name: str, prompt: str) -> None:
        vm, chan = self.vm, self.chan
        while not chan.softhangup:
            await play_names(chan, [prompt])
            if chan.softhangup:
                return
            await beep(chan)
            maxsecs = int(self.general.maxgreet) or int(self.box.option("maxsecs", self.general)) or 60
            writer, status = await record_formats(
                chan, vm.store.temp_dir(self.ref), self.general.formats, max_seconds=maxsecs,
                silence_seconds=int(self.general.maxsilence),
                silence_threshold=int(self.general.silencethreshold) or 256, terminators="#")
            if writer.duration < 0.5:
                writer.discard()
                if status == "HANGUP":
                    return
                continue
            audio = await writer.close()
            if status == "HANGUP":
                await vm.store.save_greeting(self.ref, name, audio)
                return
            while True:  # review: 1 accept, 2 listen, 3 record again
                digit = await self.read_key(["vm-review"])
                if digit == "2":
                    ext = next(iter(audio))
                    await play_path(chan, audio[ext], ext, interrupt=ANY_KEY)
                    continue
                break
            if digit == "3":
                for path in audio.values():
                    path.unlink(missing_ok=True)
                continue
            await vm.store.save_greeting(self.ref, name, audio)
            chan.pbx.verbose(3, f"Saved greeting '{name}' of {self.box.id}")
            await play_names(chan, ["vm-msgsaved"])
            return

    async def change_password(self) -> None:
        chan, minimum = self.chan, int(self.general.minpassword)
        while not chan.softhangup:
            _result, first = await getdata(chan, "vm-newpassword", 80, 0)
            if chan.softhangup or not first:
                return
            if len(first) < minimum:
                await play_names(chan, ["vm-invalid-password", "vm-pls-try-again"])
                continue
            _result, again = await getdata(chan, "vm-reenterpassword", 80, 0)
            if chan.softhangup:
                return
            if first != again:
                await play_names(chan, ["vm-mismatch"])
                continue
            self.box = await self.vm.change_password(self.box, first)
            await play_names(chan, ["vm-passchanged"])
            return

    async def options_menu(self) -> None:
        while not self.chan.softhangup:
            digit = await self.read_key(["vm-options"])
            if digit == "1":
                await self.record_greeting("unavail", "vm-rec-unv")
            elif digit == "2":
                await self.record_greeting("busy", "vm-rec-busy")
            elif digit == "3":
                await self.record_greeting("greet", "vm-rec-name")
            elif digit == "4":
                if await self.vm.store.agreeting(self.ref, "temp") is not None:
                    choice = await self.read_key(["vm-tempgreeting2"])
                    if choice == "2":
                        await self.vm.store.delete_greeting(self.ref, "temp")
                        await play_names(self.chan, ["vm-tempremoved"])
                        continue
                    if choice != "1":
                        continue
                await self.record_greeting("temp", "vm-rec-temp")
            elif digit == "5":
                await self.change_password()
            elif digit in ("*", "#", None):
                return
            else:
                await play_names(self.chan, ["vm-sorry"])

    # ------------------------------------------------------------------ the loop
    async def run(self, start_folder: str) -> None:
        await self.open(start_folder)
        digit = await self.intro()
        repeats = 0
        while not self.chan.softhangup:
            if digit is None:
                digit = await self.read_key(self.instructions())
            if digit is None:
                repeats += 1
                if repeats > 2 or self.chan.softhangup:
                    break
                continue
            repeats = 0
            key, digit = digit, None
            if key == "1":
                self.cur = 0
                digit = await self.play_current()
            elif key == "2":
                folder = await self.choose_folder("vm-changeto", 0)
                if folder is not None:
                    await self.close()
                    await self.open(folder)
                    digit = await play_names(self.chan, ["vm-youhave", *number(len(self.messages)),
                                                         f"vm-{folder}", "vm-messages"], ANY_KEY)
            elif key == "0":
                await self.options_menu()
            elif key == "*":
                continue
            elif key == "#":
                break
            elif self.starting or not self.messages:
                digit = await play_names(self.chan, ["vm-sorry"], ANY_KEY)
            elif key == "3":
                digit = await self.advanced()
            elif key == "4":
                if self.cur > 0:
                    self.cur -= 1
                    digit = await self.play_current()
                else:
                    digit = await play_names(self.chan, ["vm-nomore"], ANY_KEY)
            elif key == "5":
                digit = await self.play_current()
            elif key == "6":
                if self.cur < len(self.messages) - 1:
                    self.cur += 1
                    digit = await self.play_current()
                else:
                    digit = await play_names(self.chan, ["vm-nomore"], ANY_KEY)
            elif key == "7":
                if self.cur in self.gone:
                    continue
                if self.cur in self.deleted:
                    self.deleted.discard(self.cur)
                    digit = await play_names(self.chan, ["vm-undeleted"], ANY_KEY)
                else:
                    self.deleted.add(self.cur)
                    digit = await play_names(self.chan, ["vm-deleted"], ANY_KEY)
            elif key == "8":
                digit = await self.forward()
            elif key == "9":
                if self.cur not in self.gone:
                    digit = await self.save_to_folder()
            else:
                digit = await play_names(self.chan, ["vm-sorry"], ANY_KEY)
        if not self.chan.softhangup:
            await play_names(self.chan, ["vm-goodbye"])


def _start_folder(value: str | None) -> str:
    if not value:
        return "INBOX"
    if value.isdigit() and int(value) < len(MENU_FOLDERS):
        return MENU_FOLDERS[int(value)]
    for name in MENU_FOLDERS + ("Urgent",):
        if name.lower() == value.lower():
            return "INBOX" if name == "Urgent" else name
    return "INBOX"


async def app_voicemailmain(chan: Channel, data: str) -> int | None:
    vm = service(chan)
    parts = split_args(data)
    number_, context = split_box(parts[0] if parts else "")
    opts = parse_options(parts[1]) if len(parts) > 1 else {}
    if not await _answer(chan):
        return -1
    prefix = ""
    if "p" in opts:
        prefix, number_ = number_, ""
    user = await login(chan, vm, number_, context, "s" in opts and bool(number_), prefix)
    if user is None:
        return -1
    chan.pbx.verbose(3, f"{chan.name} logged in to mailbox {user.id}")
    session = Session(chan, vm, user)
    try:
        await session.run(_start_folder(opts.get("a")))
    finally:
        await session.close()
    return -1 if chan.softhangup else None
