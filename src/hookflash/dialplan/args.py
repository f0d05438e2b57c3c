"""Splitting application arguments the way Asterisk's applications do.

``split_args`` follows ``ast_app_separate_args``: the delimiter is ignored inside
parentheses, square brackets and double quotes; double quotes and backslashes are
removed (a backslash makes the next character literal).
"""

from __future__ import annotations


def split_args(data: str, delim: str = ",", maxsplit: int = -1) -> list[str]:
    """Split ``data`` into arguments. ``maxsplit`` >= 0 caps the number of splits
    (the last argument keeps the rest, quotes and escapes still removed)."""
    if not data:
        return [""]
    if ('"' not in data and "\\" not in data and "(" not in data and "[" not in data):
        return data.split(delim, maxsplit)
    args: list[str] = []
    cur: list[str] = []
    paren = bracket = 0
    quote = False
    i = 0
    n = len(data)
    while i < n:
        ch = data[i]
        if ch == "\\":
            if i + 1 < n:
                cur.append(data[i + 1])
            i += 2
            continue
        if ch == '"' and delim != '"':
            quote = not quote
        elif ch == "(" and not quote:
            paren += 1
            cur.append(ch)
        elif ch == ")" and not quote:
            if paren:
                paren -= 1
            cur.append(ch)
        elif ch == "[" and not quote:
            bracket += 1
            cur.append(ch)
        elif ch == "]" and not quote:
            if bracket:
                bracket -= 1
            cur.append(ch)
        elif (ch == delim and not paren and not bracket and not quote
              and (maxsplit < 0 or len(args) < maxsplit)):
            args.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    args.append("".join(cur))
    return args


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
