"""G.722 (PT 9), ITU-T G.722 64 kbit/s, via the ``G722`` package (libg722).

RFC 3551 §4.5.2: the RTP clock is 8000 Hz although the audio is 16 kHz, so a
20 ms frame is 160 payload bytes, 320 audio samples and a timestamp step of 160.

The codec works on 16 kHz slin; the engine's 8 kHz slin is resampled on the
way in and out by a stateful half-band FIR (history kept per direction, so
frames join without clicks).  ``encode16``/``decode16`` skip the resampling for
wideband paths.
"""

from __future__ import annotations

import G722 as _libg722  # type: ignore[import-not-found, unused-ignore]
import numpy as np
import numpy.typing as npt

from .base import Codec

__all__ = ["G722", "Resampler2x", "lowpass_taps"]

_F64 = npt.NDArray[np.float64]


def lowpass_taps(taps: int = 47, cutoff_hz: float = 3700.0, rate: int = 16000,
                 beta: float = 7.0) -> _F64:
    """Kaiser-windowed sinc low-pass, unity gain at DC."""
    n = np.arange(taps) - (taps - 1) / 2
    h: _F64 = np.sinc(2 * cutoff_hz / rate * n) * np.kaiser(taps, beta)
    out: _F64 = h / h.sum()
    return out


_TAPS = lowpass_taps()


class Resampler2x:
    """8 kHz <-> 16 kHz by a factor of two; keeps filter history between calls.

    Delay: (taps - 1) / 2 samples at 16 kHz (23 samples, 1.4 ms).
    """

    def __init__(self, up: bool, taps: _F64 = _TAPS) -> None:
        self.up = up
        self._h = taps * 2 if up else taps
        self._hist = np.zeros(len(taps) - 1)
        self._odd: float | None = None  # a leftover 16 kHz sample when downsampling

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        x = samples.astype(np.float64)
        if self.up:
            z = np.zeros(2 * len(x))
            z[::2] = x
            x = z
        else:
            if self._odd is not None:
                x = np.concatenate(([self._odd], x))
                self._odd = None
            if len(x) % 2:  # keep the 2:1 phase across odd-length calls
                self._odd = float(x[-1])
                x = x[:-1]
        buf = np.concatenate((self._hist, x))
        self._hist = buf[len(buf) - len(self._hist):]
        y = np.convolve(buf, self._h, "valid")
        if not self.up:
            y = y[::2]
        return np.clip(np.rint(y), -32768, 32767).astype("<i2")


class G722(Codec):
    name = "g722"
    encoding = "G722"
    payload_type = 9
    clock_rate = 8000
    sample_rate = 16000

    def __init__(self, bitrate: int = 64000) -> None:
        self._encoder = _libg722.G722(16000, bitrate)
        self._decoder = _libg722.G722(16000, bitrate)
        self._up = Resampler2x(up=True)
        self._down = Resampler2x(up=False)

    def encode16(self, slin16: bytes) -> bytes:
        return bytes(self._encoder.encode(np.frombuffer(slin16, dtype="<i2")))

    def decode16(self, payload: bytes) -> bytes:
        return np.asarray(self._decoder.decode(payload), dtype="<i2").tobytes()

    def encode(self, slin: bytes) -> bytes:
        wide = self._up.process(np.frombuffer(slin, dtype="<i2"))
        return bytes(self._encoder.encode(wide))

    def decode(self, payload: bytes) -> bytes:
        wide = np.asarray(self._decoder.decode(payload), dtype="<i2")
        return self._down.process(wide).tobytes()
