"""Asterisk's IMAP message layout, sans-IO: building the mail a voicemail is stored
as, and reading one back (ours or one an Asterisk stored).

The layout is app_voicemail's (``make_email_file`` with ``imap=1``): CRLF line ends,
the headers below in this order, ``multipart/mixed`` with a ``text/plain`` body and
the recording as a base64 ``audio/x-<FMT>`` attachment named ``msgNNNN.<FMT>``
(0-based), ``Content-Description: Voicemail sound attachment.``::

    Date, From, To, Subject, Message-ID,
    X-Asterisk-VM-Message-Num, -Server-Name, -Context, -Extension, -Flag, -Priority,
    -Caller-ID-Num, -Caller-ID-Name, -Duration, -Category, -Message-Type, -Orig-date,
    -Orig-time, -Message-ID, X-Asterisk-CallerID, X-Asterisk-CallerIDName, MIME-Version

A greeting (``imapgreetings=yes``) is a message of the same shape whose
``X-Asterisk-VM-Message-Type`` is the greeting's name and whose attachment is
``<name>.<FMT>``.

Reading is defensive: the mail comes from a mail box that anybody who can send mail to
it can write to. Headers are decoded leniently, numbers that are not numbers become 0,
control characters are dropped from every value, and an attachment larger than
``MAX_AUDIO`` is refused (:class:`BadMessage`), as is a message without audio.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import email.utils
import re
import time
from dataclasses import dataclass
from email.message import Message

from hookflash.voicemail.store import MessageInfo

__all__ = ["BadMessage", "VmHeaders", "build_greeting", "build_message",
           "extract_audio", "parse_headers", "HEADER_FIELDS"]

MAX_AUDIO = 64 * 1024 * 1024  # 64 MB of audio is about 4.5 hours of wav49, 1 hour of wav

HEADER_FIELDS = (
    "X-Asterisk-VM-Context", "X-Asterisk-VM-Extension", "X-Asterisk-VM-Message-ID",
    "X-Asterisk-VM-Message-Type", "X-Asterisk-VM-Flag", "X-Asterisk-VM-Duration",
    "X-Asterisk-VM-Caller-ID-Num", "X-Asterisk-VM-Caller-ID-Name", "X-Asterisk-VM-Orig-time",
    "X-Asterisk-VM-Orig-date", "X-Asterisk-VM-Category", "X-Asterisk-VM-Priority",
    "Message-ID", "Content-Type",
)
"""What ``BODY.PEEK[HEADER.FIELDS (...)]`` asks for to know a message without its body."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadMessage(Exception):
    """A mail in the voicemail folder that cannot be played (no audio, too big, broken)."""


def _clean(value: str | None, limit: int = 256) -> str:
    return _CONTROL.sub("", str(value or "")).strip()[:limit]


def _header_text(value: str) -> str:
    """A header value we write: one line, no control characters; non-ASCII encoded."""
    value = _CONTROL.sub(" ", value)
    if value.isascii():
        return value
    from email.header import Header
    return Header(value, "utf-8").encode()


def _int(value: str) -> int:
    match = re.match(r"\s*(-?\d{1,12})", value or "")
    return int(match.group(1)) if match else 0


@dataclass(frozen=True, slots=True)
class VmHeaders:
    """What a voicemail mail's headers say (all values cleaned)."""

    context: str
    extension: str
    msg_id: str
    message_type: str
    flag: str
    duration: int
    cid_num: str
    cid_name: str
    origtime: int
    origdate: str
    category: str
    priority: int
    message_id: str

    @property
    def is_greeting(self) -> bool:
        return self.message_type.lower() not in ("", "message")

    def info(self, mailbox: str) -> MessageInfo:
        """The ``[message]`` metadata Asterisk synthesises from the headers on playback."""
        if self.cid_name and self.cid_num:
            callerid = f'"{self.cid_name}" <{self.cid_num}>'
        else:
            callerid = self.cid_name or self.cid_num or "Unknown"
        origdate = MessageInfo.asterisk_date(self.origtime) if self.origtime else self.origdate
        return MessageInfo(origmailbox=mailbox, context=self.context, callerid=callerid,
                           origdate=origdate, origtime=self.origtime, category=self.category,
                           msg_id=self.msg_id, flag=self.flag, duration=self.duration,
                           priority=self.priority or 1)


def parse_headers(raw: bytes) -> VmHeaders | None:
    """The voicemail headers of a mail (header block or whole message); None when it is
    not a voicemail (no ``X-Asterisk-VM-Context``/``-Extension``)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")
    except Exception:  # the email package is lenient; this is for what it still refuses
        return None

    def get(name: str) -> str:
        value = msg.get(name)
        if value is None:
            return ""
        try:
            from email.header import decode_header, make_header
            return _clean(str(make_header(decode_header(str(value)))))
        except Exception:
            return _clean(str(value))

    context, extension = get("X-Asterisk-VM-Context"), get("X-Asterisk-VM-Extension")
    if not context or not extension:
        return None
    return VmHeaders(
        context=context, extension=extension, msg_id=get("X-Asterisk-VM-Message-ID")[:64],
        message_type=get("X-Asterisk-VM-Message-Type") or "Message", flag=get("X-Asterisk-VM-Flag"),
        duration=max(_int(get("X-Asterisk-VM-Duration")), 0),
        cid_num=get("X-Asterisk-VM-Caller-ID-Num") or get("X-Asterisk-CallerID"),
        cid_name=get("X-Asterisk-VM-Caller-ID-Name") or get("X-Asterisk-CallerIDName"),
        origtime=max(_int(get("X-Asterisk-VM-Orig-time")), 0), origdate=get("X-Asterisk-VM-Orig-date"),
        category=get("X-Asterisk-VM-Category"), priority=_int(get("X-Asterisk-VM-Priority")),
        message_id=get("Message-ID"))



def _audio_parts(msg: Message) -> list[Message]:
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type().lower()
        filename = part.get_filename() or part.get_param("name") or ""
        if ctype.startswith("audio/") or ctype == "application/ogg" or re.search(
                r"\.(wav|WAV|gsm|ulaw|alaw|sln|g722|ogg)$", str(filename)):
            parts.append(part)
    return parts


def _ext_of(part: Message) -> str:
    filename = str(part.get_filename() or part.get_param("name") or "")
    match = re.search(r"\.([A-Za-z0-9]{1,8})$", filename)
    if match:
        return match.group(1)
    ctype = part.get_content_type().lower()
    if ctype == "application/ogg":
        return "ogg"
    sub = ctype.split("/", 1)[1] if "/" in ctype else ""
    return sub[2:] if sub.startswith("x-") else sub or "wav"


def extract_audio(raw: bytes, limit: int | None = None) -> tuple[bytes, str, bytes | None]:
    """(audio, extension, intro audio or None) of a stored voicemail. BadMessage when
    there is no audio part, it is not base64, or it is larger than ``limit`` (default
    :data:`MAX_AUDIO`)."""
    if limit is None:
        limit = MAX_AUDIO
    if len(raw) > limit * 4 // 3 + 1_000_000:
        raise BadMessage(f"message of {len(raw)} bytes is larger than allowed ({limit} bytes of audio)")
    try:
        msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    except Exception as exc:
        raise BadMessage(f"unparsable message: {exc}") from None
    parts = _audio_parts(msg)
    if not parts:
        raise BadMessage("no audio attachment")
    decoded: list[tuple[bytes, str]] = []
    for part in parts[:2]:
        payload = part.get_payload()
        if not isinstance(payload, str):
            raise BadMessage("audio part is not a single part")
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        try:
            data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True) if cte == "base64" \
                else part.get_payload(decode=True) or b""
        except (binascii.Error, ValueError):
            raise BadMessage("audio attachment is not valid base64") from None
        if len(data) > limit:
            raise BadMessage(f"audio attachment of {len(data)} bytes is larger than {limit}")
        if not data:
            raise BadMessage("empty audio attachment")
        decoded.append((data, _ext_of(part)))
    audio, ext = decoded[0]
    intro = decoded[1][0] if len(decoded) > 1 else None
    return audio, ext, intro


def _ext_type(ext: str) -> str:
    return "application/ogg" if ext.lower() == "ogg" else f"audio/x-{ext}"


def _b64(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def _assemble(headers: list[tuple[str, str]], boundary: str, body: str, charset: str,
              attachments: list[tuple[bytes, str, str]]) -> bytes:
    out = bytearray()
    for name, value in headers:
        out += f"{name}: {_header_text(value)}\r\n".encode("ascii")
    out += b"MIME-Version: 1.0\r\n"
    out += f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    out += b"This is a multi-part message in MIME format.\r\n\r\n"
    out += f"--{boundary}\r\n".encode()
    out += f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
    try:
        text = body.encode(charset, "replace")
    except LookupError:
        text = body.encode("utf-8", "replace")
    out += text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n\r\n"
    for data, ext, filename in attachments:
        out += f"--{boundary}\r\n".encode()
        out += (f'Content-Type: {_ext_type(ext)}; name="{filename}"\r\n'
                "Content-Transfer-Encoding: base64\r\n"
                "Content-Description: Voicemail sound attachment.\r\n"
                f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n').encode()
        out += _b64(data) + b"\r\n\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _address(name: str, addr: str) -> str:
    return email.utils.formataddr((_clean(name), _clean(addr)))


def build_message(*, mailbox: str, context: str, extension: str, info: MessageInfo, number: int,
                  audio: bytes, ext: str, subject: str, body: str, fromstring: str,
                  from_addr: str, to_name: str, to_addr: str, message_id: str, origdate: str,
                  charset: str = "ISO-8859-1", now: float | None = None) -> bytes:
    """A voicemail as the mail Asterisk APPENDs. ``number`` is the 0-based message
    number; ``extension`` is the mailbox or its ``imapvmshareid``."""
    cid_num = _clean(info.cid_num)
    cid_name = _clean(info.cid_name)
    boundary = f"----voicemail_{number}{_clean(mailbox)[:20]}{abs(hash(message_id)) % 10**9}"
    boundary = re.sub(r"[^A-Za-z0-9_.=-]", "", boundary)
    headers = [
        ("Date", email.utils.formatdate(now, localtime=True)),
        ("From", _address(fromstring, from_addr)),
        ("To", _address(to_name, to_addr)),
        ("Subject", _clean(subject, 998)),
        ("Message-ID", message_id),
        ("X-Asterisk-VM-Message-Num", str(number + 1)),
        ("X-Asterisk-VM-Server-Name", _clean(fromstring)),
        ("X-Asterisk-VM-Context", _clean(context)),
        ("X-Asterisk-VM-Extension", _clean(extension)),
        ("X-Asterisk-VM-Flag", _clean(info.flag)),
        ("X-Asterisk-VM-Priority", str(info.priority)),
        ("X-Asterisk-VM-Caller-ID-Num", cid_num),
        ("X-Asterisk-VM-Caller-ID-Name", cid_name),
        ("X-Asterisk-VM-Duration", str(info.duration)),
        ("X-Asterisk-VM-Category", _clean(info.category)),
        ("X-Asterisk-VM-Message-Type", "Message"),
        ("X-Asterisk-VM-Orig-date", _clean(origdate)),
        ("X-Asterisk-VM-Orig-time", str(info.origtime)),
        ("X-Asterisk-VM-Message-ID", _clean(info.msg_id)),
    ]
    if cid_num:
        headers.append(("X-Asterisk-CallerID", cid_num))
    if cid_name:
        headers.append(("X-Asterisk-CallerIDName", cid_name))
    return _assemble(headers, boundary, body, charset, [(audio, ext, f"msg{number:04d}.{ext}")])


def build_greeting(*, name: str, mailbox: str, context: str, extension: str, audio: bytes, ext: str,
                   fromstring: str, from_addr: str, to_name: str, to_addr: str, message_id: str,
                   charset: str = "ISO-8859-1", now: float | None = None) -> bytes:
    """A greeting (``unavail``, ``busy``, ``temp``, ``greet``) as Asterisk stores it."""
    when = time.strftime("%A, %B %d, %Y at %r", time.localtime(now))
    headers = [
        ("Date", email.utils.formatdate(now, localtime=True)),
        ("From", _address(fromstring, from_addr)),
        ("To", _address(to_name, to_addr)),
        ("Subject", f"New greeting '{name}' on {when}."),
        ("Message-ID", message_id),
        ("X-Asterisk-VM-Server-Name", _clean(fromstring)),
        ("X-Asterisk-VM-Context", _clean(context)),
        ("X-Asterisk-VM-Extension", _clean(extension)),
        ("X-Asterisk-VM-Message-Type", name),
        ("X-Asterisk-VM-Orig-time", str(int(now if now is not None else time.time()))),
    ]
    body = (f"This message is to let you know that your greeting '{name}' was changed on {when}.\n"
            "Please do not delete this message, lest your greeting vanish with it.\n")
    boundary = re.sub(r"[^A-Za-z0-9_.=-]", "", f"----voicemail_greeting{_clean(mailbox)[:20]}"
                                                 f"{abs(hash(message_id)) % 10**9}")
    return _assemble(headers, boundary, body, charset, [(audio, ext, f"{name}.{ext}")])


