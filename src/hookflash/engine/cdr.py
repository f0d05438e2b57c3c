"""Call detail records: one per call, written to ``cdr-csv/Master.csv``.

Columns, in Asterisk's ``cdr_csv`` order: accountcode, src, dst, dcontext, clid,
channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
disposition, amaflags, then uniqueid and userfield when ``cdr_csv.conf`` asks
(``loguniqueid``/``loguserfield``). Every field is double-quoted. Times are local
(``usegmtime=yes`` for UTC) as ``YYYY-MM-DD HH:MM:SS``; an unanswered call has an empty
answer time. ``CDR(field[,options])`` reads (options ``f`` fractional seconds,
``u`` epoch times and numeric codes) and writes userfield, accountcode, amaflags and
custom fields.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.engine.modules import Module
from hookflash.engine.registry import DialplanError, Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.cdr")

DISPOSITIONS = {"NO ANSWER": 1, "FAILED": 2, "BUSY": 4, "ANSWERED": 8, "CONGESTION": 16}
AMAFLAGS = {"OMIT": 1, "BILLING": 2, "DOCUMENTATION": 3}
READ_ONLY = {"clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata",
             "start", "answer", "end", "duration", "billsec", "disposition", "uniqueid",
             "linkedid", "sequence"}


@dataclass
class Cdr:
    channel: str
    uniqueid: str
    linkedid: str
    start: float = field(default_factory=time.time)
    answer: float = 0.0
    end: float = 0.0
    clid: str = ""
    src: str = ""
    dst: str = ""
    dcontext: str = ""
    dstchannel: str = ""
    lastapp: str = ""
    lastdata: str = ""
    disposition: str = "NO ANSWER"
    amaflags: str = "DOCUMENTATION"
    accountcode: str = ""
    userfield: str = ""
    sequence: int = 0
    custom: dict[str, str] = field(default_factory=dict)
    posted: bool = False

    def mark_answered(self) -> None:
        if not self.answer:
            self.answer = time.time()

    def set_app(self, app: str, data: str) -> None:
        self.lastapp = app
        self.lastdata = data

    def duration(self, now: float | None = None) -> float:
        return (self.end or now or time.time()) - self.start

    def billsec(self, now: float | None = None) -> float:
        if not self.answer:
            return 0.0
        return (self.end or now or time.time()) - self.answer

    def end_call(self, chan: "Channel") -> None:
        """Freeze the record when the call ends (before the ``h`` extension runs)."""
        if self.end:
            return
        self.end = time.time()
        self.clid = chan.caller.all()
        self.src = chan.caller.num
        self.dst = chan.exten
        self.dcontext = chan.context
        self.accountcode = chan.accountcode
        if self.answer:
            self.disposition = "ANSWERED"
        else:
            status = chan.vars.get("DIALSTATUS", "")
            self.disposition = {"BUSY": "BUSY", "CONGESTION": "CONGESTION",
                                "CHANUNAVAIL": "FAILED"}.get(status, "NO ANSWER")

    def post(self, pbx: "Pbx") -> None:
        if self.posted:
            return
        self.posted = True
        for writer in pbx.cdr_writers:
            try:
                writer.write(self)
            except OSError as exc:
                log.error("Could not write the CDR of %s: %s", self.channel, exc)

    def read(self, name: str, options: str = "") -> str | None:
        name = name.lower()
        raw = "u" in options
        frac = "f" in options
        if name in ("start", "answer", "end"):
            stamp = getattr(self, name)
            if not stamp:
                return "" if not raw else "0"
            return f"{stamp:.6f}" if raw else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
        if name in ("duration", "billsec"):
            secs = getattr(self, name)()
            return f"{secs:.6f}" if frac else str(int(secs))
        if name == "disposition":
            disp = self.disposition if self.end else ("ANSWERED" if self.answer else "NO ANSWER")
            return str(DISPOSITIONS[disp]) if raw else disp
        if name == "amaflags":
            return str(AMAFLAGS.get(self.amaflags, 3)) if raw else self.amaflags
        if name in ("clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp",
                    "lastdata", "accountcode", "userfield", "uniqueid", "linkedid"):
            return str(getattr(self, name))
        if name == "sequence":
            return str(self.sequence)
        return self.custom.get(name)


class CdrWriter:
    """Appends records to ``<astlogdir>/cdr-csv/Master.csv`` (and per-account files)."""

    def __init__(self, logdir: Path, *, usegmtime: bool = False, loguniqueid: bool = False,
                 loguserfield: bool = False, accountlogs: bool = True) -> None:
        self.dir = Path(logdir) / "cdr-csv"
        self.usegmtime = usegmtime
        self.loguniqueid = loguniqueid
        self.loguserfield = loguserfield
        self.accountlogs = accountlogs
        self._master: Any = None

    def close(self) -> None:
        if self._master is not None:
            self._master.close()
            self._master = None

    def row(self, cdr: Cdr) -> list[str]:
        conv = time.gmtime if self.usegmtime else time.localtime

        def stamp(t: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", conv(t)) if t else ""

        row = [cdr.accountcode, cdr.src, cdr.dst, cdr.dcontext, cdr.clid, cdr.channel,
               cdr.dstchannel, cdr.lastapp, cdr.lastdata, stamp(cdr.start), stamp(cdr.answer),
               stamp(cdr.end), str(int(cdr.duration())), str(int(cdr.billsec())),
               cdr.disposition, cdr.amaflags]
        if self.loguniqueid:
            row.append(cdr.uniqueid)
        if self.loguserfield:
            row.append(cdr.userfield)
        return row

    def line(self, cdr: Cdr) -> str:
        buf = io.StringIO()
        csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(self.row(cdr))
        return buf.getvalue()

    def write(self, cdr: Cdr) -> None:
        text = self.line(cdr)
        if self._master is None or self._master.closed:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._master = open(self.dir / "Master.csv", "a", encoding="utf-8")  # noqa: SIM115
        self._master.write(text)
        self._master.flush()  # one write(2) per record; the file stays open between calls
        if self.accountlogs and cdr.accountcode and "/" not in cdr.accountcode \
                and not cdr.accountcode.startswith("."):
            with open(self.dir / f"{cdr.accountcode}.csv", "a", encoding="utf-8") as fh:
                fh.write(text)


def new_cdr(chan: "Channel") -> Cdr:
    cdr = Cdr(chan.name, chan.uniqueid, chan.linkedid)
    chan.cdr = cdr
    return cdr


class CdrCsvModule(Module):
    description = "Comma Separated Values CDR Backend"

    async def start(self) -> None:
        self.writer = self._make()
        self.pbx.cdr_writers.append(self.writer)

    def _make(self) -> CdrWriter:
        conf = self.pbx.read_config("cdr_csv.conf")

        def flag(key: str, default: bool) -> bool:
            if conf is None:
                return default
            value = conf.get("csv", key)
            return default if value is None else value.lower() in ("yes", "true", "1", "on", "y", "t")

        return CdrWriter(Path(self.pbx.dirs.astlogdir), usegmtime=flag("usegmtime", False),
                         loguniqueid=flag("loguniqueid", False),
                         loguserfield=flag("loguserfield", False),
                         accountlogs=flag("accountlogs", True))

    async def reload(self) -> str | None:
        new = self._make()
        self.pbx.cdr_writers[self.pbx.cdr_writers.index(self.writer)] = new
        self.writer.close()
        self.writer = new
        return None

    async def stop(self) -> None:
        if self.writer in self.pbx.cdr_writers:
            self.pbx.cdr_writers.remove(self.writer)
        self.writer.close()


def _cdr_read(chan: "Channel | None", args: str) -> str:
    if chan is None or chan.cdr is None:
        raise DialplanError("CDR() needs a channel with a CDR")
    name, _, options = args.partition(",")
    value = chan.cdr.read(name.strip(), options)
    return value or ""


def _cdr_write(chan: "Channel | None", args: str, value: str) -> None:
    if chan is None or chan.cdr is None:
        raise DialplanError("CDR() needs a channel with a CDR")
    name = args.partition(",")[0].strip()
    low = name.lower()
    if low in READ_ONLY:
        log.error("Attempted to set the read-only CDR field '%s' on %s", name, chan.name)
        return
    if low == "userfield":
        chan.cdr.userfield = value
    elif low == "accountcode":
        chan.cdr.accountcode = value
        chan.accountcode = value
    elif low == "amaflags":
        flags = {str(v): k for k, v in AMAFLAGS.items()}
        chan.cdr.amaflags = flags.get(value, value.upper() if value.upper() in AMAFLAGS else "DOCUMENTATION")
    else:
        chan.cdr.custom[low] = value


class FuncCdrModule(Module):
    description = "Call Detail Record (CDR) dialplan functions"

    def functions(self) -> list[Function]:
        return [Function("CDR", _cdr_read, _cdr_write, "Gets or sets a CDR variable.",
                         "CDR(name[,options])",
                         "Fields: clid src dst dcontext channel dstchannel lastapp lastdata start "
                         "answer end duration billsec disposition amaflags accountcode uniqueid "
                         "linkedid userfield sequence, or any custom name. Options: f (fractional "
                         "seconds), u (unparsed: epoch times, numeric codes).")]
