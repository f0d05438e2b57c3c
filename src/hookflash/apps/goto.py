"""Dialplan jumps: ``[[context,]exten,]priority`` with labels and ``+N``/``-N``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookflash.engine.registry import DialplanError

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel


def resolve(chan: "Channel", target: str) -> tuple[str, str, int]:
    """Turn a Goto target into (context, exten, priority); DialplanError if invalid."""
    parts = [p.strip() for p in target.split(",")]
    if len(parts) > 3 or not parts[-1]:
        raise DialplanError(f"Goto requires [[context,]extension,]priority, got '{target}'")
    context, exten = chan.context, chan.exten
    if len(parts) == 3:
        context, exten = parts[0] or context, parts[1] or exten
    elif len(parts) == 2:
        exten = parts[0] or exten
    prio_text = parts[-1]
    if prio_text[0] in "+-" and prio_text[1:].isdigit():
        base = chan.priority
        number = base + int(prio_text)
    elif prio_text.isdigit():
        number = int(prio_text)
    else:
        found = chan.dialplan_for_lookup().find_label(context, exten, prio_text, chan.caller.num)
        if found is None:
            raise DialplanError(f"Priority '{prio_text}' must be a number > 0, or valid label "
                                f"(looked in {exten}@{context})")
        number = found.number
    if number < 1:
        raise DialplanError(f"Priority '{prio_text}' must be a number > 0, or valid label")
    return context, exten, number


def jump(chan: "Channel", target: str) -> None:
    context, exten, priority = resolve(chan, target)
    chan.goto(context, exten, priority)
