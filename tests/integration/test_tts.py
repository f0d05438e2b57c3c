"""Festival() and the other engines on a real Pbx, with a real Festival server started
by the test and Debian's text2wave, flite and espeak-ng: the caller hears speech about
as long as the text, the cache serves it again with the server stopped, a dead or frozen
server ends Festival() quickly and the dialplan goes on, hostile text is spoken and runs
nothing on the Festival host, intkeys stop playback and the digit goes to its extension,
and 100 calls asking for one text cause one synthesis."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from hookflash.tts.festival import FestivalError, FestivalReply, build_command, scheme_string
from tests.helpers import run, running_pbx
from tests.integration.festival_server import Festival, need_festival

DIALPLAN = """
[LocalSets]
exten => 203,1,Verbose(2,This is a Festival test)
 same => n,Answer()
 same => n,Festival(${TEXT})
 same => n,Set(DB(tts/status)=${FESTIVALSTATUS})
 same => n,Set(DB(tts/after)=reached)
 same => n,Hangup()
exten => keys,1,Festival(${TEXT},any)
 same => n,Set(DB(tts/keys)=none)
exten => 5,1,Set(DB(tts/keys)=5)
 same => n,Hangup()
"""


def festival_conf(server: Festival | None, port: int | None = None) -> str:
    return f"[general]\nhost=127.0.0.1\nport={port or (server.port if server else 1)}\n"


class Listener:
    """The caller's side of a Local channel: keeps what it hears."""

    def __init__(self, one) -> None:  # type: ignore[no-untyped-def]
        self.one = one
        self.pcm = bytearray()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while not self.one.softhangup:
            frame = await self.one.read_frame(0.05)
            if frame is not None and getattr(frame, "kind", "") == "voice":
                self.pcm += frame.payload

    def voiced_seconds(self) -> float:
        samples = np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float64)
        frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
        energy = np.sqrt((frames ** 2).mean(axis=1)) if len(frames) else np.zeros(0)
        return float((energy > 300).sum() * 0.02)


async def place(pbx, exten: str, text: str, digit_at: float | None = None, digit: str = "5",
                timeout: float = 30):  # type: ignore[no-untyped-def]
    one = await pbx.request(f"Local/{exten}@LocalSets/n")
    one.set_var("TEXT", text)
    tech = one.tech
    two = tech.pair.chan
    two.set_var("TEXT", text)
    await tech.call(one, f"{exten}@LocalSets", 10)
    listener = Listener(one)
    started = time.monotonic()
    if digit_at is not None:
        await asyncio.sleep(digit_at)
        await one.send_digit(digit)
    while not two.hung_up and time.monotonic() - started < timeout:
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    await one.hangup()
    listener.task.cancel()
    return listener, elapsed


SENTENCE = "Hello. This is your wake up call from the Shift Eight telephone system."


def test_festival_speaks_caches_and_survives_a_dead_server(tmp_path: Path) -> None:
    need_festival()
    with Festival(tmp_path / "festival") as server:
        async def main() -> None:
            async with running_pbx(tmp_path, DIALPLAN, festival_conf=festival_conf(server)) as (pbx, lines):
                listener, elapsed = await place(pbx, "203", SENTENCE)
                voiced = listener.voiced_seconds()
                assert 2.0 < voiced < 8.0, voiced  # speech for about the sentence's length
                assert pbx.astdb.get("tts", "status") == "SUCCESS"
                # the same text again with the server gone: from the cache
                server.stop()
                listener, elapsed = await place(pbx, "203", SENTENCE)
                assert abs(listener.voiced_seconds() - voiced) < 0.5
                assert pbx.astdb.get("tts", "status") == "SUCCESS"
                # new text, server gone: on to the next priority within 2 s
                pbx.astdb.put("tts", "after", "")
                listener, elapsed = await place(pbx, "203", "A sentence nobody said before.")
                assert pbx.astdb.get("tts", "status") == "FAILED"
                assert pbx.astdb.get("tts", "after") == "reached"
                assert elapsed < 2.5
        run(main())


def test_a_frozen_server_ends_festival_quickly(tmp_path: Path) -> None:
    need_festival()
    with Festival(tmp_path / "festival") as server:
        server.freeze()

        async def main() -> None:
            async with running_pbx(tmp_path, DIALPLAN, festival_conf=festival_conf(server)) as (pbx, _):
                listener, elapsed = await place(pbx, "203", "frozen")
                assert pbx.astdb.get("tts", "status") == "FAILED"
                assert elapsed < 7.0  # 5 s without a byte, then the dialplan goes on
        try:
            run(main())
        finally:
            server.thaw()


def test_hostile_text_is_spoken_and_runs_nothing(tmp_path: Path) -> None:
    need_festival()
    proof = tmp_path / "pwned"
    hostile = f'Meeting ") (system "touch {proof}") (" \\ "done'
    with Festival(tmp_path / "festival") as server:
        async def main() -> None:
            async with running_pbx(tmp_path, DIALPLAN, festival_conf=festival_conf(server)) as (pbx, _):
                listener, _ = await place(pbx, "203", hostile)
                assert listener.voiced_seconds() > 1.0  # spoken
                assert pbx.astdb.get("tts", "status") == "SUCCESS"
        run(main())
    assert not proof.exists()


def test_intkeys_stop_playback_and_go_to_the_digit(tmp_path: Path) -> None:
    need_festival()
    with Festival(tmp_path / "festival") as server:
        async def main() -> None:
            async with running_pbx(tmp_path, DIALPLAN, festival_conf=festival_conf(server)) as (pbx, _):
                listener, elapsed = await place(pbx, "keys", SENTENCE + " " + SENTENCE, digit_at=1.5)
                assert pbx.astdb.get("tts", "keys") == "5"
                assert elapsed < 4.0
        run(main())


@pytest.mark.parametrize("engine", ["text2wave", "flite", "espeak-ng"])
def test_each_engine_speaks(tmp_path: Path, engine: str) -> None:
    if shutil.which(engine) is None:
        pytest.skip(f"{engine} is not installed (scripts/test installs it from Debian)")
    dialplan = DIALPLAN.replace("exten => 203,1,Verbose(2,This is a Festival test)",
                                f"exten => 203,1,Set(TTS_ENGINE={engine})")

    async def main() -> None:
        async with running_pbx(tmp_path, dialplan) as (pbx, _):
            listener, _ = await place(pbx, "203", SENTENCE)
            assert 1.5 < listener.voiced_seconds() < 9.0
            assert pbx.astdb.get("tts", "status") == "SUCCESS"
    run(main())


def test_one_synthesis_for_a_hundred_calls(tmp_path: Path) -> None:
    need_festival()
    with Festival(tmp_path / "festival") as server:
        async def main() -> None:
            async with running_pbx(tmp_path, DIALPLAN, festival_conf=festival_conf(server)) as (pbx, _):
                module = pbx.modules.loaded["app_festival"]
                paths = await asyncio.gather(*(module.speech("One text for everybody.") for _ in range(100)))
                assert len(set(paths)) == 1
                assert module.engines["festival"].stats["syntheses"] == 1
                assert module.cache.misses == 1
        run(main())


def test_protocol_and_escaping() -> None:
    assert scheme_string('a "b" \\ c\n') == 'a \\"b\\" \\\\ c '
    cmd = build_command("(tts_textasterisk \"%s\" 'file)(quit)\\n", 'x") (system "rm -rf /") ("')
    assert cmd == b"(tts_textasterisk \"x\\\") (system \\\"rm -rf /\\\") (\\\"\" 'file)(quit)\n"
    parser = FestivalReply()
    events = parser.feed(b"WV\nRIFFdataft_StUfF_key")
    events += parser.feed(b"LP\n(x)ft_StUf")
    events += parser.feed(b"F_keyOK\n")
    assert events == [("WV", b"RIFFdata"), ("LP", b"(x)"), ("OK", b"")]
    with pytest.raises(FestivalError, match="unexpected reply"):
        FestivalReply().feed(b"XX\ngarbage")


def test_cache_survives_a_cancelled_caller_and_concurrent_stores(tmp_path: Path) -> None:
    from hookflash.tts.engines import SpeechCache

    async def main() -> None:
        cache = SpeechCache(tmp_path / "cache", max_bytes=100_000)
        made = []

        async def slow() -> bytes:
            made.append(1)
            await asyncio.sleep(0.2)
            return b"x" * 20_000

        first = asyncio.ensure_future(cache.get("k", slow))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(cache.get("k", slow))
        await asyncio.sleep(0.05)
        first.cancel()  # the first caller gives up; the second still gets the speech
        path = await second
        assert path.read_bytes() == b"x" * 20_000 and len(made) == 1

        async def make(n: int) -> bytes:
            return bytes([n % 251]) * 20_000

        paths = await asyncio.gather(*(cache.get(f"key{n}", lambda n=n: make(n)) for n in range(200)))
        assert len(paths) == 200
        assert cache.total <= 100_000 and cache.total == sum(cache.entries.values())
        assert len(list((tmp_path / "cache").glob("*.wav"))) == len(cache.entries)

    run(main())


def test_text_that_looks_like_an_option_is_spoken(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    secret = tmp_path / "secret.txt"
    secret.write_text("this file must never be read out to a caller. " * 40 + "\n")  # a minute of speech

    async def main() -> None:
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _):
            module = pbx.modules.loaded["app_festival"]
            short = await module.speech("-5 degrees outside", "espeak-ng")  # spoken, not an option error
            hostile = await module.speech(f"-f{secret}", "espeak-ng")
            import soundfile
            assert soundfile.info(str(short)).duration > 0.5
            assert soundfile.info(str(hostile)).duration < 20  # the path is spoken, not the file's minute
    run(main())
