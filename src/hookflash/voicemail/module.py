"""app_voicemail: configuration, store, applications, console commands, and the
notifications sent when a mailbox changes.

The module owns one :class:`~hookflash.voicemail.config.VoicemailConfig` (replaced
whole on reload; a reload with an error keeps the running one) and one
:class:`~hookflash.voicemail.store.MessageStore` (the file store under
``<astspooldir>/voicemail``). It sets ``pbx.mailbox_counts`` so chan_sip can answer
message-summary subscriptions, and after every change NOTIFYs the peers whose
``mailbox=`` lists the box and (for new messages) sends the e-mail in the background.

Password changes (VoiceMailMain ``0``, ``5``) are written where ``passwordlocation``
says: ``voicemail.conf`` (default) rewrites the password field of the mailbox's own
line in place (the rest of the file untouched, atomic replace); ``spooldir`` writes
``<spool>/voicemail/<context>/<mailbox>/secret.conf`` (``[general]`` ``password=``),
as Asterisk does. The embedded demo configuration is never rewritten: its passwords go
to ``secret.conf``. ``secret.conf`` is read at every load for ``spooldir``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.conf import ConfigError
from hookflash.conf.parser import load
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand, Function
from hookflash.voicemail.apps import (
    app_vmauthenticate,
    app_vmsayname,
    app_voicemail,
    app_voicemailplaymsg,
    func_mailbox_exists,
    func_vm_info,
)
from hookflash.voicemail.config import (
    Mailbox,
    VoicemailConfig,
    parse_config,
    rewrite_password,
    split_box,
)
from hookflash.voicemail.imap.store import ImapStore, imap_box
from hookflash.voicemail.main import app_voicemailmain
from hookflash.voicemail.notify import EmailJob, build_email, notify_mwi, send_email
from hookflash.voicemail.store import (
    FileStore,
    StoredMessage,
    _write_durable,
)

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.voicemail")


class VoicemailModule(Module):
    description = "Comedian Mail (Voicemail System)"
    support = "core"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.cfg = VoicemailConfig()
        self.files = FileStore(pbx.dirs.astspooldir)
        self.store: ImapStore = ImapStore(self.files)
        self.store.on_change = self._store_changed
        self.store.render = self._render
        self.timings: list[dict[str, float]] = []  # for bench/voicemail.py (kept short)
        self._poller: asyncio.Future[None] | None = None
        self._rt_boxes: dict[tuple[str, str], tuple[float, Mailbox]] = {}  # realtime mailboxes read
        self.transcriber: Any = None
        self.transcripts: dict[tuple[str, str], str] = {}  # (box id, msg_id) -> text

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> VoicemailConfig:
        cfg = parse_config(self.pbx.read_config("voicemail.conf"))
        if cfg.general.passwordlocation == "spooldir" or self._embedded():
            cfg = self._spool_passwords(cfg)
        return cfg

    def _embedded(self) -> bool:
        from hookflash.engine.pbx import embedded_config_dir
        return Path(self.pbx.config_dir).resolve() == embedded_config_dir().resolve()

    def _spool_passwords(self, cfg: VoicemailConfig) -> VoicemailConfig:
        boxes = dict(cfg.mailboxes)
        for key, box in cfg.mailboxes.items():
            secret = self._secret_path(box)
            if secret.is_file():
                try:
                    password = load(secret).get("general", "password")
                except ConfigError as exc:
                    log.warning("Ignoring %s: %s", secret, exc)
                    continue
                if password:
                    boxes[key] = replace(box, password=password.strip())
        return replace(cfg, mailboxes=boxes)

    def _secret_path(self, box: Mailbox) -> Path:
        return Path(self.pbx.dirs.astspooldir) / "voicemail" / box.context / box.mailbox / "secret.conf"

    async def start(self) -> None:
        self.cfg = self._load()
        self.files.root.mkdir(parents=True, exist_ok=True)
        self.files.clean_temp()
        self._configure_imap()
        await self.store.start()
        self.pbx.mailbox_counts = self.mailbox_counts  # type: ignore[attr-defined]
        self._start_poller()
        self.pbx.verbose(2, f"Voicemail: {len(self.cfg.mailboxes)} mailboxes in "
                            f"{len(self.cfg.contexts())} contexts")

    def _configure_imap(self) -> None:
        general = self.cfg.general
        extra = general.extra
        self.store.pollfreq = float(general.pollfreq)
        self.store.poll_logout = extra.get("imap_poll_logout", "no").lower() in ("yes", "true", "1", "on")
        try:
            self.store.idle_max = int(extra.get("imapidlemax", "1000"))
        except ValueError:
            self.store.idle_max = 1000
        boxes = [ib for ib in (imap_box(b, general) for b in self.cfg.mailboxes.values()) if ib is not None]
        self.store.configure(boxes, general)
        if boxes:
            self.pbx.verbose(2, f"Voicemail: {len(boxes)} mailboxes on IMAP")

    def _store_changed(self, ref: tuple[str, str]) -> None:
        box = self.find(ref[1], ref[0])
        if box is not None:
            self.changed(box)

    def _render(self, ibox, msg, info):  # type: ignore[no-untyped-def]
        """Subject and body of the mail a voicemail is stored as (emailsubject/emailbody)."""
        from hookflash.voicemail.notify import render, template_vars
        box = self.find(ibox.box[1], ibox.box[0])
        if box is None:
            return f"[PBX]: New message {msg.number + 1} in mailbox {ibox.box[1]}", "", info.origdate
        from dataclasses import replace as _replace
        values = template_vars(self.cfg, box, _replace(msg, info=info))
        subject = box.options.get("emailsubject") or self.cfg.general.subject_template
        body = box.options.get("emailbody") or self.cfg.general.body_template
        if info.flag == "Urgent" and not box.options.get("emailsubject") and not self.cfg.general.emailsubject:
            subject = subject.replace("New message", "New Urgent message")
        return render(self.pbx, subject, values), render(self.pbx, body, values), values["VM_DATE"]

    def _start_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.cfg.general.pollmailboxes:
            self._poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        """``pollmailboxes``: notice changes made outside hookflash (another process, a
        file copied into the spool) every ``pollfreq`` seconds and update the lamps."""
        last: dict[str, tuple[int, int]] = {}
        while True:
            for box in list(self.cfg.mailboxes.values()):
                if self.store.imap((box.context, box.mailbox)) is not None:
                    continue  # watched by the IMAP store (IDLE or its own poll)
                try:
                    counts = await self.amailbox_counts(box.id)
                    if box.id in last and last[box.id] != counts:
                        self.changed(box)
                    last[box.id] = counts
                except Exception:  # the poller must outlive one bad mailbox
                    log.exception("Polling mailbox %s failed", box.id)
            await asyncio.sleep(self.cfg.general.pollfreq)

    async def stop(self) -> None:
        await self.store.stop()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if getattr(self.pbx, "mailbox_counts", None) == self.mailbox_counts:
            del self.pbx.mailbox_counts  # type: ignore[attr-defined]

    async def reload(self) -> str | None:
        try:
            self.cfg = self._load()
        except ConfigError as exc:
            log.error("voicemail.conf not reloaded, the running configuration is kept: %s", exc)
            return str(exc)
        self._configure_imap()
        self._start_poller()
        return None

    # ------------------------------------------------------------------ registry
    def applications(self) -> list[Application]:
        return [
            Application("VoiceMail", app_voicemail, "Leave a Voicemail message.",
                        "VoiceMail(mailbox[@context][&mailbox[@context][&...]][,options])",
                        "Options b u s U g(#) d([c]). Sets VMSTATUS: SUCCESS, USEREXIT, FAILED."),
            Application("VoiceMailMain", app_voicemailmain, "Check Voicemail messages.",
                        "VoiceMailMain([mailbox][@context][,options])", "Options s p a(folder) g(#)."),
            Application("VMAuthenticate", app_vmauthenticate, "Authenticate with Voicemail passwords.",
                        "VMAuthenticate([mailbox][@context][,options])",
                        "Sets AUTH_MAILBOX and AUTH_CONTEXT; option s skips the thank-you prompt."),
            Application("VoiceMailPlayMsg", app_voicemailplaymsg, "Play a single voice mail msg from a "
                        "mailbox by msg id.", "VoiceMailPlayMsg(mailbox[@context],msg_id)",
                        "Sets VOICEMAIL_PLAYBACKSTATUS: SUCCESS or FAILED."),
            Application("VMSayName", app_vmsayname, "Play the name of a voicemail user.",
                        "VMSayName(mailbox[@context])"),
        ]

    def functions(self) -> list[Function]:
        return [
            Function("VM_INFO", lambda chan, args: func_vm_info(self, chan, args), None,
                     "Returns the selected attribute from a mailbox.",
                     "VM_INFO(mailbox[@context],attribute[,folder])",
                     "count email exists fullname language locale pager password tz"),
            Function("VM_TRANSCRIPT", lambda chan, args: self._func_transcript(args), None,
                     "The transcription of a voicemail message (hookflash; transcribe=yes).",
                     "VM_TRANSCRIPT(mailbox[@context],msg_id)", "Empty until the message is transcribed."),
            Function("MAILBOX_EXISTS", lambda chan, args: func_mailbox_exists(self, chan, args), None,
                     "Tell if a mailbox is configured (deprecated: use VM_INFO(...,exists)).",
                     "MAILBOX_EXISTS(mailbox[@context])"),
        ]

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("voicemail", "show", "users"), self._show_users, "List defined voicemail boxes",
                       "Usage: voicemail show users [for <context>]"),
            CliCommand(("voicemail", "show", "mailbox"), self._show_mailbox,
                       "Show the mailbox details and its messages",
                       "Usage: voicemail show mailbox <mailbox> <context>"),
            CliCommand(("voicemail", "show", "zones"), self._show_zones, "List zone message formats",
                       "Usage: voicemail show zones"),
            CliCommand(("voicemail", "refresh"), self._refresh_cmd,
                       "Re-read mailboxes from their IMAP server and update the lamps",
                       "Usage: voicemail refresh [<mailbox> <context>]\n"
                       "       Like the AMI action VoicemailRefresh: re-reads every IMAP mailbox, or one."),
            CliCommand(("voicemail", "reload"), self._reload_cmd, "Reload voicemail configuration",
                       "Usage: voicemail reload"),
        ]

    # ------------------------------------------------------------------ mailboxes
    def find(self, mailbox: str, context: str = "default") -> Mailbox | None:
        """A mailbox of voicemail.conf, or one already read from realtime."""
        box = self.cfg.find(mailbox, context)
        if box is not None:
            return box
        cached = self._rt_boxes.get(((context or "default").lower(), mailbox.lower()))
        return cached[1] if cached is not None else None

    async def afind(self, mailbox: str, context: str = "default") -> Mailbox | None:
        """:meth:`find`, then the ``voicemail`` realtime family (extconfig.conf): the
        mailbox is read again when its cached copy is older than ``RT_KEEP`` seconds."""
        box = self.cfg.find(mailbox, context)
        if box is not None:
            return box
        from hookflash.realtime.core import realtime
        from hookflash.realtime.driver import RealtimeError
        from hookflash.voicemail.realtime import RT_KEEP, mailbox_from_record, safe
        key = ((context or "default").lower(), mailbox.lower())
        cached = self._rt_boxes.get(key)
        if cached is not None and time.monotonic() - cached[0] < RT_KEEP:
            return cached[1]
        rt = realtime(self.pbx)
        if not rt.enabled("voicemail") or not safe(mailbox) or not safe(context or "default"):
            return cached[1] if cached is not None else None
        try:
            record = await rt.load("voicemail", [("mailbox", mailbox), ("context", context or "default")])
        except RealtimeError as exc:
            log.warning("Realtime lookup of mailbox %s@%s failed: %s", mailbox, context, exc)
            return cached[1] if cached is not None else None
        if not record:
            self._rt_boxes.pop(key, None)
            return None
        box = mailbox_from_record(record, context or "default", mailbox)
        self._rt_boxes[key] = (time.monotonic(), box)
        ibox = imap_box(box, self.cfg.general)
        if ibox is not None:
            self.store.add_box(ibox)
        return box

    # ------------------------------------------------------------------ services
    def mailbox_counts(self, text: str) -> tuple[int, int]:
        """(new, old) of ``box[@context]`` (chan_sip's MWI provider)."""
        number, context = split_box(text)
        try:
            new, old, _ = self.store.counts((context, number))
        except Exception:
            log.exception("Counting messages of %s failed", text)
            return 0, 0
        return new, old

    async def amailbox_counts(self, text: str) -> tuple[int, int]:
        """:meth:`mailbox_counts` counted in a worker thread (the poller's)."""
        number, context = split_box(text)
        try:
            new, old, _ = await self.store.acounts((context, number))
        except Exception:
            log.exception("Counting messages of %s failed", text)
            return 0, 0
        return new, old

    def changed(self, box: Mailbox) -> int:
        """The box changed: NOTIFY its lamps. Returns how many NOTIFYs went out."""
        return notify_mwi(self.pbx, box.id)

    def message_left(self, box: Mailbox, msg: StoredMessage, durable_at: float | None = None) -> None:
        """A new message is on disk: lamps now, e-mail in the background. With the
        mailbox option ``delete=yes`` the message is e-mailed, then removed (Asterisk's
        VM_DELETE), and only then are the lamps updated."""
        if box.option("delete", self.cfg.general):
            self.pbx.spawn(self._email_then_delete(box, msg))
            return
        sent = self.changed(box)
        if durable_at is not None:
            self.timings.append({"durable": durable_at, "notified": time.time(), "notifies": sent})
            del self.timings[:-1000]
        transcribe = self._transcribe_on(box)
        if transcribe:
            self.pbx.spawn(self._transcribe(box, msg))
        elif box.email and self.store.imap((box.context, box.mailbox)) is None:
            self.pbx.spawn(self._email(box, msg))

    # ------------------------------------------------------------------ transcription
    def _transcribe_on(self, box: Mailbox) -> bool:
        """``transcribe=yes`` (hookflash's option, per mailbox or in [general])."""
        value = box.options.get("transcribe") or self.cfg.general.extra.get("transcribe", "no")
        return value.strip().lower() in ("yes", "true", "1", "on")

    async def _transcribe(self, box: Mailbox, msg: StoredMessage) -> None:
        """After the message is safe (and its lamp lit): transcribe it off the loop, keep
        the text in its metadata and for VM_TRANSCRIPT(), then send the e-mail with it.
        A recogniser that is missing, busy or fails leaves the message untouched."""
        import shutil
        import tempfile
        from hookflash.voicemail.transcribe import Transcriber
        text = ""
        try:
            if self.transcriber is None:
                self.transcriber = Transcriber()
            if not self.transcriber.available():
                log.warning("transcribe=yes for %s but no speech recogniser is installed", box.id)
            else:
                found = self.files.audio(msg)
                if found is not None:
                    tmp = Path(tempfile.mkdtemp(prefix="hookflash-stt-")) / f"msg.{found[1]}"
                    await asyncio.to_thread(shutil.copyfile, found[0], tmp)  # the outbox may upload it meanwhile
                    try:
                        text = await self.transcriber.atranscribe(tmp)
                    finally:
                        shutil.rmtree(tmp.parent, ignore_errors=True)
        except Exception:
            log.exception("Transcribing message %s of %s failed", msg.info.msg_id, box.id)
        if text:
            self.transcripts[(box.id.lower(), msg.info.msg_id)] = text
            del_keys = list(self.transcripts)[:-10000]
            for key in del_keys:
                self.transcripts.pop(key, None)
            try:
                await asyncio.to_thread(self._save_transcript, msg, text)
            except Exception:
                log.exception("Storing the transcription of %s failed", msg.info.msg_id)
            self.pbx.verbose(3, f"Transcribed message {msg.info.msg_id} of {box.id}: {len(text.split())} words")
        if box.email and self.store.imap((box.context, box.mailbox)) is None:
            await self._email(box, msg, text)

    def _save_transcript(self, msg: StoredMessage, text: str) -> None:
        current = self.files.find(msg.box, msg.info.msg_id)
        if current is None:
            return  # already uploaded to IMAP, moved away or deleted
        from dataclasses import replace as _replace
        from hookflash.voicemail.store import _write_durable
        extra = tuple((k, v) for k, v in current.info.extra if k != "transcription") + (("transcription", text),)
        path = self.files.folder_dir(current.box, current.folder) / f"{current.name}.txt"
        _write_durable(path, _replace(current.info, extra=extra).to_text())

    def transcript(self, box_id: str, msg_id: str) -> str:
        found = self.transcripts.get((box_id.lower(), msg_id))
        if found is not None:
            return found
        number, context = split_box(box_id)
        msg = self.files.find((context, number), msg_id)  # a few small files: the message's folders
        if msg is None:
            return ""
        return next((v for k, v in msg.info.extra if k == "transcription"), "")

    async def _email_then_delete(self, box: Mailbox, msg: StoredMessage) -> None:
        if box.email:
            await self._email(box, msg)
        try:
            await self.store.delete(msg)
            await self.store.resequence(msg.box, msg.folder)
        except Exception:
            log.exception("Deleting the e-mailed message %s/%s of %s failed", msg.folder, msg.name, box.id)
        self.changed(box)

    async def _email(self, box: Mailbox, msg: StoredMessage, transcript: str = "") -> None:
        from hookflash.voicemail.notify import attach_audio, attachment_format
        try:
            fmt = attachment_format(self.cfg.general, box)
            path = self.files.folder_dir(msg.box, msg.folder) / f"{msg.name}.{fmt}"
            found = path if path.is_file() else None
            audio = found or (self.store.audio(msg) or (None, ""))[0]
            mail = build_email(self.pbx, self.cfg, box, msg, None, transcript=transcript)
            # the recording can be megabytes: read and attach it off the event loop
            await asyncio.to_thread(attach_audio, mail, self.cfg.general, box, msg, audio)
            await send_email(EmailJob(self.cfg.general, mail, box.email))
        except Exception:
            log.exception("Voicemail e-mail for %s failed", box.id)

    def _func_transcript(self, args: str) -> str:
        from hookflash.dialplan.args import split_args
        parts = split_args(args)
        if len(parts) < 2:
            log.warning("VM_TRANSCRIPT requires mailbox[@context],msg_id")
            return ""
        number, context = split_box(parts[0])
        return self.transcript(f"{number}@{context}", parts[1].strip())

    async def change_password(self, box: Mailbox, password: str) -> Mailbox:
        """Store a new password (see the module docstring); returns the updated box."""
        general = self.cfg.general
        path = self.pbx.config_dir / box.filename if box.filename else None  # relative: to the config dir
        done = False
        if general.passwordlocation == "voicemail.conf" and path is not None and not self._embedded():
            done = await asyncio.to_thread(rewrite_password, path, box, password)
        if not done:
            secret = self._secret_path(box)
            secret.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(_write_durable, secret, f"[general]\npassword={password}\n")
        updated = replace(box, password=password)
        boxes = dict(self.cfg.mailboxes)
        boxes[(box.context.lower(), box.mailbox.lower())] = updated
        self.cfg = replace(self.cfg, mailboxes=boxes)
        if done:
            self.pbx.verbose(3, f"Password of mailbox {box.id} changed in {path}")
        else:
            self.pbx.verbose(3, f"Password of mailbox {box.id} changed in {self._secret_path(box)}")
        return updated

    # ------------------------------------------------------------------ console
    async def _show_users(self, args: CliArgs) -> str:
        argv = args.argv
        context = None
        if argv:
            if len(argv) != 2 or argv[0].lower() != "for":
                return "Usage: voicemail show users [for <context>]\n"
            context = argv[1]
        boxes = [b for b in self.cfg.mailboxes.values()
                 if context is None or b.context.lower() == context.lower()]
        if not self.cfg.mailboxes:
            return "There are no voicemail users currently defined\n"
        if context is not None and not boxes:
            return f'No such voicemail context "{context}"\n'
        fmt = "%-10s %-5s %-25s %-10s %6s\n"
        out = [fmt % ("Context", "Mbox", "User", "Zone", "NewMsg")]
        imap_rows = []
        for box in boxes:
            ref = (box.context, box.mailbox)
            new = await self.store.acount(ref, "INBOX")
            out.append(fmt % (box.context, box.mailbox, box.fullname, box.options.get("tz", ""), new))
            if self.store.imap(ref) is not None:
                imap_rows.append(self._imap_row(box))
        out.append(f"{len(boxes)} voicemail users configured.\n")
        if imap_rows:
            row = "%-10s %-5s %-40s %-8s %-6s %6s\n"
            out.append("\n" + row % ("Context", "Mbox", "IMAP", "State", "Counts", "Outbox"))
            out.extend(imap_rows)
        return "".join(out)

    def _imap_state(self, box: Mailbox) -> dict[str, object]:
        return self.store.state((box.context, box.mailbox))

    def _imap_row(self, box: Mailbox) -> str:
        st = self._imap_state(box)
        row = "%-10s %-5s %-40s %-8s %-6s %6s\n"
        return row % (box.context, box.mailbox, str(st["spec"])[:40], st["mode"],
                      "stale" if st["stale"] else "live", st["outbox"])

    async def _refresh_cmd(self, args: CliArgs) -> str:
        argv = args.argv
        if argv and len(argv) != 2:
            return "Usage: voicemail refresh [<mailbox> <context>]\n"
        boxes = list(self.cfg.mailboxes.values())
        if argv:
            found = await self.afind(argv[0], argv[1])
            if found is None:
                return f"No such mailbox '{argv[0]}@{argv[1]}'\n"
            boxes = [found]
        out = []
        for box in boxes:
            ref = (box.context, box.mailbox)
            if self.store.imap(ref) is None:
                if argv:
                    out.append(f"Mailbox {box.id} is stored in files; lamps updated\n")
                self.changed(box)
                continue
            ok = await self.store.refresh(ref)
            new, old, _ = self.store.counts(ref)
            out.append(f"Refreshed {box.id}: {new} new, {old} old" +
                       ("" if ok else " (server unavailable; last known counts)") + "\n")
            self.changed(box)
        return "".join(out) or "No IMAP mailboxes; lamps updated\n"

    def _show_zones(self, args: CliArgs) -> str:
        if not self.cfg.zones:
            return "There are no voicemail zones currently defined\n"
        fmt = "%-15s %-20s %-45s\n"
        out = [fmt % ("Zone", "Timezone", "Message Format")]
        for zone in self.cfg.zones.values():
            out.append(fmt % (zone.name, zone.timezone, zone.format))
        return "".join(out)

    async def _show_mailbox(self, args: CliArgs) -> str:
        if len(args.argv) != 2:
            return "Usage: voicemail show mailbox <mailbox> <context>\n"
        box = await self.afind(args.argv[0], args.argv[1])
        if box is None:
            return f"No such mailbox '{args.argv[0]}@{args.argv[1]}'\n"
        head = "%-32.32s %-32.32s %-16.16s %-16.16s %-16.16s %-16.16s\n"
        out = [head % ("Full Name", "Email", "Pager", "Language", "Locale", "Time Zone"),
               head % (box.fullname, box.email, box.pager, box.options.get("language", ""),
                       box.options.get("locale", ""), box.options.get("tz", "") or self.cfg.general.tz),
               "\n"]
        row = "%-8.8s %-32.32s %-32.32s %-9.9s %-6.6s %-30.30s\n"
        out.append(row % ("Folder", "Caller ID", "Date", "Duration", "Flag", "ID"))
        total = 0
        from hookflash.voicemail.store import ALL_FOLDERS
        for folder in ALL_FOLDERS:
            for msg in await self.store.alist((box.context, box.mailbox), folder):
                info = msg.info
                out.append(row % (folder, info.callerid, info.origdate, str(info.duration), info.flag,
                                  info.msg_id))
                total += 1
        out.append(f"{total} Message{'s' if total != 1 else ''} Total\n")
        if self.store.imap((box.context, box.mailbox)) is not None:
            st = self._imap_state(box)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(st["synced_at"]))) \
                if st["synced_at"] else "never"
            out.append(f"\nIMAP: {st['spec']}\n")
            out.append(f"  state: {'connected, ' if st['mode'] != '-' else 'not connected, '}"
                       f"{ {'IDLE': 'IDLE (push)', 'poll': 'polling every %gs' % self.store.pollfreq}.get(str(st['mode']), 'reconnecting')}"
                       f"; {st['connections']} connection(s)\n")
            out.append(f"  counts: {'STALE, last known at ' + when if st['stale'] else 'live, synced ' + when}\n")
            out.append(f"  outbox: {st['outbox']} message(s) waiting for upload\n")
            if st["error"]:
                out.append(f"  last error: {st['error']}\n")
        return "".join(out)

    async def _reload_cmd(self, args: CliArgs) -> str:
        error = await self.reload()
        text = "Reloading voicemail configuration...\n"
        return text + (f"Not reloaded: {error}\n" if error else "")
