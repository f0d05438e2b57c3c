"""Telling people about messages: the e-mail with the recording attached, and the
message-waiting lamp (SIP NOTIFY ``message-summary``).

E-mail (app_voicemail's ``sendmail``): built with the ``email`` package. Subject and
body come from ``emailsubject``/``emailbody`` (or Asterisk's defaults) with the
variables ``VM_NAME``, ``VM_DUR`` (m:ss), ``VM_MSGNUM`` (1-based), ``VM_MAILBOX``,
``VM_CALLERID`` (``"name" <num>``, or "an unknown caller"), ``VM_CIDNUM``,
``VM_CIDNAME``, ``VM_DATE`` (``emaildateformat`` in the mailbox's zone),
``VM_CATEGORY``, ``VM_MESSAGEFILE``, ``VM_FLAG``, ``VM_CONTEXT``, ``ORIG_VM_*``; the
whole dialplan substitution language works in the templates (``${IF(...)}``), as in
Asterisk. Caller-supplied values are stripped of control characters first.
The message goes out through ``mailcmd`` when set (run without a shell: split with
shlex, the message on stdin; Asterisk runs it through ``/bin/sh``), else over SMTP to
``smtphost:smtpport`` (hookflash options; default localhost:25) in a worker thread, so
a slow or dead mail server never holds up a call. A failure is logged with the
mailbox; the message itself is already safe in the spool.

MWI: after every change the module computes the mailbox's counts and asks chan_sip to
NOTIFY every peer whose ``mailbox=`` lists that box (``100`` means ``100@default``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import os
import re
import shlex
import smtplib
import socket
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookflash.voicemail.config import (
    General,
    Mailbox,
    VoicemailConfig,
    format_extension,
    split_box,
)
from hookflash.voicemail.store import StoredMessage

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.voicemail.notify")

__all__ = ["EmailJob", "attach_audio", "build_email", "normalise_box", "notify_mwi", "send_email", "template_vars"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _safe(value: str) -> str:
    return _CONTROL.sub(" ", value)


def duration_text(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def zone_info(cfg: VoicemailConfig, box: Mailbox) -> Any:
    name = box.options.get("tz") or cfg.general.tz
    zone = cfg.zones.get(name.lower()) if name else None
    if zone is None:
        return None
    try:
        return ZoneInfo(zone.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("Unknown timezone '%s' in zone '%s'", zone.timezone, zone.name)
        return None


def template_vars(cfg: VoicemailConfig, box: Mailbox, msg: StoredMessage) -> dict[str, str]:
    info = msg.info
    from datetime import datetime
    when = datetime.fromtimestamp(info.origtime or time.time(), tz=zone_info(cfg, box))
    if zone_info(cfg, box) is None:
        when = when.astimezone()
    date = when.strftime(box.options.get("emaildateformat") or cfg.general.emaildateformat)
    name, num = _safe(info.cid_name), _safe(info.cid_num)
    if name and num:
        callerid = f'"{name}" <{num}>'
    else:
        callerid = name or num or "an unknown caller"
    values = {
        "VM_NAME": box.fullname, "VM_DUR": duration_text(info.duration),
        "VM_MSGNUM": str(msg.number + 1), "VM_MAILBOX": box.mailbox, "VM_CALLERID": callerid,
        "VM_CIDNUM": num, "VM_CIDNAME": name, "VM_DATE": date, "VM_CATEGORY": _safe(info.category),
        "VM_FLAG": info.flag, "VM_CONTEXT": box.context,
        "VM_MESSAGEFILE": f"{msg.folder}/{msg.name}",
    }
    for key in ("VM_CALLERID", "VM_CIDNUM", "VM_CIDNAME", "VM_DATE"):
        values[f"ORIG_{key}"] = values[key]
    return values


def render(pbx: Pbx | None, template: str, values: dict[str, str]) -> str:
    """Substitute the template as the dialplan would, on a detached channel holding
    the VM_ variables (never registered with the PBX)."""
    if pbx is None:
        return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), ""), template)
    from hookflash.channels.channel import Channel
    from hookflash.dialplan.subst import substitute
    chan = Channel(pbx, "Substitution/voicemail")
    for key, value in values.items():
        chan.set_var(key, value)
    return substitute(template, chan, pbx)


def _from_address(general: General, box: Mailbox, host: str) -> tuple[str, str]:
    server = box.options.get("serveremail") or general.serveremail or "asterisk"
    if "@" not in server:
        server = f"{server}@{host}"
    return box.options.get("fromstring") or general.fromstring, server


def attachment_format(general: General, box: Mailbox) -> str:
    wanted = box.options.get("attachfmt")
    formats = list(general.formats)
    fmt = wanted if wanted and wanted in formats else formats[0]
    return format_extension(fmt)


def build_email(pbx: Pbx | None, cfg: VoicemailConfig, box: Mailbox, msg: StoredMessage,
                audio: Path | None, host: str | None = None, transcript: str = "") -> EmailMessage:
    general = cfg.general
    host = host or socket.gethostname()
    values = template_vars(cfg, box, msg)
    values["VM_TRANSCRIPTION"] = _safe(transcript)
    mail = EmailMessage()
    fromname, fromaddr = _from_address(general, box, host)
    mail["Date"] = email.utils.formatdate(localtime=True)
    mail["From"] = email.utils.formataddr((_safe(fromname), fromaddr))
    mail["To"] = email.utils.formataddr((_safe(box.fullname), box.email))
    subject = box.options.get("emailsubject") or general.subject_template
    mail["Subject"] = _safe(render(pbx, subject, values))
    mail["Message-ID"] = f"<Asterisk-{msg.number}-{os.urandom(4).hex()}-{box.mailbox}-{os.getpid()}@{host}>"
    headers = {
        "X-Asterisk-VM-Message-Num": str(msg.number + 1), "X-Asterisk-VM-Server-Name": fromname,
        "X-Asterisk-VM-Context": box.context, "X-Asterisk-VM-Extension": box.mailbox,
        "X-Asterisk-VM-Flag": msg.info.flag, "X-Asterisk-VM-Priority": str(msg.info.priority),
        "X-Asterisk-VM-Caller-channel": msg.info.callerchan,
        "X-Asterisk-VM-Caller-ID-Num": values["VM_CIDNUM"],
        "X-Asterisk-VM-Caller-ID-Name": values["VM_CIDNAME"],
        "X-Asterisk-VM-Duration": str(msg.info.duration),
        "X-Asterisk-VM-Category": values["VM_CATEGORY"],
        "X-Asterisk-VM-Message-ID": msg.info.msg_id,
        "X-Asterisk-VM-Orig-date": values["VM_DATE"],
        "X-Asterisk-VM-Orig-time": str(msg.info.origtime),
    }
    for key, value in headers.items():
        mail[key] = _safe(value)
    body = render(pbx, box.options.get("emailbody") or general.body_template, values)
    if transcript and "VM_TRANSCRIPTION" not in (box.options.get("emailbody") or general.emailbody or ""):
        body += f"\nTranscription (automatic, may contain errors):\n{_safe(transcript)}\n"
    mail.set_content(body, charset=_charset(general.charset), cte="8bit")
    attach_audio(mail, general, box, msg, audio)
    return mail


def attach_audio(mail: EmailMessage, general: General, box: Mailbox, msg: StoredMessage,
                 audio: Path | None) -> None:
    """Attach the recording (when ``attach``): reads the whole file, so callers on the
    event loop run this in a worker thread."""
    if box.option("attach", general) and audio is not None and audio.is_file():
        ext = audio.suffix[1:]
        maintype, subtype = ("application", "ogg") if ext.lower() == "ogg" else ("audio", f"x-{ext}")
        mail.add_attachment(audio.read_bytes(), maintype=maintype, subtype=subtype,
                            filename=f"{msg.name}.{ext}")
        for part in mail.iter_attachments():
            part["Content-Description"] = "Voicemail sound attachment."


def _charset(name: str) -> str:
    import codecs
    try:
        codecs.lookup(name)
        return name
    except LookupError:
        return "utf-8"


@dataclass
class EmailJob:
    general: General
    mail: EmailMessage
    recipient: str


# SMTP gets its own threads: a dead or stalling mail server (30 s per socket operation)
# must not fill the loop's default executor, which voicemail saves, the call-file
# spooler and calendar parsing all need.
_SMTP_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="vm-smtp")


def _smtp_send(host: str, port: int, mail: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.send_message(mail)


async def send_email(job: EmailJob) -> bool:
    """Deliver through mailcmd or SMTP; True when the mail went out."""
    general = job.general
    if general.mailcmd:
        data = await asyncio.to_thread(job.mail.as_bytes)  # a big attachment: encoding takes a while
        try:
            argv = shlex.split(general.mailcmd)
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(data), 60)
        except (OSError, ValueError, TimeoutError) as exc:
            log.warning("Unable to send voicemail e-mail to %s with '%s': %s", job.recipient,
                        general.mailcmd, exc)
            return False
        if proc.returncode != 0:
            log.warning("mailcmd '%s' failed (exit %s) for %s: %s", general.mailcmd, proc.returncode,
                        job.recipient, err.decode(errors="replace").strip())
            return False
        return True
    try:
        await asyncio.get_running_loop().run_in_executor(_SMTP_THREADS, _smtp_send, general.smtphost,
                                                         general.smtpport, job.mail)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("Unable to send voicemail e-mail to %s through %s:%s: %s", job.recipient,
                    general.smtphost, general.smtpport, exc)
        return False
    log.info("Sent voicemail e-mail to %s", job.recipient)
    return True


# ---------------------------------------------------------------------- MWI
def normalise_box(text: str) -> str:
    box, context = split_box(text)
    return f"{box}@{context}".lower()


def notify_mwi(pbx: Pbx, box_id: str) -> int:
    """NOTIFY every SIP peer with this mailbox in ``mailbox=``; how many were sent."""
    module = pbx.modules.loaded.get("chan_sip")
    stack = getattr(module, "stack", None)
    if stack is None:
        return 0
    wanted = normalise_box(box_id)
    sent = 0
    for peer in list(stack.peers.values()):
        boxes = [normalise_box(b) for b in getattr(peer.config, "mailbox", ())]
        if wanted in boxes:
            try:
                if stack.notify_mwi(peer.name):
                    sent += 1
            except Exception:
                log.exception("MWI NOTIFY to %s failed", peer.name)
    return sent
