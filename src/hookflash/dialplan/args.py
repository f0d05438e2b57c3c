"""Splitting application arguments the way Asterisk's applications do.

``separate_args`` follows ``ast_app_separate_args``: the delimiter is ignored inside
parentheses, square brackets and double quotes; double quotes and backslashes are
removed (a backslash makes the next character literal); when the number of arguments
is capped, the last one is the rest of the text, unprocessed.
"""

from __future__ import annotations


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


def split_args(data: str, delim: str = ",", maxsplit: int = -1) -> list[str]:
    """``separate_args`` for applications: at most ``maxsplit`` splits (the last argument
    keeps the rest of the text unprocessed, as in Asterisk), and ``[""]`` for no data."""
    maxargs = maxsplit + 1 if maxsplit >= 0 else 1 << 30
    return separate_args(data, delim, maxargs) or [""]


def split_app_call(text: str) -> tuple[str, str]:
    """``App(args)`` or ``App,args`` or ``App`` -> (App, args)."""
    text = text.strip()
    paren = text.find("(")
    comma = text.find(",")
    if paren >= 0 and (comma < 0 or paren < comma):
        name = text[:paren].strip()
        rest = text[paren + 1:]
        if rest.endswith(")"):
            rest = rest[:-1]
        return name, rest
    if comma >= 0:
        return text[:comma].strip(), text[comma + 1:]
    return text, ""


def condition_true(text: str) -> bool:
    """``pbx_checkcondition``: empty is false; a leading integer decides; other text is true."""
    text = text.strip()
    if not text:
        return False
    end = 0
    if text[:1] in "+-":
        end = 1
    while end < len(text) and text[end].isdigit():
        end += 1
    if end and text[:end] not in ("+", "-"):
        return int(text[:end]) != 0
    return True


def split_condition(data: str) -> tuple[str, str, str]:
    """``cond?iftrue:iffalse`` -> parts (``GotoIf``'s strsep split: first ``?``, first ``:``)."""
    cond, sep, branches = data.partition("?")
    if not sep:
        return cond, "", ""
    iftrue, _, iffalse = branches.partition(":")
    return cond, iftrue, iffalse
