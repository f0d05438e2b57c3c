"""app_festival: ``Festival(text[,intkeys])`` with festival.conf, and hookflash's
choice of speech engine (tts.conf) and speech cache.

``Festival(text[,intkeys])`` as Asterisk's: the channel is answered, the text spoken,
``intkeys`` (``any`` or a list of digits) stop it and the digit is handled as
Background() handles one (a one-digit extension is jumped to, more digits are
collected); a comma in the text splits the arguments unless the text is quoted.
Differences, on purpose:

- the text is escaped for Scheme: it is always spoken, never evaluated;
- a dead, hung or garbage-sending server ends Festival() within its time limits (2 s to
  connect, 5 s between reads, ``timeout`` in total) with a warning, and the dialplan
  goes on at the next priority; ``FESTIVALSTATUS`` (hookflash's) says SUCCESS or FAILED;
- playback is paced by the clock, not by the caller's inbound audio;
- the speech cache is on by default (bounded, durable, shared by calls); ``usecache=no``
  turns it off for Festival().

festival.conf ``[general]``: ``host`` (localhost), ``port`` (1314), ``usecache``,
``cachedir`` (default ``<spool>/tts``), ``festivalcommand`` (``%s``, ``\\n``, ``\\xHH``).
Read at load and reload (Asterisk re-reads it on every call).

tts.conf (hookflash's)::

    [general]
    default = festival        ; the engine Festival() uses unless TTS_ENGINE says otherwise
    cachesize = 64M           ; bytes (K, M, G)
    [piper]
    type = command
    command = piper -m /opt/voices/en_US-amy.onnx -f {out}
    voice =
    timeout = 30

Per call: ``Set(TTS_ENGINE=espeak-ng)`` before Festival() picks the engine;
``TTS_VOICE`` is handed to the engine as ``{voice}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hookflash.conf import ConfigError
from hookflash.conf.parser import parse_bool
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand
from hookflash.tts.engines import MAX_TEXT, Engine, SpeechCache, TtsError, builtin_engines, parse_size, to_8k_wav
from hookflash.tts.festival import DEFAULT_COMMAND

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.tts")

ANY = "0123456789*#"


class FestivalModule(Module):
    description = "Simple Festival Interface"
    support = "extended"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.engines: dict[str, Engine] = {}
        self.default = "festival"
        self.usecache = True
        self.cache = SpeechCache(Path(pbx.dirs.astspooldir) / "tts")
        self.calls = 0

    async def start(self) -> None:
        self._load()

    async def reload(self) -> str | None:
        try:
            self._load()
        except ConfigError as exc:
            log.error("festival.conf/tts.conf not reloaded: %s", exc)
            return str(exc)
        return None

    def _load(self) -> None:
        engines = builtin_engines()
        festival = engines["festival"]
        fconf = self.pbx.read_config("festival.conf")
        usecache = True
        cachedir = ""
        if fconf is not None:
            for section in fconf.sections_named("general"):
                for var in section.variables:
                    key, value = var.name.lower(), var.value.strip()
                    if key == "host":
                        festival.host = value
                    elif key == "port":
                        if not value.isdigit() or not 0 < int(value) < 65536:
                            raise var.error(f"port '{value}' is not a TCP port", "'port=1314'")
                        festival.port = int(value)
                    elif key == "usecache":
                        try:
                            usecache = parse_bool(value)
                        except ValueError:
                            raise var.error(f"usecache '{value}' is not yes or no", "'usecache=yes'") from None
                    elif key == "cachedir":
                        cachedir = value
                    elif key == "festivalcommand":
                        if "(quit)" not in value:
                            log.warning("%s:%d: festivalcommand should end with (quit)", var.filename, var.lineno)
                        festival.festivalcommand = var.value or DEFAULT_COMMAND
        tconf = self.pbx.read_config("tts.conf")
        default = "festival"
        size = 64 * 1024 * 1024
        if tconf is not None:
            for section in tconf.sections:
                if section.is_template:
                    continue
                if section.name.lower() == "general":
                    for var in section.variables:
                        key = var.name.lower()
                        if key == "default":
                            default = var.value.strip()
                        elif key == "cachesize":
                            try:
                                size = parse_size(var.value)
                            except ValueError:
                                raise var.error(f"cachesize '{var.value}' is not a size", "'cachesize=64M'") from None
                    continue
                values = {v.name.lower(): v.value.strip() for v in section.variables}
                kind = values.get("type", "command").lower()
                if kind not in ("command", "festival"):
                    first = section.variables[0] if section.variables else None
                    raise ConfigError(first.filename if first else tconf.filename, first.lineno if first else 0,
                                      f"engine [{section.name}]: type '{kind}' is not known",
                                      "'type=command' or 'type=festival'")
                base = engines.get(section.name.lower()) or Engine(section.name, kind)
                engine = replace(base, type=kind, command=values.get("command", base.command),
                                 voice=values.get("voice", base.voice))
                if "timeout" in values:
                    engine.timeout = float(values["timeout"])
                if kind == "command" and not engine.command:
                    raise ConfigError(tconf.filename, 0, f"engine [{section.name}] has no command",
                                      "'command=program args {text} {out}'")
                engines[section.name.lower()] = engine
        if default.lower() not in engines:
            raise ConfigError(tconf.filename if tconf else "tts.conf", 0, f"default engine '{default}' is not defined",
                              "an engine section or a built-in engine (festival, text2wave, flite, espeak-ng)")
        self.engines = engines
        self.default = default.lower()
        self.usecache = usecache
        self.cache.max_bytes = size
        if cachedir:
            self.cache.dir = Path(cachedir) / "hookflash-tts"

    # ------------------------------------------------------------------ speaking
    async def speech(self, text: str, engine_name: str | None = None, voice: str = "",
                     cache: bool = True) -> Path:
        """An 8 kHz WAV of ``text`` (cached), TtsError when the engine fails."""
        engine = self.engines.get((engine_name or self.default).lower())
        if engine is None:
            raise TtsError(f"no speech engine '{engine_name}'")
        if voice:
            engine = replace(engine, voice=voice)
        text = text[:MAX_TEXT]

        async def make() -> bytes:
            started = time.monotonic()
            try:
                data = await engine.synthesize(text)
                wav = await asyncio.to_thread(to_8k_wav, data)
            except TtsError:
                engine.stats["failures"] += 1
                raise
            engine.stats["syntheses"] += 1
            engine.stats["seconds"] += time.monotonic() - started
            return wav

        key = SpeechCache.key(engine.name, engine.voice, text)
        if cache:
            return await self.cache.get(key, make)
        data = await make()
        fd, tmp = tempfile.mkstemp(suffix=".wav", prefix="hookflash-tts-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return Path(tmp)

    async def app_festival(self, chan: Channel, data: str) -> int | None:
        from hookflash.apps.media import collect_extension
        from hookflash.channels.channel import ChannelState
        from hookflash.media.files import open_sound
        from hookflash.media.stream import play, stop_generator
        text, keys = _split(data)
        if not text:
            log.warning("Festival requires an argument (text)")
            return -1
        interrupt = ANY if keys.strip().lower() == "any" else "".join(k for k in keys if k in ANY)
        if chan.state != ChannelState.UP:
            await chan.answer()
        if chan.softhangup:
            return -1
        engine = chan.get_var("TTS_ENGINE") or None
        voice = chan.get_var("TTS_VOICE") or ""
        self.calls += 1
        try:
            path = await self.speech(text, engine, voice, cache=self.usecache or bool(engine))
        except TtsError as exc:
            log.warning("Festival: %s; going on (%s)", exc, chan.name)
            chan.set_var("FESTIVALSTATUS", "FAILED")
            return -1 if chan.softhangup else None
        temporary = not (self.usecache or engine) and path.parent != self.cache.dir
        try:
            stop_generator(chan)
            chan.pbx.verbose(3, f"<{chan.name}> Playing speech for '{text[:60]}'")
            digit = await play(chan, open_sound(path, "wav"), interrupt=interrupt)
        finally:
            if temporary:
                path.unlink(missing_ok=True)
        chan.set_var("FESTIVALSTATUS", "SUCCESS")
        if chan.softhangup:
            return -1
        if not digit:
            return None
        dialplan, cid = chan.dialplan_for_lookup(), chan.caller.num
        if dialplan.can_match(chan.context, digit, cid) and not dialplan.match_more(chan.context, digit, cid):
            chan.goto(chan.context, digit, 1)
            return None
        return await collect_extension(chan, digit)

    def applications(self) -> list[Application]:
        return [Application(
            "Festival", self.app_festival, "Say text to the user.", "Festival(text[,intkeys])",
            "Connect to Festival, send the argument, get back the waveform, play it to the user, "
            "allowing any given interrupt keys to immediately terminate and return the value, or "
            "'any' to allow any number back (useful in dialplan).\n"
            "hookflash: the engine is festival.conf's server unless TTS_ENGINE names another "
            "(tts.conf; text2wave, flite, espeak-ng are built in); FESTIVALSTATUS is SUCCESS or FAILED.")]

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("tts", "show", "engines"), self._show_engines, "List text-to-speech engines",
                       "Usage: tts show engines"),
            CliCommand(("tts", "show", "cache"), self._show_cache, "Show the speech cache",
                       "Usage: tts show cache"),
        ]

    def _show_engines(self, args: CliArgs) -> str:
        fmt = "%-12s %-9s %-40s %10s %8s\n"
        out = [fmt % ("Engine", "Type", "Command / server", "Syntheses", "Failures")]
        for e in self.engines.values():
            where = f"{e.host}:{e.port}" if e.type == "festival" else e.command
            mark = "*" if e.name.lower() == self.default else " "
            out.append(fmt % (e.name + mark, e.type, where[:40], int(e.stats["syntheses"]), int(e.stats["failures"])))
        out.append(f"* default engine; {len(self.engines)} engines\n")
        return "".join(out)

    def _show_cache(self, args: CliArgs) -> str:
        c = self.cache
        c._load()
        return (f"Speech cache: {c.dir}\n  {len(c.entries)} entries, {c.total} of {c.max_bytes} bytes\n"
                f"  {c.hits} hits, {c.misses} syntheses\n")


def _split(data: str) -> tuple[str, str]:
    """Festival's argument split: a quoted text keeps its commas."""
    data = data.strip()
    if data.startswith('"'):
        end = data.find('"', 1)
        if end > 0:
            rest = data[end + 1:].lstrip()
            return data[1:end], rest[1:] if rest.startswith(",") else ""
    text, _, keys = data.partition(",")
    return text, keys
