"""slin: the engine's internal format, 8 kHz 16-bit signed little-endian mono."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .base import Codec

RATE = 8000
SAMPLES_PER_FRAME = 160  # 20 ms
BYTES_PER_FRAME = 2 * SAMPLES_PER_FRAME
SILENCE_FRAME = bytes(BYTES_PER_FRAME)

_LE_INT16 = np.dtype("<i2")


def to_array(slin: bytes) -> npt.NDArray[np.int16]:
    """View slin bytes as an int16 array (read-only, no copy)."""
    return np.frombuffer(slin, dtype=_LE_INT16)


def from_array(samples: npt.ArrayLike) -> bytes:
    """Float or int samples to slin bytes, clipped to the 16-bit range."""
    arr = np.asarray(samples)
    if arr.dtype != _LE_INT16:
        arr = np.clip(np.rint(arr), -32768, 32767).astype(_LE_INT16)
    return arr.tobytes()


class Slin(Codec):
    """Identity codec (no static RTP payload type; used inside the engine)."""

    name = "slin"
    encoding = "L16"
    payload_type = None
    clock_rate = RATE
    sample_rate = RATE

    def encode(self, slin: bytes) -> bytes:
        return slin

    def decode(self, payload: bytes) -> bytes:
        return payload
