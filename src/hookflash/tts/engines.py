"""Text-to-speech engines and the speech cache.

Engines (``tts.conf``, hookflash's own; built-in ones exist when their program is
installed):

- ``festival``: the Festival server of festival.conf (``host``, ``port``,
  ``festivalcommand``), protocol in :mod:`hookflash.tts.festival`;
- ``text2wave``, ``flite``, ``espeak-ng``: one program run per text, without a shell;
- any ``type=command`` engine: ``command=`` split like a shell would (shlex) but run
  directly; ``{text}``, ``{out}`` and ``{voice}`` are replaced inside the arguments (the
  text is one argument, never parsed by a shell); without ``{text}`` the text is written
  to the program's standard input; without ``{out}`` the WAV is read from its standard
  output. That covers engines such as Piper (``piper -m voice.onnx -f {out}``).

Whatever rate the engine writes is resampled (polyphase, with the media path's
:class:`~hookflash.media.files.Resampler`) to 8 kHz 16-bit mono, the rate of
the call media, and stored in the cache.

Cache: one WAV per (engine, voice, text), named by a SHA-256 of the three; written to a
temporary file, fsynced and renamed (a half-written file is never played); bounded in
bytes (``cachesize``, least recently used first out); concurrent calls asking for the
same text wait for one synthesis.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import io
import logging
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]

from hookflash.tts.festival import DEFAULT_COMMAND, FestivalError, build_command, synthesize

log = logging.getLogger("hookflash.tts")

RATE = 8000
MAX_TEXT = 16 * 1024


class TtsError(Exception):
    """The engine could not speak this text now."""


@dataclass
class Engine:
    name: str
    type: str  # festival | command
    command: str = ""
    voice: str = ""
    host: str = "localhost"
    port: int = 1314
    festivalcommand: str = DEFAULT_COMMAND
    timeout: float = 30.0
    stats: dict[str, float] = field(default_factory=lambda: {"syntheses": 0, "seconds": 0.0, "failures": 0})

    async def synthesize(self, text: str) -> bytes:
        """WAV (any rate) bytes of ``text``."""
        if self.type == "festival":
            try:
                return await synthesize(self.host, self.port, build_command(self.festivalcommand, text),
                                        total_timeout=self.timeout)
            except FestivalError as exc:
                raise TtsError(str(exc)) from None
        return await self._run(text)

    async def _run(self, text: str) -> bytes:
        fd, out = tempfile.mkstemp(prefix="hookflash-tts-", suffix=".wav")
        os.close(fd)
        try:
            argv = shlex.split(self.command)
            if not argv:
                raise TtsError(f"engine {self.name}: empty command")
            uses_text = any("{text}" in a for a in argv)
            uses_out = any("{out}" in a for a in argv)
            # a text that starts with '-' would be read as an option by most programs
            # (espeak-ng -f FILE speaks a file): a leading space keeps it text
            safe_text = (" " + text) if text.startswith("-") else text
            argv = [a.replace("{text}", safe_text).replace("{out}", out).replace("{voice}", self.voice) for a in argv]
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.PIPE if not uses_text else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            except OSError as exc:
                raise TtsError(f"engine {self.name}: cannot run {argv[0]}: {exc}") from None
            try:
                stdout, stderr = await asyncio.wait_for(
                    proc.communicate(None if uses_text else (text + "\n").encode("utf-8")), self.timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise TtsError(f"engine {self.name}: no result within {self.timeout:g} s") from None
            except asyncio.CancelledError:
                proc.kill()  # nobody wants it any more: the program does not run on
                raise
            if proc.returncode != 0:
                raise TtsError(f"engine {self.name}: exit {proc.returncode}: "
                               f"{stderr.decode(errors='replace').strip()[:200]}")
            if uses_out:
                return await asyncio.to_thread(Path(out).read_bytes)
            return stdout
        finally:
            Path(out).unlink(missing_ok=True)


def to_8k_wav(data: bytes) -> bytes:
    """Any WAV/NIST/AIFF the engine wrote -> 8 kHz 16-bit mono RIFF WAV."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except Exception:
        # espeak-ng --stdout writes a streaming header (size 0x7FFFFFFF): read the PCM after it
        if data[:4] == b"RIFF" and b"data" in data[:200]:
            start = data.index(b"data", 12) + 8
            channels = int.from_bytes(data[22:24], "little") or 1
            rate = int.from_bytes(data[24:28], "little") or 22050
            raw = np.frombuffer(data[start:len(data) - (len(data) - start) % (2 * channels)], dtype="<i2")
            samples = raw.reshape(-1, channels)
        else:
            raise TtsError("the engine's output is not a sound file") from None
    mono = samples.mean(axis=1).astype(np.int16) if samples.shape[1] > 1 else samples[:, 0]
    if rate != RATE:
        from hookflash.media.files import Resampler  # windowed-sinc low-pass, then interpolation
        resampler = Resampler(int(rate), RATE)
        out_samples = resampler.process(mono.astype(np.float64))
        tail = resampler.process(np.zeros(64))  # flush the filter's delay
        mono = np.clip(np.rint(np.concatenate([out_samples, tail])), -32768, 32767).astype(np.int16)
    out = io.BytesIO()
    sf.write(out, mono, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


class SpeechCache:
    """See the module docstring."""

    def __init__(self, directory: Path, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.entries: collections.OrderedDict[str, int] = collections.OrderedDict()  # key -> size, LRU order
        self.total = 0
        self.inflight: dict[str, asyncio.Future[Path]] = {}
        self.hits = 0
        self.misses = 0
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self.dir.mkdir(parents=True, exist_ok=True)
        files = []
        for path in self.dir.glob("*.wav"):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_atime, path.stem, st.st_size))
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)  # a write interrupted by a crash
        for _, key, size in sorted(files):
            self.entries[key] = size
            self.total += size
        self._evict()

    @staticmethod
    def key(engine: str, voice: str, text: str) -> str:
        return hashlib.sha256(f"{engine}\0{voice}\0{text}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.wav"

    def lookup(self, key: str) -> Path | None:
        self._load()
        if key in self.entries:
            path = self.path(key)
            if path.is_file():
                self.entries.move_to_end(key)
                self.hits += 1
                return path
            self.total -= self.entries.pop(key)
        return None

    async def get(self, key: str, make: Any) -> Path:
        """The cached file for ``key``, synthesising it once with ``make()`` (a coroutine
        function returning 8 kHz WAV bytes) however many callers ask at the same time.
        The synthesis runs in a task of its own: a caller that gives up (cancelled,
        timed out) does not take it away from the others."""
        found = self.lookup(key)
        if found is not None:
            return found
        task = self.inflight.get(key)
        if task is None:
            self.misses += 1
            task = asyncio.ensure_future(self._produce(key, make))
            self.inflight[key] = task
            task.add_done_callback(lambda t, k=key: self.inflight.pop(k, None) if self.inflight.get(k) is t else None)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if nobody waits
        return await asyncio.shield(task)

    async def _produce(self, key: str, make: Any) -> Path:
        data = await make()
        path = await asyncio.to_thread(self._write, key, data)  # the disk work off the loop...
        self.entries[key] = len(data)  # ...the bookkeeping on it (no lock needed, one thread)
        self.entries.move_to_end(key)
        self.total += len(data)
        self._evict(keep=key)
        return path

    def _write(self, key: str, data: bytes) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = self.dir / f".{key}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    def _evict(self, keep: str | None = None) -> None:
        while self.total > self.max_bytes and self.entries:
            key, size = next(iter(self.entries.items()))
            if key == keep:
                break
            self.entries.pop(key)
            self.total -= size
            self.path(key).unlink(missing_ok=True)


def builtin_engines() -> dict[str, Engine]:
    """Engines that exist without tts.conf, when their programs are installed."""
    found: dict[str, Engine] = {"festival": Engine("festival", "festival")}
    if shutil.which("text2wave"):
        found["text2wave"] = Engine("text2wave", "command", "text2wave -F 8000 -o {out}")
    if shutil.which("flite"):
        found["flite"] = Engine("flite", "command", "flite -t {text} -o {out}")
    if shutil.which("espeak-ng"):
        found["espeak-ng"] = Engine("espeak-ng", "command", "espeak-ng -v en-us -w {out} --stdin")
    return found


def parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = 1
    if text and text[-1] in "KMG":
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[text[-1]]
        text = text[:-1]
    if not text.isdigit():
        raise ValueError(text)
    return int(text) * mult


__all__ = ["Engine", "SpeechCache", "TtsError", "builtin_engines", "parse_size", "to_8k_wav", "MAX_TEXT"]
