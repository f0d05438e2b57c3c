"""Opus (RFC 6716, RTP payload RFC 7587) through PyAV's libopus.

The RTP clock of Opus is always 48 kHz and its rtpmap always says two channels
(``opus/48000/2``), whatever is sent. The engine's audio is 8 kHz slin, so:

- encode: libopus takes 8 kHz input natively (narrowband, 20 ms = 160 samples in,
  timestamp step 960);
- decode: FFmpeg's libopus decoder always gives 48 kHz; a libswresample resampler
  (kept per instance, so frames join without clicks) brings it to 8 kHz.

One instance per call and per direction, like every codec here.
"""

from __future__ import annotations

from typing import Any

from .base import Codec

__all__ = ["Opus"]

BITRATE = 24000  # bit/s: wideband speech quality, well inside what Jingle clients expect


class Opus(Codec):
    name = "opus"
    encoding = "opus"
    payload_type = None  # dynamic; Jingle clients offer 111
    clock_rate = 48000
    sample_rate = 8000
    channels = 2  # what the rtpmap says (RFC 7587 §7)

    def __init__(self) -> None:
        self._enc: Any = None
        self._dec: Any = None
        self._resampler: Any = None
        self._pts = 0

    @property
    def samples_per_frame(self) -> int:
        return 960

    def _encoder(self) -> Any:
        import av  # noqa: PLC0415  (PyAV loads libav*, only when Opus is used)
        enc = av.CodecContext.create("libopus", "w")
        enc.sample_rate = 8000
        enc.layout = "mono"
        enc.format = "s16"
        enc.bit_rate = BITRATE
        enc.options = {"application": "voip", "frame_duration": "20", "compression_level": "5"}
        enc.open()
        self._enc = enc
        return enc

    def _decoder(self) -> Any:
        import av  # noqa: PLC0415
        dec = av.CodecContext.create("libopus", "r")
        dec.sample_rate = 48000
        dec.layout = "mono"
        dec.open()
        self._dec = dec
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        return dec

    def encode(self, slin: bytes) -> bytes:
        import av  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415
        enc = self._enc or self._encoder()
        samples = np.frombuffer(slin[: len(slin) & ~1], dtype="<i2")
        if len(samples) != 160:  # libopus takes whole 20 ms frames only
            samples = np.resize(samples, 160) if len(samples) else np.zeros(160, dtype="<i2")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = self._pts
        self._pts += 160
        out = b""
        for packet in enc.encode(frame):
            out += bytes(packet)
        return out

    def decode(self, payload: bytes) -> bytes:
        import av  # noqa: PLC0415
        dec = self._dec or self._decoder()
        if not payload:
            return b""
        out = []
        try:
            frames = dec.decode(av.Packet(payload))
        except Exception:  # a corrupt packet from the network: silence, not an error
            return b"\x00\x00" * 160
        for frame in frames:
            for part in self._resampler.resample(frame):
                out.append(part.to_ndarray().tobytes())
        return b"".join(out)
