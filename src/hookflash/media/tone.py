"""Tone generators (Asterisk indications.conf / Playtones strings, Milliwatt) and
frequency probes for tests (Goertzel, FFT peak).

Generators are stateful and keep their phase across calls, so frames of any
size join without discontinuities.  Output is the engine's slin (8 kHz,
16-bit little-endian) unless another ``rate`` is asked for.

Tone string grammar (indications.conf)::

    tone  := part ("," part)*
    part  := ["!"] freqs ["/" duration_ms]
    freqs := f ["+" f] | f "*" f          (a*b: a amplitude-modulated by b)
    f     := hertz | "M" midi-note

A part without duration plays forever; parts marked ``!`` play on the first
pass only, the rest of the list repeats from the first unmarked part.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .codecs.g711 import ULAW_DECODE

__all__ = [
    "DEFAULT_AMPLITUDE",
    "DIGITAL_MILLIWATT",
    "MILLIWATT_AMPLITUDE",
    "Milliwatt",
    "SineGenerator",
    "ToneError",
    "TonePart",
    "TonePlayer",
    "dominant_frequency",
    "goertzel",
    "parse_tone",
    "tone_frames",
]

DEFAULT_AMPLITUDE = 7219  # Asterisk's playtones default volume (per frequency)
MILLIWATT_AMPLITUDE = 23255  # 0 dBm0 peak, what Milliwatt() passes to playtones
MODULATION_DEPTH = 0.9
DIGITAL_MILLIWATT = bytes((0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E))  # mu-law, 1 kHz

_F64 = npt.NDArray[np.float64]
_PART = re.compile(r"^(!)?(M?\d+(?:\.\d+)?)(?:([+*])(M?\d+(?:\.\d+)?))?(?:/(\d+))?$")


class ToneError(ValueError):
    """A tone string that does not follow the indications.conf grammar."""


@dataclass(frozen=True)
class TonePart:
    freqs: tuple[float, ...]  # 0 Hz components are silence
    duration_ms: int | None = None  # None = forever
    once: bool = False
    modulate: bool = False


def _freq(text: str) -> float:
    if text.startswith("M"):  # MIDI note number
        return 440.0 * 2 ** ((float(text[1:]) - 69) / 12)
    return float(text)


def parse_tone(spec: str) -> list[TonePart]:
    parts = []
    for raw in spec.split(","):
        m = _PART.match(raw.strip())
        if not m:
            raise ToneError(f"bad tone part {raw!r} in {spec!r}")
        once, f1, op, f2, dur = m.groups()
        freqs = (_freq(f1),) if f2 is None else (_freq(f1), _freq(f2))
        parts.append(TonePart(freqs, int(dur) if dur else None, bool(once), op == "*"))
    return parts


class SineGenerator:
    """Sum of sines (or a*b amplitude modulation), phase continuous across calls."""

    def __init__(self, freqs: Sequence[float], rate: int = 8000,
                 amplitude: float = DEFAULT_AMPLITUDE, modulate: bool = False) -> None:
        self.freqs = np.array([f for f in freqs if f > 0] or [0.0], dtype=np.float64)
        self.silent = not any(f > 0 for f in freqs)
        self.rate = rate
        self.amplitude = amplitude
        self.modulate = modulate and len(self.freqs) == 2
        self._phase = np.zeros(len(self.freqs))  # radians, kept modulo 2*pi

    def samples(self, n: int) -> _F64:
        if self.silent:
            return np.zeros(n)
        step = 2 * np.pi * self.freqs / self.rate
        phases = self._phase[:, None] + step[:, None] * np.arange(n)
        self._phase = np.mod(self._phase + step * n, 2 * np.pi)
        waves = np.sin(phases)
        if self.modulate:  # carrier * (1 + m*modulator), normalised to the same peak
            out = waves[0] * (1 + MODULATION_DEPTH * waves[1]) / (1 + MODULATION_DEPTH)
        else:
            out = waves.sum(axis=0)
        result: _F64 = out * self.amplitude
        return result

    def read(self, n: int) -> bytes:
        return _to_slin(self.samples(n))


def _to_slin(x: _F64) -> bytes:
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


class TonePlayer:
    """Plays a parsed tone list; ``read(n)`` returns up to n samples, b"" when done."""

    def __init__(self, spec: str | list[TonePart], rate: int = 8000,
                 amplitude: float = DEFAULT_AMPLITUDE) -> None:
        self.parts = parse_tone(spec) if isinstance(spec, str) else spec
        self.rate = rate
        self.amplitude = amplitude
        self.repeat_from = next((i for i, p in enumerate(self.parts) if not p.once), None)
        self._index = 0
        self._left: int | None = 0
        self._gen: SineGenerator | None = None
        self._start(0)

    def _start(self, index: int) -> None:
        part = self.parts[index]
        self._index = index
        self._gen = SineGenerator(part.freqs, self.rate, self.amplitude, part.modulate)
        self._left = None if part.duration_ms is None else \
            self.rate * part.duration_ms // 1000

    def _advance(self) -> bool:
        nxt = self._index + 1
        if nxt >= len(self.parts):
            if self.repeat_from is None:
                self._gen = None
                return False
            nxt = self.repeat_from
        self._start(nxt)
        return True

    @property
    def done(self) -> bool:
        return self._gen is None

    def samples(self, n: int) -> _F64:
        chunks: list[_F64] = []
        while n > 0 and self._gen is not None:
            if self._left == 0:
                if not self._advance():
                    break
                continue
            take = n if self._left is None else min(n, self._left)
            chunks.append(self._gen.samples(take))
            n -= take
            if self._left is not None:
                self._left -= take
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def read(self, n: int) -> bytes:
        return _to_slin(self.samples(n))


def tone_frames(spec: str, rate: int = 8000, frame_samples: int | None = None,
                amplitude: float = DEFAULT_AMPLITUDE) -> Iterator[bytes]:
    """20 ms slin frames of a tone string; ends (last frame padded) if the list ends."""
    size = frame_samples or rate // 50
    player = TonePlayer(spec, rate, amplitude)
    while not player.done:
        x = player.samples(size)
        if len(x) == 0:
            return
        if len(x) < size:
            x = np.concatenate((x, np.zeros(size - len(x))))
        yield _to_slin(x)


class Milliwatt:
    """Asterisk's Milliwatt(): 1004 Hz at 0 dBm0 by default; with the 'o' option the
    old 1000 Hz digital-milliwatt mu-law sequence (0x1e 0x0b 0x0b 0x1e 0x9e ...)."""

    def __init__(self, options: str = "", rate: int = 8000) -> None:
        self.old = "o" in options
        self._index = 0
        self._tone = None if self.old else TonePlayer("1004/1000", rate, MILLIWATT_AMPLITUDE)

    def read_ulaw(self, n: int) -> bytes:
        """The digital milliwatt bytes themselves ('o' mode only)."""
        if not self.old:
            raise ToneError("read_ulaw() is the 'o' (digital milliwatt) mode")
        start = self._index
        self._index = (start + n) % 8
        reps = DIGITAL_MILLIWATT * ((start + n) // 8 + 1)
        return reps[start : start + n]

    def read(self, n: int) -> bytes:
        if self._tone is not None:
            return self._tone.read(n)
        return ULAW_DECODE[np.frombuffer(self.read_ulaw(n), np.uint8)].tobytes()


# ------------------------------------------------------------------ analysis


def _as_float(samples: bytes | npt.ArrayLike) -> _F64:
    if isinstance(samples, (bytes, bytearray, memoryview)):
        return np.frombuffer(samples, dtype="<i2").astype(np.float64)
    return np.asarray(samples, dtype=np.float64)


def goertzel(samples: bytes | npt.ArrayLike, freq: float, rate: int = 8000) -> float:
    """Power of ``freq`` in the block (Goertzel), normalised so a full-scale-A sine
    at exactly that frequency gives about (A/2)**2."""
    x = _as_float(samples)
    n = len(x)
    if n == 0:
        return 0.0
    w = 2 * math.pi * freq / rate
    # closed form of the Goertzel recurrence's final state: |sum x[k] e^{-jwk}|^2
    k = np.arange(n)
    re = float(np.dot(x, np.cos(w * k)))
    im = float(np.dot(x, np.sin(w * k)))
    return (re * re + im * im) / (n * n)


def dominant_frequency(samples: bytes | npt.ArrayLike, rate: int = 8000) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation)."""
    x = _as_float(samples)
    if len(x) < 4:
        raise ValueError("need at least 4 samples")
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    i = int(np.argmax(spectrum[1:]) + 1)
    offset = 0.0
    if 0 < i < len(spectrum) - 1:
        a, b, c = np.log(spectrum[i - 1 : i + 2] + 1e-12)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom else 0.0
    return (i + offset) * rate / len(x)
