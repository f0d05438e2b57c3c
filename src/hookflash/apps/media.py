"""Media applications: Playback, Background, WaitExten, Read, Record, SendDTMF, the Say
family, Echo, Milliwatt, Playtones/StopPlaytones, MusicOnHold, and TIMEOUT().

Each module keeps its Asterisk name (``app_playback``, ``app_read``...; Background,
WaitExten and the Say applications live in ``pbx_builtins`` in Asterisk and are
``pbx_media_builtins`` here). Applications answer, play and record through
:mod:`hookflash.media.stream`; they return -1 when the channel hangs up.

Digits that end Background, WaitExten or an interruptible Say are completed into an
extension the way Asterisk's pbx loop does (``collect_digits``): more digits are read
while longer extensions could match, each within ``TIMEOUT(digit)`` (5 s); then the
call goes to that extension, or to ``i`` (setting INVALID_EXTEN). WaitExten waits
``TIMEOUT(response)`` (10 s) for the first digit, then continues, or goes to ``t``.

Not done as Asterisk does: no ``e`` (exception) extension; Playback's ``say``/``mix``
options; Background's AGI workaround flag; Read reads digits only from the DTMF queue
(no in-band detection); Record's ``u`` option is honoured but video/OPERATOR frames are
not; a missing ``beep`` prompt is replaced by a generated 1 kHz beep (Asterisk would
end with RECORD_STATUS=HANGUP); on hangup Record discards the new audio but keeps a
file it was appending to; music on hold supports ``mode=files`` and ``playlist`` only
and does not remember the position between holds; TIMEOUT(absolute) hangs up without
running a ``T`` extension; SendDTMF's ``f`` (flash) is ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import ChannelState
from hookflash.dialplan.args import split_args
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, Function
from hookflash.media import say
from hookflash.media.files import FRAME_BYTES, SoundFileError, SoundWriter, format_for
from hookflash.media.stream import (ANY_DIGIT, DEFAULT_SILENCE_THRESHOLD, US_TONES, MohClass,
                                    SoundNotFound, getdata, load_indications, load_moh_classes,
                                    locate, next_events, play, play_file, read_with_tone, record,
                                    start_generator, start_moh, stop_generator)
from hookflash.media.tone import MILLIWATT_AMPLITUDE, Milliwatt, ToneError, parse_tone, tone_frames

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.app.media")

_TIMEOUTS = "hookflash.pbx_timeouts"
DIGIT_TIMEOUT = 5.0
RESPONSE_TIMEOUT = 10.0

# ---------------------------------------------------------------------- helpers
def parse_options(text: str) -> dict[str, str | None]:
    """``ast_app_parse_options``: letters, some with a ``(argument)``."""
    opts: dict[str, str | None] = {}
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if i < len(text) and text[i] == "(":
            close = text.find(")", i)
            close = len(text) if close < 0 else close
            opts[ch] = text[i + 1:close]
            i = close + 1
        else:
            opts.setdefault(ch, None)
    return opts


def _atoi(text: str | None) -> int:
    match = re.match(r"\s*([+-]?\d+)", text or "")
    return int(match.group(1)) if match else 0


def _args(data: str, count: int) -> list[str]:
    parts = split_args(data)
    return (parts + [""] * count)[:count]


def parse_timelen(text: str, unit: float = 1.0) -> float | None:
    """``ast_app_parse_timelen``: a number with an optional h/m/s/ms unit, in seconds
    (``unit`` is what a bare number means: 1 for seconds, 0.001 for milliseconds)."""
    match = re.fullmatch(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(\w*)\s*", text or "")
    if not match:
        return None
    scale = {"": unit, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}.get(match.group(2).lower())
    return None if scale is None else float(match.group(1)) * scale


def _files(text: str) -> list[str]:
    return [f.strip() for f in text.split("&") if f.strip()]


def timeouts(chan: "Channel") -> dict[str, float]:
    """The channel's TIMEOUT(digit) and TIMEOUT(response), in seconds."""
    store: dict[str, float] = chan.datastores.setdefault(
        _TIMEOUTS, {"digit": DIGIT_TIMEOUT, "response": RESPONSE_TIMEOUT})
    return store


async def _answer_unless(chan: "Channel", skip: bool, noanswer: bool) -> bool:
    """Common prologue: False when the channel is not up and ``skip`` says so."""
    if chan.state != ChannelState.UP:
        if skip:
            return False
        if not noanswer:
            await chan.answer()
    return True


async def collect_extension(chan: "Channel", digits: str) -> int | None:
    """The pbx loop after an application returned a digit: read more while a longer
    extension could match, then go to it, or to ``i``."""
    dialplan = chan.dialplan_for_lookup()
    cid = chan.caller.num
    wait = timeouts(chan)["digit"]
    while dialplan.match_more(chan.context, digits, cid):
        digit = await chan.wait_digit(wait)
        if digit is None:
            if chan.softhangup:
                return -1
            break
        digits += digit
    if dialplan.exists(chan.context, digits, 1, cid):
        chan.goto(None, digits, 1)
        return None
    if dialplan.exists(chan.context, "i", 1, cid):
        chan.pbx.verbose(3, f"Invalid extension '{digits}' in context '{chan.context}' on {chan.name}")
        chan.set_var("INVALID_EXTEN", digits)
        chan.goto(None, "i", 1)
        return None
    log.warning("Invalid extension '%s', but no rule 'i' or 'e' in context '%s'", digits, chan.context)
    return -1


def _sample_beep() -> Iterator[bytes]:
    return itertools.islice(tone_frames("1000", amplitude=8000), 12)


def _done(chan: "Channel") -> int | None:
    return -1 if chan.softhangup else None


# ---------------------------------------------------------------------- Playback, Background
async def app_playback(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        log.warning("Playback requires an argument (filename)")
        return -1
    names, options = _args(data, 2)
    options = options.lower()
    failed = False
    if await _answer_unless(chan, "skip" in options, "noanswer" in options):
        for name in _files(names):
            try:
                await play_file(chan, name)
            except SoundFileError as exc:
                if not chan.softhangup:
                    log.warning("Playback failed on %s for %s: %s", chan.name, data, exc)
                failed = True
            if chan.softhangup:
                break
    chan.set_var("PLAYBACKSTATUS", "FAILED" if failed else "SUCCESS")
    return _done(chan)


async def app_background(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        log.warning("Background requires an argument (filename)")
        return -1
    names, options, lang, context = _args(data, 4)
    lang = lang.strip() or chan.language
    context = context.strip() or chan.context
    opts = {"s": None} if options == "skip" else {"n": None} if options == "noanswer" \
        else parse_options(options)
    dialplan, cid = chan.dialplan_for_lookup(), chan.caller.num
    digit: str | None = None
    failed = False
    if await _answer_unless(chan, "s" in opts, "n" in opts):
        stop_generator(chan)
        if "p" in opts:
            interrupt = ""
        elif "m" in opts:  # only digits that are one-digit extensions of the context
            interrupt = "".join(d for d in ANY_DIGIT if dialplan.exists(context, d, 1, cid))
        else:
            interrupt = ANY_DIGIT
        for name in _files(names):
            try:
                digit = await play_file(chan, name, interrupt=interrupt, language=lang)
            except SoundFileError as exc:
                log.warning("ast_streamfile failed on %s for %s: %s", chan.name, data, exc)
                failed = True
                break
            if digit or chan.softhangup:
                break
    chan.set_var("BACKGROUNDSTATUS", "FAILED" if failed else "SUCCESS")
    if chan.softhangup:
        return -1
    if not digit:
        return None
    if dialplan.can_match(context, digit, cid) and not dialplan.match_more(context, digit, cid):
        chan.goto(context, digit, 1)
        return None
    return await collect_extension(chan, digit)


async def app_waitexten(chan: "Channel", data: str) -> int | None:
    seconds_text, options = _args(data, 2)
    opts = parse_options(options)
    if "m" in opts:
        if not opts["m"]:
            log.warning("The 'm' option has been specified for WaitExten without a class.")
        start_moh(chan, _moh_classes(chan), opts["m"] or "")
    elif "d" in opts:
        tone = indication(chan, opts["d"] or "dial") or "350+440"
        start_generator(chan, tone_frames(tone))
    seconds = parse_timelen(seconds_text)
    if seconds is None or seconds <= 0:
        seconds = timeouts(chan)["response"]
    try:
        digit = await chan.wait_digit(seconds)
    finally:
        if "m" in opts or "d" in opts:
            stop_generator(chan)
    if digit:
        return await collect_extension(chan, digit)
    if chan.softhangup:
        return -1
    dialplan, cid = chan.dialplan_for_lookup(), chan.caller.num
    if dialplan.exists(chan.context, chan.exten, chan.priority + 1, cid):
        chan.pbx.verbose(3, f"Timeout on {chan.name}, continuing...")
    elif dialplan.exists(chan.context, "t", 1, cid):
        chan.pbx.verbose(3, f"Timeout on {chan.name}, going to 't'")
        chan.goto(None, "t", 1)
    else:
        log.warning("Timeout but no rule 't' or 'e' in context '%s'", chan.context)
        return -1
    return None


# ---------------------------------------------------------------------- Say*
async def _say(chan: "Channel", names: Iterable[str]) -> int | None:
    interruptible = (chan.get_var("SAY_DTMF_INTERRUPT") or "").lower() in ("yes", "true", "y", "t", "1", "on")
    for name in names:
        try:
            digit = await play_file(chan, name, interrupt=ANY_DIGIT if interruptible else "")
        except SoundFileError:
            log.warning("Unable to play message %s", name)
            return _done(chan)
        if chan.softhangup:
            return -1
        if digit:
            return await collect_extension(chan, digit)
    return None


def _exists(chan: "Channel") -> Any:
    return lambda name: locate(chan, name) is not None


async def app_saydigits(chan: "Channel", data: str) -> int | None:
    return await _say(chan, say.digit_files(data, _exists(chan)))


async def app_sayalpha(chan: "Channel", data: str) -> int | None:
    return await _say(chan, say.alpha_files(split_args(data)[0], _exists(chan)))


async def app_sayphonetic(chan: "Channel", data: str) -> int | None:
    return await _say(chan, say.phonetic_files(data, _exists(chan)))


async def app_saynumber(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        log.warning("SayNumber requires an argument (number)")
        return -1
    number, _, gender = data.partition(",")
    if not re.fullmatch(r"\s*[+-]?\d+\s*", number) or not -2**31 <= int(number) < 2**31:
        log.warning("argument '%s' to SayNumber could not be parsed as a number.", number)
        return None
    gender = gender.partition(",")[0]
    if gender and gender.lower() not in ("f", "m", "c", "n"):
        log.warning("SayNumber gender option is either 'f', 'm', 'c' or 'n'")
        return -1
    return await _say(chan, say.number_files(int(number), chan.language))


# ---------------------------------------------------------------------- Read
async def app_read(chan: "Channel", data: str) -> int | None:
    chan.set_var("READSTATUS", "ERROR")
    if not data.strip():
        log.warning("Read requires an argument (variable)")
        return None
    variable, filename, maxdigits_text, options, attempts, timeout_text = _args(data, 6)
    opts = parse_options(options)
    tries = max(_atoi(attempts), 1) if attempts.strip() else 1
    timeout = parse_timelen(timeout_text) or 0.0
    timeout = max(timeout, 0.0)
    maxdigits = _atoi(maxdigits_text) if maxdigits_text.strip() else 255
    if not 1 <= maxdigits <= 255:
        maxdigits = 255
    if not variable.strip():
        log.warning("Invalid! Usage: Read(variable[,filename][,maxdigits][,option][,attempts][,timeout])")
        return None
    tone = indication(chan, filename.strip()) if "i" in opts and filename.strip() else None
    enders = "#" if "t" not in opts else (opts["t"] or "")
    if not await _answer_unless(chan, "s" in opts, "n" in opts):
        chan.set_var(variable, "")
        chan.set_var("READSTATUS", "SKIPPED")
        return None
    status = "ERROR"
    while tries and not chan.softhangup:
        if tone:
            result, value = await read_with_tone(chan, tone_frames(tone), maxdigits,
                                                 timeout or timeouts(chan)["response"], enders)
        else:
            limits = timeouts(chan)
            result, value = await getdata(chan, filename.strip(), maxdigits, timeout, enders,
                                          response=limits["response"], digit=limits["digit"])
            if result == "EMPTY" and "e" in opts:
                value = enders
        status = {"COMPLETE": "OK", "EMPTY": "OK", "TIMEOUT": "TIMEOUT"}.get(result, status)
        chan.set_var(variable, value)
        if result == "FAILED":
            break
        if value:
            chan.pbx.verbose(3, f"User entered '{value}'")
            tries = 0
        else:
            tries -= 1
            chan.pbx.verbose(3, f"User entered nothing, {tries} chance{'s' if tries != 1 else ''} left"
                             if tries else "User entered nothing.")
    if chan.softhangup:
        status = "HANGUP"
    chan.set_var("READSTATUS", status)
    return _done(chan)


# ---------------------------------------------------------------------- Record
def _record_path(chan: "Channel", name: str, ext: str) -> Path:
    base = Path(name) if name.startswith("/") else chan.pbx.dirs.astdatadir / "sounds" / name
    return base.with_name(f"{base.name}.{ext}")


async def app_record(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        log.warning("Record requires an argument (filename)")
        chan.set_var("RECORD_STATUS", "ERROR")
        return -1
    parts = split_args(data)
    filename, silence_text, maxdur_text, options = (parts + [""] * 4)[:4]
    opts = parse_options(options) if len(parts) >= 4 else {}
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, dot, ext = filename.rpartition(":")
    try:
        if not dot or not ext:
            raise SoundFileError("no extension")
        format_for(ext)
    except SoundFileError:
        log.warning("No extension specified to filename, or unknown format: '%s'", filename)
        chan.set_var("RECORD_STATUS", "ERROR")
        return -1
    silence = max(_atoi(silence_text), 0)
    maxduration = max(_atoi(maxdur_text), 0)
    terminators = "" if "x" in opts else "*" if "t" in opts else "#"
    name = stem
    if "%d" in stem:
        count = 0
        while _record_path(chan, name := stem.replace("%d", str(count)), ext).exists():
            count += 1
    chan.set_var("RECORDED_FILE", name)
    if not await _answer_unless(chan, "s" in opts, "n" in opts):
        chan.set_var("RECORD_STATUS", "SKIP")
        return None
    if "q" not in opts:
        try:
            await play_file(chan, "beep")
        except SoundNotFound:
            await play(chan, _sample_beep())
        if chan.softhangup:
            chan.set_var("RECORD_STATUS", "HANGUP")
            return -1
    try:
        writer = SoundWriter(_record_path(chan, name, ext), ext, append="a" in opts)
    except (SoundFileError, OSError) as exc:
        log.warning("Could not create file %s: %s", filename, exc)
        chan.set_var("RECORD_STATUS", "ERROR")
        return None
    chan.flush_media()
    try:
        status, elapsed = await record(
            chan, writer, max_seconds=maxduration, silence_seconds=silence,
            silence_threshold=_silence_threshold(chan),
            terminators=terminators, any_terminates="y" in opts,
            operator_key="0" if "o" in opts else "", truncate_silence="u" not in opts)
    except BaseException:
        writer.discard()
        raise
    if status == "HANGUP" and "k" not in opts:
        writer.discard()
    else:
        writer.close()
    chan.datastores["RECORDING_INFO"] = {"duration": int(elapsed * 1000)}
    chan.set_var("RECORD_STATUS", status)
    return -1 if status == "HANGUP" else None


def _silence_threshold(chan: "Channel") -> int:
    module = chan.pbx.modules.loaded.get("app_record")
    return int(getattr(module, "threshold", DEFAULT_SILENCE_THRESHOLD))


def func_recording_info(chan: "Channel | None", args: str) -> str:
    info = chan.datastores.get("RECORDING_INFO") if chan is not None else None
    if info is None or args.strip().lower() != "duration":
        return ""
    return str(info["duration"])


# ---------------------------------------------------------------------- SendDTMF, Echo
async def app_senddtmf(chan: "Channel", data: str) -> int | None:
    digits, interval, duration, channel, options = _args(data, 5)
    if not digits:
        log.warning("SendDTMF requires an argument")
        return None
    between = parse_timelen(interval, 0.001) or 0.0
    between = 0.25 if between <= 0 else between
    length = max(parse_timelen(duration, 0.001) or 0.0, 0.1)
    target = chan
    if channel.strip():
        found = chan.pbx.channels.get(channel.strip())
        if found is None:
            log.warning("No such channel: %s", channel)
            return None
        target = found
    if "a" in parse_options(options):
        await target.answer()
    ok = await target.wait(0.1)
    for ch in digits:
        if not ok:
            break
        if ch in "wW":
            ok = await target.wait(0.5 if ch == "w" else 1.0)
        elif ch in "0123456789*#abcdABCDfF":
            if ch not in "fF":
                await target.send_digit(ch.upper(), int(length * 1000))
                ok = await target.wait(length)
            ok = ok and await target.wait(between)
        else:
            log.warning("Illegal DTMF character '%s' in string. (0-9*#aAbBcCdD allowed)", ch)
    return None if target is not chan else _done(chan)


async def app_echo(chan: "Channel", data: str) -> int | None:
    while not chan.softhangup:
        for event in await next_events(chan, None):
            if isinstance(event, str):
                await chan.send_digit(event)
                if event == "#":
                    return None
            elif event.kind == "voice":
                await chan.write_frame(event)
    return -1


# ---------------------------------------------------------------------- tones, music on hold
def indication(chan: "Channel", name: str) -> str | None:
    """The tone string of an indication (``dial``, ``busy``...) in the default country
    of indications.conf (as app_playtones loaded it), else the US one."""
    tones = getattr(chan.pbx.modules.loaded.get("app_playtones"), "tones", US_TONES)
    return tones.get(name.strip().lower())


def _moh_classes(chan: "Channel") -> dict[str, MohClass]:
    classes = getattr(chan.pbx.modules.loaded.get("res_musiconhold"), "classes", None)
    return classes if isinstance(classes, dict) else load_moh_classes(None)


async def app_playtones(chan: "Channel", data: str) -> int | None:
    if not data.strip():
        log.info("Nothing to play")
        return -1
    spec = indication(chan, data) or data
    try:
        parse_tone(spec)
    except ToneError:
        log.info("Unable to start playtones")
        return -1
    start_generator(chan, tone_frames(spec))
    return None


def app_stopplaytones(chan: "Channel", data: str) -> None:
    stop_generator(chan)


async def app_milliwatt(chan: "Channel", data: str) -> int:
    if "o" in data:
        await chan.answer()
        gen = Milliwatt("o")
        frames: Iterable[bytes] = iter(lambda: gen.read(FRAME_BYTES // 2), None)
    elif "m" in data:
        frames = tone_frames("1004/9000,0/1000", amplitude=MILLIWATT_AMPLITUDE)
    else:
        gen = Milliwatt()
        frames = iter(lambda: gen.read(FRAME_BYTES // 2), None)
    await play(chan, frames)
    return -1


async def app_musiconhold(chan: "Channel", data: str) -> int | None:
    mclass, duration = _args(data, 2)
    seconds = -1
    if duration.strip():
        if re.match(r"\s*[+-]?\d", duration):
            seconds = _atoi(duration)
        else:
            log.warning("Invalid MusicOnHold duration '%s'. Will wait indefinitely.", duration)
    if not start_moh(chan, _moh_classes(chan), mclass.strip()):
        log.warning("Unable to start music on hold class '%s' on channel %s", mclass, chan.name)
        return None
    try:
        up = await chan.wait(seconds) if seconds > 0 else await chan.hangup_event.wait() and False
    finally:
        stop_generator(chan)
    return None if up else -1


def app_startmusiconhold(chan: "Channel", data: str) -> None:
    if not start_moh(chan, _moh_classes(chan), split_args(data)[0].strip()):
        log.warning("Unable to start music on hold class '%s' on channel %s", data, chan.name)


def app_stopmusiconhold(chan: "Channel", data: str) -> None:
    stop_generator(chan)


# ---------------------------------------------------------------------- TIMEOUT()
def _timeout_read(chan: "Channel | None", args: str) -> str:
    kind = args.strip()[:1].lower()
    if chan is None or kind not in ("d", "r", "a"):
        log.error("Unknown timeout type specified.")
        return ""
    if kind == "a":
        return str(chan.datastores.get("hookflash.absolute_timeout_text", "0"))
    return f"{timeouts(chan)['digit' if kind == 'd' else 'response']:.3f}"


def _timeout_write(chan: "Channel | None", args: str, value: str) -> None:
    kind = args.strip()[:1].lower()
    if chan is None or kind not in ("d", "r", "a"):
        log.error("Unknown timeout type specified.")
        return
    match = re.match(r"\s*(\d+(?:\.\d*)?)", value)
    seconds = float(match.group(1)) if match else 0.0
    if kind == "a":
        old = chan.datastores.pop("hookflash.absolute_timeout", None)
        if old is not None:
            old.cancel()
        chan.datastores["hookflash.absolute_timeout_text"] = f"{seconds:.3f}" if seconds else "0"
        if seconds:
            handle = asyncio.get_running_loop().call_later(seconds, chan.request_hangup)
            chan.datastores["hookflash.absolute_timeout"] = handle
        chan.pbx.verbose(3, f"Channel will hangup in {seconds:.3f} seconds." if seconds
                         else "Channel hangup cancelled.")
        return
    key = "digit" if kind == "d" else "response"
    timeouts(chan)[key] = seconds
    chan.pbx.verbose(3, f"{'Digit' if kind == 'd' else 'Response'} timeout set to {seconds:.3f}")


# ---------------------------------------------------------------------- modules
def _app(name: str, fn: Any, synopsis: str, syntax: str, description: str = "") -> Application:
    return Application(name, fn, synopsis, syntax, description)


class _AppModule(Module):
    """A module offering a fixed list of applications and functions."""

    apps: tuple[Application, ...] = ()
    funcs: tuple[Function, ...] = ()

    def applications(self) -> list[Application]:
        return list(self.apps)

    def functions(self) -> list[Function]:
        return list(self.funcs)

    async def reload(self) -> str | None:
        await self.start()
        return None


class PlaybackModule(_AppModule):
    description = "Sound File Playback Application"
    apps = (_app("Playback", app_playback, "Play a file.", "Playback(filename[&filename2[&...]][,options])",
                 "Answers first unless 'noanswer'; 'skip' does nothing if not answered. "
                 "Sets PLAYBACKSTATUS to SUCCESS or FAILED (a missing file)."),)


class ReadModule(_AppModule):
    description = "Read Variable Application"
    apps = (_app("Read", app_read, "Read a variable.",
                 "Read(variable[,filename[&filename2[&...]]][,maxdigits[,options[,attempts[,timeout]]]])",
                 "Options s (skip), i (filename is an indication), n (don't answer), t(chars) "
                 "terminators, e (keep terminator). Sets READSTATUS: OK, ERROR, HANGUP, "
                 "INTERRUPTED, SKIPPED, TIMEOUT."),)


class RecordModule(_AppModule):
    description = "Trivial Record Application"
    threshold = DEFAULT_SILENCE_THRESHOLD
    apps = (_app("Record", app_record, "Record to a file.",
                 "Record(filename.format[,silence[,maxduration[,options]]])",
                 "Options a k n o q s t u x y. Sets RECORDED_FILE and RECORD_STATUS "
                 "(DTMF, SILENCE, SKIP, TIMEOUT, HANGUP, OPERATOR, ERROR)."),)
    funcs = (Function("RECORDING_INFO", func_recording_info, None,
                      "Retrieve information about a recording previously created by Record.",
                      "RECORDING_INFO(duration)"),)

    async def start(self) -> None:
        """dsp.conf ``[default] silencethreshold`` (256)."""
        conf = self.pbx.read_config("dsp.conf")
        value = _atoi(conf.get("default", "silencethreshold") if conf is not None else None)
        self.threshold = value if value > 0 else DEFAULT_SILENCE_THRESHOLD


class SendDtmfModule(_AppModule):
    description = "Send DTMF digits Application"
    apps = (_app("SendDTMF", app_senddtmf, "Sends arbitrary DTMF digits.",
                 "SendDTMF(digits[,timeout_ms[,duration_ms[,channel[,options]]]])",
                 "'w' waits half a second, 'W' a second."),)


class EchoModule(_AppModule):
    description = "Simple Echo Application"
    apps = (_app("Echo", app_echo, "Echo media, DTMF back to the calling party.", "Echo()",
                 "Ends when '#' is received."),)


class MilliwattModule(_AppModule):
    description = "Digital Milliwatt (mu-law) Test Application"
    apps = (_app("Milliwatt", app_milliwatt, "Generates a 1004 Hz test tone at 0dbm (mu-law).",
                 "Milliwatt([options])", "'m': 1 s of silence every 10 s; 'o': the old 1000 Hz."),)


class PlaytonesModule(_AppModule):
    description = "Playtones Application"
    tones: dict[str, str] = US_TONES
    apps = (_app("PlayTones", app_playtones, "Play a tone list.", "PlayTones(arg)",
                 "arg: an indication name (dial, busy, ring, congestion...) or a tone string."),
            _app("StopPlayTones", app_stopplaytones, "Stop playing a tone list.", "StopPlayTones()"))

    async def start(self) -> None:
        self.tones = load_indications(self.pbx.read_config("indications.conf"))


class MusicOnHoldModule(_AppModule):
    description = "Music On Hold Resource"
    classes: dict[str, MohClass] = {}
    apps = (_app("MusicOnHold", app_musiconhold, "Play Music On Hold indefinitely.",
                 "MusicOnHold(class[,duration])"),
            _app("StartMusicOnHold", app_startmusiconhold, "Play Music On Hold.", "StartMusicOnHold(class)"),
            _app("StopMusicOnHold", app_stopmusiconhold, "Stop playing Music On Hold.", "StopMusicOnHold()"))

    async def start(self) -> None:
        self.classes = load_moh_classes(self.pbx.read_config("musiconhold.conf"))


class MediaBuiltinsModule(_AppModule):
    description = "Builtin media applications (Background, WaitExten, Say*)"
    apps = (
        _app("BackGround", app_background, "Play an audio file while waiting for digits of an extension.",
             "Background(filename[&filename2[&...]][,options[,langoverride[,context]]])",
             "Options s (skip), n (noanswer), m (match only one-digit extensions), p (playback only)."),
        _app("WaitExten", app_waitexten, "Waits for an extension to be entered.",
             "WaitExten([seconds][,options])", "Options m([class]) music on hold, d([tone]) dial tone."),
        _app("SayDigits", app_saydigits, "Say Digits.", "SayDigits(digits)"),
        _app("SayNumber", app_saynumber, "Say Number.", "SayNumber(digits[,gender])"),
        _app("SayAlpha", app_sayalpha, "Say Alpha.", "SayAlpha(string)"),
        _app("SayPhonetic", app_sayphonetic, "Say Phonetic.", "SayPhonetic(string)"),
    )


class TimeoutModule(_AppModule):
    description = "Channel timeout dialplan functions"
    funcs = (Function("TIMEOUT", _timeout_read, _timeout_write, "Channel timeout related functions.",
                      "TIMEOUT(timeouttype)", "digit, response or absolute, in seconds."),)
