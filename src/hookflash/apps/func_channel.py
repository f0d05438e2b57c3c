"""Channel information functions (Asterisk's func_callerid and func_channel).

CALLERID(datatype[,callerid]) reads and writes ``chan.caller``; CHANNEL(item) reads
channel properties and writes language, musicclass and accountcode; CHANNELS([regex])
lists the active channels.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from hookflash.apps.func_logic import (
    _func, atoi, compile_ere, separate_args, strip_blanks, strip_quoted,
)
from hookflash.channels.channel import CallerId
from hookflash.engine.modules import Module
from hookflash.engine.registry import Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.func")


# ====================================================================== caller ID text
def shrink_phone_number(number: str) -> str:
    """Drop spaces and parentheses, dashes outside ``[...]``, and dots except a last one."""
    out: list[str] = []
    bracketed = 0
    for i, ch in enumerate(number):
        if ch == "[":
            bracketed += 1
        elif ch == "]":
            bracketed -= 1
        elif ch == "-" and not bracketed:
            continue
        elif ch == "." and i != len(number) - 1:
            continue
        elif ch in "( )":
            continue
        out.append(ch)
    return "".join(out)


def _unescape_quoted(text: str) -> str:
    """A backslash makes the next character literal; a final lone backslash is dropped."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 1
            if i >= len(text):
                break
        out.append(text[i])
        i += 1
    return "".join(out)


def callerid_split(text: str) -> tuple[str, str]:
    """``"Name" <number>``, ``Name <number>``, ``number`` or ``Name`` -> (name, number)."""
    stripped = strip_blanks(text)
    instr = strip_quoted(stripped)
    quotes_stripped = instr != stripped
    lt = instr.rfind("<")
    if lt >= 0:
        gt = instr.rfind(">", lt)
        location: str | None = instr[lt + 1:gt] if gt >= 0 else instr[lt + 1:]
        name: str | None = strip_quoted(instr[:lt])
    else:
        shrunk = shrink_phone_number(instr)
        if not quotes_stripped and shrunk and all(c in "0123456789*#+" for c in shrunk):
            name, location = None, shrunk
        else:
            name, location = strip_quoted(instr), None
    return (_unescape_quoted(name) if name else "",
            shrink_phone_number(location) if location else "")


# Presentation names and their Q.931 values (Asterisk's table; the first name wins).
PRES_NAMES: dict[str, int] = {
    "allowed_not_screened": 0x00, "allowed_passed_screen": 0x01, "allowed_failed_screen": 0x02,
    "allowed": 0x03, "prohib_not_screened": 0x20, "prohib_passed_screen": 0x21,
    "prohib_failed_screen": 0x22, "prohib": 0x23, "unavailable": 0x43,
}
_PRES_BY_VALUE = {value: name for name, value in PRES_NAMES.items()}
_PRES_BY_VALUE.update({0x40: "unavailable", 0x41: "unavailable", 0x42: "unavailable"})


_DIGITS = tuple("0123456789")


def _parse_pres(value: str) -> str | None:
    value = value.rstrip("".join(chr(c) for c in range(33)))
    if value[:1] in _DIGITS:
        return _PRES_BY_VALUE.get(atoi(value), "unknown")
    lowered = value.lower()
    return lowered if lowered in PRES_NAMES else None


def _trim(value: str) -> str:
    """``ast_trim_blanks``: drop trailing characters below ``!``."""
    end = len(value)
    while end and ord(value[end - 1]) < 33:
        end -= 1
    return value[:end]


def _member(text: str) -> list[str] | None:
    parts = separate_args(text, delim="-", maxargs=10)
    return parts if 0 < len(parts) < 10 else None


def _caller_read(cid: "CallerId", sub: list[str]) -> str | None:
    """A field of ``cid`` named by the ``-`` separated subnames; None if unknown."""
    first = sub[0].lower()
    rest = [s.lower() for s in sub[1:]]
    if first == "all" and not rest:
        return f'"{cid.name}" <{cid.num}>'
    if first == "name":
        if not rest:
            return cid.name
        if rest == ["valid"]:
            return "1" if cid.name else "0"
        if len(rest) == 1 and rest[0].startswith("pres"):
            return cid.pres
        if rest == ["charset"]:
            return "iso8859-1"
        return None
    if first.startswith("num"):
        if not rest:
            return cid.num
        if rest == ["valid"]:
            return "1" if cid.num else "0"
        if rest == ["plan"]:
            return str(cid.ton)
        if len(rest) == 1 and rest[0].startswith("pres"):
            return cid.pres
        return None
    if first == "ton" and not rest:
        return str(cid.ton)
    if first.startswith("pres") and not rest:
        return cid.pres
    if first.startswith("subaddr") or (first == "tag" and not rest):
        return ""
    return None


def _caller_write(chan: "Channel", sub: list[str], value: str) -> bool:
    """Set a field of the channel's caller ID; False if the field is unknown."""
    cid = chan.caller
    first = sub[0].lower()
    rest = [s.lower() for s in sub[1:]]
    if first == "all" and not rest:
        cid.name, cid.num = callerid_split(value)
    elif first == "name" and not rest:
        cid.name = _trim(value)
    elif first.startswith("num") and not rest:
        cid.num = _trim(value)
    elif (first == "ton" and not rest) or (first.startswith("num") and rest == ["plan"]):
        if value[:1] in _DIGITS:
            cid.ton = atoi(value)
        else:
            log.error("Unknown type-of-number/numbering-plan '%s', value unchanged", _trim(value))
    elif (first.startswith("pres") and not rest) or (
            first in ("name", "num", "number") and len(rest) == 1 and rest[0].startswith("pres")):
        pres = _parse_pres(value)
        if pres is None:
            log.error("Unknown presentation '%s', value unchanged", _trim(value))
        else:
            cid.pres = pres
    elif first.startswith("subaddr") or (first == "tag" and not rest) or (
            first in ("name", "num", "number") and rest in (["valid"], ["charset"])):
        pass  # accepted, not modelled
    else:
        return False
    return True


def callerid_read(chan: "Channel | None", data: str) -> str:
    if chan is None:
        return ""
    args = separate_args(data, maxargs=2)
    if not args:
        return ""
    sub = _member(args[0])
    if sub is None:
        return ""
    if len(args) == 2:  # parse the given caller ID instead of the channel's
        name, num = callerid_split(args[1])
        what = sub[0].lower()
        if len(sub) == 1 and what == "all":
            return f'"{name}" <{num}>'
        if len(sub) == 1 and what == "name":
            return name
        if len(sub) == 1 and what.startswith("num"):
            return num
        log.error("Unknown callerid data type '%s'.", data)
        return ""
    first = sub[0].lower()
    cid = chan.caller
    if first == "rdnis" and len(sub) == 1:
        return cid.rdnis
    if first == "dnid":
        if len(sub) == 1 or (len(sub) == 2 and sub[1].lower().startswith("num")):
            return cid.dnid
        if len(sub) == 3 and sub[1].lower().startswith("num") and sub[2].lower() == "plan":
            return "0"
    elif first == "ani2" and len(sub) == 1:
        return "00"
    elif first == "ani":
        if len(sub) == 1 or (len(sub) == 2 and sub[1].lower().startswith("num")):
            return cid.ani
    elif first == "priv":  # the private party ID is not modelled: its fields read empty
        value = _caller_read(CallerId(), sub[1:]) if len(sub) > 1 else None
        if value is not None:
            return value
    else:
        value = _caller_read(cid, sub)
        if value is not None:
            return value
    log.error("Unknown callerid data type '%s'.", data)
    return ""


def callerid_write(chan: "Channel | None", data: str, value: str) -> None:
    if chan is None:
        return
    args = separate_args(data, maxargs=2)
    sub = _member(args[0]) if args else None
    if sub is None:
        return
    value = value.lstrip("".join(chr(c) for c in range(1, 33)))
    first = sub[0].lower()
    cid = chan.caller
    if first == "rdnis" and len(sub) == 1:
        cid.rdnis = value
        return
    if first == "dnid" and (len(sub) == 1 or (len(sub) == 2 and sub[1].lower().startswith("num"))):
        cid.dnid = _trim(value)
        return
    if first == "ani" and (len(sub) == 1 or (len(sub) == 2 and sub[1].lower().startswith("num"))):
        cid.ani = _trim(value)
        return
    if first == "ani2" and len(sub) == 1:
        return  # accepted, not modelled
    if first not in ("dnid", "ani", "ani2", "priv") and _caller_write(chan, sub, value):
        return
    log.error("Unknown callerid data type '%s'.", data)


class CallerIdModule(Module):
    description = "Party ID related dialplan functions (Caller-ID, Connected-line, Redirecting)"

    def functions(self) -> list[Function]:
        return [_func("CALLERID", callerid_read, callerid_write,
                      "Gets or sets Caller*ID data on the channel.", "CALLERID(datatype[,CID])",
                      "datatype: all (\"name\" <num>), name, num, ani, dnid, rdnis, pres, ton, "
                      "name-pres, num-pres, num-plan. With CID, that text is parsed instead.")]


# ====================================================================== CHANNEL
_NOT_MODELLED = {"audionativeformat", "videonativeformat", "audioreadformat", "audiowriteformat",
                 "tonezone", "dtmf_features", "parkinglot", "peeraccount", "hangupsource",
                 "lastexten", "lastcontext", "userfield", "transfercapability", "callgroup",
                 "pickupgroup", "namedcallgroup", "namedpickupgroup", "after_bridge_goto",
                 "max_forwards", "callid", "tenantid"}


def _channel_item(chan: "Channel", item: str) -> str | None:
    getters: dict[str, Any] = {
        "name": lambda: chan.name, "channame": lambda: chan.name,
        "state": lambda: chan.state.text, "language": lambda: chan.language,
        "musicclass": lambda: chan.musicclass, "accountcode": lambda: chan.accountcode,
        "uniqueid": lambda: chan.uniqueid, "linkedid": lambda: chan.linkedid or chan.uniqueid,
        "context": lambda: chan.context, "exten": lambda: chan.exten,
        "priority": lambda: str(chan.priority),  # a hookflash addition
        "channeltype": lambda: getattr(chan.tech, "tech_name", ""),
        "appname": lambda: chan.appl, "appdata": lambda: chan.data,
        "checkhangup": lambda: "1" if chan.softhangup else "0",
        "peer": lambda: chan.bridged.name if chan.bridged is not None else "",
        "onhold": lambda: "0", "amaflags": lambda: "0", "adsicpe": lambda: "unknown",
    }
    getter = getters.get(item.lower())
    if getter is not None:
        return getter()  # type: ignore[no-any-return]
    if item.lower() in _NOT_MODELLED:
        return ""
    return None


def channel_read(chan: "Channel | None", data: str) -> str:
    if chan is None:
        log.warning("No channel was provided to CHANNEL function.")
        return ""
    value = _channel_item(chan, data)
    if value is None:
        log.warning("Unknown or unavailable item requested: '%s'", data)
        return ""
    return value


def channel_write(chan: "Channel | None", data: str, value: str) -> None:
    if chan is None:
        log.warning("No channel was provided to CHANNEL function.")
        return
    item = data.lower()
    if item == "language":
        chan.language = value
    elif item == "musicclass":
        chan.musicclass = value
    elif item == "accountcode":
        chan.accountcode = value
    else:
        log.warning("Unknown or unavailable item requested: '%s'", data)


class _Channels:
    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    def read(self, chan: "Channel | None", data: str) -> str:
        """``CHANNELS([regex])``: names of the active channels matching the POSIX
        extended regex (any case), separated by spaces."""
        pattern = compile_ere(data, re.IGNORECASE) if data else None
        if data and pattern is None:
            return ""
        pbx = chan.pbx if chan is not None else self.pbx
        channels = getattr(pbx, "channels", None) or []
        return " ".join(c.name for c in channels if pattern is None or pattern.search(c.name))


class ChannelFuncModule(Module):
    description = "Channel information dialplan functions"

    def functions(self) -> list[Function]:
        lister = _Channels(self.pbx)
        return [
            _func("CHANNEL", channel_read, channel_write, "Gets or sets channel values.", "CHANNEL(item)",
                  "Items: name, state, language, musicclass, accountcode, uniqueid, linkedid, context, "
                  "exten, priority, channeltype, appname, appdata, checkhangup, peer. Writable: language, "
                  "musicclass, accountcode."),
            _func("CHANNELS", lister.read, None, "Gets the list of channels, optionally filtering by a "
                  "regular expression.", "CHANNELS([regular_expression])"),
        ]


__all__ = ["CallerIdModule", "ChannelFuncModule", "callerid_split", "shrink_phone_number"]
