"""Sound files: finding a prompt the way Asterisk's ``main/file.c`` does, reading it as
20 ms frames of 8 kHz signed linear, and writing recordings durably.

Lookup (``find_sound``): an absolute name is used as given; a relative one is looked for
under ``<datadir>/sounds`` trying, in order, the channel's language, that language with
each ``_suffix`` removed (``en_US`` -> ``en``), no language, then the default ``en``.
With ``languageprefix`` (Asterisk's default) the language is a directory in front of
the name (``sounds/en/digits/1``); without it, it goes in front of the last path
element (``sounds/digits/en/1``). The first place holding the name in any format wins;
there the format needing least conversion is chosen (slin/wav, then G.711, then GSM).
A name may carry its extension (``beep.wav``).

Formats, by file extension (several extensions per format, as Asterisk's format
modules register them): ``sln``/``raw`` (slin 8 kHz), ``sln16`` (slin 16 kHz),
``wav`` (PCM WAV at any rate; resampled), ``wav16``, ``ulaw``/``pcm``/``mu``/``ul``/
``ulw``, ``alaw``/``al``/``alw``, ``gsm`` (raw GSM 06.10) and ``WAV``/``wav49`` (GSM in
WAV). Every format is read and written by libsndfile (``soundfile``).

Not done as Asterisk does: no translation-cost matrix (a fixed preference order
instead); no g729/g722/ogg/h263 formats; no remote (http) sounds or media cache; no
``sounds_search_custom_dir``; appending to a GSM file re-encodes the old audio (GSM
files cannot be opened read/write by libsndfile).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]

log = logging.getLogger("hookflash.media.files")

RATE = 8000
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class SoundFormat:
    """One file format: the libsndfile container/subtype and the nominal rate."""

    name: str
    container: str  # 'RAW' or 'WAV'
    subtype: str
    rate: int = RATE

    @property
    def raw(self) -> bool:
        return self.container == "RAW"

    @property
    def read_write(self) -> bool:
        """Whether libsndfile can open it for appending (GSM cannot)."""
        return self.subtype != "GSM610"


_SLIN = SoundFormat("slin", "RAW", "PCM_16")
_SLIN16 = SoundFormat("slin16", "RAW", "PCM_16", 16000)
_WAV = SoundFormat("wav", "WAV", "PCM_16")
_WAV16 = SoundFormat("wav16", "WAV", "PCM_16", 16000)
_ULAW = SoundFormat("ulaw", "RAW", "ULAW")
_ALAW = SoundFormat("alaw", "RAW", "ALAW")
_GSM = SoundFormat("gsm", "RAW", "GSM610")
_WAV49 = SoundFormat("wav49", "WAV", "GSM610")

# extension -> format; dict order is the preference order for lookups
FORMATS: dict[str, SoundFormat] = {
    "sln": _SLIN, "raw": _SLIN, "wav": _WAV, "sln16": _SLIN16, "wav16": _WAV16,
    "ulaw": _ULAW, "pcm": _ULAW, "mu": _ULAW, "ul": _ULAW, "ulw": _ULAW,
    "alaw": _ALAW, "al": _ALAW, "alw": _ALAW,
    "gsm": _GSM, "WAV": _WAV49, "wav49": _WAV49,
}
PREFERRED: tuple[str, ...] = tuple(FORMATS)


class SoundFileError(Exception):
    """A sound file could not be read or written."""


# ---------------------------------------------------------------------- lookup
def language_candidates(language: str) -> list[str | None]:
    """Languages to try, in file.c's order (None = no language directory)."""
    tried: list[str | None] = []
    lang = language
    while lang:
        tried.append(lang)
        cut = lang.rfind("_")
        if cut < 0:
            break
        lang = lang[:cut]
    tried.append(None)
    if DEFAULT_LANGUAGE not in tried:
        tried.append(DEFAULT_LANGUAGE)
    return tried


def _with_language(name: str, lang: str | None, prefix: bool) -> str:
    if lang is None:
        return name
    if prefix:
        return f"{lang}/{name}"
    head, slash, tail = name.rpartition("/")
    return f"{head}{slash}{lang}/{tail}"


def _formats_at(base: Path, preferred: Sequence[str]) -> tuple[Path, str] | None:
    for ext in preferred:
        path = base.with_name(f"{base.name}.{ext}")
        if path.is_file():
            return path, ext
    return None


def _split_known_ext(name: str) -> tuple[str, str | None]:
    stem, dot, ext = name.rpartition(".")
    if dot and ext in FORMATS and "/" not in ext and stem:
        return stem, ext
    return name, None


def find_sound(name: str, language: str, datadir: Path | str,
               preferred_formats: Sequence[str] | None = None, *,
               languageprefix: bool = True) -> tuple[Path, str] | None:
    """Where ``name`` lives and in which format (the file's extension), or None."""
    preferred = [e for e in (preferred_formats or PREFERRED) if e in FORMATS]
    stem, ext = _split_known_ext(name)
    if name.startswith("/"):
        if ext and Path(name).is_file():
            return Path(name), ext
        return _formats_at(Path(name), preferred)
    for sounds in [Path(datadir) / "sounds", *extra_sound_dirs()]:
        for lang in language_candidates(language):
            if ext:
                exact = sounds / _with_language(name, lang, languageprefix)
                if exact.is_file():
                    return exact, ext
            found = _formats_at(sounds / _with_language(name, lang, languageprefix), preferred)
            if found:
                return found
    return None


def extra_sound_dirs() -> list[Path]:
    """Searched after ``<datadir>/sounds``: hookflash's own prompts (the chapter's prompts
    that Debian's sound packages lack, made by scripts/make-prompts.sh) in
    ``<python prefix>/share/hookflash/sounds`` (the venv), then ``$HOOKFLASH_SOUNDS_DIR``."""
    dirs = [Path(sys.prefix) / "share" / "hookflash" / "sounds"]
    if os.environ.get("HOOKFLASH_SOUNDS_DIR"):
        dirs.append(Path(os.environ["HOOKFLASH_SOUNDS_DIR"]))
    return [d for d in dirs if d.is_dir()]


def list_sounds(directory: Path | str) -> list[str]:
    """The sounds of a directory as extension-less paths, each once (music on hold's
    scan: no hidden files, an extension of at least two characters), sorted by name."""
    names: list[str] = []
    try:
        entries = sorted(Path(directory).iterdir())
    except OSError:
        return names
    for entry in entries:
        stem, dot, ext = entry.name.rpartition(".")
        if entry.name.startswith(".") or not dot or len(ext) < 2 or not entry.is_file():
            continue
        if str(entry.with_name(stem)) not in names:
            names.append(str(entry.with_name(stem)))
    return names


def sound_exists(name: str, language: str, datadir: Path | str) -> bool:
    return find_sound(name, language, datadir) is not None


def format_for(ext: str) -> SoundFormat:
    fmt = FORMATS.get(ext) or FORMATS.get(ext.lower())
    if fmt is None:
        raise SoundFileError(f"unknown sound format '{ext}'")
    return fmt


def _open(path: Path | str, fmt: SoundFormat, mode: str = "r") -> sf.SoundFile:
    kwargs: dict[str, Any] = {}
    if fmt.raw or mode == "w":
        kwargs = {"format": fmt.container, "subtype": fmt.subtype, "samplerate": fmt.rate,
                  "channels": 1}
        if fmt.raw:
            kwargs["endian"] = "LITTLE"
    try:
        return sf.SoundFile(str(path), mode, **kwargs)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SoundFileError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------- resampling
class Resampler:
    """Streaming rate converter: a windowed-sinc low-pass then linear interpolation,
    with filter history and phase kept across blocks (no clicks at block edges)."""

    def __init__(self, rate_in: int, rate_out: int = RATE, taps: int = 63) -> None:
        self.step = rate_in / rate_out
        cutoff = 0.45 * min(rate_in, rate_out) / rate_in
        n = np.arange(taps) - (taps - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        self.h = h / h.sum()
        self.history = np.zeros(taps - 1)
        self.pending = np.zeros(0)
        self.pos = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        data = np.concatenate([self.history, block.astype(np.float64)])
        self.history = data[len(data) - len(self.history):]
        self.pending = np.concatenate([self.pending, np.convolve(data, self.h, mode="valid")])
        last = len(self.pending) - 1
        if last <= self.pos:
            return np.zeros(0)
        count = int(np.floor((last - self.pos) / self.step)) + 1
        where = self.pos + self.step * np.arange(count)
        index = np.minimum(np.floor(where).astype(np.int64), last - 1)
        frac = where - index
        out = self.pending[index] * (1 - frac) + self.pending[index + 1] * frac
        self.pos += count * self.step
        drop = min(int(np.floor(self.pos)), len(self.pending))
        self.pending = self.pending[drop:]
        self.pos -= drop
        return np.asarray(out, dtype=np.float64)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(np.rint(samples), -32768, 32767), dtype="<i2")


# ---------------------------------------------------------------------- reading
def open_sound(path: Path | str, fmt: str) -> Iterator[bytes]:
    """The file as 320-byte frames of 8 kHz slin, read lazily (one block per frame);
    the last frame is zero-padded. Raises SoundFileError if it cannot be opened."""
    sound_format = format_for(fmt)
    handle = _open(path, sound_format)
    return _frames(handle)


def _frames(handle: sf.SoundFile) -> Iterator[bytes]:
    with handle:
        rate = handle.samplerate
        resampler = Resampler(rate) if rate != RATE else None
        block = max(FRAME_SAMPLES * rate // RATE, 1)
        carry = b""
        while True:
            try:
                data = handle.read(block, dtype="int16", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                log.warning("Error reading %s: %s", handle.name, exc)
                break
            if not len(data):
                break
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
            if resampler is not None:
                mono = _to_int16(resampler.process(mono))
            carry += np.asarray(mono, dtype="<i2").tobytes()
            while len(carry) >= FRAME_BYTES:
                yield carry[:FRAME_BYTES]
                carry = carry[FRAME_BYTES:]
        if carry:
            yield carry.ljust(FRAME_BYTES, b"\0")


def read_all(path: Path | str, fmt: str) -> np.ndarray:
    """The whole file as int16 samples at 8 kHz (for tests and small prompts)."""
    return np.frombuffer(b"".join(open_sound(path, fmt)), dtype="<i2")


# ---------------------------------------------------------------------- writing
class SoundWriter:
    """Writes 8 kHz slin into a sound file durably: the audio goes to a temporary
    file beside the target, which ``close`` flushes, fsyncs and renames into place
    (so a crash never leaves half a file under the real name). ``discard`` drops it.
    ``append`` continues an existing file."""

    def __init__(self, path: Path | str, fmt: str, *, append: bool = False) -> None:
        self.path = Path(path)
        self.format = format_for(fmt)
        self.samples = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=str(self.path.parent))
        os.close(fd)
        self.tmp = Path(tmp)
        self._resampler = Resampler(RATE, self.format.rate) if self.format.rate != RATE else None
        try:
            self._file = self._start(append and self.path.is_file())
        except Exception:
            self.tmp.unlink(missing_ok=True)
            raise
        self.closed = False

    def _start(self, append: bool) -> sf.SoundFile:
        if append and self.format.read_write:
            shutil.copyfile(self.path, self.tmp)
            handle = _open(self.tmp, self.format, "r+")
            handle.seek(0, sf.SEEK_END)
            return handle
        handle = _open(self.tmp, self.format, "w")
        if append:  # GSM: decode what is there and write it again
            for frame in open_sound(self.path, self._ext()):
                handle.write(self._convert(frame))
        return handle

    def _ext(self) -> str:
        return self.path.suffix[1:]

    def _convert(self, pcm: bytes) -> np.ndarray:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        if self._resampler is not None:
            return _to_int16(self._resampler.process(samples))
        return samples

    def write(self, pcm: bytes) -> None:
        """Append signed-linear 8 kHz samples (any whole number of samples)."""
        if self.closed:
            raise SoundFileError(f"{self.path}: write after close")
        self._file.write(self._convert(pcm))
        self.samples += len(pcm) // 2

    @property
    def duration(self) -> float:
        return self.samples / RATE

    def close(self) -> Path:
        """Finish the file: flush, fsync, rename over the target, fsync the directory."""
        if self.closed:
            return self.path
        self.closed = True
        self._file.close()
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "SoundWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_sound(path: Path | str, fmt: str, pcm: bytes) -> Path:
    """Write a whole file at once (fixtures, tests)."""
    with SoundWriter(path, fmt) as writer:
        writer.write(pcm)
    return writer.path
