"""G.711 mu-law (PCMU, PT 0) and A-law (PCMA, PT 8), ITU-T G.711 / RFC 3551 §4.5.14.

The conversion tables are computed here with numpy from the G.711 segment
rules (16-bit slin is reduced to 14 bits for mu-law and 13 bits for A-law, the
classic reference formulation), so they agree bit for bit with ``audioop``.

Speed (bench/media_core.py, 160 samples): ``audioop`` (stdlib on 3.11/3.12,
the ``audioop-lts`` package on 3.13+) is several times faster than numpy table
lookups, so it is used when importable; the numpy tables are the fallback.
mu-law <-> A-law goes straight through a 256-byte ``bytes.translate`` table.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt

from .base import Codec

__all__ = [
    "ALAW_TO_ULAW",
    "BACKEND",
    "ULAW_TO_ALAW",
    "Pcma",
    "Pcmu",
    "alaw_to_ulaw",
    "ulaw_to_alaw",
]

_I32 = npt.NDArray[np.int32]


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """uint8[65536] indexed by the sample's unsigned 16-bit pattern."""
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 2  # to 14 bits
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, add the bias
    seg = _bit_length(mag) - 6  # 0x21..0x3F is segment 0
    uval = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)  # the clipped top of the range
    return (uval ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 3  # to 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.maximum(_bit_length(mag) - 5, 0)  # 0..0x1F is segment 0
    shift = np.where(seg < 2, 1, seg)
    aval = (seg << 4) | ((mag >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8)


def _bit_length(values: _I32) -> _I32:
    out = np.zeros_like(values)
    v = values.copy()
    while np.any(v):
        nz = v > 0
        out += nz
        v >>= 1
    return out


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype("<i2")


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype("<i2")


ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()
ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
ULAW_TO_ALAW = ALAW_ENCODE[ULAW_DECODE.view(np.uint16)].tobytes()
ALAW_TO_ULAW = ULAW_ENCODE[ALAW_DECODE.view(np.uint16)].tobytes()


def ulaw_to_alaw(payload: bytes) -> bytes:
    return payload.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(payload: bytes) -> bytes:
    return payload.translate(ALAW_TO_ULAW)


def _table_encoder(table: npt.NDArray[np.uint8]) -> Callable[[bytes], bytes]:
    def encode(slin: bytes) -> bytes:
        return bytes(table[np.frombuffer(slin, dtype="<u2")].tobytes())
    return encode


def _table_decoder(table: npt.NDArray[np.int16]) -> Callable[[bytes], bytes]:
    def decode(payload: bytes) -> bytes:
        return bytes(table[np.frombuffer(payload, dtype=np.uint8)].tobytes())
    return decode


numpy_ulaw_encode = _table_encoder(ULAW_ENCODE)
numpy_ulaw_decode = _table_decoder(ULAW_DECODE)
numpy_alaw_encode = _table_encoder(ALAW_ENCODE)
numpy_alaw_decode = _table_decoder(ALAW_DECODE)


def _load_audioop() -> ModuleType | None:
    if sys.byteorder != "little":  # audioop works in native order, slin is LE
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop  # stdlib < 3.13, the audioop-lts package after
    except ImportError:
        return None
    return audioop


def _audioop_codec(fn: Callable[[bytes, int], bytes]) -> Callable[[bytes], bytes]:
    def convert(data: bytes) -> bytes:
        return fn(data, 2)
    return convert


_audioop = _load_audioop()
ulaw_encode: Callable[[bytes], bytes]
ulaw_decode: Callable[[bytes], bytes]
alaw_encode: Callable[[bytes], bytes]
alaw_decode: Callable[[bytes], bytes]
if _audioop is not None:
    BACKEND = "audioop"
    ulaw_encode = _audioop_codec(_audioop.lin2ulaw)
    ulaw_decode = _audioop_codec(_audioop.ulaw2lin)
    alaw_encode = _audioop_codec(_audioop.lin2alaw)
    alaw_decode = _audioop_codec(_audioop.alaw2lin)
else:
    BACKEND = "numpy"
    ulaw_encode, ulaw_decode = numpy_ulaw_encode, numpy_ulaw_decode
    alaw_encode, alaw_decode = numpy_alaw_encode, numpy_alaw_decode


class Pcmu(Codec):
    name = "ulaw"
    encoding = "PCMU"
    payload_type = 0
    clock_rate = 8000
    sample_rate = 8000

    def encode(self, slin: bytes) -> bytes:
        return ulaw_encode(slin)

    def decode(self, payload: bytes) -> bytes:
        return ulaw_decode(payload)


class Pcma(Codec):
    name = "alaw"
    encoding = "PCMA"
    payload_type = 8
    clock_rate = 8000
    sample_rate = 8000

    def encode(self, slin: bytes) -> bytes:
        return alaw_encode(slin)

    def decode(self, payload: bytes) -> bytes:
        return alaw_decode(payload)
