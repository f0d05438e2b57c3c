"""``voicemail.conf``: ``[general]``, ``[zonemessages]`` and mailbox contexts.

Every other section is a mailbox context; each line in it is one mailbox, in the
syntax Asterisk's ``append_mailbox`` reads::

    100 => 0107,Leif Madsen,leif@example.com,,attach=no|maxmsg=100
    ^box   ^password ^full name ^e-mail  ^pager ^options (key=value, '|'-separated)

The parse gives frozen objects (:class:`VoicemailConfig`, :class:`General`,
:class:`Mailbox`, :class:`Zone`); a bad value (a yes/no that is neither, a number
that is not one, an unknown sound format, an option without ``=``) is a
:class:`~hookflash.conf.ConfigError` naming the file and the line, where Asterisk would
quietly use a default.  Unknown keys are kept (``General.extra``, ``Mailbox.options``)
and otherwise ignored, as Asterisk ignores them.

Per-mailbox options override the ``[general]`` ones through :meth:`Mailbox.option`
(``attach``, ``tz``, ``saycid``, ``envelope``, ``maxmsg``, ``maxsecs``, ...).  The IMAP
options (``imapuser``, ``imappassword``/``imapsecret``, ``imapfolder``,
``imapvmshareid``, ``imapserver``, ``imapport``, ``imapflags``) are kept for the IMAP
store.

hookflash extensions: ``smtphost`` and ``smtpport`` in ``[general]`` (default
``localhost`` and ``25``) pick the SMTP server used when ``mailcmd`` is not set.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookflash.conf.parser import ConfigFile, ConfigVariable, parse_bool
from hookflash.media.files import FORMATS

__all__ = [
    "DEFAULT_BODY",
    "DEFAULT_SUBJECT",
    "General",
    "Mailbox",
    "VoicemailConfig",
    "Zone",
    "format_extension",
    "parse_config",
    "unescape",
]

log = logging.getLogger("hookflash.voicemail.config")

RESERVED = ("general", "zonemessages")

DEFAULT_SUBJECT = "[PBX]: New message ${VM_MSGNUM} in mailbox ${VM_MAILBOX}"
DEFAULT_SUBJECT_PBXSKIP = "New message ${VM_MSGNUM} in mailbox ${VM_MAILBOX}"
DEFAULT_BODY = ("Dear ${VM_NAME}:\n\n\tJust wanted to let you know you were just left a ${VM_DUR} long "
                "message (number ${VM_MSGNUM})\nin mailbox ${VM_MAILBOX} from ${VM_CALLERID}, on "
                "${VM_DATE} so you might\nwant to check it when you get a chance.  Thanks!\n\n"
                "\t\t\t\t--Asterisk\n")

_BOOL_KEYS = {
    "attach", "review", "operator", "saycid", "envelope", "sayduration", "pollmailboxes",
    "pbxskip", "moveheard", "searchcontexts", "forcename", "forcegreetings", "tempgreetwarn",
    "messagewrap", "sendvoicemail", "nextaftercmd", "usedirectory", "leaveurgent",
    "forward_urgent_auto", "delete", "deletevoicemail", "hidefromdir", "imapgreetings",
    "expungeonhangup", "imap_poll_logout", "transcribe",
}
_INT_KEYS = {
    "maxmsg": (0, 9999), "maxsecs": (0, None), "maxmessage": (0, None), "minsecs": (0, None),
    "minmessage": (0, None), "maxsilence": (0, None), "silencethreshold": (0, None),
    "skipms": (0, None), "maxlogins": (1, None), "minpassword": (0, None), "pollfreq": (1, None),
    "saydurationm": (0, None), "maxgreet": (0, None), "smtpport": (1, 65535), "imapport": (1, 65535),
    "backupdeleted": (0, 9999), "imapopentimeout": (1, None), "imapclosetimeout": (1, None),
    "imapreadtimeout": (1, None), "imapwritetimeout": (1, None), "imapidlemax": (0, None),
}
IMAP_FLAGS = ("ssl", "notls", "tls", "novalidate-cert", "validate-cert", "secure", "norsh", "debug")
_ALIASES = {"maxmessage": "maxsecs", "minmessage": "minsecs", "deletevoicemail": "delete",
            "imapsecret": "imappassword", "greetingsfolder": "greetingfolder",
            # the book's names for Asterisk's imap*timeout options
            "opentimeout": "imapopentimeout", "closetimeout": "imapclosetimeout",
            "readtimeout": "imapreadtimeout", "writetimeout": "imapwritetimeout"}


def unescape(text: str) -> str:
    """The ``\\n``, ``\\r`` and ``\\t`` escapes of emailsubject/emailbody (Asterisk's
    ``substitute_escapes``); any other backslashed character stands for itself."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def format_extension(fmt: str) -> str:
    """The file extension a format is stored under: ``wav49`` is written as ``.WAV``,
    as Asterisk's format_wav_gsm does."""
    return "WAV" if fmt.lower() == "wav49" else fmt


@dataclass(frozen=True, slots=True)
class Zone:
    """A ``[zonemessages]`` line: ``name = Timezone|format``."""

    name: str
    timezone: str
    format: str


@dataclass(frozen=True, slots=True)
class General:
    formats: tuple[str, ...] = ("wav",)
    serveremail: str = "asterisk"
    fromstring: str = "Asterisk PBX"
    attach: bool = True
    maxmsg: int = 100
    maxsecs: int = 0
    minsecs: int = 0
    maxsilence: int = 0
    silencethreshold: int = 256
    skipms: int = 3000
    maxlogins: int = 3
    minpassword: int = 0
    review: bool = False
    operator: bool = False
    saycid: bool = False
    envelope: bool = True
    sayduration: bool = True
    saydurationm: int = 2
    moveheard: bool = True
    emailsubject: str = ""
    emailbody: str = ""
    emaildateformat: str = "%A, %B %d, %Y at %r"
    mailcmd: str = ""
    charset: str = "ISO-8859-1"
    pollmailboxes: bool = False
    pollfreq: int = 30
    tz: str = ""
    pbxskip: bool = False
    passwordlocation: str = "voicemail.conf"
    maxgreet: int = 0
    smtphost: str = "localhost"
    smtpport: int = 25
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def subject_template(self) -> str:
        if self.emailsubject:
            return self.emailsubject
        return DEFAULT_SUBJECT_PBXSKIP if self.pbxskip else DEFAULT_SUBJECT

    @property
    def body_template(self) -> str:
        return self.emailbody or DEFAULT_BODY


@dataclass(frozen=True, slots=True)
class Mailbox:
    context: str
    mailbox: str
    password: str
    fullname: str = ""
    email: str = ""
    pager: str = ""
    options: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    lineno: int = 0

    @property
    def id(self) -> str:
        return f"{self.mailbox}@{self.context}"

    def option(self, name: str, general: General) -> Any:
        """A per-mailbox option, typed as in [general], else the [general] value."""
        value = self.options.get(name)
        default = getattr(general, name, None)
        if value is None:
            return default
        if name in _BOOL_KEYS:
            return parse_bool(value)
        if name in _INT_KEYS:
            return int(value)
        return value


@dataclass(frozen=True, slots=True)
class VoicemailConfig:
    general: General = field(default_factory=General)
    zones: dict[str, Zone] = field(default_factory=dict)
    mailboxes: dict[tuple[str, str], Mailbox] = field(default_factory=dict)
    filename: str = ""

    def find(self, mailbox: str, context: str = "default") -> Mailbox | None:
        """The mailbox ``mailbox@context`` (both compared case-insensitively)."""
        return self.mailboxes.get((context.lower() or "default", mailbox.lower()))

    def contexts(self) -> list[str]:
        seen: list[str] = []
        for box in self.mailboxes.values():
            if box.context not in seen:
                seen.append(box.context)
        return seen


def split_box(text: str, default_context: str = "default") -> tuple[str, str]:
    """``100@ctx`` -> (``100``, ``ctx``); no context -> ``default``."""
    box, _, context = text.strip().partition("@")
    return box.strip(), (context.strip() or default_context)


# ---------------------------------------------------------------------- parsing
def _typed(var: ConfigVariable, key: str, value: str) -> Any:
    if key == "imapflags":
        for flag in re.split(r"[/|]", value):
            flag = flag.strip().lower()
            if flag and flag not in IMAP_FLAGS:
                raise var.error(f"imapflags value '{flag}' is not known",
                                "'/'-separated flags among " + ", ".join(IMAP_FLAGS) +
                                " (e.g. 'imapflags=ssl/novalidate-cert')")
        return value
    if key in _BOOL_KEYS:
        try:
            return parse_bool(value)
        except ValueError:
            raise var.error(f"{key} value '{value}' is not a yes/no value",
                            f"'{key}=yes' or '{key}=no'") from None
    if key in _INT_KEYS:
        low, high = _INT_KEYS[key]
        if not re.fullmatch(r"\s*\d+\s*", value):
            raise var.error(f"{key} value '{value}' is not a whole number", f"'{key}=<number>'")
        number = int(value)
        if number < low or (high is not None and number > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise var.error(f"{key} value {number} is out of range", f"a number {limit}")
        return number
    return value


def _formats(var: ConfigVariable) -> tuple[str, ...]:
    names = tuple(f.strip() for f in var.value.split("|") if f.strip())
    if not names:
        raise var.error("format is empty", "a '|'-separated list such as 'wav49|gsm|wav'")
    for name in names:
        if name not in FORMATS and name.lower() not in FORMATS:
            known = ", ".join(sorted({"wav", "wav49", "gsm", "ulaw", "alaw", "sln", "wav16", "sln16"}))
            raise var.error(f"unknown sound format '{name}' in format", f"formats among {known}")
    return names


def _general(conf: ConfigFile) -> General:
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    names = set(General.__dataclass_fields__)
    for section in conf.sections_named("general"):
        if section.is_template:
            continue
        for var in section.variables:
            key = _ALIASES.get(var.name.lower(), var.name.lower())
            if key == "format":
                values["formats"] = _formats(var)
            elif key in ("emailsubject", "emailbody"):
                values[key] = unescape(var.value)
            elif key in names and key != "extra":
                values[key] = _typed(var, key, var.value.strip())
            else:
                extra[key] = var.value.strip()
                if key in _BOOL_KEYS or key in _INT_KEYS or key == "imapflags":
                    _typed(var, key, var.value.strip())
    passwordlocation = str(values.get("passwordlocation", "voicemail.conf")).lower()
    if passwordlocation not in ("voicemail.conf", "spooldir"):
        var = next(v for s in conf.sections_named("general") for v in s.variables
                   if v.name.lower() == "passwordlocation")
        raise var.error(f"passwordlocation '{passwordlocation}' is not known",
                        "'passwordlocation=voicemail.conf' or 'passwordlocation=spooldir'")
    values["passwordlocation"] = passwordlocation
    return General(extra=extra, **values)


def _zones(conf: ConfigFile) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    for section in conf.sections_named("zonemessages"):
        for var in section.variables:
            tz, bar, fmt = var.value.partition("|")
            if not bar or not tz.strip():
                raise var.error(f"zone '{var.name}' has no timezone and format",
                                f"'{var.name}=Area/City|format' such as \"eastern=America/New_York|"
                                "'vm-received' Q 'digits/at' IMp\"")
            zones[var.name.lower()] = Zone(var.name, tz.strip(), fmt.strip())
    return zones


def parse_mailbox_line(var: ConfigVariable, context: str) -> Mailbox:
    """One ``box => password,full name,email,pager,options`` line."""
    box = var.name.strip()
    if not box:
        raise var.error("mailbox line without a mailbox number",
                        "'100 => password,Full Name,email,pager,option=value|...'")
    fields = var.value.split(",", 4)
    fields += [""] * (5 - len(fields))
    password, fullname, email, pager, opts = (f.strip() for f in fields)
    options: dict[str, str] = {}
    for item in re.split(r"[|]", opts):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise var.error(f"mailbox {box}: option '{item}' has no value",
                            "options as 'key=value' separated by '|', e.g. 'attach=no|maxmsg=100'")
        key = _ALIASES.get(key, key)
        value = value.strip()
        _typed(var, key, value)
        if key == "tz" and not value:
            raise var.error(f"mailbox {box}: empty tz", "'tz=<zone name from [zonemessages]>'")
        options[key] = value
    return Mailbox(context, box, password, fullname, email, pager, options, var.filename, var.lineno)


def parse_config(conf: ConfigFile | None) -> VoicemailConfig:
    """The whole file, or the defaults when there is none."""
    if conf is None:
        return VoicemailConfig()
    general = _general(conf)
    zones = _zones(conf)
    mailboxes: dict[tuple[str, str], Mailbox] = {}
    for section in conf.sections:
        if section.is_template or section.name.lower() in RESERVED:
            continue
        for var in section.variables:
            box = parse_mailbox_line(var, section.name)
            tz = box.options.get("tz")
            if tz and tz.lower() not in zones:  # Asterisk accepts it too (system time is used)
                log.warning("%s:%d: mailbox %s: zone '%s' is not in [zonemessages]; the system "
                            "time zone is used", var.filename, var.lineno, box.mailbox, tz)
            mailboxes[(section.name.lower(), box.mailbox.lower())] = box
    if general.tz and general.tz.lower() not in zones:
        log.warning("%s: [general] tz '%s' is not in [zonemessages]; the system time zone is used",
                    conf.filename, general.tz)
    return VoicemailConfig(general, zones, mailboxes, conf.filename)


def rewrite_password(path: Path, box: Mailbox, new_password: str) -> bool:
    """Change the password field of the mailbox's own line in voicemail.conf, keeping
    everything else of the file as it is. The file is replaced atomically. False if
    the line no longer looks like that mailbox's line (then the caller falls back)."""
    import os
    import tempfile
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)
    except OSError:
        return False
    index = box.lineno - 1
    if not 0 <= index < len(lines):
        return False
    match = re.match(r"(\s*" + re.escape(box.mailbox) + r"\s*=>?\s*)([^,;\r\n]*)(.*)", lines[index], re.DOTALL)
    if match is None or match.group(2).strip() != box.password:
        return False
    lines[index] = match.group(1) + new_password + match.group(3)
    fd, tmp = tempfile.mkstemp(prefix=".voicemail.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True
