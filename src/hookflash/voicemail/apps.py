"""The voicemail applications and functions: VoiceMail, VMAuthenticate,
VoiceMailPlayMsg, VMSayName, VM_INFO() and MAILBOX_EXISTS() (VoiceMailMain is in
:mod:`hookflash.voicemail.main`).

VoiceMail(mailbox[@context][&mailbox[@context]...][,options]) as app_voicemail runs it:
the mailbox context defaults to ``default``; options ``b`` (busy greeting), ``u``
(unavailable greeting), ``s`` (skip the "leave your message" instructions), ``U``
(urgent: stored in ``Urgent``), ``g(#)`` (gain: accepted, not applied), ``d([c])``
(digits during the greeting go to that extension of context ``c``, default the current
one). During the greeting ``#`` skips to the beep, ``*`` goes to extension ``a`` and
``0`` to ``o`` of the current context (VMSTATUS=USEREXIT); with ``operator=yes``,
``0`` during the recording saves the message and goes to ``o``. Greetings: ``temp``
if recorded, else ``busy``/``unavail`` as asked, else the recorded name followed by
"is on the phone"/"is unavailable", else "The person at extension" + the digits.
The recording (every ``format``) ends on ``#``, ``maxsilence`` seconds of silence,
``maxsecs`` or hangup (a caller who hangs up still leaves the message, as in
Asterisk); shorter than ``minsecs`` is dropped (VMSTATUS=FAILED). With several
mailboxes the message is recorded once and stored in each.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hookflash.apps.media import parse_options, timeouts
from hookflash.channels.channel import ChannelState
from hookflash.dialplan.args import split_args
from hookflash.media.stream import getdata
from hookflash.voicemail.config import Mailbox, split_box
from hookflash.voicemail.prompts import (
    beep,
    digits,
    play_names,
    play_path,
    record_formats,
)
from hookflash.voicemail.store import MailboxFull, MessageInfo, StoreError, new_msg_id

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.voicemail.module import VoicemailModule

log = logging.getLogger("hookflash.voicemail")


def service(chan: Channel) -> VoicemailModule:
    module = chan.pbx.modules.loaded.get("app_voicemail")
    if module is None:
        raise RuntimeError("app_voicemail is not loaded")
    return module  # type: ignore[return-value]


def _exists(chan: Channel, context: str, exten: str) -> bool:
    return bool(chan.dialplan_for_lookup().exists(context, exten, 1, chan.caller.num))


def _callerid(chan: Channel) -> str:
    num, name = chan.caller.num, chan.caller.name
    if name and num:
        return f'"{name}" <{num}>'
    return name or num or "Unknown"


def message_info(chan: Channel, box: Mailbox, duration: int, flag: str, now: float) -> MessageInfo:
    return MessageInfo(
        origmailbox=box.mailbox, context=chan.context, macrocontext=chan.get_var("MACRO_CONTEXT") or "",
        exten=chan.exten, rdnis=chan.caller.rdnis or "unknown", priority=chan.priority,
        callerchan=chan.name, callerid=_callerid(chan), origdate=MessageInfo.asterisk_date(now),
        origtime=int(now), category=chan.get_var("VM_CATEGORY") or "", msg_id=new_msg_id(now),
        flag=flag, duration=duration)


async def _greeting(chan: Channel, vm: VoicemailModule, box: Mailbox, busy: bool,
                    unavail: bool, ecodes: str) -> str | None:
    ref = (box.context, box.mailbox)
    store = vm.store
    found = await store.agreeting(ref, "temp")
    if found is None and busy:
        found = await store.agreeting(ref, "busy")
    if found is None and unavail:
        found = await store.agreeting(ref, "unavail")
    if found is not None:
        return await play_path(chan, *found, interrupt=ecodes)
    state = "vm-isonphone" if busy else "vm-isunavail"
    name = await store.agreeting(ref, "greet")
    if name is not None:
        digit = await play_path(chan, *name, interrupt=ecodes)
        return digit or await play_names(chan, [state], ecodes)
    return await play_names(chan, ["vm-theperson", *digits(box.mailbox), state], ecodes)


async def _goto_digits(chan: Channel, first: str, context: str) -> bool:
    """``d()``: complete an extension from digits pressed during the greeting."""
    dialplan = chan.dialplan_for_lookup()
    number = first
    wait = timeouts(chan)["digit"]
    while dialplan.match_more(context, number, chan.caller.num):
        digit = await chan.wait_digit(wait)
        if digit is None:
            break
        number += digit
    if dialplan.exists(context, number, 1, chan.caller.num):
        chan.goto(context, number, 1)
        return True
    return False


async def app_voicemail(chan: Channel, data: str) -> int | None:
    vm = service(chan)
    parts = split_args(data)
    target = parts[0].strip() if parts else ""
    opts = parse_options(parts[1]) if len(parts) > 1 else {}
    if not target:
        if not await _answer(chan):
            return -1
        _result, entered = await getdata(chan, "vm-whichbox", 80, 0)
        if not entered:
            chan.set_var("VMSTATUS", "FAILED")
            return -1 if chan.softhangup else None
        target = entered
    boxes: list[Mailbox] = []
    for item in target.split("&"):
        if not item.strip():
            continue
        number, context = split_box(item)
        box = await vm.afind(number, context)
        if box is None:
            log.warning("No entry in voicemail config file for '%s@%s' (%s)", number, context, chan.name)
            continue
        boxes.append(box)
    if not boxes:
        chan.set_var("VMSTATUS", "FAILED")
        return None
    if not await _answer(chan):  # only now, as Asterisk: an unknown box is not answered
        return -1
    box = boxes[0]
    general = vm.cfg.general
    urgent = "U" in opts
    folder = "Urgent" if urgent else "INBOX"
    ref = (box.context, box.mailbox)
    maxmsg = int(box.option("maxmsg", general))
    if (maxmsg and await vm.store.acount(ref, folder) >= maxmsg) or await vm.store.quota_check(ref):
        chan.pbx.verbose(3, f"Mailbox {box.id} is full ({maxmsg} messages)")
        await play_names(chan, ["vm-mailboxfull"])
        chan.set_var("VMSTATUS", "FAILED")
        return -1 if chan.softhangup else None

    ecodes = "#"
    if _exists(chan, chan.context, "o"):
        ecodes += "0"
    if _exists(chan, chan.context, "a"):
        ecodes += "*"
    jump_context = None
    if "d" in opts:
        jump_context = opts["d"] or chan.context
        ecodes += "123456789"
    digit = await _greeting(chan, vm, box, "b" in opts, "u" in opts, ecodes)
    if digit is None and not chan.softhangup and "s" not in opts:
        digit = await play_names(chan, ["vm-intro"], ecodes)
    exit_code = await _escape(chan, digit, jump_context)
    if exit_code is not None:
        return exit_code
    if chan.softhangup:
        chan.set_var("VMSTATUS", "FAILED")
        return -1
    await beep(chan)

    operator = bool(box.option("operator", general)) and _exists(chan, chan.context, "o")
    start = time.time()
    audio, status, duration = await _record_message(chan, vm, box, operator)
    if audio is None:
        chan.set_var("VMSTATUS", "FAILED")
        return -1 if chan.softhangup else None
    info = message_info(chan, box, duration, "Urgent" if urgent else "", start)
    try:
        saved = await vm.store.save(ref, folder, info, audio, maxmsg)
    except (MailboxFull, StoreError, OSError) as exc:
        log.error("%s: voicemail for %s not saved: %s", chan.name, box.id, exc)
        for path in audio.values():
            path.unlink(missing_ok=True)
        chan.set_var("VMSTATUS", "FAILED")
        return -1 if chan.softhangup else None
    chan.pbx.verbose(3, f"Saved message {saved.number} ({duration}s) for {box.id} from {chan.name}")
    vm.message_left(box, saved, time.time())
    for other in boxes[1:]:
        oref = (other.context, other.mailbox)
        try:
            copy = await vm.store.copy(saved, oref, folder, info=_for_box(info, other),
                                       maxmsg=int(other.option("maxmsg", general)))
        except (StoreError, OSError) as exc:
            log.warning("%s: voicemail copy to %s failed: %s", chan.name, other.id, exc)
            continue
        vm.message_left(other, copy, time.time())
    chan.set_var("VMSTATUS", "SUCCESS")
    if status == "OPERATOR":
        chan.set_var("VMSTATUS", "USEREXIT")
        chan.goto(None, "o", 1)
        return None
    if chan.softhangup:
        return -1
    await play_names(chan, ["vm-goodbye"])
    return -1 if chan.softhangup else None


async def _record_message(chan: Channel, vm: VoicemailModule, box: Mailbox, operator: bool
                          ) -> tuple[dict[str, Path] | None, str, int]:
    """Record (every format) until '#', silence, maxsecs or hangup; with ``review=yes``
    the caller may listen (2) and record again (3) before accepting (1). Returns the
    durable temporary files (None: too short, dropped), the record status and the
    duration in seconds."""
    general = vm.cfg.general
    ref = (box.context, box.mailbox)
    while True:
        writer, status = await record_formats(
            chan, vm.store.temp_dir(ref), general.formats,
            max_seconds=int(box.option("maxsecs", general)),
            silence_seconds=int(box.option("maxsilence", general)),
            silence_threshold=int(general.silencethreshold) or 256,
            terminators="#", operator_key="0" if operator else "")
        duration = int(writer.duration + 0.5)
        minsecs = int(box.option("minsecs", general))
        if duration < max(minsecs, 0) or writer.duration <= 0:
            chan.pbx.verbose(3, f"Recording was {duration} seconds long but needs to be at least "
                                f"{minsecs} - abandoning")
            writer.discard()
            return None, status, duration
        try:
            audio = await writer.close()
        except Exception:
            writer.discard()
            raise
        if not box.option("review", general) or status in ("HANGUP", "OPERATOR") or chan.softhangup:
            return audio, status, duration
        choice = await _review(chan, audio)
        if choice == "3" and not chan.softhangup:
            for path in audio.values():
                path.unlink(missing_ok=True)
            await beep(chan)
            continue
        if not chan.softhangup:
            await play_names(chan, ["vm-msgsaved"])
        return audio, status, duration


async def _review(chan: Channel, audio: dict[str, Path]) -> str | None:
    """"Press 1 to accept, 2 to listen, 3 to re-record"; a timeout accepts."""
    keys = "123*#"
    while not chan.softhangup:
        digit = await play_names(chan, ["vm-review"], keys)
        if digit is None and not chan.softhangup:
            digit = await chan.wait_digit(5)
        if digit == "2":
            ext = next(iter(audio))
            await play_path(chan, audio[ext], ext, interrupt=keys)
            continue
        return digit
    return None


def _for_box(info: MessageInfo, box: Mailbox) -> MessageInfo:
    from dataclasses import replace
    return replace(info, origmailbox=box.mailbox, msg_id=new_msg_id())


async def _escape(chan: Channel, digit: str | None, jump_context: str | None) -> int | None:
    """What a digit pressed during the greeting does (None: go on and record)."""
    if not digit or digit == "#":
        return None
    if digit == "*":
        chan.pbx.verbose(3, f"{chan.name}: user pressed * during the greeting, going to extension 'a'")
        chan.set_var("VMSTATUS", "USEREXIT")
        chan.goto(None, "a", 1)
        return 0
    if digit == "0":
        chan.pbx.verbose(3, f"{chan.name}: user pressed 0 during the greeting, going to extension 'o'")
        chan.set_var("VMSTATUS", "USEREXIT")
        chan.goto(None, "o", 1)
        return 0
    if jump_context is not None and await _goto_digits(chan, digit, jump_context):
        chan.set_var("VMSTATUS", "USEREXIT")
        return 0
    return None


async def _answer(chan: Channel) -> bool:
    if chan.state != ChannelState.UP:
        await chan.answer()
    return not chan.softhangup


# ---------------------------------------------------------------------- login
async def login(chan: Channel, vm: VoicemailModule, mailbox: str, context: str,
                skip_password: bool, prefix: str = "") -> Mailbox | None:
    """Ask for mailbox (unless given) and password, up to ``maxlogins`` times."""
    tries = 0
    fixed = bool(mailbox)
    prompt = "vm-login"
    maxlogins = vm.cfg.general.maxlogins
    while tries < maxlogins and not chan.softhangup:
        if not mailbox:
            _result, entered = await getdata(chan, prompt, 80, 0)
            if chan.softhangup:
                return None
            mailbox = prefix + entered
        user = await vm.afind(mailbox, context)
        if user is not None and skip_password:
            return user
        password_prompt = "vm-password" if not (fixed and tries) else "vm-incorrect&vm-password"
        _result, password = await getdata(chan, password_prompt, 80, 0)
        if chan.softhangup:
            return None
        if user is not None and password == user.password and user.password:
            return user
        tries += 1
        log.warning("%s: incorrect voicemail login for mailbox '%s@%s' (attempt %d of %d)",
                    chan.name, mailbox, context, tries, maxlogins)
        if not fixed:
            mailbox = ""
            prompt = "vm-incorrect-mailbox"
    if not chan.softhangup:
        await play_names(chan, ["vm-goodbye"])
    return None


async def app_vmauthenticate(chan: Channel, data: str) -> int | None:
    vm = service(chan)
    parts = split_args(data)
    number, context = split_box(parts[0] if parts else "")
    opts = parse_options(parts[1]) if len(parts) > 1 else {}
    if not await _answer(chan):
        return -1
    user = await login(chan, vm, number, context, False)
    if user is None:
        return -1
    chan.set_var("AUTH_MAILBOX", user.mailbox)
    chan.set_var("AUTH_CONTEXT", user.context)
    if "s" not in opts:
        await play_names(chan, ["auth-thankyou"])
    return -1 if chan.softhangup else None


# ---------------------------------------------------------------------- play one, say name
async def app_voicemailplaymsg(chan: Channel, data: str) -> int | None:
    vm = service(chan)
    parts = split_args(data)
    number, context = split_box(parts[0] if parts else "")
    msg_id = parts[1].strip() if len(parts) > 1 else ""
    box = await vm.afind(number, context) if number else None
    msg = await vm.store.afind((box.context, box.mailbox), msg_id) if box and msg_id else None
    found = await vm.store.aaudio(msg) if msg is not None else None
    if box is None or msg is None or found is None:
        log.warning("VoiceMailPlayMsg: no message '%s' in mailbox '%s@%s'", msg_id, number, context)
        chan.set_var("VOICEMAIL_PLAYBACKSTATUS", "FAILED")
        return None
    if not await _answer(chan):
        return -1
    await play_path(chan, *found)
    if msg.folder in ("INBOX", "Urgent") and box.option("moveheard", vm.cfg.general):
        try:
            await vm.store.move(msg, "Old")
            await vm.store.resequence(msg.box, msg.folder)
        except (StoreError, OSError) as exc:
            log.warning("VoiceMailPlayMsg: could not mark %s heard: %s", msg_id, exc)
        vm.changed(box)
    chan.set_var("VOICEMAIL_PLAYBACKSTATUS", "SUCCESS")
    return -1 if chan.softhangup else None


async def app_vmsayname(chan: Channel, data: str) -> int | None:
    vm = service(chan)
    number, context = split_box(split_args(data)[0] if data.strip() else "")
    if not number:
        log.warning("VMSayName requires a mailbox")
        return None
    if not await _answer(chan):
        return -1
    try:
        found = await vm.store.agreeting((context, number), "greet")
    except StoreError:  # a name no mailbox can have ('..', '/'): nothing recorded
        found = None
    if found is not None:
        await play_path(chan, *found)
    else:
        await play_names(chan, digits(number))
    return -1 if chan.softhangup else None


# ---------------------------------------------------------------------- functions
def func_vm_info(vm: VoicemailModule, chan: Channel | None, args: str) -> str:
    parts = split_args(args)
    if len(parts) < 2:
        log.warning("VM_INFO requires a mailbox and an attribute")
        return ""
    number, context = split_box(parts[0])
    attribute = parts[1].strip().lower()
    folder = parts[2].strip() if len(parts) > 2 and parts[2].strip() else "INBOX"
    box = vm.find(number, context)
    if attribute == "exists":
        return "1" if box is not None else "0"
    if box is None:
        return ""
    ref = (box.context, box.mailbox)
    if attribute == "count":
        try:
            if folder.upper() == "INBOX":
                return str(vm.store.counts(ref)[0])
            return str(vm.store.count(ref, folder))
        except StoreError:
            log.warning("VM_INFO: unknown folder '%s'", folder)
            return ""
    values = {"email": box.email, "fullname": box.fullname, "pager": box.pager,
              "password": box.password, "tz": box.options.get("tz") or vm.cfg.general.tz,
              "language": box.options.get("language", ""), "locale": box.options.get("locale", "")}
    if attribute not in values:
        log.warning("VM_INFO: unknown attribute '%s'", attribute)
        return ""
    return values[attribute]


def func_mailbox_exists(vm: VoicemailModule, chan: Channel | None, args: str) -> str:
    number, context = split_box(split_args(args)[0] if args.strip() else "")
    return "1" if number and vm.find(number, context) is not None else "0"
