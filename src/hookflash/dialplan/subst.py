"""Variable substitution: ``${VAR}``, ``${VAR:offset:length}``, ``${FUNC(args)}``, ``$[expr]``.

A string from the dialplan is compiled once (at dialplan load) into a :class:`Template`:
literal text and nodes. Rendering walks the nodes against a channel. This is the per
priority hot path, so constant strings render to themselves and a ``${NAME}`` whose
name holds no substitution is resolved without re-parsing.

The scanning rules follow Asterisk's: ``${`` ends at the ``}`` that balances every
``{`` after it; ``$[`` ends at the ``]`` that balances every ``[`` after it; the inside is
substituted first (so ``${${X}}`` and ``${CUT(A,^,${X})}`` work). A missing closing
brace takes the rest of the string, as Asterisk does, and is reported as a warning.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hookflash.dialplan.expr import evaluate_safe

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.dialplan")

INT_MAX = 2**31 - 1
MAX_VALUE = 1 << 20  # the longest value one substitution yields (1 MiB)


class SubstError(Exception):
    """A malformed substitution (only reported, never fatal)."""


def substring(value: str, offset: int, length: int) -> str:
    """``${VAR:offset:length}`` as Asterisk computes it."""
    lr = len(value)
    if offset == 0 and length >= lr:
        return value
    if offset < 0:
        offset = max(lr + offset, 0)
    if offset >= lr:
        return ""
    if length >= 0:
        return value[offset:offset + length]
    if lr > offset - length:
        return value[offset:lr + length]
    return ""


def _atoi(text: str) -> int:
    """C's atoi: leading blanks, optional sign, digits; garbage gives 0."""
    text = text.lstrip()
    end = 0
    if text[:1] in ("-", "+"):
        end = 1
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def split_name(text: str) -> tuple[str, int, int, bool]:
    """Split ``NAME:offset:length`` (colons inside parentheses belong to the name)."""
    parens = 0
    isfunc = False
    colons: list[int] = []
    for i, ch in enumerate(text):
        if ch == "(":
            parens += 1
            isfunc = True
        elif ch == ")":
            parens -= 1
        elif ch == ":" and parens == 0:
            colons.append(i)
            if len(colons) == 2:
                break
    if not colons:
        return text, 0, INT_MAX, isfunc
    name = text[:colons[0]]
    if len(colons) == 1:
        return name, _atoi(text[colons[0] + 1:]), INT_MAX, isfunc
    return name, _atoi(text[colons[0] + 1:colons[1]]), _atoi(text[colons[1] + 1:]), isfunc


def split_function(text: str) -> tuple[str, str]:
    """``NAME(args)`` -> (NAME, args); the args end at the last ``)``."""
    open_at = text.find("(")
    if open_at < 0:
        return text, ""
    close_at = text.rfind(")")
    if close_at < open_at:
        log.warning("Can't find trailing parenthesis for function '%s'?", text)
        return text[:open_at], text[open_at + 1:]
    return text[:open_at], text[open_at + 1:close_at]


def read_function(chan: "Channel | None", pbx: Any, text: str) -> str:
    """Run a dialplan function read, as ``${FUNC(args)}`` does."""
    name, args = split_function(text)
    func = pbx.registry.function(name)
    if func is None or func.read is None:
        where = f" on {chan.name} at {chan.location}" if chan is not None else ""
        reason = "not registered" if func is None else "cannot be read"
        log.error("Function %s %s%s", name, reason, where)
        return ""
    return func.read(chan, args)


def lookup(chan: "Channel | None", pbx: Any, name: str) -> str | None:
    if chan is not None:
        return chan.get_var(name)
    return pbx.globals.get(name)


class Node:
    __slots__ = ()

    def render(self, chan: "Channel | None", pbx: Any) -> str:  # pragma: no cover
        raise NotImplementedError

    async def arender(self, chan: "Channel | None", pbx: Any) -> str:  # pragma: no cover
        return self.render(chan, pbx)


class VarNode(Node):
    """``${...}``: a variable or a function call, with an optional substring."""

    __slots__ = ("inner", "static")

    def __init__(self, inner: "Template") -> None:
        self.inner = inner
        self.static = split_name(inner.const) if inner.const is not None else None

    def render(self, chan: "Channel | None", pbx: Any) -> str:
        parsed = self.static
        if parsed is None:
            parsed = split_name(self.inner.render(chan, pbx))
        return self._finish(chan, pbx, parsed, read_function(chan, pbx, parsed[0]) if parsed[3] else None)

    async def arender(self, chan: "Channel | None", pbx: Any) -> str:
        parsed = self.static
        if parsed is None:
            parsed = split_name(await self.inner.arender(chan, pbx))
        value = None
        if parsed[3]:
            fname, args = split_function(parsed[0])
            func = pbx.registry.function(fname)
            if func is not None and func.aread is not None:
                value = await func.aread(chan, args)
            else:
                value = read_function(chan, pbx, parsed[0])
        return self._finish(chan, pbx, parsed, value)

    def _finish(self, chan: "Channel | None", pbx: Any, parsed: Any, value: str | None) -> str:
        name, offset, length, isfunc = parsed
        if isfunc:
            assert value is not None
        else:
            value = lookup(chan, pbx, name)
            if value is None:
                return ""
        if offset or length != INT_MAX:
            return substring(value, offset, length)
        return value


class ExprNode(Node):
    """``$[...]``: the inside is substituted, then evaluated."""

    __slots__ = ("inner",)

    def __init__(self, inner: "Template") -> None:
        self.inner = inner

    def render(self, chan: "Channel | None", pbx: Any) -> str:
        return self._evaluate(chan, pbx, self.inner.render(chan, pbx))

    async def arender(self, chan: "Channel | None", pbx: Any) -> str:
        return self._evaluate(chan, pbx, await self.inner.arender(chan, pbx))

    def _evaluate(self, chan: "Channel | None", pbx: Any, text: str) -> str:
        def call(name: str, args: str) -> str:
            func = pbx.registry.function(name)
            if func is None or func.read is None:
                raise LookupError(name)  # the evaluator warns and uses 0, as Asterisk does
            return func.read(chan, args)

        def warn(message: str) -> None:
            where = f" on {chan.name} at {chan.location}" if chan is not None else ""
            log.warning("%s in expression '%s'%s", message, text, where)

        result, error = evaluate_safe(text, call, warn)
        if error is not None:
            warn(error)
        return result


class Template:
    """A compiled string: ``const`` is set when it holds no substitution at all."""

    __slots__ = ("parts", "const", "source", "_waits", "_waits_for")

    def __init__(self, parts: list[str | Node], source: str) -> None:
        self.parts = parts
        self.source = source
        self._waits = False
        self._waits_for: tuple[str, ...] | None = None
        self.const = parts[0] if len(parts) == 1 and isinstance(parts[0], str) else (
            "" if not parts else None)

    def render(self, chan: "Channel | None", pbx: Any) -> str:
        if self.const is not None:
            return self.const
        out = []
        total = 0
        for part in self.parts:
            piece = part if part.__class__ is str else part.render(chan, pbx)  # type: ignore[union-attr]
            total += len(piece)  # type: ignore[arg-type]
            out.append(piece)
        if total > MAX_VALUE:
            return _truncate("".join(out), chan, self.source)  # type: ignore[arg-type]
        return "".join(out)  # type: ignore[arg-type]

    def mentions(self, names: tuple[str, ...]) -> bool:
        """Whether the source calls one of ``names`` (each ``"NAME("``); worked out once
        per template and per set of names (the registry builds a new tuple on change)."""
        if self._waits_for is not names:
            upper = self.source.upper()
            self._waits = any(name in upper for name in names)
            self._waits_for = names
        return self._waits

    async def arender(self, chan: "Channel | None", pbx: Any) -> str:
        """:meth:`render`, awaiting the functions that wait (``Function.aread``)."""
        if self.const is not None:
            return self.const
        out = []
        for part in self.parts:
            out.append(part if part.__class__ is str else await part.arender(chan, pbx))  # type: ignore[union-attr]
        value = "".join(out)  # type: ignore[arg-type]
        if len(value) > MAX_VALUE:
            return _truncate(value, chan, self.source)
        return value

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _truncate(value: str, chan: "Channel | None", source: str) -> str:
    where = f" on {chan.name} at {chan.location}" if chan is not None else ""
    log.warning("Substitution of '%.60s' gave %d characters, more than the limit of %d; "
                "truncated%s", source, len(value), MAX_VALUE, where)
    return value[:MAX_VALUE]


def _find_close(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the closer balancing the opener before ``start``, or -1."""
    depth = 1
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


_cache: dict[str, Template] = {}


def compile_template(text: str, problems: list[str] | None = None) -> Template:
    """Compile ``text``; unbalanced ``${``/``$[`` are appended to ``problems``."""
    if problems is None:
        cached = _cache.get(text)
        if cached is not None:
            return cached
    parts: list[str | Node] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0 or dollar + 1 >= n:
            literal.append(text[i:])
            break
        nxt = text[dollar + 1]
        if nxt not in "{[":
            literal.append(text[i:dollar + 1])
            i = dollar + 1
            continue
        literal.append(text[i:dollar])
        closer = "}" if nxt == "{" else "]"
        end = _find_close(text, dollar + 2, nxt, closer)
        if end < 0:
            if problems is not None:
                problems.append(f"missing '{closer}' after '{text[dollar:dollar + 20]}'")
            else:
                log.warning("Error in extension logic (missing '%s') in '%s'", closer, text)
            inner_text = text[dollar + 2:]
            i = n
        else:
            inner_text = text[dollar + 2:end]
            i = end + 1
        inner = compile_template(inner_text, problems)
        if literal:
            joined = "".join(literal)
            if joined:
                parts.append(joined)
            literal = []
        parts.append(VarNode(inner) if nxt == "{" else ExprNode(inner))
    if literal:
        joined = "".join(literal)
        if joined:
            parts.append(joined)
    template = Template(parts, text)
    if problems is None and len(_cache) < 50000:
        _cache[text] = template
    return template


def substitute(text: str, chan: "Channel | None", pbx: Any) -> str:
    """Substitute a string that was not compiled ahead (console, config values)."""
    if "$" not in text:
        return text
    return compile_template(text).render(chan, pbx)
