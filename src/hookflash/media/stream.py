"""Playing and recording on a channel: paced 20 ms output, digit interruption,
background generators, and recording with silence detection.

``play`` sends frames on the event loop's clock: frame *n* is due at
``start + n * 20 ms`` (deadlines never drift; a late frame goes out at once and the
following ones catch up). Like ``ast_waitstream``, digits in ``interrupt`` stop it and
are returned; other digits arriving meanwhile are read and dropped.

A *generator* (Asterisk's ``ast_activate_generator``: Playtones, music on hold,
WaitExten's dial tone) runs as a task beside the dialplan until stopped, until the
channel hangs up, or until ``play`` starts on the channel.

``record`` follows app_record's loop: voice frames are written, a frame whose average
absolute amplitude is below the threshold is silent (``dsp.conf``'s
``silencethreshold``, 256), and the recording ends on a terminator digit, after more
than ``silence_seconds`` of continuous silence, at ``max_seconds`` or on hangup. As
Asterisk does, the trailing silence is cut to one second and a recording ended by a
digit loses its last 250 ms (the start of the DTMF tone).

``getdata`` reads digits after prompts as ``ast_app_getdata_terminator`` does (Read).
Indications (``indications.conf``, US defaults built in) and music-on-hold classes
(``musiconhold.conf``) are parsed here; their applications live in
:mod:`hookflash.apps.media`.

Not done as Asterisk does: no transmit_silence generator while recording, no video
frames, no control frames; the silence detector is the per-frame energy test only
(``ast_dsp_silence`` with its defaults behaves the same on 20 ms frames); music on
hold: only ``files`` and ``playlist`` modes, no position kept between holds, ``random``
shuffles once per pass; per-channel tone zones (``CHANNEL(tonezone)``) are not used.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from hookflash.channels.channel import Frame
from hookflash.media.files import (FRAME_BYTES, FRAME_SAMPLES, SoundFileError, find_sound,
                                   list_sounds, open_sound)

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.conf import ConfigFile

log = logging.getLogger("hookflash.media")

FRAME_SECONDS = 0.020
ANY_DIGIT = "0123456789*#ABCD"
DEFAULT_SILENCE_THRESHOLD = 256
_GENERATOR = "hookflash.generator"
_MAX_BURST = 25  # frames: further behind than this, re-anchor instead of bursting


class SoundNotFound(SoundFileError):
    """No file of that name in any format or language."""


def _frame(item: bytes | Frame) -> Frame:
    if isinstance(item, Frame):
        return item
    return Frame("voice", item, len(item) // 2)


def _take_digit(chan: "Channel", interrupt: str) -> str | None:
    """The first queued digit that interrupts; others are dropped (as Asterisk does)."""
    while not chan.dtmf.empty():
        digit = chan.dtmf.get_nowait()
        if digit in interrupt:
            return digit
    return None


async def _sleep_until(chan: "Channel", deadline: float, interrupt: str) -> str | None:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0 or chan.softhangup:
            return None
        if not interrupt:
            _take_digit(chan, "")
            await chan.wait(remaining)
            continue
        digit = await chan.wait_digit(remaining)
        if digit is None:
            continue
        if digit in interrupt:
            return digit


async def _paced(chan: "Channel", frames: Iterable[bytes | Frame], interrupt: str,
                 max_seconds: float | None = None) -> str | None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for item in frames:
        if chan.softhangup:
            return None
        digit = _take_digit(chan, interrupt)
        if digit:
            return digit
        await chan.write_frame(_frame(item))
        sent += 1
        deadline = start + sent * FRAME_SECONDS
        late = loop.time() - deadline
        if late > _MAX_BURST * FRAME_SECONDS:  # the loop stalled: don't burst seconds
            start += late
            deadline += late
        if late >= 0:
            await asyncio.sleep(0)
        digit = await _sleep_until(chan, deadline, interrupt)
        if digit:
            return digit
        if max_seconds is not None and sent * FRAME_SECONDS >= max_seconds:
            return None
    return None


async def play(chan: "Channel", frames: Iterable[bytes | Frame], *, interrupt: str = "",
               max_seconds: float | None = None) -> str | None:
    """Send ``frames`` (320-byte slin or Frame) at 20 ms intervals. Returns the digit
    (one of ``interrupt``) that stopped it, else None (finished, or hung up: check
    ``chan.softhangup``). Stops any generator running on the channel first."""
    stop_generator(chan)
    return await _paced(chan, frames, interrupt, max_seconds)


# ---------------------------------------------------------------------- files
def locate(chan: "Channel", name: str, language: str | None = None) -> tuple[Path, str] | None:
    """``find_sound`` with the channel's language and the PBX's directories."""
    pbx = chan.pbx
    prefix = getattr(getattr(pbx, "asterisk_conf", None), "options", None)
    return find_sound(name, language or chan.language, pbx.dirs.astdatadir,
                      languageprefix=getattr(prefix, "languageprefix", True))


async def play_file(chan: "Channel", name: str, *, interrupt: str = "",
                    language: str | None = None) -> str | None:
    """Stream one prompt (``ast_streamfile`` + ``ast_waitstream``). Raises
    SoundNotFound when it exists in no format; returns the interrupting digit."""
    found = locate(chan, name, language)
    if found is None:
        raise SoundNotFound(f"File {name} does not exist in any format")
    path, fmt = found
    shown = f"{name}.{fmt}" if not name.endswith(f".{fmt}") else name
    chan.pbx.verbose(3, f"<{chan.name}> Playing '{shown}' (language '{language or chan.language}')")
    return await play(chan, open_sound(path, fmt), interrupt=interrupt)


# ---------------------------------------------------------------------- generators
def start_generator(chan: "Channel", frames: Iterable[bytes | Frame]) -> None:
    """Play ``frames`` in the background until stopped, exhausted or hung up."""
    stop_generator(chan)
    task = chan.pbx.spawn(_paced(chan, frames, ""))
    chan.datastores[_GENERATOR] = task


def stop_generator(chan: "Channel") -> bool:
    task = chan.datastores.pop(_GENERATOR, None)
    if task is None:
        return False
    task.cancel()
    return True


def generator_running(chan: "Channel") -> bool:
    task = chan.datastores.get(_GENERATOR)
    return task is not None and not task.done()


# ---------------------------------------------------------------------- recording
class FrameSink(Protocol):
    def write(self, pcm: bytes) -> None: ...


def frame_is_silent(pcm: bytes, threshold: int = DEFAULT_SILENCE_THRESHOLD) -> bool:
    """Asterisk's test: average absolute amplitude below the threshold."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    if not len(samples):
        return True
    return float(np.abs(samples.astype(np.int32)).mean()) < threshold


async def next_events(chan: "Channel", timeout: float | None) -> list[Frame | str]:
    """What arrived first: queued digits and frames, or waits for either (or hangup)."""
    ready: list[Frame | str] = []
    while not chan.dtmf.empty():
        ready.append(chan.dtmf.get_nowait())
    while not chan.media.empty() and len(ready) < 8:
        ready.append(chan.media.get_nowait())
    if ready or chan.softhangup:
        return ready
    media = asyncio.ensure_future(chan.media.get())
    dtmf = asyncio.ensure_future(chan.dtmf.get())
    hangup = asyncio.ensure_future(chan.hangup_event.wait())
    try:
        await asyncio.wait({media, dtmf, hangup}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (media, dtmf, hangup):
            if not task.done():
                task.cancel()
    for task in (dtmf, media):
        if task.done() and not task.cancelled():
            ready.append(task.result())
    return ready


async def record(chan: "Channel", writer: FrameSink, *, max_seconds: float = 0,
                 silence_seconds: float = 0,
                 silence_threshold: int = DEFAULT_SILENCE_THRESHOLD,
                 terminators: str = "#", any_terminates: bool = False,
                 operator_key: str = "", truncate_silence: bool = True) -> tuple[str, float]:
    """Record what the channel sends into ``writer`` until a terminator digit
    ("DTMF"; ``operator_key`` gives "OPERATOR"), more than ``silence_seconds`` of
    silence ("SILENCE"), ``max_seconds`` ("TIMEOUT") or hangup ("HANGUP").
    Returns (status, seconds elapsed). 0 disables a limit."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + max_seconds if max_seconds > 0 else None
    silence_ms = int(silence_seconds * 1000)
    silent_ms = 0
    holdback = max(silence_ms - 1000, 250) * 16  # bytes of 8 kHz slin kept unwritten
    tail = bytearray()
    status = ""
    while not status:
        if chan.softhangup:
            status = "HANGUP"
            break
        timeout = None if end is None else end - loop.time()
        if timeout is not None and timeout <= 0:
            status = "TIMEOUT"
            break
        for event in await next_events(chan, timeout):
            if isinstance(event, Frame) and event.kind == "dtmf":
                event = event.payload.decode(errors="replace")
            if isinstance(event, str):
                if operator_key and event == operator_key:
                    status = "OPERATOR"
                elif any_terminates or (event and event in terminators):
                    status = "DTMF"
                if status:
                    break
                continue
            if event.kind != "voice":
                continue
            tail += event.payload
            if len(tail) > holdback:
                writer.write(bytes(tail[: len(tail) - holdback]))
                del tail[: len(tail) - holdback]
            if silence_ms > 0:
                frame_ms = len(event.payload) // 16
                silent_ms = silent_ms + frame_ms if frame_is_silent(event.payload, silence_threshold) else 0
                if silent_ms > silence_ms:
                    status = "SILENCE"
                    break
    elapsed = loop.time() - start
    cut = 0
    if status == "SILENCE" and truncate_silence:
        cut = max(silence_ms - 1000, 0) * 16
    elif status in ("DTMF", "OPERATOR", "SILENCE"):
        cut = 250 * 16
    keep = max(len(tail) - cut, 0)
    if keep:
        writer.write(bytes(tail[:keep]))
    return status, elapsed


# ---------------------------------------------------------------------- reading digits
async def _readstring(chan: "Channel", frames: Iterable[bytes] | None, maxlen: int,
                      to: float, fto: float, enders: str) -> tuple[str, str]:
    """``ast_readstring``: (result, digits); result COMPLETE, EMPTY (a terminator
    first), TIMEOUT or FAILED (hangup). The prompt stops at the first digit."""
    digits = ""
    digit: str | None = None
    if frames is not None:
        digit = await play(chan, frames, interrupt=ANY_DIGIT)
    wait = fto
    while True:
        if digit is None and not chan.softhangup:
            digit = await chan.wait_digit(wait)
        if digit is None:
            return ("FAILED" if chan.softhangup else "TIMEOUT"), digits
        if digit in enders and not digits:
            return "EMPTY", ""
        if digit not in enders:
            digits += digit
        if digit in enders or len(digits) >= maxlen:
            return "COMPLETE", digits
        wait, digit = to, None


async def getdata(chan: "Channel", prompts: str, maxlen: int, timeout: float, enders: str = "#",
                  *, response: float = 10.0, digit: float = 5.0) -> tuple[str, str]:
    """``ast_app_getdata_terminator``: play each ``&`` prompt and read digits. After a
    prompt that is not the last, 50 ms for a first digit; after the last, ``response``
    for the first and ``digit`` between digits, or ``timeout`` for both. A missing
    prompt is skipped; if the last one is missing the result is FAILED."""
    fronts = [f.strip() for f in prompts.split("&")] if prompts else [""]
    result, digits = "FAILED", ""
    for i, front in enumerate(fronts):
        frames = None
        if front:
            found = locate(chan, front)
            if found is None:
                log.warning("File %s does not exist in any format", front)
                result = "FAILED"
                continue
            frames = open_sound(*found)
        if i == len(fronts) - 1:
            fto, to = (timeout, timeout) if timeout > 0 else (response, digit)
        else:
            fto, to = 0.05, digit
        result, digits = await _readstring(chan, frames, maxlen, to, fto, enders)
        if result in ("EMPTY", "FAILED") or digits:
            return result, digits
    return result, digits


async def read_with_tone(chan: "Channel", tone: Iterable[bytes], maxdigits: int, wait: float,
                         enders: str = "#") -> tuple[str, str]:
    """Read's ``i`` option: a tone plays (in the background) until the first digit."""
    start_generator(chan, tone)
    digits = ""
    try:
        while len(digits) < maxdigits:
            digit = await chan.wait_digit(wait)
            stop_generator(chan)
            if digit is None:
                return ("FAILED" if chan.softhangup else "TIMEOUT"), digits
            if digit in enders:
                return "COMPLETE", digits
            digits += digit
    finally:
        stop_generator(chan)
    return "COMPLETE", digits


# ---------------------------------------------------------------------- indications, music on hold
US_TONES: dict[str, str] = {  # indications.conf [us], Asterisk's sample values
    "dial": "350+440", "busy": "480+620/500,0/500", "ring": "440+480/2000,0/4000",
    "congestion": "480+620/250,0/250", "callwaiting": "440/300,0/10000",
    "dialrecall": "!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440",
    "record": "1400/500,0/15000", "info": "!950/330,!1400/330,!1800/330,0",
    "stutter": "!350+440/100,!0/100," * 6 + "350+440",
}


def load_indications(conf: "ConfigFile | None") -> dict[str, str]:
    """indications.conf: the tones of ``[general] country`` (default us) over the US ones."""
    tones = dict(US_TONES)
    if conf is not None:
        country = (conf.get("general", "country", "us") or "us").lower()
        for section in conf.sections_named(country):
            for key, value in section.items():
                if key.lower() not in ("description", "ringcadence", "alias"):
                    tones[key.lower()] = value
    return tones


@dataclass(frozen=True, slots=True)
class MohClass:
    """A musiconhold.conf class: ``mode=files`` (``directory``, ``sort=alpha|random|
    randstart``) or ``mode=playlist`` (``entry=`` lines)."""

    name: str
    mode: str = "files"
    directory: str = "moh"
    sort: str = ""
    entries: tuple[str, ...] = ()

    def sounds(self, datadir: Path) -> list[str]:
        if self.mode == "playlist":
            return list(self.entries)
        if self.mode != "files":
            log.warning("Music on hold mode '%s' is not supported", self.mode)
            return []
        names = list_sounds(Path(datadir) / self.directory)  # an absolute directory wins
        return sorted(names, key=str.lower) if self.sort == "alpha" else names


def load_moh_classes(conf: "ConfigFile | None") -> dict[str, MohClass]:
    """Classes by lower-cased name; ``default`` (files in ``<astdatadir>/moh``, alpha)
    unless the file defines it, as Asterisk's sample configuration does."""
    classes: dict[str, MohClass] = {}
    for name in conf.section_names() if conf is not None else []:
        section = conf.sections_named(name)[-1] if conf is not None else None
        if section is None or name.lower() == "general":
            continue
        classes[name.lower()] = MohClass(name, (section.get("mode") or "files").lower(),
                                         section.get("directory") or "",
                                         (section.get("sort") or "").lower(),
                                         tuple(section.getall("entry")))
    classes.setdefault("default", MohClass("default", sort="alpha"))
    return classes


def start_moh(chan: "Channel", classes: dict[str, MohClass], wanted: str) -> bool:
    """Start music on hold: the channel's music class, else ``wanted``, else default."""
    for name in (chan.musicclass, wanted, "default"):
        moh = classes.get(name.lower()) if name else None
        if moh is None:
            continue
        names = moh.sounds(chan.pbx.dirs.astdatadir)
        if not names:
            chan.pbx.verbose(3, f"Files not found in {moh.directory} for moh class:{moh.name}")
            return False
        chan.pbx.verbose(3, f"Started music on hold, class '{moh.name}', on channel '{chan.name}'")
        start_generator(chan, loop_sounds(chan, names, moh.sort))
        return True
    return False


def loop_sounds(chan: "Channel", names: list[str], sort: str = "") -> Iterator[bytes]:
    """Frames of the named sounds played in a loop (music on hold): in the given order,
    from a random one (``randstart``) or shuffled each pass (``random``). Ends if a
    whole pass finds nothing playable."""
    order = list(names)
    if sort == "randstart" and order:
        start = random.randrange(len(order))
        order = order[start:] + order[:start]
    while True:
        if sort == "random":
            random.shuffle(order)
        played = False
        for name in order:
            found = locate(chan, name)
            if found is None:
                continue
            try:
                for frame in open_sound(*found):
                    played = True
                    yield frame
            except SoundFileError as exc:
                log.warning("Unable to open file '%s': %s", name, exc)
        if not played:
            return


def silence_frames(seconds: float) -> Iterable[bytes]:
    """Frames of silence (for beeps' gaps, tests)."""
    return (b"\0" * FRAME_BYTES for _ in range(int(round(seconds / FRAME_SECONDS))))


__all__ = ["ANY_DIGIT", "FRAME_SAMPLES", "US_TONES", "MohClass", "SoundNotFound", "frame_is_silent",
           "generator_running", "getdata", "load_indications", "load_moh_classes", "locate",
           "loop_sounds", "next_events", "play", "play_file", "read_with_tone", "record",
           "silence_frames", "start_generator", "start_moh", "stop_generator"]
