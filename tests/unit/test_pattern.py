"""Extension patterns: matching modes, Asterisk's ordering, and PatternIndex lookups."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.dialplan.pattern import (
    E_CANMATCH,
    E_MATCHMORE,
    Pattern,
    PatternError,
    PatternIndex,
    compile_pattern,
)

# (pattern, dialled, matches, can_match, match_more)
MATCH_TABLE = [
    # literal extensions: exact, case-sensitive, '-' and spaces are fluff
    ("100", "100", True, True, False),
    ("100", "10", False, True, True),
    ("100", "1000", False, False, False),
    ("100", "", False, True, True),
    ("100", "1-00", True, True, False),
    ("1-00", "100", True, True, False),
    ("1 00", "100", True, True, False),
    ("100", "200", False, False, False),
    ("abc", "ABC", False, False, False),
    ("abc", "ab", False, True, True),
    ("s", "s", True, True, False),
    ("_100", "100", True, True, False),
    # X, Z, N (either case)
    ("_X", "5", True, True, False),
    ("_X", "a", False, False, False),
    ("_X", "", False, True, True),
    ("_X", "55", False, False, False),
    ("_N", "1", False, False, False),
    ("_N", "2", True, True, False),
    ("_Z", "0", False, False, False),
    ("_Z", "1", True, True, False),
    ("_n", "5", True, True, False),
    ("_x", "0", True, True, False),
    ("_z", "9", True, True, False),
    ("_NXX", "200", True, True, False),
    ("_NXX", "20", False, True, True),
    ("_NXX", "199", False, False, False),
    ("_ZXXX", "1000", True, True, False),
    ("_3XXX", "3000", True, True, False),
    ("_XX", "1-2", True, True, False),
    ("_1NXXNXXXXXX", "12125551234", True, True, False),
    ("_1NXXNXXXXXX", "1212555", False, True, True),
    ("_1NXXNXXXXXX", "11125551234", False, False, False),
    ("_NXXNXXXXXX", "2125551234", True, True, False),
    ("_1-800-NXX-XXXX", "18005551234", True, True, False),
    ("_NXX-XXXX", "555-1234", True, True, False),
    ("_X X", "12", True, True, False),
    # sets
    ("_[1-5]", "3", True, True, False),
    ("_[1-5]", "6", False, False, False),
    ("_[1-5a-c]", "b", True, True, False),
    ("_[1-5a-c]", "d", False, False, False),
    ("_[1-5a-c]", "B", False, False, False),
    ("_[-5]", "5", True, True, False),
    ("_[5-]", "-", False, True, True),  # the dialled '-' is fluff: nothing is dialled
    ("_[]5", "5", True, True, False),  # an empty set is ignored
    ("_[9-0]", "5", False, False, False),  # a reversed range matches nothing
    ("_[9-0]", "", False, True, True),
    ("_[*#]X", "#5", True, True, False),
    ("_*XX", "*12", True, True, False),
    ("_#", "#", True, True, False),
    # literal characters in patterns are case-sensitive; n, x, z are classes
    ("_abc", "ABC", False, False, False),
    ("_ab", "a", False, True, True),
    ("_conference", "conference", False, False, False),
    ("_co[n]fere[n]ce", "conference", True, True, False),
    # the book's context
    ("_meetme-XXXX", "meetme-1234", True, True, False),
    ("_meetme-XXXX", "meetme1234", True, True, False),
    ("_meetmeXXXX", "meetme-12", False, True, True),
    ("_[A-Za-z0-9].", "meetme-1234", True, True, True),
    # '.': one or more of anything; nothing after it is looked at
    ("_X.", "1", False, True, True),
    ("_X.", "12", True, True, True),
    ("_X.", "123456", True, True, True),
    ("_X.", "", False, True, True),
    ("_1.", "2", False, False, False),
    ("_.", "", False, True, True),
    ("_.", "a", True, True, True),
    ("_X.5", "12", True, True, True),
    # '!': zero or more; a match, but "don't wait for more" for match_more
    ("_X!", "1", True, True, False),
    ("_X!", "", False, True, True),
    ("_X!", "123", True, True, False),
    ("_!", "", True, True, False),
    ("_!", "abc", True, True, False),
    ("_1!", "2", False, False, False),
    ("_12!", "1", False, True, True),
    # the empty pattern matches only the empty string
    ("_", "", True, True, False),
    ("_", "1", False, False, False),
    # a dialled '_' string is first compared to the pattern as a pattern (E_MATCH only)
    ("_X.", "_X.", True, False, False),
    ("_X.", "_[0-9].", True, False, False),
    ("_X.", "_N.", False, False, False),
]


@pytest.mark.parametrize(("text", "exten", "match", "canmatch", "more"), MATCH_TABLE)
def test_match_table(text: str, exten: str, match: bool, canmatch: bool, more: bool) -> None:
    p = compile_pattern(text)
    assert p.text == text
    assert p.is_pattern == text.startswith("_")
    assert (p.matches(exten), p.can_match(exten), p.match_more(exten)) == (match, canmatch, more)


def test_table_is_big_enough() -> None:
    assert len(MATCH_TABLE) >= 60


# Each list is in Asterisk's order (ext_cmp).
ORDER_TABLE = [
    ["3000", "_3XXX"],
    ["_meetme-XXXX", "_[A-Za-z0-9]."],
    ["_5", "_N", "_Z", "_X"],
    ["_XX", "_X.", "_X!", "_X"],
    ["_1NXXNXXXXXX", "_NXXNXXXXXX"],
    ["_[12]", "_[1-3]", "_[2-4]", "_N", "_[0-9a-z]"],
    ["_[13]", "_[14]", "_[15]"],
    ["_[1-3]", "_[124]"],
    ["_[19]", "_[234]"],
    ["_[1-8]", "_N"],
    ["_X", "_[a-j]"],
    ["_1X", "_2X", "_[12]X"],
    ["10", "100", "1000", "101", "99"],
    ["100", "1-01"],
    ["200", "_100"],
    ["_XXXX", "_XXX", "_XX"],
    ["_1X", "_1[0-9a-zA-Z]", "_1.", "_1!"],
    ["s", "_s.", "_X", "_.", "_!"],
    ["_n", "_z", "_x"],
    ["_X.1", "_X.2", "_X."],
    ["911", "_9011.", "_911", "_91NXXNXXXXXX", "_9NXXXXXX", "_9.", "_X."],
    ["h", "i", "s", "t", "_meetme-XXXX", "_X.", "_[A-Za-z0-9]."],
    ["_5-5X", "_55-"],
    ["B", "a", "_a"],
    ["_1", "_A", "_[A1]"],
    ["_11", "_[]12"],
    ["_[0-/1-9]", "_Z"],  # a reversed range still sets the set's lowest char
]


@pytest.mark.parametrize("expected", ORDER_TABLE, ids=lambda names: " ".join(names))
def test_order_table(expected: list[str]) -> None:
    rng = random.Random(" ".join(expected))
    for _ in range(5):
        names = expected[:]
        rng.shuffle(names)
        patterns = [compile_pattern(n) for n in names]
        assert [p.text for p in sorted(patterns, key=lambda p: p.sort_key)] == expected
        assert [p.text for p in sorted(patterns)] == expected


def test_order_table_is_big_enough() -> None:
    assert len(ORDER_TABLE) >= 20


@pytest.mark.parametrize(
    ("a", "b"),
    [("_X", "_[0-9]"), ("_N", "_[2-9]"), ("_NXX-XXXX", "_NXXXXXX"), ("100", "1-00"),
     ("_5", "_[5]"), ("_[]1", "_1"), ("_x.", "_X."), ("_[5-3]9", "_9")],
)
def test_same_extension_for_asterisk(a: str, b: str) -> None:
    assert compile_pattern(a).sort_key == compile_pattern(b).sort_key


@pytest.mark.parametrize("text", ["_1[23", "_[", "_X[1-5", "", "   ", "-"])
def test_pattern_error(text: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(text)
    assert "expected" in str(info.value)


def test_pattern_error_names_the_bracket() -> None:
    with pytest.raises(PatternError, match=r"'\['.*'\]'.*\[1-5a-c\]"):
        Pattern("_1[23")


def test_pattern_is_frozen() -> None:
    p = compile_pattern("_1NXX.")
    with pytest.raises(AttributeError):
        p.text = "x"  # type: ignore[misc]
    assert p == Pattern("_1NXX.") and hash(p) == hash(Pattern("_1NXX."))


# -- PatternIndex ---------------------------------------------------------------------


def make_index(names: list[str]) -> PatternIndex[str]:
    index: PatternIndex[str] = PatternIndex()
    for name in names:
        index.add(name, name)
    return index


def test_index_book_context() -> None:
    index = make_index(["_[A-Za-z0-9].", "_meetme-XXXX", "s", "100"])
    assert index.match("meetme-1234") == "_meetme-XXXX"
    assert index.match("meetme-12345") == "_[A-Za-z0-9]."
    assert index.match("hello") == "_[A-Za-z0-9]."
    assert index.match("s") == "s"
    assert index.match("100") == "100"
    assert index.match_all("meetme-1234") == ["_meetme-XXXX", "_[A-Za-z0-9]."]
    assert index.match("-") is None


def test_index_literal_before_pattern() -> None:
    index = make_index(["_3XXX", "3000", "_X!"])
    assert index.match("3000") == "3000"
    assert index.match("3-000") == "3000"
    assert index.match("3001") == "_3XXX"
    assert index.match("5") == "_X!"
    assert index.match_all("3000") == ["3000", "_3XXX", "_X!"]


def test_index_remove_and_cache() -> None:
    index = make_index(["_X.", "_1NXX"])
    assert index.match("1234") == "_1NXX"
    index.remove("_1NXX")
    assert index.match("1234") == "_X."
    index.add("1234", "lit")
    assert index.match("1234") == "lit"
    index.remove("12-34")
    index.remove("_X.")
    assert index.match("1234") is None and len(index) == 0
    with pytest.raises(KeyError):
        index.remove("_X.")


def test_index_equivalent_names_share_a_slot() -> None:
    index: PatternIndex[int] = PatternIndex()
    index.add("_X", 1)
    index.add("_[0-9]", 2)
    index.add("100", 3)
    index.add("1-00", 4)
    assert len(index) == 2
    assert index.match("5") == 2 and index.match("100") == 4
    assert [p.text for p, _ in index] == ["100", "_X"]
    assert "_[0-9]" in index and index.get("1-00") == 4


def test_index_can_match_and_match_more() -> None:
    index = make_index(["100", "_2XX", "_3."])
    assert index.can_match("") and index.match_more("")
    assert index.can_match("10") and index.match_more("10")
    assert index.can_match("100") and not index.match_more("100")
    assert index.can_match("21") and index.match_more("21")
    assert not index.can_match("4") and not index.match_more("4")
    assert index.match_more("3") and index.match_more("3999")


def test_index_bang_is_final_for_match_more() -> None:
    # Asterisk: the first extension that answers MATCHMORE ends in '!' -> "no more".
    index = make_index(["_12!", "_1."])
    assert [p.text for p, _ in index] == ["_12!", "_1."]
    assert not index.match_more("12")
    assert compile_pattern("_1.").match_more("12")
    assert index.match_more("13")


def test_index_dialled_pattern_string() -> None:
    index = make_index(["_X.", "_NXX"])
    assert index.match("_X.") == "_X."
    assert index.match("_NXX") == "_NXX"


def test_index_odd_patterns_checked_one_by_one() -> None:
    index = make_index(["_[9-0]1", "_[0-/1-9]", "_Z", "_X/1", "_X"])
    assert index.match("5") == "_[0-/1-9]"
    assert index.match("0") == "_X/1"  # Asterisk stops matching at the '/'
    assert index.match_all("5") == ["_[0-/1-9]", "_Z", "_X/1", "_X"]
    assert index.can_match("") and not index.match("01")


def test_index_large_context_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    names = {f"_1NXX{rng.randint(200, 999)}{rng.randint(10, 99)}XX" for _ in range(2000)}
    names |= {f"_{rng.randint(2, 9)}{rng.randint(100, 999)}." for _ in range(50)}
    names |= {f"_NXX{rng.randint(100, 999)}[{rng.randint(0, 4)}-{rng.randint(5, 9)}]X"
              for _ in range(50)}
    index = make_index(sorted(names))
    ordered = sorted((compile_pattern(n) for n in names), key=lambda p: p.sort_key)
    for _ in range(300):
        p = rng.choice(ordered)
        exten = "".join(rng.choice("23456789") if c in "NXZ[" else c for c in
                        p.clean.split("[")[0].replace(".", "45"))
        expected = next((q.text for q in ordered if q.matches(exten)), None)
        assert index.match(exten) == expected


# -- hypothesis: the index agrees with "first in sorted order that matches" -----------

ELEMENTS = ["1", "2", "3", "X", "N", "Z", "x", "[12]", "[1-3]", "[0-2]", "[13]", "[3-1]", "-"]
pattern_names = st.builds(
    lambda elems, tail: "_" + "".join(elems) + tail,
    st.lists(st.sampled_from(ELEMENTS), max_size=4),
    st.sampled_from(["", "", ".", "!", ".1"]),
)
literal_names = st.text(alphabet="0123-", min_size=1, max_size=4).filter(
    lambda s: s.replace("-", "") != ""
)
names_st = st.lists(st.one_of(pattern_names, literal_names), max_size=12)
extens_st = st.text(alphabet="01234-", max_size=5)


def brute(names: list[str]) -> list[tuple[Pattern, str]]:
    """(first pattern added, last value) per distinct extension, in Asterisk order."""
    slots: dict[tuple, tuple[Pattern, str]] = {}
    for name in names:
        p = compile_pattern(name)
        first = slots.get(p.sort_key, (p, name))[0]
        slots[p.sort_key] = (first, name)
    return sorted(slots.values(), key=lambda pv: pv[0].sort_key)


def check(index: PatternIndex[str], entries: list[tuple[Pattern, str]], exten: str) -> None:
    s = exten.replace("-", "")
    matching = [v for p, v in entries if p.matches(exten)]
    assert index.match(exten) == (matching[0] if matching else None)
    assert index.match_all(exten) == matching
    assert index.can_match(exten) == any(p.core(s, E_CANMATCH) for p, _ in entries)
    more = next((r for p, _ in entries if (r := p.core(s, E_MATCHMORE))), 0)
    assert index.match_more(exten) == (more == 1)


@settings(max_examples=400, deadline=None)
@given(names_st, st.lists(extens_st, min_size=1, max_size=8), st.data())
def test_index_agrees_with_brute_force(names: list[str], extens: list[str], data: st.DataObject) -> None:
    index = make_index(names)
    entries = brute(names)
    assert len(index) == len(entries)
    assert [(p.text, v) for p, v in index] == [(p.text, v) for p, v in entries]
    for exten in extens:
        check(index, entries, exten)
    # remove some and check again (the trie must prune itself correctly)
    doomed = data.draw(st.lists(st.sampled_from(names), max_size=len(names)) if names else st.just([]))
    gone = {compile_pattern(n).sort_key for n in doomed}
    for key in gone:
        index.remove(next(n for n in names if compile_pattern(n).sort_key == key))
    entries = [(p, v) for p, v in entries if p.sort_key not in gone]
    for exten in extens:
        check(index, entries, exten)


@settings(max_examples=200, deadline=None)
@given(pattern_names, extens_st)
def test_can_match_covers_match_and_match_more(name: str, exten: str) -> None:
    p = compile_pattern(name)
    if p.matches(exten) and not exten.startswith("_"):
        assert p.can_match(exten)
    if p.match_more(exten):
        assert p.can_match(exten)


ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.one_of(pattern_names, literal_names)),
        st.tuples(st.just("remove"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("look"), extens_st),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops_st)
def test_index_interleaved_updates_and_lookups(ops: list[tuple[str, object]]) -> None:
    """The trie's caches (jump tables, single-entry tails, results) follow every change."""
    index: PatternIndex[str] = PatternIndex()
    live: list[str] = []  # names added and not removed, in order
    for op, arg in ops:
        if op == "add":
            assert isinstance(arg, str)
            index.add(arg, arg)
            live.append(arg)
        elif op == "remove" and live:
            assert isinstance(arg, int)
            name = live[arg % len(live)]
            index.remove(name)
            key = compile_pattern(name).sort_key
            live = [n for n in live if compile_pattern(n).sort_key != key]
        elif op == "look":
            assert isinstance(arg, str)
            check(index, brute(live), arg)
