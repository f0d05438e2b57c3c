"""Dialplan functions: func_strings, func_cut, func_logic, func_rand, func_global,
func_env, func_math, func_callerid, func_channel.

The harness is a real Channel on a stand-in PBX holding only what channels and
functions use (globals, systemname, registry, channels), with the functions of every
module here registered in a real Registry.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from hookflash.apps.func_channel import CallerIdModule, ChannelFuncModule, callerid_split
from hookflash.apps.func_logic import (
    EnvModule, GlobalModule, LogicModule, RandModule, separate_args,
)
from hookflash.apps.func_math import MathModule
from hookflash.apps.func_strings import CutModule, StringsModule
from hookflash.channels.channel import Channel
from hookflash.dialplan.subst import split_function, substitute
from hookflash.engine.registry import Registry

MODULES = (StringsModule, CutModule, LogicModule, RandModule, GlobalModule, EnvModule,
           MathModule, CallerIdModule, ChannelFuncModule)


class FakeChannels:
    """The part of the PBX's channel list that channels and functions use."""

    def __init__(self) -> None:
        self.by_name: dict[str, Channel] = {}

    def add(self, chan: Channel) -> None:
        self.by_name[chan.name] = chan

    def remove(self, chan: Channel) -> None:
        self.by_name.pop(chan.name, None)

    def get(self, name: str) -> Channel | None:
        return self.by_name.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.by_name.values()))


@pytest.fixture
def pbx() -> Any:
    fake = SimpleNamespace(globals={}, systemname="", registry=Registry(), channels=FakeChannels())
    for cls in MODULES:
        for func in cls(fake).functions():  # type: ignore[arg-type]
            fake.registry.add_function(func)
    return fake


@pytest.fixture
def chan(pbx: Any) -> Channel:
    c = Channel(pbx, "SIP/9001-00000001", context="AutomatedMeetingSetup", exten="start")
    pbx.channels.add(c)
    return c


def call(chan: Channel | None, text: str, pbx: Any = None) -> str:
    """Read ``NAME(args)`` as ``${NAME(args)}`` would, after substitution."""
    name, args = split_function(text)
    registry = (chan.pbx if chan is not None else pbx).registry
    func = registry.function(name)
    assert func is not None and func.read is not None, name
    return func.read(chan, args)


def write(chan: Channel | None, text: str, value: str, pbx: Any = None) -> None:
    name, args = split_function(text)
    func = (chan.pbx if chan is not None else pbx).registry.function(name)
    assert func is not None and func.write is not None, name
    func.write(chan, args, value)


def run(chan: Channel, variables: dict[str, str], expr: str) -> str:
    for key, value in variables.items():
        chan.set_var(key, value)
    return call(chan, expr)


# ====================================================================== argument splitting
@pytest.mark.parametrize("data, delim, maxargs, remove, expected", [
    ("a,b,c", ",", 100, True, ["a", "b", "c"]),
    ("a,b,c", ",", 2, True, ["a", "b,c"]),
    ('a,"b,c",d', ",", 100, True, ["a", "b,c", "d"]),
    ('a,"b,c"', ",", 2, True, ["a", '"b,c"']),        # the last argument is left as is
    ("a,(b,c),d", ",", 100, True, ["a", "(b,c)", "d"]),
    ("a\\,b,c", ",", 100, True, ["a,b", "c"]),
    ("a\\,b,c", ",", 100, False, ["a\\,b", "c"]),
    ("a,", ",", 100, True, ["a", ""]),
    ("", ",", 100, True, []),
    ('"(",x', ",", 100, True, ['(,x']),                # parentheses nest even in quotes
])
def test_separate_args(data: str, delim: str, maxargs: int, remove: bool, expected: list[str]) -> None:
    assert separate_args(data, delim, maxargs, remove) == expected


# ====================================================================== func_strings
STRING_CASES: list[tuple[dict[str, str], str, str]] = [
    # FILTER: the CHAPTER.md uses, ranges, escapes, commas kept in the string
    ({}, "FILTER(0-9A-Za-z,SIP/9001;evil)", "SIP9001evil"),
    ({}, "FILTER(A-Za-z0-9,SIP/9001;evil)", "SIP9001evil"),
    ({}, "FILTER(0-9,+1 (555) 123-4567)", "15551234567"),
    ({}, "FILTER(0-9\\,,1,2,3)", "1,2,3"),
    ({}, "FILTER(a-c,abcdef)", "abc"),
    ({}, "FILTER(\\x41-\\x43,ABCDE)", "ABC"),
    ({}, "FILTER(\\-,a-b-c)", "--"),
    ({}, "FILTER(a-,xa-)", "a"),
    ({}, "FILTER(z-a,abyz{)", "az{"),
    ({}, "FILTER(\\t,a\tb)", "\t"),
    ({}, "FILTER(0-9,)", ""),
    ({}, "FILTER(0-9)", ""),
    ({}, "FILTER(0-9,\"12\")", "12"),
    ({}, "FILTER(é,café)", "é"),
    ({}, "FILTER(\\xZZ,abc)", ""),
    # LEN, TOUPPER, TOLOWER, TRIM
    ({}, "LEN(example)", "7"),
    ({}, "LEN()", "0"),
    ({}, "LEN(a,b)", "3"),
    ({}, "LEN(é)", "1"),
    ({}, "TOUPPER(Example)", "EXAMPLE"),
    ({}, "TOUPPER(émile 1)", "éMILE 1"),
    ({}, "TOLOWER(ExAmple)", "example"),
    ({}, "TRIM(  a b  )", "a b"),
    ({}, "LTRIM(  a b  )", "a b  "),
    ({}, "RTRIM(  a b  )", "  a b"),
    # REGEX: "regex" string, POSIX extended syntax
    ({}, 'REGEX("^[0-9]+$" 12345)', "1"),
    ({}, 'REGEX("^[0-9]+$" 12a45)', "0"),
    ({}, 'REGEX("[[:alpha:]]" 123)', "0"),
    ({}, 'REGEX("[[:alpha:]]" 12x)', "1"),
    ({}, 'REGEX("a|b" xbx)', "1"),
    ({}, 'REGEX("^$" )', "1"),
    ({}, 'REGEX("^ a"  a)', "1"),
    ({}, 'REGEX("x\\\\.y" x.y)', "1"),
    ({}, 'REGEX("x\\\\.y" xzy)', "0"),
    ({}, 'REGEX("[]a]" ])', "1"),
    ({}, 'REGEX("^a.b$" a\nb)', "1"),
    ({}, 'REGEX("^ab$" ab\n)', "0"),
    ({}, 'REGEX("[$]" a$)', "1"),
    ({}, 'REGEX("(" x)', ""),
    ({}, "REGEX(abc)", ""),
    # REPLACE, STRREPLACE, STRBETWEEN (variable names)
    ({"X": "555-1234"}, "REPLACE(X,-)", "5551234"),
    ({"X": "555-1234"}, "REPLACE(X,-,.)", "555.1234"),
    ({"X": "555-1234"}, "REPLACE(X,54,x)", "xxx-123x"),
    ({"X": "555-1234"}, "REPLACE(X)", ""),
    ({"X": "555-1234"}, "REPLACE(,-)", ""),
    ({}, "REPLACE(NOPE,-)", ""),
    ({"X": "a-b-c-d"}, "STRREPLACE(X,-,+)", "a+b+c+d"),
    ({"X": "a-b-c-d"}, "STRREPLACE(X,-,,2)", "abc-d"),
    ({"X": "a-b-c-d"}, "STRREPLACE(X,-)", "abcd"),
    ({"X": "a-b-c-d"}, "STRREPLACE(X,b-c,BC)", "a-BC-d"),
    ({"X": "a-b-c-d"}, "STRREPLACE(X,)", ""),
    ({"X": "abc"}, "STRBETWEEN(X,-)", "a-b-c"),
    # FIELDQTY, FIELDNUM, LISTFILTER
    ({"X": "ex-amp-le"}, "FIELDQTY(X,-)", "3"),
    ({"X": "a^b^c"}, "FIELDQTY(X,^)", "3"),
    ({"X": "ex-amp-le"}, "FIELDQTY(X,\\x2D)", "3"),  # last argument: taken raw
    ({"X": "ex-amp-le"}, "FIELDQTY(X)", "1"),
    ({}, "FIELDQTY(NOPE,-)", "0"),
    ({"X": "ex-amp-le"}, "FIELDNUM(X,-,amp)", "2"),
    ({"X": "ex-amp-le"}, "FIELDNUM(X,-,AMP)", "2"),
    ({"X": "ex-amp-le"}, "FIELDNUM(X,-,zz)", "0"),
    ({"X": "ex-amp-le"}, "FIELDNUM(X,-)", ""),
    ({"X": "a|b|c"}, "LISTFILTER(X,|,b)", "a|c"),
    ({"X": "a|b|c"}, "LISTFILTER(X,|,z)", "a|b|c"),
    # QUOTE, CSV_QUOTE, PASSTHRU, KEYPADHASH, EVAL
    ({}, 'QUOTE(ab"c"de)', '"ab\\"c\\"de"'),
    ({}, "QUOTE(a\\b)", '"a\\\\b"'),
    ({}, "QUOTE()", '""'),
    ({}, 'CSV_QUOTE("a,b" 123)', '"""a,b"" 123"'),
    ({}, "CSV_QUOTE()", '""'),
    ({}, "PASSTHRU(a,b)", "a,b"),
    ({}, "KEYPADHASH(Les)", "537"),
    ({"Y": "hello"}, "EVAL(${Y} world)", "hello world"),
    # SPRINTF
    ({}, "SPRINTF(%05d,42)", "00042"),
    ({}, "SPRINTF(%.2f,3.14159)", "3.14"),
    ({}, "SPRINTF(%s-%s,a,b)", "a-b"),
    ({}, "SPRINTF(%x,255)", "ff"),
    ({}, "SPRINTF(%x,-1)", "ffffffff"),
    ({}, "SPRINTF(%d%%,50)", "50%"),
    ({}, "SPRINTF(%c,65)", "A"),
    ({}, "SPRINTF(%ld,7)", "7"),
    ({}, "SPRINTF(%d,abc)", ""),
    # STRFTIME / STRPTIME
    ({}, "STRFTIME(0,UTC,%Y-%m-%d %H:%M:%S)", "1970-01-01 00:00:00"),
    ({}, "STRFTIME(1141219835,America/Chicago,%Y-%m-%d %H:%M:%S)", "2006-03-01 07:30:35"),
    ({}, "STRFTIME(1.25,UTC,%S.%3q)", "01.250"),
    ({}, "STRFTIME(1.25,UTC,%1q)", "2"),
    ({}, "STRFTIME(1.25,UTC,%q)", "250"),
    ({}, "STRFTIME(1.25,UTC,%%q)", "%q"),
    ({}, "STRFTIME(0,UTC)", "Thu Jan  1 00:00:00 1970"),
    ({}, "STRPTIME(2006-03-01 07:30:35,America/Chicago,%Y-%m-%d %H:%M:%S)", "1141219835"),
    ({}, "STRPTIME(1970-01-01 00:00:10 trailing,UTC,%Y-%m-%d %H:%M:%S)", "10"),
    ({}, "STRPTIME(garbage,UTC,%Y)", ""),
    ({}, "STRPTIME(2006,UTC)", ""),
]


@pytest.mark.parametrize("variables, expr, expected", STRING_CASES)
def test_string_functions(chan: Channel, variables: dict[str, str], expr: str, expected: str) -> None:
    assert run(chan, variables, expr) == expected


def test_strftime_defaults_to_now(chan: Channel) -> None:
    year = str(dt.datetime.now(dt.timezone.utc).year)
    assert call(chan, "STRFTIME(,UTC,%Y)") == year
    assert call(chan, "STRFTIME(soon,UTC,%Y)") == year
    assert abs(int(call(chan, "STRFTIME(,Europe/Paris,%s)")) - time.time()) < 5
    assert call(chan, "STRFTIME(86400.5,Asia/Tokyo,%s)") == "86400"


def test_hash(chan: Channel) -> None:
    write(chan, "HASH(h,one)", "1")
    write(chan, "HASH(h,two)", "2")
    write(chan, "HASH(_inh,k)", "v")
    assert call(chan, "HASH(h,one)") == "1"
    assert call(chan, "HASH(h,missing)") == ""
    assert chan.vars["~HASH~h~two~"] == "2"
    assert chan.vars["~HASH~inh~k~"] == "v" and chan.inherit["~HASH~inh~k~"] == 1
    assert sorted(call(chan, "HASHKEYS(h)").split(",")) == ["one", "two"]
    assert call(chan, "HASHKEYS(none)") == ""
    assert sorted(call(chan, "HASH(h)").split(",")) == ["1", "2"]


def test_array(chan: Channel) -> None:
    write(chan, "ARRAY(a,b,c)", "1,2")
    assert (chan.vars["a"], chan.vars["b"], chan.vars["c"]) == ("1", "2", "")


def test_shift_pop_push_unshift(chan: Channel) -> None:
    chan.set_var("L", "one,two,three")
    assert call(chan, "SHIFT(L)") == "one"
    assert chan.vars["L"] == "two,three"
    assert call(chan, "POP(L)") == "three"
    assert chan.vars["L"] == "two"
    assert call(chan, "POP(L)") == "two"
    assert chan.vars["L"] == ""
    assert call(chan, "SHIFT(L)") == ""
    write(chan, "PUSH(L)", "b")
    write(chan, "PUSH(L)", "c")
    write(chan, "UNSHIFT(L)", "a")
    assert chan.vars["L"] == "a,b,c"
    write(chan, "PUSH(M,^)", "x")
    write(chan, "PUSH(M,^)", "y")
    assert chan.vars["M"] == "x^y"


# ====================================================================== func_cut
CUT_LIST = {"CalDescription": "SIP/100^SIP/200^IAX2/300", "X": "a-b-c"}
CUT_CASES: list[tuple[str, str]] = [
    ("CUT(CalDescription,^,1)", "SIP/100"),
    ("CUT(CalDescription,^,2)", "SIP/200"),
    ("CUT(CalDescription,^,3)", "IAX2/300"),
    ("CUT(CalDescription,^,4)", ""),
    ("CUT(CalDescription,^,99)", ""),
    ("CUT(CalDescription,^,0)", ""),
    ("CUT(CalDescription,^,1-2)", "SIP/100^SIP/200"),
    ("CUT(CalDescription,^,2-)", "SIP/200^IAX2/300"),
    ("CUT(CalDescription,^,-2)", "SIP/100^SIP/200"),
    ("CUT(CalDescription,^,1&3)", "SIP/100^IAX2/300"),
    ("CUT(CalDescription,^,3&1)", "IAX2/300"),
    ("CUT(CalDescription,^, 2)", "SIP/200"),
    ("CUT(CalDescription,^,abc)", ""),
    ("CUT(CalDescription,^)", ""),
    ("CUT(X,,2)", "b"),
    ("CUT(X,-,1,2)", "a"),
    ("CUT(X,\\\\x2D,2)", "b"),
    ("CUT(NOPE,^,1)", ""),
    ("CUT(NOPE,^,abc)", ""),
    ("SORT(a:3,b:1,c:2)", "b,c,a"),
    ("SORT(a:1.5,b:-1,c)", "b,a"),
    ("SORT()", ""),
]


@pytest.mark.parametrize("expr, expected", CUT_CASES)
def test_cut_and_sort(chan: Channel, expr: str, expected: str) -> None:
    assert run(chan, CUT_LIST, expr) == expected


def test_cut_reads_a_function(chan: Channel) -> None:
    chan.caller.num = "555-1234"
    assert call(chan, "CUT(CALLERID(num),-,2)") == "1234"


# ====================================================================== func_logic
LOGIC_CASES: list[tuple[str, str]] = [
    ("EXISTS()", "0"),
    ("EXISTS(x)", "1"),
    ("EXISTS(0)", "1"),
    ("ISNULL()", "1"),
    ("ISNULL(x)", "0"),
    ("ISNULL( )", "0"),
    ("IF(1?:x&)", ""),
    ("IF(0?:x&)", "x&"),
    ("IF(1?a:b)", "a"),
    ("IF(0?a:b)", "b"),
    ("IF(?a:b)", ""),
    ("IF(1)", ""),
    ("IF(1?)", ""),
    ("IF(0?a)", ""),
    ("IF(abc?a:b)", "a"),
    ("IF( 0 ?a:b)", "b"),
    ('IF("0"?a:b)', "b"),
    ('IF(1?"x:y":z)', "x:y"),
    ('IF(0?a:"b")', '"b"'),
    ("IF(1? a : b)", "a"),
    ("IF(1?a(b:c):d)", "a(b:c)"),
    ("IF(-1?a:b)", "a"),
    ("IF(0x1?a:b)", "b"),
    ("IFTIME(*,*,*,*?yes:no)", "yes"),
    ("IFTIME(*|*|*|*?yes:no)", "yes"),
    ('IFTIME("*,*,*,*?a:b")', "a"),
    ('IFTIME(*,*,*,*?"x":no)', "x"),
    ("IFTIME(*,*,*,*?:no)", ""),
    ("IFTIME(garbage?a:b)", ""),
    ("IFTIME(*,*,*,*)", ""),
    ("IFTIME(?a:b)", ""),
]


@pytest.mark.parametrize("expr, expected", LOGIC_CASES)
def test_logic_functions(chan: Channel, expr: str, expected: str) -> None:
    assert call(chan, expr) == expected


def test_iftime_false_branch(chan: Channel) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    this, other = months[now.month - 1], months[now.month % 12]
    assert call(chan, f"IFTIME(*,*,*,{other},UTC?yes:no)") == "no"
    assert call(chan, f"IFTIME(*,*,*,{this},UTC?yes:no)") == "yes"
    assert call(chan, f"IFTIME(*,*,*,{other},UTC?yes)") == ""


def test_set(chan: Channel, pbx: Any) -> None:
    assert call(chan, "SET(A=5)") == "5" and chan.vars["A"] == "5"
    assert call(chan, "SET( B = x )") == "x" and chan.vars["B"] == "x"
    assert call(chan, "SET(__C=inh)") == "inh" and chan.inherit["C"] == 2
    assert call(chan, "SET(E=)") == "" and chan.vars["E"] == ""
    assert call(chan, "SET(=x)") == ""
    assert call(chan, "SET(D)") == "" and "D" not in chan.vars
    assert call(chan, "SET(GLOBAL(G)=1)") == "1" and pbx.globals["G"] == "1"


def test_import_delete_variable_exists(chan: Channel, pbx: Any) -> None:
    other = Channel(pbx, "Local/100@default-0001;1")
    pbx.channels.add(other)
    other.set_var("SECRET", "42")
    assert call(chan, "IMPORT(Local/100@default-0001;1,SECRET)") == "42"
    assert call(chan, "IMPORT(local/100@DEFAULT-0001;1,SECRET)") == "42"
    assert call(chan, "IMPORT(nope,SECRET)") == ""
    chan.set_var("V", "")
    assert call(chan, "VARIABLE_EXISTS(V)") == "1"
    write(chan, "DELETE(V)", "")
    assert call(chan, "VARIABLE_EXISTS(V)") == "0"


# ====================================================================== func_rand
def test_rand_default_range(chan: Channel) -> None:
    for _ in range(200):
        assert 0 <= int(call(chan, "RAND()")) <= 2147483647


@pytest.mark.parametrize("args, low, high", [
    ("1,6", 1, 6), ("6,1", 1, 6), ("5,5", 5, 5), ("x,3", 0, 3), ("-3,-1", -3, -1), (",2", 0, 2),
])
def test_rand_range(chan: Channel, args: str, low: int, high: int) -> None:
    seen = {int(call(chan, f"RAND({args})")) for _ in range(400)}
    assert seen == set(range(low, high + 1))


# ====================================================================== func_global, func_env
def test_global(chan: Channel, pbx: Any) -> None:
    assert call(chan, "GLOBAL(G)") == ""
    write(chan, "GLOBAL(G)", "7")
    assert pbx.globals["G"] == "7" and "G" not in chan.vars
    chan.set_var("G", "channel")
    assert call(chan, "GLOBAL(G)") == "7"
    write(chan, "GLOBAL(_H)", "8")
    assert pbx.globals["H"] == "8"
    assert call(None, "GLOBAL(H)", pbx) == "8"


def test_env(chan: Channel) -> None:
    name = "HOOKFLASH_TEST_ENV"
    os.environ.pop(name, None)
    try:
        assert call(chan, f"ENV({name})") == ""
        write(chan, f"ENV({name})", "value")
        assert os.environ[name] == "value" and call(chan, f"ENV({name})") == "value"
        write(chan, f"ENV({name})", "")
        assert name not in os.environ
        write(chan, "ENV(AST_HOOKFLASH_TEST)", "x")
        assert "AST_HOOKFLASH_TEST" not in os.environ
    finally:
        os.environ.pop(name, None)


# ====================================================================== func_math
MATH_CASES: list[tuple[str, str]] = [
    ("MATH(3*4)", "12.000000"),
    ("MATH(3*4,i)", "12"),
    ("MATH(3*4,int)", "12"),
    ("MATH(10/4)", "2.500000"),
    ("MATH(10/0)", "0.000000"),
    ("MATH(10/-2,i)", "-5"),
    ("MATH(-5+3,i)", "-2"),
    ("MATH(5--3,i)", "8"),
    ("MATH(5-3,f)", "2.000000"),
    ("MATH(2^10,i)", "1024"),
    ("MATH(7%3,int)", "1"),
    ("MATH(-7%3,i)", "-1"),
    ("MATH(7%0,i)", "0"),
    ("MATH(1<<4,i)", "16"),
    ("MATH(256>>4,i)", "16"),
    ("MATH(12AND10,i)", "8"),
    ("MATH(12OR3,i)", "15"),
    ("MATH(12XOR10,i)", "6"),
    ("MATH(255+0,h)", "ff"),
    ("MATH(-1+0,hex)", "ffffffff"),
    ("MATH(65+0,c)", "A"),
    ("MATH(3>2)", "TRUE"),
    ("MATH(3<2)", "FALSE"),
    ("MATH(3>=3)", "TRUE"),
    ("MATH(2<=1)", "FALSE"),
    ("MATH(2==2)", "TRUE"),
    ("MATH(2=2)", ""),
    ("MATH(abc+1)", ""),
    ("MATH(1+1,q)", ""),
    ("MATH()", ""),
    ("MATH(5)", ""),
    ("MATH(1.5*2)", "3.000000"),
    ("MATH(1e3+1,i)", "1001"),
    ("MATH( 2 * 3 ,i)", "6"),
    ("MIN(3,5)", "3"),
    ("MAX(3,5.5)", "5.500000"),
    ("MIN(,4)", "4"),
    ("MAX(4)", "4"),
    ("MIN(x,4)", ""),
    ("ABS(-3)", "3"),
    ("ABS(-2.5)", "2.500000"),
    ("ABS(x)", ""),
    ("DIGIT_SUM(1234)", "10"),
    ("DIGIT_SUM(a1b2)", "3"),
]


@pytest.mark.parametrize("expr, expected", MATH_CASES)
def test_math(chan: Channel, expr: str, expected: str) -> None:
    assert call(chan, expr) == expected


@pytest.mark.parametrize("start, func, result, stored", [
    ("5", "INC", "6", "6"),
    ("5", "DEC", "4", "4"),
    ("-1", "INC", "0", "0"),
    (" 7", "INC", "8", "8"),
    ("2147483647", "INC", "-2147483648", "-2147483648"),
    ("abc", "INC", "", "abc"),
    ("12abc", "DEC", "", "12abc"),
    ("1.5", "INC", "", "1.5"),
    ("", "INC", "", ""),
])
def test_inc_dec(chan: Channel, start: str, func: str, result: str, stored: str) -> None:
    chan.set_var("N", start)
    assert call(chan, f"{func}(N)") == result
    assert chan.vars["N"] == stored


def test_inc_missing_and_global(chan: Channel, pbx: Any) -> None:
    assert call(chan, "INC(NOPE)") == ""
    assert call(chan, "INC()") == ""
    pbx.globals["GN"] = "10"
    assert call(chan, "INC(GN)") == "11"
    assert chan.vars["GN"] == "11" and pbx.globals["GN"] == "10"


# ====================================================================== func_callerid
@pytest.mark.parametrize("text, name, num", [
    ('"Foo Bar" <100>', "Foo Bar", "100"),
    ("Foo Bar <100>", "Foo Bar", "100"),
    ("100", "", "100"),
    ('"100"', "100", ""),
    ("Foo", "Foo", ""),
    ("<100>", "", "100"),
    ('"Foo \\"x\\"" <1>', 'Foo "x"', "1"),
    ('  "A" <1-2-3>  ', "A", "123"),
    ("+1 (555) 123-4567", "", "+15551234567"),
    ("", "", ""),
])
def test_callerid_split(text: str, name: str, num: str) -> None:
    assert callerid_split(text) == (name, num)


CALLERID_CASES: list[tuple[str, str]] = [
    ("CALLERID(all)", '"Alice" <100>'),
    ("CALLERID(name)", "Alice"),
    ("CALLERID(num)", "100"),
    ("CALLERID(number)", "100"),
    ("CALLERID(pres)", "allowed_not_screened"),
    ("CALLERID(num-pres)", "allowed_not_screened"),
    ("CALLERID(ton)", "0"),
    ("CALLERID(num-plan)", "0"),
    ("CALLERID(name-valid)", "1"),
    ("CALLERID(ani)", "200"),
    ("CALLERID(ani-num)", "200"),
    ("CALLERID(dnid)", "300"),
    ("CALLERID(rdnis)", "400"),
    ("CALLERID(bogus)", ""),
    ("CALLERID(priv-name)", ""),
    ("CALLERID()", ""),
    ('CALLERID(all,"Bob" <200>)', '"Bob" <200>'),
    ("CALLERID(name,Bob <200>)", "Bob"),
    ("CALLERID(num,+1 (555) 123-4567)", "+15551234567"),
    ("CALLERID(pres,Bob <200>)", ""),
]


@pytest.mark.parametrize("expr, expected", CALLERID_CASES)
def test_callerid_read(chan: Channel, expr: str, expected: str) -> None:
    chan.caller.name, chan.caller.num = "Alice", "100"
    chan.caller.ani, chan.caller.dnid, chan.caller.rdnis = "200", "300", "400"
    assert call(chan, expr) == expected


def test_callerid_all_when_empty(chan: Channel) -> None:
    assert call(chan, "CALLERID(all)") == '"" <>'
    chan.caller.num = "100"
    assert call(chan, "CALLERID(all)") == '"" <100>'


@pytest.mark.parametrize("field, value, attr, expected", [
    ("all", '"Carol" <300>', ("name", "num"), ("Carol", "300")),
    ("all", "400", ("name", "num"), ("", "400")),
    ("all", "Dave", ("name", "num"), ("Dave", "")),
    ("name", "  Eve  ", ("name",), ("Eve",)),
    ("num", " 5551234 ", ("num",), ("5551234",)),
    ("pres", "prohib", ("pres",), ("prohib",)),
    ("pres", "32", ("pres",), ("prohib_not_screened",)),
    ("pres", "bogus", ("pres",), ("allowed_not_screened",)),
    ("num-pres", "allowed", ("pres",), ("allowed",)),
    ("ton", "1", ("ton",), (1,)),
    ("ton", "x", ("ton",), (0,)),
    ("ani", "500", ("ani",), ("500",)),
    ("dnid", "600", ("dnid",), ("600",)),
    ("rdnis", "700", ("rdnis",), ("700",)),
])
def test_callerid_write(chan: Channel, field: str, value: str, attr: tuple[str, ...],
                        expected: tuple[Any, ...]) -> None:
    write(chan, f"CALLERID({field})", value)
    assert tuple(getattr(chan.caller, a) for a in attr) == expected


# ====================================================================== func_channel
@pytest.mark.parametrize("item, expected", [
    ("name", "SIP/9001-00000001"),
    ("channame", "SIP/9001-00000001"),
    ("state", "Down"),
    ("language", "en"),
    ("accountcode", ""),
    ("context", "AutomatedMeetingSetup"),
    ("exten", "start"),
    ("priority", "1"),
    ("musicclass", ""),
    ("channeltype", "Null"),
    ("checkhangup", "0"),
    ("peer", ""),
    ("bogus", ""),
])
def test_channel_read(chan: Channel, item: str, expected: str) -> None:
    assert call(chan, f"CHANNEL({item})") == expected


def test_channel_ids_and_writes(chan: Channel) -> None:
    assert call(chan, "CHANNEL(uniqueid)") == chan.uniqueid
    assert call(chan, "CHANNEL(linkedid)") == chan.linkedid
    chan.linkedid = ""
    assert call(chan, "CHANNEL(linkedid)") == chan.uniqueid
    write(chan, "CHANNEL(language)", "fr")
    write(chan, "CHANNEL(musicclass)", "jazz")
    write(chan, "CHANNEL(accountcode)", "acct1")
    assert (chan.language, chan.musicclass, chan.accountcode) == ("fr", "jazz", "acct1")
    assert call(chan, "CHANNEL(language)") == "fr"
    write(chan, "CHANNEL(name)", "evil")
    assert chan.name == "SIP/9001-00000001"


def test_channels(chan: Channel, pbx: Any) -> None:
    pbx.channels.add(Channel(pbx, "Local/100@default-0001;1"))
    assert call(chan, "CHANNELS()") == "SIP/9001-00000001 Local/100@default-0001;1"
    assert call(chan, "CHANNELS(^sip/)") == "SIP/9001-00000001"
    assert call(chan, "CHANNELS(^Local/[0-9]+@)") == "Local/100@default-0001;1"
    assert call(chan, "CHANNELS(()") == ""


# ====================================================================== CHAPTER.md, through substitution
def test_chapter_filter_location(chan: Channel, pbx: Any) -> None:
    chan.set_var("LOC", "SIP/9001;evil")
    assert substitute("${FILTER(0-9A-Za-z,${LOC})}", chan, pbx) == "SIP9001evil"
    chan.exten = "SIP/9001;evil&Local/x"
    assert substitute("${FILTER(A-Za-z0-9,${EXTEN})}", chan, pbx) == "SIP9001evilLocalx"


def test_chapter_attendee_loop(chan: Channel, pbx: Any) -> None:
    """The While loop of section 1.3, one Set at a time."""
    def sset(name: str, template: str) -> None:
        chan.set_var(name, substitute(template, chan, pbx))

    chan.set_var("CalDescription", "SIP/100^SIP/200^IAX2/300")
    sset("X", "1")
    sset("EndPoint", "${CUT(CalDescription,^,${X})}")
    rounds = 0
    while substitute("$[${EXISTS(${EndPoint})}]", chan, pbx) == "1":
        sset("ToDial", "${IF($[${ISNULL(${ToDial})}]?:${ToDial}&)}Local/${EndPoint}@MeetingOriginator")
        sset("X", "$[${X} + 1]")
        sset("EndPoint", "${CUT(CalDescription,^,${X})}")
        rounds += 1
        assert rounds < 10
    assert rounds == 3
    assert chan.vars["ToDial"] == ("Local/SIP/100@MeetingOriginator&Local/SIP/200@MeetingOriginator"
                                   "&Local/IAX2/300@MeetingOriginator")
    assert substitute("$[${ISNULL(${ToDial})}]", chan, pbx) == "0"


def test_chapter_empty_description(chan: Channel, pbx: Any) -> None:
    chan.set_var("CalDescription", "")
    assert substitute("${CUT(CalDescription,^,1)}", chan, pbx) == ""
    assert substitute("$[${ISNULL(${ToDial})}]", chan, pbx) == "1"


def test_chapter_voicemail_status(chan: Channel, pbx: Any) -> None:
    template = '${IF($[${ISNULL(${DIALSTATUS})} | "${DIALSTATUS}" = "BUSY"]?b:u)}'
    assert substitute(template, chan, pbx) == "b"
    chan.set_var("DIALSTATUS", "BUSY")
    assert substitute(template, chan, pbx) == "b"
    chan.set_var("DIALSTATUS", "NOANSWER")
    assert substitute(template, chan, pbx) == "u"
    template2 = '${IF($["${DIALSTATUS}" = "BUSY" | 0${CalendarBusy}]?b:u)}'
    assert substitute(template2, chan, pbx) == "u"
    chan.set_var("CalendarBusy", "1")
    assert substitute(template2, chan, pbx) == "b"


def test_chapter_callerid_and_rand(chan: Channel, pbx: Any) -> None:
    chan.caller.name, chan.caller.num = "Alice", "100"
    assert substitute("Incoming call from ${CALLERID(all)}", chan, pbx) == 'Incoming call from "Alice" <100>'
    chan.set_var("__RandomNumber", substitute("${RAND()}", chan, pbx))
    assert chan.vars["RandomNumber"].isdigit() and chan.inherit["RandomNumber"] == 2


def test_case_count() -> None:
    rows = (len(STRING_CASES) + len(CUT_CASES) + len(LOGIC_CASES) + len(MATH_CASES)
            + len(CALLERID_CASES))
    assert rows >= 120
