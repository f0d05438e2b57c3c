"""The codec interface: one small ABC, one module per codec.

The engine's internal audio is ``slin``: 8 kHz, 16-bit signed, little-endian
(see ``slin.py``).  Every codec converts between that and its RTP payload.
Instances may keep state (G.722's ADPCM predictors, resampler history), so use
one instance per call and per direction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

FRAME_MS = 20


class Codec(ABC):
    """An audio codec: ``encode(slin) -> payload`` and ``decode(payload) -> slin``."""

    name: ClassVar[str]  # Asterisk's allow= name: ulaw, alaw, g722, slin
    encoding: ClassVar[str]  # SDP rtpmap encoding name: PCMU, PCMA, G722, L16
    payload_type: ClassVar[int | None]  # static RTP payload type, None if dynamic
    clock_rate: ClassVar[int]  # RTP timestamp clock (8000 for G.722, RFC 3551 §4.5.2)
    sample_rate: ClassVar[int]  # the codec's real audio rate

    @abstractmethod
    def encode(self, slin: bytes) -> bytes:
        """8 kHz slin in, RTP payload out."""

    @abstractmethod
    def decode(self, payload: bytes) -> bytes:
        """RTP payload in, 8 kHz slin out."""

    @property
    def samples_per_frame(self) -> int:
        """RTP timestamp increment per 20 ms frame."""
        return self.clock_rate * FRAME_MS // 1000

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pt={self.payload_type}>"
