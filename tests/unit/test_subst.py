"""Substitution conformance: ${VAR}, substrings, nesting, functions, $[...] inside."""

from __future__ import annotations

import types

import pytest

from hookflash.channels.channel import Channel
from hookflash.dialplan.subst import compile_template, substitute, substring
from hookflash.engine.registry import Function, Registry


def make_channel() -> Channel:
    registry = Registry()
    registry.add_function(Function("ECHO", lambda chan, args: args))
    registry.add_function(Function("UPPER", lambda chan, args: args.upper()))
    pbx = types.SimpleNamespace(globals={"G": "global", "SHADOW": "from-global"}, systemname="sys",
                                registry=registry, channels=types.SimpleNamespace(remove=lambda c: None))
    chan = Channel(pbx, "Local/meetme-1234@t-00000001;2", exten="meetme-1234", context="MeetingOriginator")  # type: ignore[arg-type]
    for name, value in {"VAR": "abcdefgh", "NAME": "VAR", "SUFFIX": "R", "A": "5", "B": "7",
                        "EMPTY": "", "SHADOW": "from-channel", "LIST": "a^b^c", "EXTEN": "ignored",
                        "SPACE": "a b", "N": "2"}.items():
        chan.set_var(name, value)
    return chan


CASES = [
    ("${VAR}", "abcdefgh"),
    ("x${VAR}y", "xabcdefghy"),
    ("${VAR:2}", "cdefgh"),
    ("${VAR:-3}", "fgh"),
    ("${VAR:1:2}", "bc"),
    ("${VAR:-3:2}", "fg"),
    ("${VAR:2:-1}", "cdefg"),  # negative length leaves that many off the end
    ("${VAR:0:-2}", "abcdef"),
    ("${VAR:10}", ""),  # offset past the end
    ("${VAR:-10}", "abcdefgh"),  # negative offset past the start clamps to 0
    ("${VAR:-10:2}", "ab"),
    ("${VAR:2:0}", ""),  # explicit zero length
    ("${VAR:1:-10}", ""),  # nothing left after trimming
    ("${VAR:0}", "abcdefgh"),
    ("${VAR:}", "abcdefgh"),
    ("${VAR:x:2}", "ab"),  # atoi("x") is 0
    ("${VAR::3}", "abc"),
    ("${VAR:3:100}", "defgh"),
    ("${EXTEN:7}", "1234"),  # the chapter's ${EXTEN:7} on meetme-1234
    ("${EXTEN}", "meetme-1234"),  # built-ins win over a channel variable of that name
    ("${CONTEXT}", "MeetingOriginator"),
    ("${PRIORITY}", "1"),
    ("${CHANNEL}", "Local/meetme-1234@t-00000001;2"),
    ("${CHANNEL:0:5}", "Local"),
    ("${G}", "global"),
    ("${SHADOW}", "from-channel"),  # channel variables hide globals
    ("${NOSUCH}", ""),
    ("[${NOSUCH}]", "[]"),
    ("${EMPTY}", ""),
    ("${${NAME}}", "abcdefgh"),  # nested name
    ("${VA${SUFFIX}}", "abcdefgh"),
    ("${${NAME}:1:1}", "b"),
    ("$[${A} + ${B}]", "12"),
    ("$[$[1 + 2] * 3]", "9"),
    ("$[${A}*${B}]", "35"),
    ("a$[1+1]b", "a2b"),
    ("${ECHO(x,y)}", "x,y"),
    ("${ECHO(${VAR})}", "abcdefgh"),
    ("${ECHO(${VAR}):2:3}", "cde"),  # functions take substrings too
    ("${UPPER(${ECHO(abc)})}", "ABC"),
    ("${ECHO(a:b)}", "a:b"),  # colons inside parentheses belong to the arguments
    ("${ECHO((x))}", "(x)"),
    ("cost $5", "cost $5"),  # a lone $ is literal
    ("$$", "$$"),
    ("$", "$"),
    ("${", ""),  # unterminated: the rest is the name (empty)
    ("x${VAR", "xabcdefgh"),  # missing '}' takes the rest, as Asterisk does
    ("$[1 + 2", "3"),  # missing ']' likewise
    ("{VAR}", "{VAR}"),
    ("${VAR}${VAR:0:1}", "abcdefgha"),
    ("${SPACE}", "a b"),
    ("${LIST}", "a^b^c"),
    ("$[\"${EMPTY}\" = \"\"]", "1"),
    ("$[${N} > 1]", "1"),
    # "${ECHO(}" ends at the first '}': the function gets no arguments (a warning about
    # the missing ')'), and the trailing ")}" stays literal
    ("${ECHO(})}", ")}"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_substitution(text: str, expected: str) -> None:
    chan = make_channel()
    assert compile_template(text).render(chan, chan.pbx) == expected


def test_substitute_without_dollar_is_identity() -> None:
    chan = make_channel()
    assert substitute("plain text, no vars", chan, chan.pbx) == "plain text, no vars"


def test_unbalanced_reported_at_compile_time() -> None:
    problems: list[str] = []
    compile_template("Set(A=$[1 + 2)", problems)
    assert problems and "missing ']'" in problems[0]


@pytest.mark.parametrize("value,offset,length,expected", [
    ("hello", 0, 2**31 - 1, "hello"), ("hello", 1, 3, "ell"), ("hello", -2, 2**31 - 1, "lo"),
    ("hello", -2, 1, "l"), ("hello", 1, -1, "ell"), ("hello", 5, 1, ""), ("", 0, 3, ""),
    ("hello", -5, -5, ""), ("hello", 0, -4, "h"),
])
def test_substring(value: str, offset: int, length: int, expected: str) -> None:
    assert substring(value, offset, length) == expected
