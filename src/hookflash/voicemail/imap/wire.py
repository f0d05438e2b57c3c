"""IMAP syntax, sans-IO: quoting what we send, parsing what the server answers.

aioimaplib (the transport) hands us a response as a list of lines (``bytes``, without
CRLF, untagged ``* `` already stripped) with each literal as a ``bytearray`` element of
its own, right after the line announcing ``{n}``. This module turns that into Python
values and treats every byte as hostile: a malformed response raises
:class:`ProtocolError` naming what was wrong, never anything else.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ProtocolError",
    "encode_mailbox",
    "parse_fetch",
    "parse_response_code",
    "parse_search",
    "quote",
    "sequence_set",
    "tokenize",
]

MAX_TOKENS = 1_000_000


class ProtocolError(Exception):
    """The server sent something that is not IMAP as RFC 3501 writes it."""


_ATOM_SPECIALS = re.compile(rb'[(){ %*"\\\]\x00-\x1f\x7f]')


def quote(value: str) -> str:
    """An IMAP quoted string. CR, LF and NUL cannot be quoted (and have no business in
    anything hookflash searches for or names): ValueError. Non-ASCII is refused too:
    without UTF8=ACCEPT a quoted string is 7-bit."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"CR, LF or NUL in IMAP string {value!r}")
    if not value.isascii():
        raise ValueError(f"non-ASCII IMAP string {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_mailbox(name: str) -> str:
    """A folder name in modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return quote("".join(out))


def sequence_set(uids: Iterable[int]) -> str:
    """``1:3,7,9:10`` for {1,2,3,7,9,10} (empty: ValueError, IMAP has no empty set)."""
    numbers = sorted(set(uids))
    if not numbers:
        raise ValueError("empty sequence set")
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = n
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


# ---------------------------------------------------------------------- tokens
class Literal(bytes):
    """A literal's bytes, as a token (so it is never mistaken for an atom)."""


_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|(\{\d+\+?\}$)|([^\s()"{\[\]]+(?:\[[^\]]*\](?:<[\d.]+>)?)?))')


def tokenize(lines: Sequence[bytes | bytearray]) -> list[Any]:
    """One response (lines plus literals) as nested lists of tokens: ``bytes`` for
    atoms and quoted strings, :class:`Literal` for literals, ``list`` for
    parenthesised lists. ``NIL`` stays ``b'NIL'``."""
    stack: list[list[Any]] = [[]]
    count = 0
    expect_literal = False
    for item in lines:
        if isinstance(item, bytearray):
            if not expect_literal:
                raise ProtocolError("literal data where none was announced")
            stack[-1].append(Literal(item))
            expect_literal = False
            continue
        if expect_literal:
            raise ProtocolError("announced literal missing")
        pos = 0
        line = bytes(item)
        while pos < len(line):
            match = _TOKEN.match(line, pos)
            if match is None or match.end() == pos:
                if line[pos:].strip() == b"":
                    break
                raise ProtocolError(f"unparsable response near {line[pos:pos + 40]!r}")
            pos = match.end()
            count += 1
            if count > MAX_TOKENS:
                raise ProtocolError("response too long")
            if match.group(1):
                stack.append([])
            elif match.group(2):
                if len(stack) == 1:
                    raise ProtocolError("unbalanced ')' in response")
                done = stack.pop()
                stack[-1].append(done)
            elif match.group(3) is not None:
                stack[-1].append(re.sub(rb"\\(.)", rb"\1", match.group(3)))
            elif match.group(4):
                expect_literal = True
            else:
                stack[-1].append(match.group(5))
    if len(stack) != 1:
        raise ProtocolError("unbalanced '(' in response")
    return stack[0]


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """The numbers of a SEARCH response. aioimaplib hands an async command's untagged
    data over without its name (``SEARCH 1 2 3`` arrives as ``1 2 3``), so both forms
    are read. The last element of ``lines`` is the tagged status text, not data."""
    found: list[int] = []
    for line in lines[:-1]:
        if isinstance(line, bytearray):
            continue
        words = bytes(line).split()
        if words and words[0].upper() == b"SEARCH":
            words = words[1:]
        for word in words:
            if word.startswith(b"("):  # (MODSEQ n) with CONDSTORE
                break
            if not word.isdigit():
                raise ProtocolError(f"SEARCH result {word[:20]!r} is not a number")
            found.append(int(word))
    return found


def _fetch_items(tokens: list[Any]) -> dict[str, Any]:
    items: dict[str, Any] = {}
    if len(tokens) % 2:
        raise ProtocolError("FETCH item list with an odd number of elements")
    for i in range(0, len(tokens), 2):
        key, value = tokens[i], tokens[i + 1]
        if not isinstance(key, bytes) or isinstance(key, Literal):
            raise ProtocolError("FETCH item name is not an atom")
        name = key.decode("ascii", "replace").upper()
        if name in ("UID", "RFC822.SIZE", "MODSEQ"):
            if isinstance(value, list):
                value = value[0] if value else b"0"
            if not isinstance(value, bytes) or not value.isdigit():
                raise ProtocolError(f"FETCH {name} is not a number")
            items[name] = int(value)
        elif name == "FLAGS":
            if not isinstance(value, list):
                raise ProtocolError("FETCH FLAGS is not a list")
            items[name] = {bytes(f).decode("ascii", "replace") for f in value if isinstance(f, bytes)}
        else:
            items[name] = value
    return items


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[tuple[int, dict[str, Any]]]:
    """``n FETCH (...)`` responses: (sequence number, {item name: value}) in order.
    Body sections keep their name as sent (``BODY[HEADER.FIELDS (A B)]``: the names
    inside brackets upper-cased), with a :class:`Literal` or quoted ``bytes`` value
    (``NIL`` is ``b'NIL'``). Anything else in ``lines`` (the tagged status text, other
    untagged data) is ignored."""
    results: list[tuple[int, dict[str, Any]]] = []
    # group lines into responses: a response starts at "<n> FETCH (" and takes the
    # literals and continuation lines that follow until its parentheses balance
    group: list[bytes | bytearray] = []
    groups: list[list[bytes | bytearray]] = []
    for line in lines:
        if not isinstance(line, bytearray) and re.match(rb"\d+ FETCH \(", bytes(line), re.I):
            if group:
                groups.append(group)
            group = [line]
        elif group:
            group.append(line)
    if group:
        groups.append(group)
    for grp in groups:
        # the tagged completion text may trail the last group: drop lines after the balance
        tokens = tokenize(_balanced(grp))
        if len(tokens) < 3 or not isinstance(tokens[2], list):
            raise ProtocolError("FETCH response without an item list")
        seq = int(tokens[0])
        results.append((seq, _fetch_items(tokens[2])))
    return results


def _balanced(group: list[bytes | bytearray]) -> list[bytes | bytearray]:
    depth = 0
    out: list[bytes | bytearray] = []
    for item in group:
        out.append(item)
        if isinstance(item, bytearray):
            continue
        text = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", bytes(item))
        depth += text.count(b"(") - text.count(b")")
        if depth <= 0 and not text.rstrip().endswith(b"}"):
            break
    return out


_CODE = re.compile(rb"\[([A-Z0-9.-]+)(?: ([^\]]*))?\]", re.I)


def parse_response_code(text: bytes | bytearray | str) -> tuple[str, str] | None:
    """``[APPENDUID 38505 3955]`` -> ("APPENDUID", "38505 3955"); None without a code."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    match = _CODE.search(data)
    if match is None:
        return None
    return match.group(1).decode().upper(), (match.group(2) or b"").decode("ascii", "replace")
