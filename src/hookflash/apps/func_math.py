"""Arithmetic dialplan functions (Asterisk's func_math and func_sprintf).

MATH, INC, DEC, MIN, MAX, ABS, DIGIT_SUM and SPRINTF (registered by func_strings).
Numbers are read as C's ``sscanf`` reads them: leading blanks skipped, the longest
number prefix taken, trailing text ignored.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING

from hookflash.apps.func_logic import (
    INT_MAX, INT_MIN, _func, arg, scan_float, scan_int, separate_args,
)
from hookflash.engine.modules import Module
from hookflash.engine.registry import Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.func")


def c_int(value: float) -> int:
    """C's ``(int)`` of a double: truncation; out of range or NaN gives INT_MIN (as
    x86 does for what C leaves undefined)."""
    if value != value or not INT_MIN <= value < INT_MAX + 1:
        return INT_MIN
    return int(value)


def wrap32(value: int) -> int:
    """The value as a 32-bit signed int (two's complement wrap)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# Operators in the order MATH looks for them: the first found splits the expression.
_OPS: list[tuple[str, str]] = [("*", "*"), ("/", "/"), ("%", "%"), ("^", "^"), ("AND", "AND"),
                               ("XOR", "XOR"), ("OR", "OR")]


def _split_math(expr: str) -> tuple[str, str, str] | None:
    """(number1, operator, number2) or None when no operator (or a lone ``=``)."""
    for token, op in _OPS:
        at = expr.find(token)
        if at >= 0:
            return expr[:at], op, expr[at + len(token):]
    for sign in (">", "<"):
        at = expr.find(sign)
        if at >= 0:
            nxt = expr[at + 1:at + 2]
            if nxt in ("=", sign):
                return expr[:at], sign + nxt, expr[at + 2:]
            return expr[:at], sign, expr[at + 1:]
    at = expr.find("=")
    if at >= 0:
        if expr[at + 1:at + 2] == "=":
            return expr[:at], "==", expr[at + 2:]
        return None
    for sign in ("+", "-"):  # subtraction last: the second number may be negative
        at = expr.find(sign)
        if at >= 0:
            return expr[:at], sign, expr[at + 1:]
    return None


_COMPARE = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b, "==": lambda a, b: a == b}
_RESULT_TYPES = {"float": "f", "f": "f", "int": "i", "i": "i", "hex": "h", "h": "h",
                 "char": "c", "c": "c"}


def _math(chan: "Channel | None", data: str) -> str:
    """``MATH(number1 op number2[,type])``. op: + - * / % ^ (power) << >> AND OR XOR
    (on ints) and the comparisons < > <= >= == (TRUE/FALSE). type: f/float (default,
    six decimals), i/int, h/hex, c/char."""
    if not data:
        log.warning("Syntax: MATH(<number1><op><number 2>[,<type_of_result>]) - missing argument!")
        return ""
    args = separate_args(data, maxargs=2)
    expr = args[0]
    negative = expr.startswith("-")
    if negative:
        expr = expr[1:]
    parts = _split_math(expr)
    kind = "f"
    type_text = arg(args, 1)
    if type_text is not None:
        found = _RESULT_TYPES.get(type_text.lower())
        if found is None:
            log.warning("Unknown type of result requested '%s'.", type_text)
            return ""
        kind = found
    if parts is None:
        log.warning("Supply all the parameters - just this once, please")
        return ""
    left, op, right = parts
    a, b = scan_float(left), scan_float(right)
    if a is None or b is None:
        log.warning("'%s' is not a valid number", left if a is None else right)
        return ""
    if negative:
        a = -a
    if op in _COMPARE:
        return "TRUE" if _COMPARE[op](a, b) else "FALSE"
    result = _arith(op, a, b)
    if kind == "i":
        return str(c_int(result))
    # (unsigned) casts of a double, as x86-64 compilers do them (C leaves negative
    # values undefined): through a 64-bit integer, then truncated.
    wide = int(result) if math.isfinite(result) and abs(result) < 2**63 else 0
    if kind == "h":
        return format(wide & 0xFFFFFFFF, "x")
    if kind == "c":
        code = wide & 0xFF
        return chr(code) if code else ""
    return "%f" % result


def _arith(op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        # Asterisk gives 0 for any divisor <= 0, so 10/-2 was 0: a bug, fixed (only a
        # zero divisor gives 0 now).
        return a / b if b != 0 else 0.0
    if op == "^":
        try:
            return math.pow(a, b)
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan
    x, y = c_int(a), c_int(b)
    if op == "%":
        return 0.0 if y == 0 else float(int(math.fmod(x, y)))
    if op == "<<":
        return float(wrap32(x << (y & 31)))
    if op == ">>":
        return float(x >> (y & 31))
    if op == "AND":
        return float(x & y)
    if op == "OR":
        return float(x | y)
    return float(x ^ y)  # XOR


def _crement(chan: "Channel | None", data: str, step: int, name: str) -> str:
    """INC/DEC(varname): change an integer variable by one and return the new value."""
    if not data:
        log.warning("Syntax: %s(<data>) - missing argument!", name)
        return ""
    if chan is None:
        log.warning("No channel was provided to %s function.", name)
        return ""
    value = chan.vars.get(data)
    if value is None:
        value = chan.pbx.globals.get(data)
    if value is None:
        log.info("Failed to obtain variable %s, bailing out", data)
        return ""
    if not value:
        log.info("Variable %s doesn't exist - are you sure you wrote it correctly?", data)
        return ""
    found = scan_int(value)
    if value.strip(" \t\n\v\f\r") and (found is None or found[1] != len(value)):
        log.info("The content of ${%s} is not a numeric value - bailing out!", data)
        return ""
    result = str(wrap32((found[0] if found else 0) + step))
    chan.set_var(data, result)
    return result


def _min_max(data: str, pick_max: bool) -> str:
    args = separate_args(data, maxargs=2)
    t1, t2 = arg(args, 0), arg(args, 1)
    if not t1 and not t2:
        log.error("Missing argument for number(s).")
        return ""
    n1 = scan_float(t1) if t1 else None
    n2 = scan_float(t2) if t2 else None
    if (t1 and n1 is None) or (t2 and n2 is None):
        log.warning("'%s' is not a valid number", t1 if t1 and n1 is None else t2)
        return ""
    if n1 is None:
        result = n2
    elif n2 is None:
        result = n1
    else:
        result = max(n1, n2) if pick_max else min(n1, n2)
    return _plain(result)  # type: ignore[arg-type]


def _plain(value: float) -> str:
    """An integral value without decimals, others with six (as MIN/MAX/ABS print)."""
    if value == value and INT_MIN <= value <= INT_MAX and int(value) == value:
        return str(int(value))
    return "%f" % value


def _abs(chan: "Channel | None", data: str) -> str:
    args = separate_args(data, maxargs=1)
    number = scan_float(args[0]) if args and args[0] else None
    if number is None:
        log.warning("Bad or missing argument for number: %s", data)
        return ""
    return _plain(abs(number))


def _digit_sum(chan: "Channel | None", data: str) -> str:
    if not data:
        log.warning("Missing argument for number")
        return ""
    return str(sum(int(c) for c in data if "0" <= c <= "9"))


class MathModule(Module):
    description = "Mathematical dialplan function"

    def functions(self) -> list[Function]:
        return [
            _func("MATH", _math, None, "Performs Mathematical Functions.",
                  "MATH(expression[,type])",
                  "expression is number1 op number2 with op one of + - * / % ^ << >> AND OR XOR "
                  "< > <= >= ==. type: f (float, default), i (int), h (hex), c (char)."),
            _func("INC", lambda c, d: _crement(c, d, 1, "INC"), None,
                  "Increments the value of a variable, while returning the updated value.", "INC(variable)"),
            _func("DEC", lambda c, d: _crement(c, d, -1, "DEC"), None,
                  "Decrements the value of a variable, while returning the updated value.", "DEC(variable)"),
            _func("MIN", lambda c, d: _min_max(d, False), None, "Returns the minimum of two numbers.",
                  "MIN(num1[,num2])"),
            _func("MAX", lambda c, d: _min_max(d, True), None, "Returns the maximum of two numbers.",
                  "MAX(num1[,num2])"),
            _func("ABS", _abs, None, "Returns absolute value of a number.", "ABS(num)"),
            _func("DIGIT_SUM", _digit_sum, None, "Returns the sum of digits in a number.", "DIGIT_SUM(num)"),
        ]


_SPRINTF = re.compile(r"%([#0\- +'I]*)(\d*)(?:\.(\d*))?(hh|h|ll|l|L|q|j|z|t)?(.)?", re.S)


def sprintf_func(chan: "Channel | None", data: str) -> str:
    """``SPRINTF(format,arg...)``: printf conversions d i o u x X c e E f F g G a A s."""
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
