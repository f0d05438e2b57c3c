"""String dialplan functions (Asterisk's func_strings, func_cut and func_sprintf).

FILTER, LEN, TOUPPER, TOLOWER, TRIM, LTRIM, RTRIM, REGEX, REPLACE, STRREPLACE,
STRBETWEEN, FIELDQTY, FIELDNUM, LISTFILTER, HASH, HASHKEYS, ARRAY, STRFTIME, STRPTIME,
QUOTE, CSV_QUOTE, PASSTHRU, EVAL, KEYPADHASH, SHIFT, POP, PUSH, UNSHIFT, SPRINTF; CUT, SORT.

Arguments are split with :func:`separate_args`, a faithful copy of the rules of
Asterisk's argument splitter (the last argument a function declares receives the rest
of the text untouched), so quoting behaves as it does in Asterisk. Functions that take a
variable *name* read it as ``${name}`` would, so ``CUT(CALLERID(num),-,1)`` works too.
Strings are handled as characters, where Asterisk counts bytes (LEN of ``é`` is 1 here).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookflash.dialplan.subst import lookup, split_function, substitute
from hookflash.engine.modules import Module
from hookflash.engine.registry import Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.func")

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)


# ====================================================================== shared helpers
def separate_args(data: str | None, delim: str = ",", maxargs: int = 100,
                  remove: bool = True) -> list[str]:
    """Asterisk's argument splitter. Parentheses and brackets always nest (even inside
    quotes); double quotes (unless they are the delimiter) protect delimiters; with
    ``remove`` the quotes are dropped and a backslash makes the next character literal.
    At most ``maxargs`` arguments: the last one gets the remaining text *unprocessed*."""
    if not data:
        return []
    args: list[str] = []
    n = len(data)
    i = 0
    paren = bracket = 0
    quote = False
    ended_on_delim = False
    while i < n and len(args) < maxargs - 1:
        cur: list[str] = []
        ended_on_delim = False
        while i < n:
            ch = data[i]
            if ch == "(":
                paren += 1
            elif ch == ")":
                paren = max(paren - 1, 0)
            elif ch == "[":
                bracket += 1
            elif ch == "]":
                bracket = max(bracket - 1, 0)
            elif ch == '"' and delim != '"':
                quote = not quote
                if remove:
                    i += 1
                    continue
            elif ch == "\\":
                if remove:
                    cur.append(data[i + 1:i + 2])
                else:
                    cur.append(data[i:i + 2])
                i += 2
                continue
            elif ch == delim and not paren and not quote and not bracket:
                i += 1
                ended_on_delim = True
                break
            cur.append(ch)
            i += 1
        args.append("".join(cur))
    if i < n or ended_on_delim:
        args.append(data[i:])
    return args


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


def scan_int(text: str, pos: int = 0) -> tuple[int, int] | None:
    """``sscanf("%30d")`` from ``pos``: (value, end) or None. Values clamp to int."""
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    m = re.compile(r"[+-]?\d+").match(text[pos:pos + 30])
    if not m:
        return None
    return max(INT_MIN, min(INT_MAX, int(m.group()))), pos + m.end()


_FLOAT = re.compile(r"[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
                    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)",
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
                body.append("\\" + c if c in "\\[]^" and not (c == "^" and len(body) > 2) else c)
                j += 1
            if j >= n:  # unterminated: let re report it
                out.append(re.escape(pattern[i:]))
                break
            out.append("".join(body) + "]")
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def compile_ere(pattern: str, flags: int = 0) -> re.Pattern[str] | None:
    try:
        return re.compile(ere_to_python(pattern), flags)
    except re.error as exc:
        log.warning("Malformed regular expression '%s': %s", pattern, exc)
        return None


def _func(name: str, read: Any = None, write: Any = None, synopsis: str = "",
          syntax: str = "", description: str = "") -> Function:
    return Function(name, read, write, synopsis, syntax or f"{name}()", description)


# ====================================================================== func_strings
def _filter(data: str) -> str:
    args = separate_args(data, maxargs=2, remove=False)
    if len(args) < 2:
        log.error("Usage: FILTER(<allowed-chars>,<string>)")
        return ""
    allowed_text, string = args
    if allowed_text.startswith('"'):
        log.warning("FILTER allowed characters includes the quote (\") character.  "
                    "This may not be what you want.")
    spec = allowed_text.encode("utf-8").decode("latin-1")  # Asterisk works on bytes
    allowed: set[int] = set()
    pos = 0
    while pos < len(spec):
        c1, used = get_encoded_char(spec, pos)
        if c1 is None:
            return ""
        c1 &= 0xFF
        pos += used
        if spec[pos:pos + 1] == "-":
            c2, used = get_encoded_char(spec, pos + 1)
            c2 = c1 if c2 is None else c2 & 0xFF
            pos += used + 1
            if c2 < c1:
                log.warning("Range wrapping in FILTER(%s).  This may not be what you want.", data)
            c = c1
            while c != c2:  # wraps past 255 to 0, as Asterisk's unsigned char does
                allowed.add(c)
                c = (c + 1) & 0xFF
            allowed.add(c2)
        else:
            allowed.add(c1)
    allowed.discard(0)
    # A character passes when every byte of its UTF-8 form is allowed.
    return "".join(ch for ch in string
                   if ord(ch) < 128 and ord(ch) in allowed
                   or ord(ch) >= 128 and all(b in allowed for b in ch.encode("utf-8")))


def _ascii_map(text: str, upper: bool) -> str:
    table = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if not upper:
        table = {v: k for k, v in table.items()}
    return text.translate(table)


def _regex(data: str) -> str:
    args = separate_args(data, delim='"', maxargs=3)
    if len(args) != 3:
        log.error("Unexpected arguments: should have been in the form '\"<regex>\" <string>'")
        return ""
    _, pattern, string = args
    if string[:1] in (" ", "\t"):
        string = string[1:]
    compiled = compile_ere(pattern)
    if compiled is None:
        return ""
    return "1" if compiled.search(string) else "0"


def _keypadhash(data: str) -> str:
    keys = {"1": "1", "0": "0"}
    for digit, letters in (("2", "abc"), ("3", "def"), ("4", "ghi"), ("5", "jkl"),
                           ("6", "mno"), ("7", "pqrs"), ("8", "tuv"), ("9", "wxyz")):
        keys[digit] = digit
        for letter in letters:
            keys[letter] = keys[letter.upper()] = digit
    return "".join(keys.get(ch, "") for ch in data)


def _quote(data: str) -> str:
    if not data:
        log.warning("No argument specified!")
        return '""'
    return '"' + data.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _csv_quote(data: str) -> str:
    return '"' + data.replace('"', '""') + '"'


def _trim(data: str, left: bool, right: bool) -> str:
    if left:
        data = data.lstrip(_SPACE)
    if right:
        data = data.rstrip(_SPACE)
    return data


def _zone(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("Unknown time zone '%s'; using local time", name)
        return None


def strftime(when: float, zone: str | None, fmt: str) -> str:
    """Asterisk's strftime: ``%[1-6]q`` gives fractions of a second (``%q`` = ms)."""
    tz = _zone(zone)
    moment = dt.datetime.fromtimestamp(when, tz) if tz else dt.datetime.fromtimestamp(when).astimezone()
    micro = moment.microsecond
    # Asterisk also rewrites %q after a %% (so %%q printed a fraction); a bug, fixed.
    def repl(m: re.Match[str]) -> str:
        spec = m.group(0)
        if spec == "%%":
            return spec
        digits = int(spec[1]) if len(spec) == 3 else 3
        return f"{micro // 10 ** (6 - digits):0{digits}d}"
    fmt = re.sub(r"%%|%[1-6]q|%q", repl, fmt)
    fmt = re.sub(r"%%|%c", lambda m: "%a %b %e %H:%M:%S %Y" if m.group() == "%c" else "%%", fmt)
    return moment.strftime(fmt)


def _strftime(data: str) -> str:
    args = separate_args(data, maxargs=3)
    epoch_text = arg(args, 0)
    when = scan_float(epoch_text) if epoch_text else None
    if when is None or when != when or abs(when) > 1e11:
        when = time.time()
    fmt = arg(args, 2)
    try:
        out = strftime(when, arg(args, 1), fmt if fmt is not None else "%c")
    except (ValueError, OverflowError, OSError) as exc:
        log.warning("STRFTIME: %s", exc)
        return ""
    if not out:
        log.warning("C function strftime() output nothing?!!")
    return out


def _strptime(data: str) -> str:
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
    tz = _zone(zone)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz) if tz else parsed.astimezone()
    return str(int(parsed.timestamp()))


_SPRINTF = re.compile(r"%([#0\- +'I]*)(\d*)(?:\.(\d*))?(hh|h|ll|l|L|q|j|z|t)?(.)?", re.S)


def _sprintf(data: str) -> str:
    args = separate_args(data, maxargs=101)
    fmt = arg(args, 0) or ""
    values = args[1:]
    out: list[str] = []
    pos = argno = 0
    while pos < len(fmt):
        pct = fmt.find("%", pos)
        if pct < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:pct])
        m = _SPRINTF.match(fmt, pct)
        assert m is not None
        flags, width, prec, _, conv = m.groups()
        pos = m.end()
        if conv is None:
            break
        if conv == "%":
            out.append("%")
            continue
        spec = "%" + flags.replace("'", "").replace("I", "") + width + (
            "." + prec if prec is not None else "")
        value = values[argno] if argno < len(values) else None
        argno += 1
        if conv in "diouxXc":
            number = scan_int(value)[0] if value is not None and scan_int(value) else None
            if number is None:
                log.error("SPRINTF(): argument '%s' is not an integer number", value)
                return ""
            if conv == "c":
                out.append((spec.split(".")[0] + "s") % chr(number & 0xFF))
                continue
            if conv in "ouxX" and number < 0:
                number &= 0xFFFFFFFF
            out.append((spec + ("d" if conv in "iu" else conv)) % number)
        elif conv in "eEfFgGaA":
            real = scan_float(value) if value is not None else None
            if real is None:
                log.error("SPRINTF(): argument '%s' is not a floating point number", value)
                return ""
            out.append(real.hex() if conv in "aA" else (spec + conv) % real)
        elif conv == "s":
            # Asterisk hands C a NULL for a missing argument; we print nothing.
            out.append((spec + "s") % (value or ""))
        else:
            log.error("Format type not supported: '%s'", fmt[pct:pos])
            return ""
    return "".join(out)


class _Strings:
    """The functions that need the PBX (for variables when there is no channel)."""

    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    def _pbx(self, chan: "Channel | None") -> Any:
        return chan.pbx if chan is not None else self.pbx

    def fieldqty(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=2)
        if arg(args, 1) is None:
            return "1"
        delim = encoded_delim(args[1], "")
        value = var_value(self._pbx(chan), chan, args[0])
        if not value:
            return "0"
        return str(len(value.split(delim))) if delim else "1"

    def fieldnum(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=3)
        if len(args) < 3:
            log.error("Usage: FIELDNUM(<listname>,<delimiter>,<fieldvalue>)")
            return ""
        value = var_value(self._pbx(chan), chan, args[0])
        if not value or not args[1]:
            return "0"
        code, _ = get_encoded_char(args[1])
        if code is None:
            return ""
        fields = value.split(chr(code)) if code else [value]
        wanted = args[2].lower()
        for index, field in enumerate(fields, 1):
            if field.lower() == wanted:
                return str(index)
        return "0"

    def listfilter(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=3)
        if len(args) < 3:
            log.error("Usage: LISTFILTER(<listname>,<delimiter>,<fieldvalue>)")
            return ""
        value = var_value(self._pbx(chan), chan, args[0])
        if not value or args[2] not in value:
            return value
        delim = get_encoded_str(args[1]) or ","
        return delim.join(f for f in value.split(delim) if f != args[2])

    def replace(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=3)
        if len(args) < 2:
            log.error("Usage: REPLACE(<varname>,<search-chars>[,<replace-char>])")
            return ""
        find = get_encoded_str(args[1])[:255]
        code, _ = get_encoded_char(arg(args, 2) or "")
        if not find or not args[0]:
            log.error("The characters to search for and the variable name must not be empty.")
            return ""
        value = var_value(self._pbx(chan), chan, args[0])
        repl = chr(code) if code else ""
        return "".join(repl if ch in find else ch for ch in value)

    def strreplace(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=5)
        if len(args) < 2:
            log.error("Usage: STRREPLACE(<varname>,<find-string>[,<replace-string>,[<max-replacements>]])")
            return ""
        if not args[0]:
            return ""
        if not args[1]:
            log.error("No <find-string> specified")
            return ""
        value = var_value(self._pbx(chan), chan, args[0])
        limit = atoi(arg(args, 3))
        return value.replace(args[1], arg(args, 2) or "", limit if limit > 0 else -1)

    def strbetween(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=3)
        if len(args) != 2 or not args[0]:
            log.error("Usage: STRBETWEEN(<varname>,<insert-string>)")
            return ""
        return args[1].join(var_value(self._pbx(chan), chan, args[0]))

    def eval(self, chan: "Channel | None", data: str) -> str:
        if not data:
            log.warning("EVAL requires an argument: EVAL(<string>)")
            return ""
        return substitute(data, chan, self._pbx(chan))

    # --------------------------------------------------------------- HASH
    def hash_read(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=2)
        pbx = self._pbx(chan)
        if len(args) == 2:
            return raw_var(pbx, chan, f"~HASH~{args[0]}~{args[1]}~") or ""
        if len(args) == 1:
            if chan is None:
                log.warning("No channel and only 1 parameter was provided to HASH function.")
                return ""
            keys = self.hashkeys(chan, args[0])
            set_variable(pbx, chan, "~ODBCFIELDS~", keys)
            values = []
            for key in separate_args(keys, maxargs=100):
                value = raw_var(pbx, chan, f"~HASH~{args[0]}~{key}~")
                if value is None:
                    log.warning("No value found for '~HASH~%s~%s~'", args[0], key)
                    return ""
                values.append(value)
            return ",".join(values)
        return ""

    def hash_write(self, chan: "Channel | None", data: str, value: str) -> None:
        pbx = self._pbx(chan)
        if "," not in data:
            self.array_write(chan, data, value, hashname=data)
            return
        name, key = (separate_args(data, maxargs=2) + [""])[:2]
        prefix = "__" if name.startswith("__") else "_" if name.startswith("_") else ""
        set_variable(pbx, chan, f"{prefix}~HASH~{name[len(prefix):]}~{key}~", value)

    def hashkeys(self, chan: "Channel | None", data: str) -> str:
        if chan is None:
            log.warning("No channel was provided to HASHKEYS function.")
            return ""
        prefix = f"~HASH~{data}~"
        # Asterisk lists a channel's variables newest first.
        keys = [name[len(prefix):-1] for name in reversed(list(chan.vars))
                if len(name) > len(prefix) + 1 and name.endswith("~") and name.startswith(prefix)]
        return ",".join(keys)

    def array_write(self, chan: "Channel | None", data: str, value: str,
                    hashname: str | None = None) -> None:
        pbx = self._pbx(chan)
        names_text = data
        if hashname is not None:
            fields = raw_var(pbx, chan, "~ODBCFIELDS~")
            if fields is None:
                return
            names_text = fields
        names = separate_args(names_text, maxargs=100)
        values = separate_args(value, maxargs=100)
        for i, name in enumerate(names):
            val = values[i] if i < len(values) else ""
            if hashname is None:
                set_variable(pbx, chan, name, val)
                continue
            prefix = "__" if hashname.startswith("__") else "_" if hashname.startswith("_") else ""
            if i >= len(values):
                prefix = ""  # as Asterisk: a missing value clears without the inheritance mark
            set_variable(pbx, chan, f"{prefix}~HASH~{hashname[len(prefix):] if prefix else hashname}~{name}~", val)

    # --------------------------------------------------------------- lists
    def shift_pop(self, chan: "Channel | None", data: str, first: bool) -> str:
        args = separate_args(data, maxargs=2)
        name = arg(args, 0)
        if not name:
            log.warning("%s requires a variable name", "SHIFT" if first else "POP")
            return ""
        pbx = self._pbx(chan)
        value = var_value(pbx, chan, name)
        delim = encoded_delim(arg(args, 1), ",") if arg(args, 1) else ","
        if not value:
            return ""
        at = (value.find(delim) if first else value.rfind(delim)) if delim else -1
        if at < 0:
            set_variable(pbx, chan, name, "")
            return value
        before, after = value[:at], value[at + len(delim):]
        set_variable(pbx, chan, name, after if first else before)
        return before if first else after

    def push_unshift(self, chan: "Channel | None", data: str, value: str, first: bool) -> None:
        args = separate_args(data, maxargs=2)
        name = arg(args, 0)
        if not name:
            log.warning("%s requires a variable name", "UNSHIFT" if first else "PUSH")
            return
        pbx = self._pbx(chan)
        delim = encoded_delim(arg(args, 1), ",") if arg(args, 1) else ","
        stripped = name[min(len(name) - len(name.lstrip("_")), 2):]
        previous = var_value(pbx, chan, stripped)
        if previous:
            value = value + delim + previous if first else previous + delim + value
        set_variable(pbx, chan, name, value)


class StringsModule(Module):
    description = "String handling dialplan functions"

    def functions(self) -> list[Function]:
        s = _Strings(self.pbx)
        return [
            _func("FILTER", lambda c, d: _filter(d), None, "Filter the string to include only the allowed characters",
                  "FILTER(allowed-chars,string)",
                  "Ranges such as a-z, and escapes \\xHH, \\0ooo, \\n, \\r, \\t are allowed; write \\- for a dash. "
                  "The string is everything after the first comma."),
            _func("LEN", lambda c, d: str(len(d)), None, "Return the length of the string given.", "LEN(string)"),
            _func("TOUPPER", lambda c, d: _ascii_map(d, True), None, "Convert string to all uppercase letters.",
                  "TOUPPER(string)"),
            _func("TOLOWER", lambda c, d: _ascii_map(d, False), None, "Convert string to all lowercase letters.",
                  "TOLOWER(string)"),
            _func("TRIM", lambda c, d: _trim(d, True, True), None, "Remove leading and trailing whitespace.", "TRIM(string)"),
            _func("LTRIM", lambda c, d: _trim(d, True, False), None, "Remove leading whitespace.", "LTRIM(string)"),
            _func("RTRIM", lambda c, d: _trim(d, False, True), None, "Remove trailing whitespace.", "RTRIM(string)"),
            _func("REGEX", lambda c, d: _regex(d), None, "Check string against a regular expression.",
                  'REGEX("regular expression" string)', "1 on a match (POSIX extended syntax), else 0."),
            _func("REPLACE", s.replace, None, "Replace a set of characters with another character.",
                  "REPLACE(varname,find-chars[,replace-char])"),
            _func("STRREPLACE", s.strreplace, None, "Replace instances of a substring.",
                  "STRREPLACE(varname,find-string[,replace-string[,max-replacements]])"),
            _func("STRBETWEEN", s.strbetween, None, "Insert a string between each character.",
                  "STRBETWEEN(varname,insert-string)"),
            _func("FIELDQTY", s.fieldqty, None, "Count the fields with an arbitrary delimiter",
                  "FIELDQTY(varname,delim)"),
            _func("FIELDNUM", s.fieldnum, None, "Return the 1-based position of a field in a list",
                  "FIELDNUM(varname,delim,value)"),
            _func("LISTFILTER", s.listfilter, None, "Remove an item from a list, by name.",
                  "LISTFILTER(varname,delim,value)"),
            _func("HASH", s.hash_read, s.hash_write, "Implementation of a dialplan associative array",
                  "HASH(hashname[,hashkey])"),
            _func("HASHKEYS", s.hashkeys, None, "Retrieve the keys of the HASH() function.", "HASHKEYS(hashname)"),
            _func("ARRAY", None, s.array_write, "Allows setting multiple variables at once.", "ARRAY(var1[,var2[,...]])"),
            _func("STRFTIME", lambda c, d: _strftime(d), None, "Returns the current date/time in the specified format.",
                  "STRFTIME([epoch][,timezone[,format]])", "%[1-6]q gives fractions of a second; default format %c."),
            _func("STRPTIME", lambda c, d: _strptime(d), None, "Returns the epoch of a date/time string.",
                  "STRPTIME(datetime,timezone,format)"),
            _func("QUOTE", lambda c, d: _quote(d), None, "Quotes a given string, escaping embedded quotes",
                  "QUOTE(string)"),
            _func("CSV_QUOTE", lambda c, d: _csv_quote(d), None, "Quotes a given string for use in a CSV file",
                  "CSV_QUOTE(string)"),
            _func("PASSTHRU", lambda c, d: d, None, "Pass the given argument back as a value.", "PASSTHRU([string])"),
            _func("EVAL", s.eval, None, "Evaluate stored variables", "EVAL(variable)"),
            _func("KEYPADHASH", lambda c, d: _keypadhash(d), None, "Hash letters into keypad digits.",
                  "KEYPADHASH(string)"),
            _func("SHIFT", lambda c, d: s.shift_pop(c, d, True), None, "Remove and return the first item of a list",
                  "SHIFT(varname[,delimiter])"),
            _func("POP", lambda c, d: s.shift_pop(c, d, False), None, "Remove and return the last item of a list",
                  "POP(varname[,delimiter])"),
            _func("PUSH", None, lambda c, d, v: s.push_unshift(c, d, v, False), "Append to a list",
                  "PUSH(varname[,delimiter])"),
            _func("UNSHIFT", None, lambda c, d, v: s.push_unshift(c, d, v, True), "Prepend to a list",
                  "UNSHIFT(varname[,delimiter])"),
            _func("SPRINTF", lambda c, d: _sprintf(d), None, "Format a variable according to a format string",
                  "SPRINTF(format,arg1[,arg2[,...]])"),
        ]


# ====================================================================== func_cut
def _range_spec(spec: str) -> tuple[int, int] | None:
    """One CUT range: ``N``, ``N-M``, ``N-``, ``-M`` (sscanf's rules, spaces allowed
    before numbers)."""
    first = scan_int(spec)
    if first and spec[first[1]:first[1] + 1] == "-":
        second = scan_int(spec, first[1] + 1)
        if second:
            return first[0], second[0]
    if spec.startswith("-"):
        second = scan_int(spec, 1)
        if second:
            return 1, second[0]
    if first:
        if spec[first[1]:first[1] + 1] == "-":
            return first[0], INT_MAX
        return first[0], first[0]
    return None


class _Cut:
    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    def cut(self, chan: "Channel | None", data: str) -> str:
        args = separate_args(data, maxargs=3)
        if len(args) < 3:
            log.error("Syntax: CUT(<varname>,<char-delim>,<range-spec>) - missing argument!")
            return ""
        value = var_value(chan.pbx if chan is not None else self.pbx, chan, args[0])
        delim = encoded_delim(args[1], "-")
        if not value:
            return ""
        fields = value.split(delim) if delim else [value]
        out: list[str] = []
        index, fieldnum = 0, 1
        for spec in args[2].split("&"):
            if index >= len(fields):
                break
            found = _range_spec(spec)
            if found is None:
                log.error("Usage: CUT(<varname>,<char-delim>,<range-spec>)")
                return ""
            start, stop = found
            while index < len(fields) and fieldnum < start:
                index += 1
                fieldnum += 1
            if fieldnum > start:
                log.warning("We're already past the field you wanted?")
            while index < len(fields) and fieldnum <= stop:
                out.append(fields[index])
                index += 1
                fieldnum += 1
        return delim.join(out)


def _float32(value: float) -> float:
    import struct
    try:
        return struct.unpack("f", struct.pack("f", value))[0]  # type: ignore[no-any-return]
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _sort(data: str) -> str:
    """``SORT(key1:value1,key2:value2,...)``: the keys ordered by their values, which
    are compared as single-precision floats (0 when unreadable). Entries without a colon
    are dropped. Equal values keep their order (Asterisk's qsort leaves it unspecified)."""
    entries = []
    for item in data.split(","):
        key, colon, number = item.partition(":")
        if not colon:
            continue
        value = scan_float(number)
        entries.append((key, _float32(value) if value is not None and value == value else 0.0))
    entries.sort(key=lambda e: e[1])
    return ",".join(key for key, _ in entries)


class CutModule(Module):
    description = "Cut out information from a string"

    def functions(self) -> list[Function]:
        c = _Cut(self.pbx)
        return [
            _func("CUT", c.cut, None, "Slices and dices strings, based upon a named delimiter.",
                  "CUT(varname,char-delim,range-spec)",
                  "varname is a variable NAME. The delimiter defaults to '-'. range-spec: N, N-M, N-, -M, "
                  "joined with &. Fields out of range give nothing."),
            _func("SORT", lambda ch, d: _sort(d), None, "Sorts a list of key/vals into a list of keys, based upon the vals.",
                  "SORT(key1:val1[,key2:val2[,...]])"),
        ]


__all__ = ["StringsModule", "CutModule", "separate_args", "get_encoded_char", "scan_int", "scan_float",
           "set_variable", "var_value", "raw_var", "strip_blanks", "strip_quoted", "compile_ere", "atoi"]

_unused: Callable[..., Any] | None = None
