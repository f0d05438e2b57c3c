"""String dialplan functions (Asterisk's func_strings, func_cut and func_sprintf).

FILTER, LEN, TOUPPER, TOLOWER, TRIM, LTRIM, RTRIM, REGEX, REPLACE, STRREPLACE,
STRBETWEEN, FIELDQTY, FIELDNUM, LISTFILTER, HASH, HASHKEYS, ARRAY, STRFTIME, STRPTIME,
QUOTE, CSV_QUOTE, PASSTHRU, EVAL, KEYPADHASH, SHIFT, POP, PUSH, UNSHIFT, SPRINTF; CUT, SORT.

Argument helpers live in :mod:`hookflash.apps.func_logic`. Strings are handled as
characters where Asterisk counts bytes (LEN of ``é`` is 1 here); TOUPPER/TOLOWER change
ASCII letters only, as Asterisk does in the C locale.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

from hookflash.apps.func_logic import (
    _SPACE, INT_MAX, _func, arg, atoi, compile_ere, encoded_delim, get_encoded_char, get_encoded_str,
    raw_var, scan_float, scan_int, separate_args, set_variable, strftime_func, strptime_func,
    var_value,
)
from hookflash.apps.func_math import sprintf_func
from hookflash.dialplan.subst import substitute
from hookflash.engine.modules import Module
from hookflash.engine.registry import Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.func")


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


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = {v: k for k, v in _UPPER.items()}


def _ascii_map(text: str, upper: bool) -> str:
    return text.translate(_UPPER if upper else _LOWER)


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
            _func("STRFTIME", strftime_func, None, "Returns the current date/time in the specified format.",
                  "STRFTIME([epoch][,timezone[,format]])", "%[1-6]q gives fractions of a second; default format %c."),
            _func("STRPTIME", strptime_func, None, "Returns the epoch of a date/time string.",
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
            _func("SPRINTF", sprintf_func, None, "Format a variable according to a format string",
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
