"""Logic, random, global, environment and time functions, and the helpers all the
func_* modules share.

Asterisk's func_logic (ISNULL, EXISTS, IF, IFTIME, SET, IMPORT, DELETE,
VARIABLE_EXISTS), func_rand (RAND), func_global (GLOBAL), func_env (ENV), and the time
formatting behind STRFTIME/STRPTIME (registered by func_strings).

Arguments are split with :func:`separate_args`, a faithful copy of the rules of
Asterisk's argument splitter (the last argument a function declares receives the rest
of the text untouched), so quoting behaves as it does in Asterisk. Functions that take a
variable *name* read it as ``${name}`` would, so ``CUT(CALLERID(num),-,1)`` works too.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import re
import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookflash.dialplan.args import separate_args, condition_true
from hookflash.dialplan.subst import lookup, split_function, substitute
from hookflash.dialplan.timespec import TimeSpecError, parse_timespec
from hookflash.engine.modules import Module
from hookflash.engine.registry import Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.func")

RAND_MAX = 2**31 - 1


# ====================================================================== shared helpers
# Argument splitting, escapes, C-style number scanning and variable access shared by
# the func_* modules (func_strings, func_math and func_channel import them from here).
INT_MAX = 2**31 - 1
INT_MIN = -(2**31)


def arg(args: list[str], index: int) -> str | None:
    """The argument at ``index``, or None when it was not given (a NULL in Asterisk)."""
    return args[index] if index < len(args) else None


_HEX = "0123456789abcdefABCDEF"


def get_encoded_char(text: str, pos: int = 0) -> tuple[int | None, int]:
    """Decode one possibly escaped character (``\\n \\r \\t \\xHH \\0ooo \\c``):
    (code or None on error, characters consumed)."""
    if pos >= len(text):
        return None, 0
    if text[pos] != "\\":
        return ord(text[pos]), 1
    nxt = text[pos + 1:pos + 2]
    if nxt == "":
        # Asterisk reads past the end of the string here; we take the backslash itself.
        return ord("\\"), 1
    if nxt in "nrt":
        return {"n": 10, "r": 13, "t": 9}[nxt], 2
    if nxt == "x":
        h1 = text[pos + 2:pos + 3]
        if not h1 or h1 not in _HEX:
            log.error("Illegal character '%s' in hexadecimal string", h1)
            return None, 2
        h2 = text[pos + 3:pos + 4]
        if h2 and h2 in _HEX:
            return int(h1 + h2, 16), 4
        return int(h1, 16), 3
    if nxt == "0":
        value, used = 0, 2
        while pos + used < len(text) and text[pos + used] in "01234567":
            value = ((value << 3) + int(text[pos + used])) & 0xFF
            used += 1
        return value, used
    return ord(nxt), 2


def get_encoded_str(text: str) -> str:
    """Decode escapes up to the end of ``text`` (or a bad escape, or a NUL)."""
    out: list[str] = []
    pos = 0
    while True:
        code, used = get_encoded_char(text, pos)
        if code is None or code == 0:
            return "".join(out)
        out.append(chr(code))
        pos += used


def encoded_delim(text: str | None, default: str) -> str:
    """A one-character delimiter argument; ``default`` when absent or undecodable."""
    code, _ = get_encoded_char(text or "")
    return default if code is None else ("" if code == 0 else chr(code))


def var_value(pbx: Any, chan: "Channel | None", name: str) -> str:
    """``${name}``: a variable (or function, or substring) as substitution reads it."""
    if any(c in name for c in "(:$"):
        return substitute("${" + name + "}", chan, pbx)
    return lookup(chan, pbx, name) or ""


def raw_var(pbx: Any, chan: "Channel | None", name: str) -> str | None:
    """``pbx_builtin_getvar_helper``: channel variables, then globals (no built-ins)."""
    if chan is not None and name in chan.vars:
        return chan.vars[name]
    return pbx.globals.get(name)


def set_variable(pbx: Any, chan: "Channel | None", name: str, value: str | None) -> None:
    """``pbx_builtin_setvar_helper``: a name ending in ``)`` writes that function;
    without a channel the variable is global."""
    if name.endswith(")"):
        fname, fargs = split_function(name)
        func = pbx.registry.function(fname)
        if func is None or func.write is None:
            log.error("Function %s not registered or not writable", fname)
        else:
            func.write(chan, fargs, value or "")
        return
    if chan is not None:
        chan.set_var(name, value)
        return
    name = name[2:] if name.startswith("__") else name[1:] if name.startswith("_") else name
    if value is None:
        pbx.globals.pop(name, None)
    else:
        pbx.globals[name] = value


_SPACE = " \t\n\v\f\r"
_INT = re.compile(r"[+-]?[0-9]+")


def scan_int(text: str, pos: int = 0) -> tuple[int, int] | None:
    """``sscanf("%30d")`` from ``pos``: (value, end) or None. Values clamp to int."""
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    m = _INT.match(text[pos:pos + 30])
    if not m:
        return None
    return max(INT_MIN, min(INT_MAX, int(m.group()))), pos + m.end()


_FLOAT = re.compile(r"[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
                    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)",
                    re.IGNORECASE)


def scan_float(text: str) -> float | None:
    """``sscanf("%30lf")``: the leading number of ``text`` (after spaces), or None."""
    text = text.lstrip(_SPACE)
    m = _FLOAT.match(text[:30])
    if not m:
        return None
    s = m.group()
    if "x" in s.lower():
        if not re.search(r"[pP]", s):
            s += "p0"
        sign = -1.0 if s[0] == "-" else 1.0
        return sign * float.fromhex(s.lstrip("+-"))
    if s.lower().lstrip("+-").startswith("nan"):
        return float("nan")
    return float(s)


def atoi(text: str | None) -> int:
    found = scan_int(text or "")
    return found[0] if found else 0


def strip_blanks(text: str) -> str:
    """``ast_strip``: drop leading and trailing characters below ``!``."""
    start, end = 0, len(text)
    while start < end and ord(text[start]) < 33:
        start += 1
    while end > start and ord(text[end - 1]) < 33:
        end -= 1
    return text[start:end]


def strip_quoted(text: str, quote: str = '"') -> str:
    """``ast_strip_quoted``: strip blanks, then one pair of surrounding quotes."""
    text = strip_blanks(text)
    if text[:1] == quote and text[-1:] == quote:
        return text[1:-1]
    return text


_CLASSES = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "0-9A-Za-z", "upper": "A-Z",
            "lower": "a-z", "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~",
            "xdigit": "0-9A-Fa-f", "cntrl": r"\x00-\x1f\x7f", "print": r" -~", "graph": "!-~"}


def ere_to_python(pattern: str) -> str:
    """Translate a POSIX extended regular expression to Python's syntax: bracket
    expressions (``[[:digit:]]``, ``[]a]``, backslash literal inside) and ``\\<``/``\\>``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            out.append(r"\b(?=\w)" if nxt == "<" else r"\b(?<=\w)" if nxt == ">" else ch + nxt)
            i += 2
        elif ch == "[":
            j = i + 1
            body = ["["]
            if j < n and pattern[j] == "^":
                body.append("^")
                j += 1
            first = True
            while j < n and (pattern[j] != "]" or first):
                first = False
                if pattern.startswith("[:", j):
                    end = pattern.find(":]", j + 2)
                    if end > 0 and pattern[j + 2:end] in _CLASSES:
                        body.append(_CLASSES[pattern[j + 2:end]])
                        j = end + 2
                        continue
                c = pattern[j]
                body.append("\\" + c if c in "\\[]^" else c)
                j += 1
            if j >= n:  # unterminated: let re report it
                out.append(re.escape(pattern[i:]))
                break
            out.append("".join(body) + "]")
            i = j + 1
        elif ch == "$":
            out.append(r"\Z")  # POSIX $ is the very end; Python's $ also matches before a final newline
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def compile_ere(pattern: str, flags: int = 0) -> re.Pattern[str] | None:
    try:
        return re.compile(ere_to_python(pattern), flags | re.DOTALL)
    except re.error as exc:
        log.warning("Malformed regular expression '%s': %s", pattern, exc)
        return None


def _func(name: str, read: Any = None, write: Any = None, synopsis: str = "",
          syntax: str = "", description: str = "") -> Function:
    return Function(name, read, write, synopsis, syntax or f"{name}()", description)




# ====================================================================== func_logic
def _isnull(chan: "Channel | None", data: str) -> str:
    return "0" if data else "1"


def _exists(chan: "Channel | None", data: str) -> str:
    return "1" if data else "0"


def _if(chan: "Channel | None", data: str) -> str:
    """``IF(expr?[true][:false])``. As in Asterisk the condition and the true branch
    lose their double quotes and backslashes while the false branch is taken verbatim
    (it is the remainder of the split); each part is then stripped of blanks."""
    first = separate_args(data, delim="?", maxargs=2)
    expr = arg(first, 0)
    branches = separate_args(arg(first, 1), delim=":", maxargs=2)
    iftrue, iffalse = arg(branches, 0), arg(branches, 1)
    if not expr or (iftrue is None and iffalse is None):
        log.debug("IF: <expr>='%s', <true>='%s', <false>='%s'", expr, iftrue, iffalse)
        return ""
    chosen = iftrue if condition_true(strip_blanks(expr)) else iffalse
    return strip_blanks(chosen or "")


def _iftime(chan: "Channel | None", data: str) -> str:
    """``IFTIME(timespec?[true][:false])``: the whole argument and each branch may be
    enclosed in double quotes; the timespec fields are separated by ``,`` or ``|``."""
    text = strip_quoted(data)
    expr, question, rest = text.partition("?")
    iftrue: str | None = None
    iffalse: str | None = None
    if question:
        iftrue, colon, tail = rest.partition(":")
        iffalse = tail if colon else None
    if not expr or (iftrue is None and iffalse is None):
        log.warning("Syntax IFTIME(<timespec>?[<true>][:<false>])")
        return ""
    try:
        spec = parse_timespec(expr.replace("|", ","))
    except (TimeSpecError, ValueError) as exc:
        log.warning("Invalid Time Spec: %s", exc)
        return ""
    chosen = iftrue if spec.matches() else iffalse
    return strip_quoted(chosen) if chosen else ""


class _Logic:
    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    def _pbx(self, chan: "Channel | None") -> Any:
        return chan.pbx if chan is not None else self.pbx

    def set(self, chan: "Channel | None", data: str) -> str:
        """``SET(name=value)``: assigns (a function name writes that function) and
        returns the value; both sides are stripped of blanks."""
        name, eq, value = data.partition("=")
        if not name or not eq:
            log.warning("Syntax SET(<varname>=[<value>])")
            return ""
        name, value = strip_blanks(name), strip_blanks(value)
        if not name:  # Asterisk would index before the start of an all-blank name
            log.warning("Syntax SET(<varname>=[<value>])")
            return ""
        set_variable(self._pbx(chan), chan, name, value)
        return value

    def import_(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=2)
        name, var = arg(args, 0) or "", arg(args, 1)
        if not var:
            return ""
        pbx = self._pbx(chan)
        other = _find_channel(pbx, name)
        if other is None:
            return ""
        return var_value(pbx, other, var)

    def delete(self, chan: "Channel | None", data: str, value: str) -> None:
        set_variable(self._pbx(chan), chan, data, None)

    def variable_exists(self, chan: "Channel | None", data: str) -> str:
        return "1" if raw_var(self._pbx(chan), chan, data) is not None else "0"


def _find_channel(pbx: Any, name: str) -> "Channel | None":
    """A channel by name (any case) or unique ID, as ast_channel_get_by_name finds it."""
    channels = getattr(pbx, "channels", None)
    if channels is None or not name:
        return None
    getter = getattr(channels, "get", None)
    found = getter(name) if getter is not None else None
    if found is not None:
        return found  # type: ignore[no-any-return]
    for chan in channels:
        if chan.name.lower() == name.lower() or chan.uniqueid == name:
            return chan  # type: ignore[no-any-return]
    return None


class LogicModule(Module):
    description = "Logical dialplan functions"

    def functions(self) -> list[Function]:
        lg = _Logic(self.pbx)
        return [
            _func("ISNULL", _isnull, None, "Check if a value is NULL.", "ISNULL(data)",
                  "1 when data is empty, else 0."),
            _func("EXISTS", _exists, None, "Test the existence of a value.", "EXISTS(data)",
                  "1 when data is not empty, else 0."),
            _func("IF", _if, None, "Check for an expression.", "IF(expression?[true][:false])",
                  "The expression is true when it is a non-zero number or non-numeric text."),
            _func("IFTIME", _iftime, None, "Temporal Conditional.",
                  "IFTIME(times,weekdays,mdays,months[,timezone]?[true][:false])"),
            _func("SET", lg.set, None, "SET assigns a value to a channel variable.", "SET(varname=[value])"),
            _func("IMPORT", lg.import_, None, "Retrieve the value of a variable from another channel.",
                  "IMPORT(channel,variable)"),
            _func("DELETE", None, lg.delete, "Deletes a specified channel variable.", "DELETE(varname)"),
            _func("VARIABLE_EXISTS", lg.variable_exists, None, "Check if a dialplan variable exists or not.",
                  "VARIABLE_EXISTS(varname)"),
        ]


# ====================================================================== func_rand
def _rand(chan: "Channel | None", data: str) -> str:
    """``RAND([min][,max])``: an integer in [min, max], inclusive (default 0 and
    2147483647; swapped when max < min). Asterisk's int arithmetic overflows for spans
    wider than 2^31; Python's integers do not."""
    args = separate_args(data, maxargs=2)
    lo_text, hi_text = arg(args, 0), arg(args, 1)
    lo = scan_int(lo_text) if lo_text else None
    hi = scan_int(hi_text) if hi_text else None
    low = lo[0] if lo else 0
    high = hi[0] if hi else RAND_MAX
    if high < low:
        low, high = high, low
    return str(random.randint(low, high))


class RandModule(Module):
    description = "Random number dialplan function"

    def functions(self) -> list[Function]:
        return [_func("RAND", _rand, None, "Choose a random number in a range.", "RAND([min][,max])",
                      "Both bounds are included; the defaults are 0 and 2147483647.")]


# ====================================================================== func_global
class GlobalModule(Module):
    description = "Variable dialplan functions"

    def _read(self, chan: "Channel | None", data: str) -> str:
        pbx = chan.pbx if chan is not None else self.pbx
        return pbx.globals.get(data) or ""

    def _write(self, chan: "Channel | None", data: str, value: str) -> None:
        set_variable(chan.pbx if chan is not None else self.pbx, None, data, value)

    def functions(self) -> list[Function]:
        return [_func("GLOBAL", self._read, self._write, "Gets or sets the global variable specified.",
                      "GLOBAL(varname)")]


# ====================================================================== func_env
def _env_read(chan: "Channel | None", data: str) -> str:
    return os.environ.get(data, "") if data else ""


def _env_write(chan: "Channel | None", data: str, value: str) -> None:
    """Names starting ``AST_`` are refused; an empty value removes the variable."""
    if not data or data.startswith("AST_") or "=" in data or "\0" in data:
        return
    if value:
        os.environ[data] = value.replace("\0", "")
    else:
        os.environ.pop(data, None)


class EnvModule(Module):
    description = "Environment/filesystem dialplan functions"

    def functions(self) -> list[Function]:
        return [_func("ENV", _env_read, _env_write, "Gets or sets the environment variable specified.",
                      "ENV(varname)", "Writing an empty value unsets it; AST_* names cannot be written.")]


# ====================================================================== time formatting
def _zone(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("Unknown time zone '%s'; using local time", name)
        return None


def format_time(when: float, zone: str | None, fmt: str) -> str:
    """strftime with Asterisk's ``%[1-6]q`` (fractions of a second; ``%q`` = ms).
    ``%c`` is given the C locale's form. Asterisk also rewrote a ``q`` after ``%%``
    (so ``%%q`` printed digits); here ``%%`` is always a literal percent sign. ``%s``
    is the epoch itself (C's strftime computes it as if the time were local)."""
    tz = _zone(zone)
    moment = dt.datetime.fromtimestamp(when, tz) if tz else dt.datetime.fromtimestamp(when).astimezone()
    micro = moment.microsecond

    def repl(m: re.Match[str]) -> str:
        spec = m.group(0)
        if spec == "%%":
            return spec
        if spec == "%c":
            return "%a %b %e %H:%M:%S %Y"
        if spec == "%s":
            return str(math.floor(when))
        digits = int(spec[1]) if len(spec) == 3 else 3
        return f"{micro // 10 ** (6 - digits):0{digits}d}"

    return moment.strftime(re.sub(r"%%|%c|%s|%[1-6]q|%q", repl, fmt))


def strftime_func(chan: "Channel | None", data: str) -> str:
    args = separate_args(data, maxargs=3)
    epoch_text = arg(args, 0)
    when = scan_float(epoch_text) if epoch_text else None
    if when is None or when != when or when in (float("inf"), float("-inf")):
        when = time.time()
    fmt = arg(args, 2)
    try:
        out = format_time(when, arg(args, 1), fmt if fmt is not None else "%c")
    except (ValueError, OverflowError, OSError) as exc:
        log.warning("STRFTIME: %s", exc)
        return ""
    if not out:
        log.warning("C function strftime() output nothing?!!")
    return out


def strptime_func(chan: "Channel | None", data: str) -> str:
    args = separate_args(data, maxargs=3)
    text, zone, fmt = arg(args, 0) or "", arg(args, 1), arg(args, 2)
    if not fmt:
        log.error("No format supplied to STRPTIME(<timestring>,<timezone>,<format>)")
        return ""
    parsed: dt.datetime | None = None
    for _ in range(2):
        try:
            parsed = dt.datetime.strptime(text, fmt)
            break
        except ValueError as exc:  # C's strptime ignores trailing text; Python's does not
            m = re.match(r"unconverted data remains: (.*)", str(exc), re.S)
            if not m or not m.group(1):
                break
            text = text[:len(text) - len(m.group(1))]
    if parsed is None:
        log.warning("STRPTIME() found no time specified within the string")
        return ""
    if parsed.tzinfo is None:
        tz = _zone(zone)
        parsed = parsed.replace(tzinfo=tz) if tz else parsed.astimezone()
    try:
        return str(int(parsed.timestamp()))
    except (OverflowError, OSError, ValueError) as exc:
        log.warning("STRPTIME: %s", exc)
        return ""
