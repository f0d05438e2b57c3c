"""The reminder ("notification") call: dial ``channel`` from ``Calendar/<name>-<32hex>``.

As Asterisk's ``do_notify``: the pseudo caller channel gets the event (so
``${CALENDAR_EVENT(...)}`` works in ``setvar`` values) and the ``setvar`` variables in
order; the dialled channel inherits its ``_``/``__`` variables, its caller ID (shown
on the phone as the caller: ``setvar=CALLERID(name)=${CALENDAR_EVENT(summary)}``) and
the event. On answer it runs ``app(appdata)`` then hangs up, or enters
``context``/``extension`` at priority 1. Unanswered: one verbose line, no retry.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hookflash.calendar.event import CalendarEvent
from hookflash.channels.channel import ChannelState

if TYPE_CHECKING:
    from hookflash.calendar.config import CalendarConfig
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.calendar")

EVENT_DATASTORE = "calendar_event"


@dataclass
class EventDatastore:
    """The ``EventNotification`` datastore: which event a notification channel is about."""

    event: CalendarEvent
    inherit: bool = True


def channel_event(chan: Channel | None) -> CalendarEvent | None:
    if chan is None:
        return None
    store = chan.datastores.get(EVENT_DATASTORE)
    return store.event if isinstance(store, EventDatastore) else None


async def place_notification(pbx: Pbx, cal: CalendarConfig, event: CalendarEvent) -> str:
    """Dial the reminder; returns the dial status (ANSWER, NOANSWER, BUSY, ...)."""
    from hookflash.apps.builtins import set_variable
    from hookflash.apps.dial import place_calls
    from hookflash.apps.originate import run_app
    from hookflash.dialplan.subst import substitute
    from hookflash.engine.cdr import new_cdr

    tech, slash, dest = cal.channel.partition("/")
    if not slash or not tech or not dest:
        log.warning("Channel should be in form Tech/Dest (was '%s') for notification on calendar "
                    "%s, event %s", cal.channel, cal.name, event.uid)
        return "CHANUNAVAIL"
    pbx.verbose(3, f"Dialing {cal.channel} for notification on calendar {cal.name}")
    pseudo = pbx.new_channel(f"Calendar/{cal.name}-{secrets.token_hex(16)}", state=ChannelState.UP)
    pseudo.datastores[EVENT_DATASTORE] = EventDatastore(event)
    status = "NOANSWER"
    winner = None
    try:
        for name, template in cal.setvars:
            try:
                result = set_variable(pseudo, name, substitute(template, pseudo, pbx))
                if result is not None and hasattr(result, "__await__"):
                    await result  # a function writer that waits (none of the usual ones)
            except Exception as exc:
                log.warning("Calendar %s: setvar %s failed: %s", cal.name, name, exc)
        winner, status, legs = await place_calls(pseudo, [cal.channel], float(cal.waittime))
        for leg in legs:
            if leg is not winner:
                await leg.hangup()
    finally:
        await pseudo.hangup()
    if winner is None:
        pbx.verbose(3, f"Notification call for {cal.name} was not completed")
        return status
    winner.datastores[EVENT_DATASTORE] = EventDatastore(event)
    winner.connected = pseudo.caller.copy()
    new_cdr(winner).mark_answered()
    if cal.app:
        pbx.spawn(run_app(winner, cal.app, cal.appdata))
    else:
        winner.context = cal.context or "default"
        winner.exten = cal.extension or "s"
        winner.priority = 1
        pbx.start_pbx(winner)
    return status
