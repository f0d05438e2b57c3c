"""Asterisk call files: the text format of ``<spool>/outgoing/*.call``, sans IO.

``parse_call_file(data, filename)`` turns the bytes of one file into a :class:`CallFile`
or raises :class:`CallFileError` naming the file, the line and what was expected.
``retry_line(...)`` formats the lines the spooler appends while it works on a file.

The format, as Asterisk's pbx_spool reads it:

* one ``Key: value`` per line; keys are case-insensitive;
* ``#`` starts a comment at the start of a line or after a space or tab; ``;`` starts
  a comment unless written ``\\;`` (which gives a literal ``;``); trailing white space
  is dropped; ``;--`` block comments are not supported (as in Asterisk);
* ``Channel`` (``Tech/data``, required), then ``Context``/``Extension``/``Priority``
  or ``Application``/``Data`` (one of Extension or Application required; Application
  wins when both are given); ``CallerID`` (``"Name" <number>``), ``MaxRetries`` (0),
  ``RetryTime`` (300 s), ``WaitTime`` (45 s), ``Account``, repeatable ``Setvar``/``Set``
  (``name=value``, functions allowed), ``Archive`` (no), ``AlwaysDelete`` (yes),
  ``PredialCallee`` (a Gosub target run on the new channel before it is called);
* bookkeeping lines written by the spooler itself: ``StartRetry: pid retries (time)``,
  ``EndRetry``/``AbortRetry`` (one finished attempt each), ``Retry``, ``DelayedRetry``,
  and ``Status`` (added when archiving).

``Codecs``, ``EarlyMedia`` and ``PredialCaller`` are accepted and ignored (noted in
:attr:`CallFile.notes`): hookflash negotiates codecs per peer, answers on a real answer
only, and a call file has no calling channel to run a Gosub on.

Bad values (``MaxRetries: many``) are reported in :attr:`CallFile.warnings` with the line
and replaced by the default, as Asterisk does; a file without a usable Channel, or with
neither Application nor Extension, or that is not text, is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hookflash.apps.func_channel import callerid_split

__all__ = ["MAX_LINE", "MAX_SIZE", "CallFile", "CallFileError", "parse_call_file", "retry_line"]

MAX_SIZE = 64 * 1024  # a call file is a few hundred bytes; anything this big is not one
MAX_LINE = 4096

_INT = re.compile(r"\s*([+-]?\d+)")
_TRUE = ("yes", "true", "y", "t", "1", "on")
# numeric keys (also the CallFile attribute): name in the warning, minimum, default
_NUMBERS = {"priority": ("priority", 1, 1), "maxretries": ("max retries", 0, 0),
            "retrytime": ("retrytime", 1, 300), "waittime": ("waittime", 1, 45)}


class CallFileError(ValueError):
    """A call file that cannot be used: ``str()`` names the file and line."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        where = f"{filename}:{line}" if line else filename
        super().__init__(f"{where}: {message}")
        self.filename = filename
        self.line = line
        self.message = message
        self.archive = False  # the file's Archive: setting, read before the error


@dataclass
class CallFile:
    filename: str
    tech: str = ""
    dest: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 1
    app: str = ""
    data: str = ""
    callerid: tuple[str, str] | None = None  # (name, number)
    maxretries: int = 0
    retrytime: int = 300
    waittime: int = 45
    account: str = ""
    variables: list[tuple[str, str]] = field(default_factory=list)
    archive: bool = False
    always_delete: bool = True
    predial_callee: str = ""
    retries: int = 0  # attempts already made (EndRetry/AbortRetry/Retry lines)
    calling_pid: int = 0  # set by a StartRetry line not yet closed by EndRetry/AbortRetry
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return f"{self.tech}/{self.dest}"

    @property
    def target(self) -> str:
        """What the answered call is connected to, as the log shows it."""
        if self.app:
            return f"application {self.app}({self.data})"
        return f"{self.exten}@{self.context or 'default'}:{self.priority}"


def _strip_comments(line: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        if ch == ";":
            if out and out[-1] == "\\":
                out[-1] = ";"
                i += 1
                continue
            break
        out.append(ch)
        i += 1
    text = "".join(out)
    return text.rstrip("".join(chr(c) for c in range(33)))


def _number(value: str, minimum: int) -> int | None:
    m = _INT.match(value)
    if m is None:
        return None
    number = int(m.group(1))
    return number if number >= minimum else None


def parse_call_file(data: bytes, filename: str) -> CallFile:
    """Parse one call file; raises CallFileError when it cannot be used."""
    if len(data) > MAX_SIZE:
        raise CallFileError(filename, 0, f"file is {len(data)} bytes; a call file is at most {MAX_SIZE}")
    if b"\0" in data:
        nul_line = data[:data.index(b"\0")].count(b"\n") + 1
        raise CallFileError(filename, nul_line, "binary data (NUL byte); expected 'Key: value' text lines")
    text = data.decode("utf-8", errors="replace")
    cf = CallFile(filename)
    channel_line = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if len(raw) > MAX_LINE:
            cf.warnings.append(f"line {lineno}: longer than {MAX_LINE} characters; ignored")
            continue
        line = _strip_comments(raw)
        if not line:
            continue
        key, colon, value = line.partition(":")
        if not colon:
            cf.warnings.append(f"line {lineno}: syntax error, expected 'Key: value'")
            continue
        _apply(cf, key.strip().lower(), value.lstrip("".join(chr(c) for c in range(33))), lineno)
        if key.strip().lower() == "channel":
            channel_line = lineno
    error = None
    if not cf.tech or not cf.dest:
        if channel_line:
            error = CallFileError(filename, channel_line, "Channel should be in form Tech/Dest")
        else:
            error = CallFileError(filename, 0, "no 'Channel: Tech/Dest' line")
    elif not cf.app and not cf.exten:
        error = CallFileError(filename, 0, "at least one of 'Application:' or 'Extension:' must be given")
    if error is not None:
        error.archive = cf.archive
        raise error
    if not cf.context:
        cf.context = "default"
    return cf


def _apply(cf: CallFile, key: str, value: str, lineno: int) -> None:
    def bad(what: str, default: object) -> None:
        cf.warnings.append(f"line {lineno}: invalid {what} '{value}'; using {default}")

    if key == "channel":
        tech, slash, dest = value.partition("/")
        cf.tech, cf.dest = (tech.strip(), dest.strip()) if slash else ("", "")
    elif key == "callerid":
        cf.callerid = callerid_split(value)
    elif key == "application":
        cf.app = value
    elif key == "data":
        cf.data = value
    elif key == "context":
        cf.context = value
    elif key == "extension":
        cf.exten = value
    elif key in _NUMBERS:
        label, minimum, default = _NUMBERS[key]
        number = _number(value, minimum)
        if number is None:
            bad(label, default)
        setattr(cf, key, number or default)
    elif key == "retry":
        cf.retries += 1
    elif key == "startretry":
        pid = _number(value, 0)
        if pid is None:
            cf.warnings.append(f"line {lineno}: unable to read the calling PID in '{value}'")
        cf.calling_pid = pid or 0
    elif key in ("endretry", "abortretry"):
        cf.calling_pid = 0
        cf.retries += 1
    elif key in ("delayedretry", "status"):
        pass
    elif key in ("setvar", "set"):
        name, eq, val = value.partition("=")
        if not eq or not name.strip():
            cf.warnings.append(f"line {lineno}: malformed '{key}' argument; should be '{key}: variable=value'")
        else:
            cf.variables.append((name.strip(), val))
    elif key == "account":
        cf.account = value
    elif key == "alwaysdelete":
        cf.always_delete = value.strip().lower() in _TRUE
    elif key == "archive":
        cf.archive = value.strip().lower() in _TRUE
    elif key == "predialcallee":
        cf.predial_callee = value
    elif key in ("codecs", "earlymedia", "predialcaller"):
        cf.notes.append(f"line {lineno}: '{key}' is ignored by hookflash")
    else:
        cf.warnings.append(f"line {lineno}: unknown keyword '{key}'")


def retry_line(keyword: str, pid: int, retries: int, when: int) -> str:
    """A bookkeeping line as Asterisk appends it: ``StartRetry: 1234 1 (1700000000)``."""
    return f"{keyword}: {pid} {retries} ({when})\n"
