"""Running the dialplan on a channel (Asterisk's ``__ast_pbx_run``).

The loop looks the priority up, substitutes its arguments, runs the application and
moves to the next priority unless the application jumped. Applications that do not
wait return at once: the loop only awaits what returns an awaitable, so a priority
costs a lookup, a substitution and a call. Every 128 priorities the loop yields so one
busy call cannot starve the others, and a call that runs ``loop_limit`` priorities in a
row without ever waiting is ended as a runaway loop.

Errors never escape a call: an unknown application, an application that raises, or a
runaway loop is logged with the channel name and dialplan location, and that call
hangs up.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING

from hookflash.channels.channel import HangupCause
from hookflash.engine.registry import DialplanError

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.dialplan.model import Dialplan

log = logging.getLogger("hookflash.dialplan")

END = "end"  # no more priorities (nested runs stop here)
HANGUP = "hangup"  # the call is over


async def run_priorities(chan: "Channel", dialplan: "Dialplan", *, nested: bool = False,
                         in_h: bool = False, stop_depth: int | None = None,
                         scope: str | None = None) -> str:
    """Run from the channel's position until hangup or the end of the dialplan.

    ``nested`` runs (Macro, Dial's U()/M(), the ``h`` extension) return END where the
    top-level run would apply the invalid-extension and fall-through rules.
    ``stop_depth`` returns once the Gosub stack shrinks below that depth (for U()).
    ``scope`` returns once a jump leaves that context (a Goto out of a Macro).
    """
    pbx = chan.pbx
    apps = pbx.registry.applications
    verbosity = pbx.verbosity
    limit = pbx.loop_limit
    streak = 0
    while True:
        if chan.softhangup and not in_h:
            return HANGUP
        prio = dialplan.find(chan.context, chan.exten, chan.priority, chan.caller.num)
        if prio is None:
            if nested or in_h:
                return END
            if not _fallthrough(chan, dialplan):
                return HANGUP
            continue
        app = apps.get(prio.app_lower)
        waits = pbx.registry.async_functions
        if waits and prio.data.const is None and prio.data.mentions(waits):
            data = await prio.data.arender(chan, pbx)  # a function that waits (JABBER_RECEIVE)
        else:
            data = prio.data.render(chan, pbx)
        if verbosity.level >= 3:
            verbosity.verbose(3, f'Executing [{chan.exten}@{chan.context}:{chan.priority}] '
                                 f'{prio.app}("{chan.name}", "{data}") in new stack')
        if app is None:
            log.warning("No application '%s' for extension (%s, %s, %d) at %s:%d; hanging up %s",
                        prio.app, chan.context, chan.exten, chan.priority, prio.filename,
                        prio.lineno, chan.name)
            return HANGUP
        chan.appl = app.name
        chan.data = data
        chan.jumped = False
        chan.current = prio  # type: ignore[attr-defined]
        if chan.cdr is not None:
            chan.cdr.set_app(app.name, data)
        try:
            result = app.execute(chan, data)
            if result is not None and inspect.isawaitable(result):
                streak = 0
                result = await result
        except DialplanError as exc:
            log.warning("%s at %s:%d (%s@%s:%d) on %s; hanging up", exc, prio.filename,
                        prio.lineno, chan.exten, chan.context, prio.number, chan.name)
            return HANGUP
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Application %s failed at %s:%d (%s@%s:%d) on %s; hanging up",
                          prio.app, prio.filename, prio.lineno, chan.exten, chan.context,
                          prio.number, chan.name)
            return HANGUP
        if result:
            return HANGUP
        if not chan.jumped:
            chan.priority += 1
        if stop_depth is not None and len(chan.stack) < stop_depth:
            return END
        if scope is not None and chan.context != scope:
            return END
        streak += 1
        if streak & 127 == 0:
            await asyncio.sleep(0)
            if streak >= limit:
                log.error("Runaway dialplan: %d priorities without waiting, last at %s:%d "
                          "(%s@%s:%d); hanging up %s", streak, prio.filename, prio.lineno,
                          chan.exten, chan.context, prio.number, chan.name)
                return HANGUP


def _fallthrough(chan: "Channel", dialplan: "Dialplan") -> bool:
    """No priority here: jump to 'i' for an unknown extension, else hang up."""
    cid = chan.caller.num
    if not dialplan.exists(chan.context, chan.exten, 1, cid) and \
            dialplan.find_extension(chan.context, chan.exten, cid) is None:
        if dialplan.exists(chan.context, "i", 1, cid) and chan.exten != "i":
            chan.pbx.verbose(3, f"Sent into invalid extension '{chan.exten}' in context "
                                f"'{chan.context}' on {chan.name}")
            chan.set_var("INVALID_EXTEN", chan.exten)
            chan.goto(None, "i", 1)
            return True
        log.warning("Channel '%s' sent to invalid extension but no invalid handler: "
                    "context,exten,priority=%s,%s,%d", chan.name, chan.context, chan.exten,
                    chan.priority)
        chan.hangupcause = chan.hangupcause or HangupCause.UNALLOCATED
        return False
    status = chan.get_var("DIALSTATUS") or "UNKNOWN"
    chan.pbx.verbose(2, f"Auto fallthrough, channel '{chan.name}' status is '{status}'")
    return False


async def run_pbx(chan: "Channel") -> None:
    """Run a channel's whole call: dialplan, then the ``h`` extension, CDR, hangup."""
    pbx = chan.pbx
    dialplan = chan.dialplan = pbx.dialplan  # kept by this call across reloads
    chan.in_pbx = True
    try:
        await run_priorities(chan, dialplan)
    except asyncio.CancelledError:
        chan.request_hangup()
    except Exception:  # the executor itself must never take the process down
        log.exception("Dialplan run failed on %s", chan.name)
    chan.request_hangup(chan.hangupcause or HangupCause.NORMAL_CLEARING)
    if chan.cdr is not None:
        chan.cdr.end_call(chan)
    if dialplan.exists(chan.context, "h", 1, chan.caller.num):
        chan.exten, chan.priority = "h", 1
        try:
            await run_priorities(chan, dialplan, in_h=True)
        except Exception:
            log.exception("The h extension failed on %s", chan.name)
    chan.in_pbx = False
    await chan.hangup(chan.hangupcause or HangupCause.NORMAL_CLEARING)
    pbx.channels.processed += 1
    if chan.cdr is not None:
        chan.cdr.post(pbx)
