"""What SayDigits, SayNumber, SayAlpha and SayPhonetic play: lists of prompt names,
following the English rules of Asterisk's ``main/say.c``.

Numbers: ``digits/0``..``digits/19``, tens ``digits/20``..``digits/90``,
``digits/hundred``, ``digits/thousand``, ``digits/million``, ``digits/billion`` and
``digits/minus``; 1234 is ``1 thousand 2 hundred 30 4``. Asterisk drops a name from a
digit/letter list when no such prompt exists; ``exists`` (if given) does the same here.

Not done as Asterisk does: only English (say.c has some 30 languages and falls back to
English for the rest, as this does); no genders, ordinals, money, dates or times; no
SayAlpha case-sensitivity option.
"""

from __future__ import annotations

from collections.abc import Callable

Exists = Callable[[str], bool] | None

_DIGIT_NAMES = {"*": "digits/star", "#": "digits/pound", "-": "digits/minus"}
_CHAR_NAMES = {
    "*": "digits/star", "#": "digits/pound", "!": "letters/exclaimation-point",
    "@": "letters/at", "$": "letters/dollar", "-": "letters/dash", ".": "letters/dot",
    "=": "letters/equals", "+": "letters/plus", "/": "letters/slash", " ": "letters/space",
}


def _keep(names: list[str | None], exists: Exists) -> list[str]:
    return [n for n in names if n is not None and (exists is None or exists(n))]


def digit_files(text: str, exists: Exists = None) -> list[str]:
    """SayDigits: one prompt per digit, ``*``, ``#`` or ``-``; other characters skipped."""
    names: list[str | None] = []
    for ch in text:
        if ch.isdigit() and ch.isascii():
            names.append(f"digits/{ch}")
        else:
            names.append(_DIGIT_NAMES.get(ch))
    return _keep(names, exists)


def alpha_files(text: str, exists: Exists = None) -> list[str]:
    """SayAlpha: digits, letters (lower-cased ``letters/x``) and named punctuation;
    a character without a prompt falls back to ``letters/ascii<code>``."""
    out: list[str] = []
    for ch in text:
        if ch.isdigit() and ch.isascii():
            name = f"digits/{ch}"
        else:
            name = _CHAR_NAMES.get(ch) or f"letters/{ch.lower()}"
        if exists is None or exists(name):
            out.append(name)
        elif exists(f"letters/ascii{ord(ch)}"):
            out.append(f"letters/ascii{ord(ch)}")
    return out


def phonetic_files(text: str, exists: Exists = None) -> list[str]:
    """SayPhonetic: ``phonetic/a_p`` (alfa)...; digits 0-8 as digits. Like say.c, a 9
    is looked up as ``phonetic/9_p``."""
    names: list[str | None] = []
    for ch in text:
        if ch in _CHAR_NAMES:
            names.append(_CHAR_NAMES[ch])
        elif ch in "012345678":
            names.append(f"digits/{ch}")
        else:
            names.append(f"phonetic/{ch.lower()}_p")
    return _keep(names, exists)


def number_files(num: int, language: str = "en") -> list[str]:
    """SayNumber in English (every language uses these rules here)."""
    if num == 0:
        return ["digits/0"]
    out: list[str] = []
    if num < 0:
        out.append("digits/minus")
        num = -num
    for size, word in ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand")):
        if num >= size:
            out += number_files(num // size, language)
            out.append(f"digits/{word}")
            num %= size
    if num >= 100:
        out += [f"digits/{num // 100}", "digits/hundred"]
        num %= 100
    if num >= 20:
        out.append(f"digits/{num // 10 * 10}")
        num %= 10
    if num:
        out.append(f"digits/{num}")
    return out


__all__ = ["alpha_files", "digit_files", "number_files", "phonetic_files"]
