"""Extension names and patterns: matching, Asterisk's ordering, and fast lookup.

An extension name starting with ``_`` is a pattern. After the ``_``:

* ``X`` / ``Z`` / ``N`` (either case) match one character in ``0-9`` / ``1-9`` / ``2-9``;
* ``[...]`` matches one character of a set, with ``a-c`` ranges (a ``-`` first or last
  in the set is literal; the set ends at the first ``]``; ``[]`` is ignored);
* ``.`` matches one or more characters and ``!`` zero or more; both end the match, so
  whatever follows them is never compared (it still counts for the ordering);
* ``-`` (outside a set) and spaces (outside a set) are ignored: ``_NXX-XXXX``;
* anything else matches itself, case-sensitively (beware: the ``n`` of ``_conference``
  is the class N, as in Asterisk).

A name without ``_`` is a literal extension, compared exactly (case-sensitive) once
``-`` and spaces are dropped from it. ``-`` is dropped from the dialled string too, so
``meetme-1234`` is dialled as ``meetme1234`` and matches ``_meetme-XXXX``.

There are three questions, as in Asterisk's ``extension_match_core``:

* :meth:`Pattern.matches` (E_MATCH): the dialled string is a complete match;
* :meth:`Pattern.can_match` (E_CANMATCH): it matches now or could with more digits;
* :meth:`Pattern.match_more` (E_MATCHMORE): more digits could still match (a complete
  fixed-length match is not enough; ``.`` always can; ``!`` says "stop": False).

:attr:`Pattern.sort_key` orders the extensions of a context like Asterisk's ``ext_cmp``
(the first matching extension in that order wins); :class:`PatternIndex` finds that
first match without scanning every pattern. See ``docs/patterns.md``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Generic, TypeVar

__all__ = ["Pattern", "PatternError", "PatternIndex", "compile_pattern"]

T = TypeVar("T")

# Modes, as Asterisk's enum ext_match_t.
E_MATCHMORE = 0
E_CANMATCH = 1
E_MATCH = 2

# Results of the core matcher: no match, match, early match (reached a '!').
_NO, _YES, _EARLY = 0, 1, 2

# One position of a pattern, for sorting: (count, lowest char, members). Asterisk scores
# a position as count << 8 | lowest char, with '.' = 0x18000, '!' = 0x28000 and the end
# of the pattern = 0x30000; same score -> the set holding the lowest differing char wins.
PosKey = tuple[int, int, tuple[int, ...]]
_DOT_KEY: PosKey = (0x180, 0, ())
_BANG_KEY: PosKey = (0x280, 0, ())
_END_KEY: PosKey = (0x300, 0, ())


class _Wild:
    """The '.' / '!' element of a compiled pattern."""

    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __repr__(self) -> str:
        return self.char


DOT = _Wild(".")
BANG = _Wild("!")

# A compiled element: a literal char (str of length 1), a set (frozenset), DOT or BANG.
Elem = str | frozenset[str] | _Wild

_CLASSES: dict[str, frozenset[str]] = {
    "X": frozenset("0123456789"),
    "Z": frozenset("123456789"),
    "N": frozenset("23456789"),
}


# Equal sets share one frozenset object (see _Node.sets_for); N, X, Z are in already.
_INTERNED: dict[frozenset[str], frozenset[str]] = {s: s for s in _CLASSES.values()}


class PatternError(ValueError):
    """An extension name that cannot be used (e.g. an unterminated ``[``)."""


def _strip_dashes(exten: str) -> str:
    return exten.replace("-", "") if "-" in exten else exten


def _set_key(members: frozenset[str], cmin: int) -> PosKey:
    return (len(members), cmin, tuple(sorted(map(ord, members))))


def _parse_set(body: str, text: str, at: int) -> tuple[frozenset[str], int, bool, int]:
    """Parse the set starting after the '[' at ``body[at]``.

    Returns (members, lowest char for sorting, had a reversed range, index after ']').
    A range's first char counts as the lowest even when the range is reversed (``9-0``)
    and so empty: Asterisk's quirk, kept for the ordering.
    """
    end = body.find("]", at + 1)
    if end < 0:
        raise PatternError(
            f"extension pattern {text!r}: the '[' opening a character set is never closed "
            "by ']'; expected a set like '[1-5a-c]', as in '_[1-5]XX'"
        )
    members: set[str] = set()
    cmin = 0x110000
    reversed_range = False
    i = at + 1
    while i < end:
        c1 = c2 = body[i]
        if i + 2 < end and body[i + 1] == "-":
            c2 = body[i + 2]
            i += 2
        cmin = min(cmin, ord(c1))
        if c1 > c2:
            reversed_range = True
        members.update(chr(o) for o in range(ord(c1), ord(c2) + 1))
        i += 1
    frozen = frozenset(members)
    return _INTERNED.setdefault(frozen, frozen), cmin, reversed_range, end + 1


def _clean_name(text: str) -> str:
    """Drop spaces and '-' outside sets (Asterisk's ext_strncpy with nofluff)."""
    if text.startswith("_"):
        out: list[str] = []
        in_set = False
        for ch in text:
            if ch == "[":
                in_set = True
            elif ch == "]":
                in_set = False
            elif ch in " -" and not in_set:
                continue
            out.append(ch)
        return "".join(out)
    return text.replace(" ", "").replace("-", "")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One extension name as written in extensions.conf: ``"_1NXX."`` or ``"100"``."""

    text: str
    is_pattern: bool = field(init=False)
    sort_key: tuple = field(init=False, repr=False, compare=False)
    #: literal: the name without '-' and spaces; pattern: the same, without the '_'
    clean: str = field(init=False, repr=False, compare=False)
    #: what the matcher walks: elements up to and including the first '.' or '!'
    elems: tuple[Elem, ...] = field(init=False, repr=False, compare=False)
    #: per element of ``elems``: its position key (for the index's trie)
    elem_keys: tuple[PosKey, ...] = field(init=False, repr=False, compare=False)
    #: False when the index must check this pattern one by one (odd sets, '/')
    indexable: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.text
        clean = _clean_name(text)
        if not clean:
            raise PatternError(
                f"empty extension name {text!r}: expected a name like '100' or a pattern "
                "like '_1NXX.'"
            )
        setattr_ = object.__setattr__
        setattr_(self, "is_pattern", clean.startswith("_"))
        if not self.is_pattern:
            setattr_(self, "clean", clean)
            setattr_(self, "sort_key", (0, clean))
            setattr_(self, "elems", ())
            setattr_(self, "elem_keys", ())
            setattr_(self, "indexable", True)
            return
        body = clean[1:]
        keys: list[PosKey] = []  # the whole pattern, for sorting
        elems: list[Elem] = []  # up to the first wildcard, for matching
        elem_keys: list[PosKey] = []
        indexable = True
        matching = True  # still before the first '.', '!' or '/'
        i = 0
        while i < len(body):
            ch = body[i]
            elem: Elem
            if ch == "[":
                members, cmin, reversed_range, i = _parse_set(body, text, i)
                if not members:
                    if reversed_range and matching:
                        # '[9-0]' sorts as if absent but matches nothing: keep it
                        elems.append(members)
                        elem_keys.append((0, 0, ()))
                        indexable = False
                    continue  # '[]' is ignored
                indexable = indexable and not (reversed_range and matching)
                if len(members) == 1 and cmin == ord(next(iter(members))):
                    elem = next(iter(members))
                    key = (1, cmin, (cmin,))
                else:
                    elem = members
                    key = _set_key(members, cmin)
            else:
                i += 1
                upper = ch.upper()
                if upper in _CLASSES:
                    elem = _CLASSES[upper]
                    key = _set_key(elem, min(map(ord, elem)))
                elif ch == ".":
                    elem, key = DOT, _DOT_KEY
                elif ch == "!":
                    elem, key = BANG, _BANG_KEY
                else:
                    elem, key = ch, (1, ord(ch), (ord(ch),))
                    if ch == "/" and matching:
                        # Asterisk stops matching at '/' (the caller-id separator)
                        matching = False
                        indexable = False
            keys.append(key)
            if matching:
                elems.append(elem)
                elem_keys.append(key)
                if isinstance(elem, _Wild):
                    matching = False
        keys.append(_END_KEY)
        setattr_(self, "clean", body)
        setattr_(self, "sort_key", (1, tuple(keys)))
        setattr_(self, "elems", tuple(elems))
        setattr_(self, "elem_keys", tuple(elem_keys))
        setattr_(self, "indexable", indexable)

    # -- matching -------------------------------------------------------------------

    def core(self, exten: str, mode: int) -> int:
        """Asterisk's extension_match_core on ``exten`` with its '-' already removed.

        Returns 0 (no), 1 (yes) or 2 (reached a '!': an "early" match).
        """
        if not self.is_pattern:
            lit = self.clean
            if len(lit) < len(exten):
                return _NO
            if mode == E_MATCH:
                return _YES if lit == exten else _NO
            if lit.startswith(exten):
                return _YES if mode == E_CANMATCH or len(lit) > len(exten) else _NO
            return _NO
        n = len(exten)
        i = 0
        for el in self.elems:
            if i == n:  # ran out of dialled digits first
                if el is BANG:
                    return _EARLY
                return _NO if mode == E_MATCH else _YES
            if el.__class__ is str:
                if exten[i] != el:
                    return _NO
            elif el is DOT:
                return _YES
            elif el is BANG:
                return _EARLY
            elif exten[i] not in el:  # type: ignore[operator]
                return _NO
            i += 1
        if i < n:
            return _NO
        return _NO if mode == E_MATCHMORE else _YES

    def matches(self, exten: str) -> bool:
        """E_MATCH: ``exten`` (as dialled) is a complete match."""
        if exten.startswith("_") and self.is_pattern and _same_pattern(self, exten):
            return True  # Asterisk first compares a '_' string as a pattern
        return self.core(_strip_dashes(exten), E_MATCH) != _NO

    def can_match(self, exten: str) -> bool:
        """E_CANMATCH: ``exten`` matches, or could with more digits."""
        return self.core(_strip_dashes(exten), E_CANMATCH) != _NO

    def match_more(self, exten: str) -> bool:
        """E_MATCHMORE: more digits could still match (False at a ``!``)."""
        return self.core(_strip_dashes(exten), E_MATCHMORE) == _YES

    def __lt__(self, other: Pattern) -> bool:
        return self.sort_key < other.sort_key


def _same_pattern(pattern: Pattern, exten: str) -> bool:
    try:
        return compile_pattern(exten).sort_key == pattern.sort_key
    except PatternError:
        return False


@lru_cache(maxsize=8192)
def compile_pattern(text: str) -> Pattern:
    """The :class:`Pattern` for an extension name; raises :class:`PatternError`."""
    return Pattern(text)


# -- the index ------------------------------------------------------------------------


class _Entry(Generic[T]):
    __slots__ = ("pattern", "value", "key", "elems")

    def __init__(self, pattern: Pattern, value: T) -> None:
        self.pattern = pattern
        self.value = value
        self.key = pattern.sort_key
        self.elems = pattern.elems


def _key(entry: _Entry) -> tuple:
    return entry.key


_STALE = object()
_SHARED_EMPTY: dict = {}  # the children of a node that has none; never written to
_FEW_SETS = 4  # up to this many set children, test them all rather than cache by char


class _Node:
    """A trie node: one position of the patterns that share the path to it.

    Containers start as shared empties (most nodes are leaves or literal chains) and
    are made real on the first add: less memory, so fewer cache misses in big tries.
    """

    __slots__ = ("lit", "cls", "cls_sorted", "by_char", "dot", "bang", "end", "plain", "jump",
                 "only")

    def __init__(self) -> None:
        self.lit: dict[str, _Node] = _SHARED_EMPTY  # literal char -> child
        self.cls: dict[PosKey, tuple[frozenset[str], _Node]] = _SHARED_EMPTY  # sets
        self.cls_sorted: Sequence[tuple[frozenset[str], _Node]] = ()  # in position order
        #: only for nodes with many sets: char -> the (members, child) pairs holding it
        self.by_char: dict[str, tuple[tuple[frozenset[str], _Node], ...]] = _SHARED_EMPTY
        self.dot: Sequence[_Entry] = ()  # patterns with '.' here (by sort key)
        self.bang: Sequence[_Entry] = ()  # patterns with '!' here
        self.end: _Entry | None = None  # the pattern ending here
        self.plain = True  # no set children, no '.' and no '!' here
        self.jump: _Jump | None = None  # cache for _first, see _jump(); None: stale
        self.only: _Entry | None | object = _STALE  # cache: see _only_entry()

    def touch(self) -> None:
        """Forget the caches that depend on this node's subtree."""
        self.jump = None
        self.only = _STALE

    def update(self) -> None:
        """Refresh the caches after a change to this node's sets, dots or bangs."""
        self.cls_sorted = [self.cls[k] for k in sorted(self.cls)] if self.cls else ()
        self.by_char = {} if len(self.cls) > _FEW_SETS else _SHARED_EMPTY
        self.plain = not (self.cls or self.dot or self.bang)

    def empty(self) -> bool:
        return not (self.lit or self.cls or self.dot or self.bang or self.end)

    def sets_for(self, ch: str) -> Sequence[tuple[frozenset[str], _Node]]:
        """The (members, child) pairs to try for ``ch``, in order; callers still test
        ``ch in members``. With few sets that is all of them: the frozensets are shared
        (interned), so testing them directly beats a per-node cache."""
        if self.by_char is _SHARED_EMPTY:
            return self.cls_sorted
        found = self.by_char.get(ch)
        if found is None:
            found = tuple(pair for pair in self.cls_sorted if ch in pair[0])
            if len(self.by_char) < 256:
                self.by_char[ch] = found
        return found


_Jump = tuple[int, "dict[str, _Node | _Entry] | None"]
_NO_JUMP: _Jump = (0, None)
_MAX_JUMP = 12


def _jump(node: _Node) -> _Jump:
    """(k, table): the next k levels below ``node`` are literal characters only, on
    every branch (no sets, '.' or '!'), so k dialled characters go straight to a node
    k levels down through ``table`` (keyed by those characters), or straight to the
    entry when that node holds just one (see _only_entry). Only kept for k >= 2.
    Cached on the node; cleared along the path of every add and remove."""
    jump = node.jump
    if jump is None:
        depth = _literal_depth(node, _MAX_JUMP)
        jump = _NO_JUMP
        if depth >= 2:
            table: dict[str, _Node | _Entry] = {}
            _fill_jump(node, "", depth, table)
            jump = (depth, table)
        node.jump = jump
    return jump


def _literal_depth(node: _Node, limit: int) -> int:
    if limit == 0 or not node.plain or not node.lit:
        return 0
    depth = limit
    for child in node.lit.values():
        depth = min(depth, _literal_depth(child, depth - 1) + 1)
        if depth == 1:
            break
    return depth


def _fill_jump(node: _Node, prefix: str, depth: int, table: dict[str, _Node | _Entry]) -> None:
    if depth == 0:
        if node.only is _STALE:
            node.only = _only_entry(node)
        table[prefix] = node if node.only is None else node.only  # type: ignore[assignment]
        return
    for ch, child in node.lit.items():
        _fill_jump(child, prefix + ch, depth - 1, table)


def _only_entry(node: _Node) -> _Entry | None:
    """The entry under ``node`` if it is the only one there, else None.

    Most of a big trie is such single-pattern tails (after the digits that tell the
    patterns apart); _first checks them against the pattern's own elements rather than
    walking node by node, which keeps lookups in big tries cache-friendly."""
    while True:
        if (len(node.lit) + len(node.cls) + len(node.dot) + len(node.bang)
                + (node.end is not None)) != 1:
            return None
        if node.end is not None:
            return node.end
        if node.dot or node.bang:
            return (node.dot or node.bang)[0]
        node = next(iter(node.lit.values())) if node.lit else next(iter(node.cls.values()))[1]


def _rest_matches(elems: tuple[Elem, ...], s: str, i: int, n: int) -> bool:
    """E_MATCH of ``elems[i:]`` against ``s[i:]`` (trie depth == characters used)."""
    while i < len(elems):
        el = elems[i]
        if i == n:
            return el is BANG
        if el.__class__ is str:
            if s[i] != el:
                return False
        elif el is DOT or el is BANG:
            return True
        elif s[i] not in el:  # type: ignore[operator]
            return False
        i += 1
    return i == n


def _leftmost(node: _Node) -> _Entry:
    """The first entry (in Asterisk order) under a non-empty node."""
    while True:
        if node.lit:
            node = node.lit[min(node.lit)]
        elif node.cls_sorted:
            node = node.cls_sorted[0][1]
        elif node.dot:
            return node.dot[0]
        elif node.bang:
            return node.bang[0]
        else:
            assert node.end is not None
            return node.end


def _first(node: _Node, s: str, i: int, n: int) -> _Entry | None:
    """E_MATCH: the first pattern (in Asterisk order) under ``node`` matching s[i:]."""
    while True:
        only = node.only
        if only is _STALE:
            only = node.only = _only_entry(node)
        if only is not None:
            return only if _rest_matches(only.elems, s, i, n) else None  # type: ignore[union-attr]
        if not node.plain or i >= n:
            break
        # only literal children here: nothing to come back to
        depth, table = node.jump or _jump(node)
        if table is not None and i + depth <= n:
            target = table.get(s[i:i + depth])
            i += depth
            if target.__class__ is _Entry:
                return target if _rest_matches(target.elems, s, i, n) else None  # type: ignore[union-attr,return-value]
            node = target  # type: ignore[assignment]
        else:
            node = node.lit.get(s[i])  # type: ignore[assignment]
            i += 1
        if node is None:
            return None
    if i == n:
        return node.bang[0] if node.bang else node.end
    ch = s[i]
    child = node.lit.get(ch)
    if child is not None:
        found = _first(child, s, i + 1, n)
        if found is not None:
            return found
    if node.cls_sorted:
        for members, child in node.sets_for(ch):
            if ch in members:
                found = _first(child, s, i + 1, n)
                if found is not None:
                    return found
    if node.dot:
        return node.dot[0]
    if node.bang:
        return node.bang[0]
    return None


def _all(node: _Node, s: str, i: int, n: int, out: list[_Entry]) -> None:
    """E_MATCH: every pattern under ``node`` matching s[i:], in Asterisk order."""
    if i == n:
        out.extend(node.bang)
        if node.end is not None:
            out.append(node.end)
        return
    ch = s[i]
    child = node.lit.get(ch)
    if child is not None:
        _all(child, s, i + 1, n, out)
    if node.cls_sorted:
        for members, child in node.sets_for(ch):
            if ch in members:
                _all(child, s, i + 1, n, out)
    out.extend(node.dot)
    out.extend(node.bang)


def _can(node: _Node, s: str, i: int, n: int) -> bool:
    """E_CANMATCH: does any pattern under ``node`` match s[i:] now or with more?"""
    if i == n:
        return not node.empty()
    if node.dot or node.bang:
        return True
    ch = s[i]
    child = node.lit.get(ch)
    if child is not None and _can(child, s, i + 1, n):
        return True
    if node.cls_sorted:
        return any(ch in members and _can(child, s, i + 1, n)
                   for members, child in node.sets_for(ch))
    return False


def _more(node: _Node, s: str, i: int, n: int) -> tuple[_Entry, int] | None:
    """E_MATCHMORE: the first pattern under ``node`` that says yes (1) or '!' (2)."""
    if i == n:  # everything left but what ends here is a partial match
        if node.lit:
            return _leftmost(node.lit[min(node.lit)]), _YES
        if node.cls_sorted:
            return _leftmost(node.cls_sorted[0][1]), _YES
        if node.dot:
            return node.dot[0], _YES
        if node.bang:
            return node.bang[0], _EARLY
        return None
    ch = s[i]
    child = node.lit.get(ch)
    if child is not None:
        found = _more(child, s, i + 1, n)
        if found is not None:
            return found
    if node.cls_sorted:
        for members, child in node.sets_for(ch):
            if ch in members:
                found = _more(child, s, i + 1, n)
                if found is not None:
                    return found
    if node.dot:
        return node.dot[0], _YES
    if node.bang:
        return node.bang[0], _EARLY
    return None


_MISS = object()


class PatternIndex(Generic[T]):
    """The extensions of one context, each with a value, looked up in Asterisk's order.

    Names that Asterisk treats as the same extension (``ext_cmp`` says equal: ``1-00``
    and ``100``, ``_X`` and ``_[0-9]``) share one slot: adding the second replaces the
    value (the first name is kept). Literal names are found by dict lookup; patterns in a
    trie walked along the dialled string, children in Asterisk's position order, so the
    first complete match found is the one Asterisk would pick.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._entries: dict[tuple, _Entry[T]] = {}
        self._literals: dict[str, _Entry[T]] = {}
        self._lit_sorted: list[str] | None = []
        self._root = _Node()
        self._slow: list[_Entry[T]] = []  # patterns the trie cannot hold, sorted
        self._sorted: list[_Entry[T]] | None = []
        self._cache: dict[str, _Entry[T] | None] = {}
        self._cache_size = cache_size

    # -- updates ----------------------------------------------------------------------

    def add(self, name: str, value: T) -> None:
        """Add (or replace the value of) the extension ``name``, literal or pattern."""
        pattern = compile_pattern(name)
        entry = self._entries.get(pattern.sort_key)
        if entry is not None:
            entry.value = value
            self._cache.clear()
            return
        entry = _Entry(pattern, value)
        self._entries[entry.key] = entry
        if not pattern.is_pattern:
            self._literals[pattern.clean] = entry
            self._lit_sorted = None
        elif pattern.indexable:
            self._trie_add(entry)
        else:
            insort(self._slow, entry, key=_key)
        self._changed()

    def remove(self, name: str) -> None:
        """Remove the extension ``name`` (or its equivalent); KeyError if absent."""
        pattern = compile_pattern(name)
        entry = self._entries.pop(pattern.sort_key, None)
        if entry is None:
            raise KeyError(name)
        pattern = entry.pattern
        if not pattern.is_pattern:
            del self._literals[pattern.clean]
            self._lit_sorted = None
        elif pattern.indexable:
            self._trie_remove(entry)
        else:
            self._slow.remove(entry)
        self._changed()

    def _changed(self) -> None:
        self._cache.clear()
        self._sorted = None

    def _trie_add(self, entry: _Entry[T]) -> None:
        node = self._root
        for elem, key in zip(entry.pattern.elems, entry.pattern.elem_keys):
            node.touch()
            if elem.__class__ is str:
                if node.lit is _SHARED_EMPTY:
                    node.lit = {}
                node = node.lit.setdefault(elem, _Node())  # type: ignore[arg-type]
            elif isinstance(elem, frozenset):
                pair = node.cls.get(key)
                if pair is None:
                    if node.cls is _SHARED_EMPTY:
                        node.cls = {}
                    pair = node.cls[key] = (elem, _Node())
                    node.update()
                node = pair[1]
            else:
                if elem is DOT:
                    node.dot = found = list(node.dot)
                else:
                    node.bang = found = list(node.bang)
                insort(found, entry, key=_key)
                node.update()
                return
        node.end = entry
        node.touch()

    def _trie_remove(self, entry: _Entry[T]) -> None:
        path: list[tuple[_Node, Elem, PosKey]] = []
        node = self._root
        for elem, key in zip(entry.pattern.elems, entry.pattern.elem_keys):
            node.touch()
            if isinstance(elem, _Wild):
                if elem is DOT:
                    node.dot = [e for e in node.dot if e is not entry] or ()
                else:
                    node.bang = [e for e in node.bang if e is not entry] or ()
                node.update()
                break
            path.append((node, elem, key))
            node = node.lit[elem] if elem.__class__ is str else node.cls[key][1]  # type: ignore[index]
        else:
            node.end = None
            node.touch()
        for parent, elem, key in reversed(path):  # prune what is left empty
            if not node.empty():
                break
            if elem.__class__ is str:
                del parent.lit[elem]  # type: ignore[arg-type]
            else:
                del parent.cls[key]
                parent.update()
            node = parent

    # -- lookups ----------------------------------------------------------------------

    def match(self, exten: str) -> T | None:
        """The value of the extension Asterisk would run for ``exten`` (E_MATCH)."""
        if not self._cache_size:
            entry = self._match_entry(exten)
            return None if entry is None else entry.value
        found = self._cache.get(exten, _MISS)
        if found is _MISS:
            found = self._match_entry(exten)
            if len(self._cache) >= self._cache_size:
                # start afresh: evicting the oldest key one by one makes next(iter())
                # walk the deleted slots at the front of the dict, O(size) per miss
                self._cache.clear()
            self._cache[exten] = found  # type: ignore[assignment]
        return None if found is None else found.value  # type: ignore[union-attr]

    def _match_entry(self, exten: str) -> _Entry[T] | None:
        if exten.startswith("_"):
            return next((e for e in self._all_sorted() if e.pattern.matches(exten)), None)
        s = _strip_dashes(exten)
        found = self._literals.get(s)
        if found is not None:
            return found
        found = _first(self._root, s, 0, len(s))
        for entry in self._slow:
            if found is not None and entry.key > found.key:
                break
            if entry.pattern.core(s, E_MATCH):
                return entry
        return found

    def match_all(self, exten: str) -> list[T]:
        """Values of every extension matching ``exten``, in Asterisk order."""
        if exten.startswith("_"):
            return [e.value for e in self._all_sorted() if e.pattern.matches(exten)]
        s = _strip_dashes(exten)
        found: list[_Entry[T]] = []
        _all(self._root, s, 0, len(s), found)
        if self._slow:
            found.extend(e for e in self._slow if e.pattern.core(s, E_MATCH))
            found.sort(key=_key)
        literal = self._literals.get(s)
        values = [] if literal is None else [literal.value]
        values.extend(e.value for e in found)
        return values

    def can_match(self, exten: str) -> bool:
        """E_CANMATCH: some extension matches ``exten`` now or with more digits."""
        s = _strip_dashes(exten)
        if self._literals:
            keys = self._literal_keys()
            i = bisect_left(keys, s)
            if i < len(keys) and keys[i].startswith(s):
                return True
        if _can(self._root, s, 0, len(s)):
            return True
        return any(e.pattern.core(s, E_CANMATCH) for e in self._slow)

    def match_more(self, exten: str) -> bool:
        """E_MATCHMORE: the first extension (in order) that could take more digits
        says yes. If that first one reached a ``!``, the answer is no, as in Asterisk."""
        s = _strip_dashes(exten)
        if self._literals:
            keys = self._literal_keys()
            i = bisect_left(keys, s)
            if i < len(keys) and keys[i] == s:
                i += 1
            if i < len(keys) and keys[i].startswith(s):
                return True
        found = _more(self._root, s, 0, len(s))
        for entry in self._slow:
            if found is not None and entry.key > found[0].key:
                break
            result = entry.pattern.core(s, E_MATCHMORE)
            if result:
                found = (entry, result)
                break
        return found is not None and found[1] == _YES

    # -- the rest ---------------------------------------------------------------------

    def _literal_keys(self) -> list[str]:
        if self._lit_sorted is None:
            self._lit_sorted = sorted(self._literals)
        return self._lit_sorted

    def _all_sorted(self) -> list[_Entry[T]]:
        if self._sorted is None:
            self._sorted = sorted(self._entries.values(), key=_key)
        return self._sorted

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return compile_pattern(name).sort_key in self._entries
        except PatternError:
            return False

    def get(self, name: str) -> T | None:
        """The value stored for ``name`` (or its equivalent), not a match."""
        entry = self._entries.get(compile_pattern(name).sort_key)
        return None if entry is None else entry.value

    def __iter__(self) -> Iterator[tuple[Pattern, T]]:
        """(pattern, value) pairs in Asterisk order (as ``dialplan show`` lists them)."""
        return iter([(e.pattern, e.value) for e in self._all_sorted()])
