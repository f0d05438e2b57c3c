"""The compiled dialplan: contexts, extensions, priorities, includes.

A :class:`Dialplan` is immutable once built. ``dialplan reload`` builds a new one and
swaps the PBX's reference in one assignment; calls in progress keep the object they
started with, so they finish on the old dialplan.

Lookup follows Asterisk: in a context, the matching extensions are tried in
Asterisk's sort order (the first that has the wanted priority wins); then each
``include =>`` in the order written (a timed include only while its time matches),
depth first, each context visited once per lookup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hookflash.dialplan.pattern import PatternIndex, compile_pattern
from hookflash.dialplan.subst import Template
from hookflash.dialplan.timespec import TimeSpec


@dataclass(slots=True)
class Priority:
    number: int
    label: str
    app: str  # as written
    app_lower: str
    data: Template
    filename: str
    lineno: int
    extension: "Extension" = field(repr=False, default=None)  # type: ignore[assignment]
    loop_pair: int = 0  # While <-> EndWhile partner priority
    loop_head: int = 0  # innermost enclosing While (for ExitWhile/ContinueWhile)


@dataclass(slots=True)
class Extension:
    name: str
    context: str
    cid: str | None = None  # caller ID match, as written after '/'
    priorities: dict[int, Priority] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    hint: str | None = None
    filename: str = ""
    lineno: int = 0

    def cid_matches(self, callerid: str) -> bool:
        if self.cid is None:
            return True
        return compile_pattern(self.cid).matches(callerid)


@dataclass(frozen=True)
class Include:
    context: str
    timespec: TimeSpec | None = None


@dataclass
class Context:
    name: str
    # no cache of its own: Dialplan.find caches whole lookups above it
    index: PatternIndex[list[Extension]] = field(default_factory=lambda: PatternIndex(cache_size=0))
    extensions: dict[str, list[Extension]] = field(default_factory=dict)  # by name as written
    includes: list[Include] = field(default_factory=list)
    ignorepats: list[str] = field(default_factory=list)
    filename: str = ""
    lineno: int = 0

    def extension(self, name: str, cid: str | None) -> Extension | None:
        for ext in self.extensions.get(name, ()):
            if ext.cid == cid:
                return ext
        return None

    def add_extension(self, ext: Extension) -> None:
        variants = self.extensions.get(ext.name)
        if variants is None:
            variants = self.extensions[ext.name] = []
            self.index.add(ext.name, variants)
        # caller-ID matching variants are tried before the plain one
        variants.append(ext)
        variants.sort(key=lambda e: e.cid is None)


_MISS = object()


class Dialplan:
    def __init__(self, contexts: dict[str, Context], files: list[str] | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.contexts = contexts
        self.files = files or []
        self.settings = settings or {}
        self.loaded_at = time.time()
        # (context, exten, priority) -> result; off when any extension matches on caller
        # ID (the key would need the caller) and for lookups through timed includes
        self._cache: dict[tuple[str, str, int], Priority | None] = {}
        self._has_cid = any(ext.cid is not None for ctx in contexts.values()
                            for variants in ctx.extensions.values() for ext in variants)

    # ------------------------------------------------------------------ lookups
    def find(self, context: str, exten: str, priority: int, callerid: str = "") -> Priority | None:
        """The priority to run for ``exten@context:priority``, or None."""
        key = (context, exten, priority)
        cached = self._cache.get(key, _MISS)
        if cached is not _MISS:
            return cached  # type: ignore[return-value]
        ctx = self.contexts.get(context)
        if ctx is not None and not self._has_cid:
            # the common case: the best match is one plain extension holding the priority
            best = ctx.index.match(exten)
            if best is not None and len(best) == 1 and best[0].cid is None:
                found = best[0].priorities.get(priority)
                if found is not None:
                    self._remember(key, found)
                    return found
        timed: list[bool] = [False]
        found = self._search(context, exten, callerid, set(), timed,
                             lambda ext: ext.priorities.get(priority))
        if not timed[0] and not self._has_cid:
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[str, str, int], found: Priority | None) -> None:
        if len(self._cache) >= 65536:
            self._cache.clear()  # bounded: dialled numbers are unbounded
        self._cache[key] = found

    def find_label(self, context: str, exten: str, label: str, callerid: str = "") -> Priority | None:
        return self._search(context, exten, callerid, set(), [False],
                            lambda ext: ext.priorities.get(ext.labels.get(label, -1)))

    def exists(self, context: str, exten: str, priority: int = 1, callerid: str = "") -> bool:
        return self.find(context, exten, priority, callerid) is not None

    def find_extension(self, context: str, exten: str, callerid: str = "") -> Extension | None:
        """The best extension matching ``exten`` (any priority)."""
        prio = self._search(context, exten, callerid, set(), [False],
                            lambda ext: next(iter(ext.priorities.values()), None))
        return prio.extension if prio else None

    def can_match(self, context: str, exten: str, callerid: str = "") -> bool:
        return self._any(context, exten, set(), "can_match")

    def match_more(self, context: str, exten: str, callerid: str = "") -> bool:
        return self._any(context, exten, set(), "match_more")

    def hint(self, context: str, exten: str) -> str | None:
        ctx = self.contexts.get(context)
        if ctx is None:
            return None
        for ext in ctx.extensions.get(exten, ()):
            if ext.hint is not None:
                return ext.hint
        return None

    def _search(self, context: str, exten: str, callerid: str, seen: set[str],
                timed: list[bool], pick) -> Priority | None:  # type: ignore[no-untyped-def]
        ctx = self.contexts.get(context)
        if ctx is None or context in seen:
            return None
        seen.add(context)
        best = ctx.index.match(exten)
        if best is not None:
            for ext in best:
                if ext.cid_matches(callerid):
                    found = pick(ext)
                    if found is not None:
                        return found  # type: ignore[no-any-return]
            for variants in ctx.index.match_all(exten)[1:]:
                for ext in variants:
                    if ext.cid_matches(callerid):
                        found = pick(ext)
                        if found is not None:
                            return found  # type: ignore[no-any-return]
        for inc in ctx.includes:
            if inc.timespec is not None:
                timed[0] = True
                if not inc.timespec.matches():
                    continue
            found = self._search(inc.context, exten, callerid, seen, timed, pick)
            if found is not None:
                return found
        return None

    def _any(self, context: str, exten: str, seen: set[str], how: str) -> bool:
        ctx = self.contexts.get(context)
        if ctx is None or context in seen:
            return False
        seen.add(context)
        if getattr(ctx.index, how)(exten):
            return True
        return any(self._any(inc.context, exten, seen, how) for inc in ctx.includes
                   if inc.timespec is None or inc.timespec.matches())
