"""The conference mixer: sans-IO, one call to :meth:`Mixer.tick` per 20 ms.

Participants push voice (16-bit signed linear, any rate: converted to the mixer's
rate on the way in, and the mix back to theirs on the way out). Each tick takes one
frame (160 samples at 8 kHz) from every talker's small queue, adds them once into a
total, and gives every listener ``total - own``: everyone hears everyone but
themselves. The work per tick is a handful of numpy operations on an N x 160 array,
so it grows linearly with N; listeners who did not talk this tick all share one
output buffer.

Per participant:

* a queue of at most ``depth`` frames (the jitter allowance): a talker whose frame is
  late contributes nothing this tick (its queue refills next tick); a queue deeper
  than ``depth`` (a sender running fast, or a burst) drops its oldest audio;
* ``muted`` (admin or self mute, waiting for the leader) and ``talk=False``
  (listen only) contribute nothing; ``listen=False`` (talk only, or not in the mix)
  gets no output;
* ``talk_gain``/``listen_gain`` scale what it says and hears (MeetMe's volume keys);
* talker detection: a frame whose mean absolute amplitude exceeds
  ``talk_threshold`` marks the participant talking; it stops talking after
  ``talk_hangover`` quiet frames.

Clipping: ``"saturate"`` clamps sums to int16; ``"limit"`` (default) passes samples
below ``knee`` unchanged and bends louder ones smoothly (tanh) towards full scale, so
several loud talkers stay intelligible instead of square-wave distortion.

No clock and no I/O here: :mod:`hookflash.conference.room` paces the ticks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

from hookflash.media.files import Resampler

RATE = 8000
FRAME_SAMPLES = 160
INT16_MAX = 32767
DEFAULT_DEPTH = 4  # frames kept per talker (80 ms of jitter allowance)
DEFAULT_KNEE = 24576  # 75 % of full scale: the soft limiter leaves quieter samples alone
DEFAULT_TALK_THRESHOLD = 160  # mean |sample| of a frame that counts as speech (app_meetme's default)
DEFAULT_TALK_HANGOVER = 15  # quiet frames (300 ms) before a talker counts as silent again


@dataclass(slots=True)
class Participant:
    """One member as the mixer sees it. Flags may be changed between ticks."""

    key: Hashable
    rate: int = RATE
    talk: bool = True
    listen: bool = True
    muted: bool = False
    talk_gain: float = 1.0
    listen_gain: float = 1.0
    talking: bool = False
    quiet_frames: int = 0
    frames_in: int = 0
    underruns: int = 0  # ticks where a talker had no frame ready
    dropped: int = 0  # frames thrown away because the queue was too deep
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    queue: deque[np.ndarray] = field(default_factory=deque)
    to_mixer: Resampler | None = None
    from_mixer: Resampler | None = None

    @property
    def contributes(self) -> bool:
        return self.talk and not self.muted


class Mixer:
    def __init__(self, *, rate: int = RATE, frame_samples: int = FRAME_SAMPLES,
                 clipping: str = "limit", knee: int = DEFAULT_KNEE, depth: int = DEFAULT_DEPTH,
                 talk_threshold: int = DEFAULT_TALK_THRESHOLD,
                 talk_hangover: int = DEFAULT_TALK_HANGOVER) -> None:
        if clipping not in ("saturate", "limit"):
            raise ValueError(f"clipping must be 'saturate' or 'limit', not {clipping!r}")
        if not 0 < knee < INT16_MAX:
            raise ValueError("knee must be between 0 and 32767")
        self.rate = rate
        self.frame_samples = frame_samples
        self.clipping = clipping
        self.knee = knee
        self.depth = max(1, depth)
        self.talk_threshold = talk_threshold
        self.talk_hangover = talk_hangover
        self.participants: dict[Hashable, Participant] = {}
        self._silence = bytes(2 * frame_samples)
        self.ticks = 0

    # ------------------------------------------------------------------ membership
    def add(self, key: Hashable, *, rate: int | None = None, talk: bool = True,
            listen: bool = True, muted: bool = False) -> Participant:
        if key in self.participants:
            raise KeyError(f"{key!r} is already in the mixer")
        rate = rate or self.rate
        part = Participant(key, rate, talk, listen, muted)
        if rate != self.rate:
            part.to_mixer = Resampler(rate, self.rate)
            part.from_mixer = Resampler(self.rate, rate)
        self.participants[key] = part
        return part

    def remove(self, key: Hashable) -> None:
        self.participants.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self.participants

    def __len__(self) -> int:
        return len(self.participants)

    # ------------------------------------------------------------------ input
    def push(self, key: Hashable, pcm: bytes) -> None:
        """Queue audio (int16 little-endian at the participant's rate) from ``key``.
        Audio from a participant who cannot be heard is dropped at once."""
        part = self.participants.get(key)
        if part is None:
            return
        if not part.contributes:
            part.pending = part.pending[:0]
            part.queue.clear()
            return
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        if part.to_mixer is not None:
            samples = np.clip(np.rint(part.to_mixer.process(samples)), -32768, INT16_MAX).astype(np.int16)
        n = self.frame_samples
        if len(samples) == n and not len(part.pending):
            part.queue.append(samples)
        else:
            data = np.concatenate([part.pending, samples]) if len(part.pending) else samples
            whole = len(data) // n * n
            part.queue.extend(data[i:i + n] for i in range(0, whole, n))
            part.pending = data[whole:].copy()
        part.frames_in += 1
        while len(part.queue) > self.depth:
            part.queue.popleft()
            part.dropped += 1

    # ------------------------------------------------------------------ output
    def tick(self) -> dict[Hashable, bytes]:
        """Mix one frame; returns what each listener hears (bytes at its rate)."""
        self.ticks += 1
        parts = list(self.participants.values())
        talkers: list[Participant] = []
        frames: list[np.ndarray] = []
        for part in parts:
            if not part.contributes:
                if part.talking:
                    part.talking, part.quiet_frames = False, 0
                continue
            if part.queue:
                talkers.append(part)
                frames.append(part.queue.popleft())
            else:
                if part.frames_in:
                    part.underruns += 1
                self._quiet(part)
        outputs: dict[Hashable, bytes] = {}
        listeners = [p for p in parts if p.listen]
        if not frames:
            for part in listeners:
                outputs[part.key] = self._out(part, None)
            return outputs
        block = np.stack(frames).astype(np.int32)  # K x 160
        levels = np.abs(block).mean(axis=1)
        for part, level in zip(talkers, levels):
            if level > self.talk_threshold:
                part.talking, part.quiet_frames = True, 0
            else:
                self._quiet(part)
        gains = np.array([p.talk_gain for p in talkers])
        if np.any(gains != 1.0):
            block = np.rint(block * gains[:, None]).astype(np.int32)
        total = block.sum(axis=0)
        own_index = {id(p): i for i, p in enumerate(talkers)}
        spoke = [p for p in listeners if id(p) in own_index]
        if spoke:  # each talker hears the total without itself: one N x 160 subtraction
            rows = self._clip(total[None, :] - block[[own_index[id(p)] for p in spoke]])
            for part, row in zip(spoke, rows):
                outputs[part.key] = self._out(part, row)
        others = [p for p in listeners if id(p) not in own_index]
        if others:
            shared = self._clip(total)
            shared_bytes = shared.astype("<i2").tobytes()
            for part in others:
                outputs[part.key] = shared_bytes if part.listen_gain == 1.0 and part.from_mixer is None \
                    else self._out(part, shared)
        return outputs

    def _quiet(self, part: Participant) -> None:
        if part.talking:
            part.quiet_frames += 1
            if part.quiet_frames >= self.talk_hangover:
                part.talking, part.quiet_frames = False, 0

    def _clip(self, mix: np.ndarray) -> np.ndarray:
        if self.clipping == "saturate":
            return np.asarray(np.clip(mix, -32768, INT16_MAX))
        knee = self.knee
        magnitude = np.abs(mix)
        loud = magnitude > knee
        if not loud.any():
            return mix
        room = INT16_MAX - knee
        bent = knee + room * np.tanh((magnitude - knee) / room)
        return np.where(loud, np.sign(mix) * np.rint(bent), mix).astype(np.int32)

    def _out(self, part: Participant, row: np.ndarray | None) -> bytes:
        if row is None:
            if part.from_mixer is None:
                return self._silence
            row = np.zeros(self.frame_samples, dtype=np.int32)
        if part.listen_gain != 1.0:
            row = np.clip(np.rint(row * part.listen_gain), -32768, INT16_MAX)
        if part.from_mixer is not None:
            row = np.clip(np.rint(part.from_mixer.process(row)), -32768, INT16_MAX)
        return np.asarray(row).astype("<i2").tobytes()

    # ------------------------------------------------------------------ inspection
    def talking(self) -> list[Hashable]:
        return [p.key for p in self.participants.values() if p.talking]


def mix_reference(frames: Iterable[bytes]) -> bytes:
    """The saturated sum of frames (what a listener hearing all of them gets with
    ``clipping='saturate'``); for tests and benchmarks."""
    rows = [np.frombuffer(f, dtype="<i2").astype(np.int32) for f in frames]
    total = np.sum(rows, axis=0) if rows else np.zeros(FRAME_SAMPLES, dtype=np.int32)
    return bytes(np.clip(total, -32768, INT16_MAX).astype("<i2").tobytes())
