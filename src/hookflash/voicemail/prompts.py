"""Playing prompt sequences and recording in every configured format, for the
voicemail applications.

``say_date`` speaks a message's date as Asterisk's default English envelope format
``'vm-received' q 'digits/at' IMp`` does: "today" / "yesterday" / weekday, month and
ordinal day, then "at", the hour, the minutes and a.m./p.m.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.media import say
from hookflash.media.files import FRAME_BYTES, SoundFileError, SoundWriter, open_sound
from hookflash.media.stream import SoundNotFound, locate, play, play_file, record
from hookflash.media.tone import tone_frames
from hookflash.voicemail.config import format_extension

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.voicemail")

ANY_KEY = "0123456789*#"


async def play_names(chan: Channel, names: Iterable[str], interrupt: str = "") -> str | None:
    """Play each prompt; a missing one is logged and skipped. Returns the interrupting
    digit, or None (finished or hung up)."""
    for name in names:
        if chan.softhangup:
            return None
        try:
            digit = await play_file(chan, name, interrupt=interrupt)
        except SoundFileError as exc:
            log.warning("%s: %s", chan.name, exc)
            continue
        if digit:
            return digit
    return None


async def play_path(chan: Channel, path: Path, ext: str, interrupt: str = "") -> str | None:
    try:
        frames = open_sound(path, ext)
    except SoundFileError as exc:
        log.warning("%s: cannot play %s: %s", chan.name, path, exc)
        return None
    chan.pbx.verbose(3, f"<{chan.name}> Playing '{path}'")
    return await play(chan, frames, interrupt=interrupt)


async def beep(chan: Channel) -> None:
    try:
        await play_file(chan, "beep")
    except SoundNotFound:
        await play(chan, itertools.islice(tone_frames("1000", amplitude=8000), 12))


def number(n: int) -> list[str]:
    return say.number_files(n)


def digits(text: str) -> list[str]:
    return say.digit_files(text)


def date_prompts(when: datetime, now: datetime) -> list[str]:
    names: list[str] = []
    if when.date() == now.date():
        names.append("digits/today")
    elif when.date() == (now - timedelta(days=1)).date():
        names.append("digits/yesterday")
    else:
        names.append(f"digits/day-{(when.weekday() + 1) % 7}")  # day-0 is Sunday
        names.append(f"digits/mon-{when.month - 1}")
        day = when.day
        if day <= 20 or day % 10 == 0:
            names.append(f"digits/h-{day}")
        else:
            names += [f"digits/{day // 10 * 10}", f"digits/h-{day % 10}"]
    names.append("digits/at")
    hour = when.hour % 12 or 12
    names += number(hour)
    if when.minute == 0:
        names.append("digits/oclock")
    elif when.minute < 10:
        names += ["digits/oh", f"digits/{when.minute}"]
    else:
        names += number(when.minute)
    names.append("digits/p-m" if when.hour >= 12 else "digits/a-m")
    return names


class MultiWriter:
    """Records one stream of slin into one durable file per format (in the store's
    ``tmp`` directory); ``close`` finishes them in a worker thread."""

    def __init__(self, directory: Path, formats: Iterable[str]) -> None:
        self.directory = directory
        stem = f"rec-{uuid.uuid4().hex}"
        self.writers: dict[str, SoundWriter] = {}
        for fmt in formats:
            ext = format_extension(fmt)
            if ext not in self.writers:
                self.writers[ext] = SoundWriter(directory / f"{stem}.{ext}", ext)

    def write(self, pcm: bytes) -> None:
        for writer in self.writers.values():
            writer.write(pcm)

    @property
    def duration(self) -> float:
        first = next(iter(self.writers.values()), None)
        return first.duration if first is not None else 0.0

    async def close(self) -> dict[str, Path]:
        """Finish every file (flush, fsync, rename), the formats in parallel threads."""
        exts = list(self.writers)
        done = await asyncio.gather(*(asyncio.to_thread(self.writers[e].close) for e in exts))
        return dict(zip(exts, done))

    def discard(self) -> None:
        for writer in self.writers.values():
            writer.discard()
            writer.path.unlink(missing_ok=True)


async def record_formats(chan: Channel, directory: Path, formats: Iterable[str], **kwargs: Any
                         ) -> tuple[MultiWriter, str]:
    """Record until a terminator, silence, max time or hangup; returns the writer (not
    yet closed) and the status of :func:`hookflash.media.stream.record`."""
    writer = MultiWriter(directory, formats)
    chan.flush_media()
    try:
        status, _elapsed = await record(chan, writer, **kwargs)
    except BaseException:
        writer.discard()
        raise
    return writer, status


class Cursor:
    """Frames of a message with a movable position (``*`` rewinds, ``#`` skips)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.pos = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.pos < len(self.frames):
            frame = self.frames[self.pos]
            self.pos += 1
            yield frame


async def play_message_audio(chan: Channel, path: Path, ext: str, skipms: int,
                             interrupt: str) -> str | None:
    """Play with ``*``/``#`` moving back/forward ``skipms``; other digits in
    ``interrupt`` stop playback and are returned."""
    try:
        frames = await asyncio.to_thread(lambda: list(open_sound(path, ext)))
    except SoundFileError as exc:
        log.warning("%s: cannot play %s: %s", chan.name, path, exc)
        return None
    chan.pbx.verbose(3, f"<{chan.name}> Playing '{path}'")
    cursor = Cursor(frames)
    step = max(skipms // 20, 1)
    keys = interrupt + "*#"
    while True:
        digit = await play(chan, cursor, interrupt=keys)
        if digit == "*":
            cursor.pos = max(cursor.pos - step, 0)
        elif digit == "#":
            cursor.pos = min(cursor.pos + step, len(frames))
        else:
            return digit


def sound_exists(chan: Channel, name: str) -> bool:
    return locate(chan, name) is not None


__all__ = ["ANY_KEY", "FRAME_BYTES", "MultiWriter", "beep", "date_prompts", "digits", "number",
           "play_message_audio", "play_names", "play_path", "record_formats", "sound_exists"]
