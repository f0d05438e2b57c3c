"""Dial(): call one or more channels at once and bridge the first that answers.

``Dial(Tech/res[&Tech2/res2...][,timeout[,options[,URL]]])``. Sets DIALSTATUS (ANSWER,
BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL), DIALEDTIME, ANSWEREDTIME,
DIALEDPEERNAME and DIALEDPEERNUMBER. Options implemented here: ``g`` (go on in the
dialplan when the called party hangs up), ``r`` (indicate ringing), ``M(macro^args)``
and ``U(context^args)`` (run on the called channel after it answers, while the caller
waits unanswered, before the bridge; MACRO_RESULT / GOSUB_RESULT of ABORT, CONGESTION,
BUSY, CHANUNAVAIL, CONTINUE or GOTO:ctx^ext^pri act as in Asterisk; a routine that
hangs the called channel up, fails, or does not exist leaves the two unconnected, and
the caller hanging up meanwhile ends the routine), ``A(file)`` (played to the called party on answer),
``L(x[:y[:z]])`` (limit the call to x ms; warn y ms before the end and every z ms,
with the ``vm-youhave``-style beep) and ``t``/``T`` (the called/calling party may
blind-transfer the other with ``#`` then the extension, in the transferrer's context).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from hookflash.channels.bridge import Bridge
from hookflash.channels.channel import Channel, ChannelState, Control, HangupCause
from hookflash.dialplan.args import split_args
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, DialplanError

if TYPE_CHECKING:
    pass

log = logging.getLogger("hookflash.app.dial")


def parse_options(text: str) -> dict[str, str]:
    """``gM(macro^a)tT`` -> {'g': '', 'M': 'macro^a', 't': '', 'T': ''}."""
    options: dict[str, str] = {}
    i = 0
    while i < len(text):
        letter = text[i]
        i += 1
        if letter.isspace():
            continue
        value = ""
        if i < len(text) and text[i] == "(":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            value = text[i + 1:j - 1] if depth == 0 else text[i + 1:]
            i = j
        options[letter] = value
    return options


class _Leg:
    def __init__(self, chan: Channel, target: str) -> None:
        self.chan = chan
        self.target = target
        self.task: asyncio.Task[Control] | None = None


async def _news(loop: asyncio.AbstractEventLoop, chans: list[Channel], timeout: float | None) -> bool:
    """Wait until one of ``chans`` queues a control or hangs up (True), or ``timeout`` s
    pass (False): one future and callbacks, not a task per channel."""
    future: asyncio.Future[None] = loop.create_future()
    for chan in chans:
        chan.wake_on(future)
    try:
        if timeout is None:
            await future
        else:
            await asyncio.wait_for(future, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        for chan in chans:
            chan.waiters.remove(future)


async def place_calls(caller: Channel | None, targets: list[str], timeout: float | None,
                      ring_caller: bool = False) -> tuple[Channel | None, str, list[Channel]]:
    """Call every target; return (answered channel or None, status, all legs)."""
    pbx = (caller.pbx if caller else None)
    legs: list[_Leg] = []
    unavailable = 0
    for target in targets:
        target = target.strip()
        if not target:
            continue
        try:
            peer = await pbx.request(target, caller)  # type: ignore[union-attr]
        except LookupError as exc:
            log.warning("Unable to create channel of type '%s' (cause 66 - Channel not "
                        "implemented): %s", target.partition("/")[0], exc)
            unavailable += 1
            continue
        if caller is not None:
            peer.caller = caller.caller.copy()
            peer.language = caller.language
            peer.accountcode = caller.accountcode
        legs.append(_Leg(peer, target))
    if not legs:
        return None, "CHANUNAVAIL", []
    loud = caller is not None and caller.pbx.verbosity.level >= 3  # no formatting for nobody
    for leg in legs:
        try:
            await leg.chan.tech.call(leg.chan, leg.target.partition("/")[2], timeout or 0)
        except Exception as exc:
            log.warning("Call to %s failed: %s", leg.target, exc)
            leg.chan.request_hangup(HangupCause.DESTINATION_OUT_OF_ORDER)
            leg.chan.queue_control(Control.CONGESTION)
            continue
        if loud:
            caller.pbx.verbose(3, f"Called {leg.target}")  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    deadline = None if not timeout else loop.time() + timeout
    busy = congestion = 0
    pending = list(legs)  # legs that may still answer, in the order they were called
    winner: Channel | None = None
    status = "NOANSWER"
    while pending:
        if caller is not None and caller.softhangup:
            status = "CANCEL"
            break
        leg = next((leg for leg in pending if not leg.chan.controls.empty()), None)
        if leg is None:  # nothing queued: sleep until a leg or the caller has news
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            if not await _news(loop, [leg.chan for leg in pending] + ([caller] if caller else []), remaining):
                break  # timeout: NOANSWER
            continue
        control = leg.chan.controls.get_nowait()
        pending.remove(leg)
        name = leg.chan.name
        if control == Control.ANSWER:
            winner = leg.chan
            if loud:
                caller.pbx.verbose(3, f"{name} answered {caller.name}")  # type: ignore[union-attr]
            status = "ANSWER"
            break
        if control in (Control.RINGING, Control.PROGRESS):
            if caller is not None:
                if loud:
                    caller.pbx.verbose(3, f"{name} is {'ringing' if control == Control.RINGING else 'making progress passing it to ' + caller.name}")
                if control == Control.RINGING and not ring_caller and caller.state != ChannelState.UP:
                    await caller.indicate(Control.RINGING)
            pending.append(leg)  # still in the running: wait for its next control
        elif control == Control.BUSY:
            busy += 1
            if loud:
                caller.pbx.verbose(3, f"{name} is busy")  # type: ignore[union-attr]
        elif control == Control.CONGESTION:
            congestion += 1
            if loud:
                caller.pbx.verbose(3, f"{name} is circuit-busy")  # type: ignore[union-attr]
        # HANGUP: the leg is gone without an answer
    else:
        status = "BUSY" if busy else ("CONGESTION" if congestion else "NOANSWER")
    if winner is None and status == "NOANSWER" and unavailable and not legs:
        status = "CHANUNAVAIL"
    return winner, status, [leg.chan for leg in legs]


_CALLER_GONE = "\0caller-gone"  # cannot be a MACRO_RESULT a dialplan sets


async def _run_on_peer(chan: Channel, peer: Channel, options: dict[str, str]) -> str | None:
    """Run M()/U() on the answered peer while the caller waits; return the
    MACRO_RESULT / GOSUB_RESULT, "ABORT" when the peer hung up, failed or could not run
    the routine, _CALLER_GONE when the caller hung up meanwhile, or None."""
    from hookflash.apps.stack import run_macro, run_sub
    if options.get("M"):
        macro, _, margs = options["M"].partition("^")
        data = macro + ("," + margs.replace("^", ",") if margs else "")
        routine, result_var = run_macro(peer, data), "MACRO_RESULT"
        label = f"macro {macro}"
    elif options.get("U"):
        sub, _, sargs = options["U"].partition("^")
        # as Asterisk: U(context^arg1^arg2) is Gosub(context,s,1(arg1,arg2))
        target = f"{sub},s,1" + (f"({sargs.replace('^', ',')})" if sargs else "")
        routine, result_var = run_sub(peer, target), "GOSUB_RESULT"
        label = f"subroutine {sub}"
    else:
        return None
    peer.vars.pop(result_var, None)
    task = asyncio.ensure_future(routine)
    caller_gone = asyncio.ensure_future(chan.hangup_event.wait())
    try:
        await asyncio.wait({task, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # the caller gave up: end the routine on the peer
            peer.request_hangup()
            await asyncio.wait({task}, timeout=5)
            if not task.done():
                task.cancel()
            return _CALLER_GONE
    finally:
        caller_gone.cancel()
    try:
        outcome = task.result()
    except DialplanError as exc:
        log.warning("Dial %s(%s) on %s: %s; not connecting %s", "M" if result_var == "MACRO_RESULT" else "U",
                    label, peer.name, exc, chan.name)
        return "ABORT"
    except Exception:
        log.exception("Dial: %s failed on %s", label, peer.name)
        return "ABORT"
    if peer.softhangup or outcome == "hangup":
        chan.pbx.verbose(3, f"{peer.name} hung up in {label}; not connecting {chan.name}")
        return "ABORT"
    return peer.vars.get(result_var) or None


async def app_dial(chan: Channel, data: str) -> int | None:
    args = split_args(data)
    targets = args[0].split("&") if args[0].strip() else []
    if not targets:
        log.warning("Dial requires an argument (technology/resource) on %s", chan.name)
        return None
    timeout = None
    if len(args) > 1 and args[1].strip():
        try:
            timeout = float(args[1]) or None
        except ValueError:
            log.warning("Dial: invalid timeout '%s' on %s", args[1], chan.name)
    options = parse_options(args[2] if len(args) > 2 else "")
    start = time.time()
    for name in ("DIALSTATUS", "DIALEDPEERNAME", "DIALEDPEERNUMBER", "ANSWEREDTIME"):
        chan.vars.pop(name, None)
    if "r" in options and chan.state != ChannelState.UP:
        await chan.indicate(Control.RINGING)
    winner, status, legs = await place_calls(chan, targets, timeout, ring_caller="r" in options)
    for leg in legs:
        if leg is not winner:
            leg.hangupcause = HangupCause.NORMAL_CLEARING if winner else leg.hangupcause
            await leg.hangup(HangupCause.NORMAL_CLEARING)
    chan.set_var("DIALSTATUS", status)
    if winner is None:
        chan.set_var("DIALEDTIME", str(int(time.time() - start)))
        if status == "CANCEL":
            return -1
        return None
    return await _connect(chan, winner, options, start)


async def _connect(chan: Channel, peer: Channel, options: dict[str, str], start: float) -> int | None:
    chan.set_var("DIALEDPEERNAME", peer.name)
    chan.set_var("DIALEDPEERNUMBER", peer.name.partition("/")[2].split("-")[0])
    if chan.cdr is not None:
        chan.cdr.dstchannel = peer.name
    result = await _run_on_peer(chan, peer, options)
    if result:
        outcome = await _routine_result(chan, peer, result, options)
        if outcome != "connect":
            return outcome  # type: ignore[return-value]
    if "A" in options and options["A"]:
        await _announce(peer, options["A"])
    if chan.state != ChannelState.UP:
        await chan.answer()
    answered = time.time()
    bridge = Bridge(chan, peer)
    limit = _parse_limit(options.get("L", ""))
    features = {c for c, opt in ((peer, "t"), (chan, "T")) if opt in options}
    bridge.direct_media = not (limit or features)  # they need the media (DTMF, timing) here
    watchers = [asyncio.ensure_future(_limit(bridge, chan, peer, *limit))] if limit else []
    watchers += [asyncio.ensure_future(_transfer_watch(bridge, c)) for c in features]
    try:
        await bridge.run()
    finally:
        for task in watchers:
            task.cancel()
    final_peer = bridge.peer_of(chan)
    transfer = getattr(bridge, "transfer", None)
    if transfer is not None:
        return await _finish_transfer(chan, peer, final_peer, transfer, bridge)
    chan.set_var("DIALEDTIME", str(int(time.time() - start)))
    chan.set_var("ANSWEREDTIME", str(int(time.time() - answered)))
    caller_gone = chan.softhangup
    for other in {peer, final_peer}:
        if other.bridge is None or other.bridge is bridge:
            await other.hangup()
    if caller_gone:
        return -1
    return None if "g" in options else -1


async def _routine_result(chan: Channel, peer: Channel, result: str,
                          options: dict[str, str]) -> int | None | str:
    """Act on MACRO_RESULT/GOSUB_RESULT as Asterisk's Dial does: BUSY, CONGESTION and
    CHANUNAVAIL set DIALSTATUS and go on; CONTINUE goes on; GOTO:ctx^exten^pri jumps
    the caller there; ABORT hangs both up (the caller goes on with ``g``). Anything
    else connects the call ("connect")."""
    if result == _CALLER_GONE:
        await peer.hangup()
        return -1
    upper = result.upper()
    if upper not in ("ABORT", "CONGESTION", "BUSY", "CHANUNAVAIL", "CONTINUE") and not upper.startswith("GOTO:"):
        return "connect"
    await peer.hangup()
    if upper in ("BUSY", "CONGESTION", "CHANUNAVAIL"):
        chan.set_var("DIALSTATUS", upper)
        return None
    if upper == "CONTINUE":
        return None
    if upper.startswith("GOTO:"):
        from hookflash.apps.goto import jump
        try:
            jump(chan, result[5:].replace("^", ","))
        except DialplanError as exc:
            log.warning("Dial: cannot go to '%s' on %s: %s", result[5:], chan.name, exc)
            return None if "g" in options else -1
        return None
    return None if "g" in options else -1  # ABORT


async def _announce(peer: Channel, files: str) -> None:
    from hookflash.media.stream import SoundNotFound, play_file
    for name in files.split("&"):
        try:
            await play_file(peer, name)
        except SoundNotFound as exc:
            log.warning("Dial A(): %s", exc)


def _parse_limit(text: str) -> tuple[float, float, float] | None:
    if not text:
        return None
    parts = (text.replace(":", "^").split("^") + ["", ""])[:3]
    try:
        total, warn, repeat = (float(p) / 1000 if p.strip() else 0.0 for p in parts)
    except ValueError:
        log.warning("Dial L(): bad limit '%s'; expected L(x[:y[:z]]) in milliseconds", text)
        return None
    return (total, warn, repeat) if total > 0 else None


async def _limit(bridge: Bridge, chan: Channel, peer: Channel, total: float, warn: float, repeat: float) -> None:
    """Dial's L(): end the bridge after ``total`` seconds, beeping the caller before."""
    from hookflash.media.stream import SoundNotFound, play_file
    start = asyncio.get_running_loop().time()
    if warn and warn < total:
        await asyncio.sleep(total - warn)
        while True:
            try:
                await play_file(chan, "beep")
            except SoundNotFound:
                pass
            left = total - (asyncio.get_running_loop().time() - start)
            if not repeat or left <= repeat:
                await asyncio.sleep(max(0.0, left))
                break
            await asyncio.sleep(repeat)
    else:
        await asyncio.sleep(total)
    chan.pbx.verbose(3, f"Call limit of {total:g} s reached on {chan.name}")
    peer.request_hangup()


async def _transfer_watch(bridge: Bridge, who: Channel) -> None:
    """t/T: '#' from ``who`` starts a blind transfer of the other party."""
    from hookflash.media.stream import SoundNotFound, play_file
    while True:
        digit = await who.wait_digit(-1)
        if digit is None:
            return
        if digit != "#":
            continue
        try:  # the first digit typed stops the prompt and starts the extension
            exten = await play_file(who, "pbx-transfer", interrupt="0123456789*") or ""
        except SoundNotFound:
            exten = ""
        while True:
            d = await who.wait_digit(3.0)
            if d is None or d == "#":
                break
            exten += d
        dialplan = who.dialplan_for_lookup()
        context = who.context if who.in_pbx else who.vars.get("TRANSFER_CONTEXT", who.context)
        if exten and dialplan.exists(context, exten, 1, who.caller.num):
            bridge.transfer = (who, context, exten)  # type: ignore[attr-defined]
            who.pbx.verbose(3, f"{who.name} blind-transfers to {exten}@{context}")
            who.request_hangup()
            return
        try:
            await play_file(who, "pbx-invalid")
        except SoundNotFound:
            pass


async def _finish_transfer(chan: Channel, peer: Channel, final_peer: Channel, transfer: tuple[Channel, str, str],
                           bridge: Bridge) -> int | None:
    who, context, exten = transfer
    if who is chan:  # the caller transferred the called party: it gets a dialplan of its own
        other = final_peer
        other.softhangup = False
        other.hangup_event.clear()
        other.context, other.exten, other.priority = context, exten, 1
        from hookflash.engine.cdr import new_cdr
        new_cdr(other)
        chan.pbx.start_pbx(other)
        return -1
    # the called party transferred the caller: the caller's dialplan goes on there
    await final_peer.hangup()
    chan.goto(context, exten, 1)
    return None


class DialModule(Module):
    description = "Dialing Application"

    def applications(self) -> list[Application]:
        return [Application(
            "Dial", app_dial, "Attempt to connect to another device or endpoint and bridge the call.",
            "Dial(Technology/Resource[&Technology2/Resource2[&...]][,timeout[,options[,URL]]])",
            "Calls every destination at once; the first to answer is bridged to the caller and the "
            "others are hung up. DIALSTATUS is one of CHANUNAVAIL, CONGESTION, NOANSWER, BUSY, "
            "ANSWER, CANCEL. Options: g, r, t, T, A(file), L(x[:y[:z]]), M(macro[^arg...]), "
            "U(sub[^arg...]).")]
