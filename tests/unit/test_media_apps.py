"""Media: sound files and formats, pacing, and the media applications on a real Pbx.

The "phone" is the ``;1`` half of a Local channel: frames the application writes on
``;2`` arrive in ``one.media``; what the test writes on ``;1`` reaches the application.
Prompts are generated tones in a temporary ``astdatadir``.
"""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from hookflash.channels.channel import Channel, ChannelState, Frame
from hookflash.channels.local import LocalTech
from hookflash.engine.pbx import Pbx
from hookflash.media import say
from hookflash.media.files import (
    SoundWriter,
    find_sound,
    language_candidates,
    open_sound,
    read_all,
    write_sound,
)
from hookflash.media.tone import dominant_frequency, goertzel, tone_frames
from tests.helpers import run, write_config

RATE = 8000


def tone(freq: float, seconds: float, rate: int = RATE, amp: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.asarray(np.sin(2 * np.pi * freq * t) * amp, dtype="<i2")


def frames_of(freq: float, seconds: float) -> list[bytes]:
    """Frames of a tone (tone strings repeat forever, so cut them)."""
    return list(itertools.islice(tone_frames(str(freq), amplitude=6000), int(seconds * 50)))


def freq_of(samples: bytes | np.ndarray) -> float:
    return dominant_frequency(samples)


# ---------------------------------------------------------------------- fixtures
DIGIT_WORDS = [str(n) for n in range(21)] + [str(n) for n in range(30, 100, 10)] + \
    ["hundred", "thousand", "million", "billion", "minus", "star", "pound"]


def make_sounds(data: Path) -> Path:
    en = data / "sounds" / "en"
    (en / "digits").mkdir(parents=True)
    write_sound(en / "tone440.wav", "wav", tone(440, 1.0).tobytes())
    write_sound(en / "tone1k.wav", "wav", tone(1000, 0.2).tobytes())
    write_sound(en / "long.wav", "wav", tone(600, 5.0).tobytes())
    write_sound(en / "beep.wav", "wav", tone(1000, 0.1).tobytes())
    for i, name in enumerate(["to-confirm-wakeup", "press-1", "otherwise", "press-2"]):
        write_sound(en / f"{name}.ulaw", "ulaw", tone(300 + 100 * i, 0.1).tobytes())
    for word in DIGIT_WORDS:
        write_sound(en / "digits" / f"{word}.sln", "sln", tone(500, 0.04).tobytes())
    moh = data / "moh"
    moh.mkdir()
    write_sound(moh / "a-low.wav", "wav", tone(300, 0.2).tobytes())
    write_sound(moh / "b-high.gsm", "gsm", tone(700, 0.2).tobytes())
    (moh / ".hidden.wav").write_bytes(b"")
    return data


@asynccontextmanager
async def media_pbx(tmp_path: Path, extensions: str, **files: str) -> AsyncIterator[tuple[Pbx, list[str]]]:
    data = make_sounds(tmp_path / "data")
    files.setdefault("asterisk_conf", f"[directories]\nastdatadir => {data}\n")
    config = write_config(tmp_path / "etc", extensions, **files)
    pbx = Pbx(config, state_dir=tmp_path / "var", verbose=3)
    lines: list[str] = []
    pbx.verbosity.sinks.append(lines.append)
    await pbx.start()
    try:
        yield pbx, lines
    finally:
        await pbx.stop()


class Phone:
    """The ;1 side: collects what the application sends, with arrival times."""

    def __init__(self, pbx: Pbx, one: Channel, two: Channel) -> None:
        self.pbx, self.one, self.two = pbx, one, two
        self.frames: list[tuple[float, bytes]] = []
        self._task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.one.softhangup:
            frame = await self.one.read_frame(0.05)
            if frame is not None and frame.kind == "voice":
                self.frames.append((loop.time(), frame.payload))

    @property
    def audio(self) -> bytes:
        return b"".join(p for _, p in self.frames)

    async def send_audio(self, pcm_frames: Any, realtime: bool = True) -> None:
        for payload in pcm_frames:
            await self.one.write_frame(Frame("voice", payload, len(payload) // 2))
            await asyncio.sleep(0.02 if realtime else 0)

    async def digits(self, text: str, gap: float = 0.05) -> None:
        for d in text:
            await self.one.send_digit(d)
            await asyncio.sleep(gap)

    async def finished(self, timeout: float = 10.0) -> Channel:
        async def settle() -> None:
            while not self.two.hung_up or [t for t in self.pbx.tasks if not t.done()]:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(settle(), timeout)
        await self.one.hangup()
        self._task.cancel()
        return self.two


async def dial(pbx: Pbx, target: str) -> Phone:
    exten, _, context = target.partition("@")
    one = await pbx.request(f"Local/{exten}@{context}/n")
    tech = one.tech
    assert isinstance(tech, LocalTech) and tech.pair.chan is not None
    await tech.call(one, target, 10)
    return Phone(pbx, one, tech.pair.chan)


Script = Callable[[Phone], Awaitable[None]]


def scenario(tmp_path: Path, extensions: str, target: str, script: Script | None = None,
             timeout: float = 10.0, **files: str) -> tuple[Channel, Phone, list[str]]:
    async def main() -> tuple[Channel, Phone, list[str]]:
        async with media_pbx(tmp_path, textwrap.dedent(extensions), **files) as (pbx, lines):
            phone = await dial(pbx, target)
            if script is not None:
                await script(phone)
            chan = await phone.finished(timeout)
            return chan, phone, lines
    return run(main())  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- files
def test_language_candidates_follow_file_c() -> None:
    assert language_candidates("en_US_f") == ["en_US_f", "en_US", "en", None]
    assert language_candidates("fr") == ["fr", None, "en"]
    assert language_candidates("") == [None, "en"]


def test_find_sound_layouts_and_fallbacks(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    for rel in ["en/hello.gsm", "en/hello.wav", "fr/hello.ulaw", "plain.alaw", "en/only-en.sln",
                "digits/de/1.wav", "en/named.wav49"]:
        (sounds / rel).parent.mkdir(parents=True, exist_ok=True)
        (sounds / rel).write_bytes(b"\0" * 320)
    assert find_sound("hello", "en_US", tmp_path) == (sounds / "en/hello.wav", "wav")  # wav before gsm
    assert find_sound("hello", "fr_CA", tmp_path) == (sounds / "fr/hello.ulaw", "ulaw")
    assert find_sound("plain", "fr", tmp_path) == (sounds / "plain.alaw", "alaw")  # no language
    assert find_sound("only-en", "de", tmp_path) == (sounds / "en/only-en.sln", "sln")  # default
    assert find_sound("hello", "en", tmp_path, ["gsm"]) == (sounds / "en/hello.gsm", "gsm")
    assert find_sound("hello.gsm", "en", tmp_path) == (sounds / "en/hello.gsm", "gsm")
    assert find_sound("named", "en", tmp_path) == (sounds / "en/named.wav49", "wav49")
    assert find_sound("digits/1", "de", tmp_path, languageprefix=False) == (sounds / "digits/de/1.wav", "wav")
    assert find_sound(str(sounds / "plain"), "en", tmp_path) == (sounds / "plain.alaw", "alaw")
    assert find_sound("missing", "en", tmp_path) is None


FORMAT_CASES = [  # (extension, how soundfile writes it)
    ("wav", dict(samplerate=8000, format="WAV", subtype="PCM_16")),
    ("wav16", dict(samplerate=16000, format="WAV", subtype="PCM_16")),
    ("sln", dict(samplerate=8000, format="RAW", subtype="PCM_16", endian="LITTLE")),
    ("sln16", dict(samplerate=16000, format="RAW", subtype="PCM_16", endian="LITTLE")),
    ("ulaw", dict(samplerate=8000, format="RAW", subtype="ULAW")),
    ("alaw", dict(samplerate=8000, format="RAW", subtype="ALAW")),
    ("gsm", dict(samplerate=8000, format="RAW", subtype="GSM610")),
    ("WAV", dict(samplerate=8000, format="WAV", subtype="GSM610")),
]


@pytest.mark.parametrize("ext,spec", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_each_format_reads_back_the_same_tone(tmp_path: Path, ext: str, spec: dict[str, Any]) -> None:
    rate = spec["samplerate"]
    path = tmp_path / f"t.{ext}"
    sf.write(str(path), tone(440, 1.0, rate), **spec)
    samples = read_all(path, ext)
    assert abs(len(samples) - RATE) <= 320  # one second at 8 kHz, whatever the file rate
    assert abs(freq_of(samples[400:7600]) - 440) < 3
    assert 6000 < np.abs(samples[1000:7000]).max() < 9000  # level kept through codecs/resampling


def test_wav_at_44k1_and_stereo_resampled(tmp_path: Path) -> None:
    stereo = np.stack([tone(1000, 1.0, 44100), tone(1000, 1.0, 44100)], axis=1)
    sf.write(str(tmp_path / "s.wav"), stereo, 44100, subtype="PCM_16")
    samples = read_all(tmp_path / "s.wav", "wav")
    assert abs(len(samples) - RATE) <= 320
    assert abs(freq_of(samples[400:7600]) - 1000) < 3


def test_open_sound_is_lazy_and_pads_the_last_frame(tmp_path: Path) -> None:
    write_sound(tmp_path / "odd.sln", "sln", tone(440, 170 / RATE).tobytes())
    frames = open_sound(tmp_path / "odd.sln", "sln")
    first = next(frames)  # an iterator: nothing read beyond what is asked
    rest = list(frames)
    assert len(first) == 320 and len(rest) == 1 and len(rest[0]) == 320
    assert rest[0][20:] == b"\0" * 300  # 10 samples of audio, then padding


@pytest.mark.parametrize("ext", ["wav", "ulaw", "alaw", "sln", "gsm", "wav49", "sln16"])
def test_sound_writer_is_durable_and_appends(tmp_path: Path, ext: str) -> None:
    target = tmp_path / "sub" / f"rec.{ext}"
    writer = SoundWriter(target, ext)
    writer.write(tone(440, 0.5).tobytes())
    assert not target.exists()  # only the temporary file so far
    writer.close()
    assert target.exists() and [p.name for p in target.parent.iterdir()] == [target.name]
    with SoundWriter(target, ext, append=True) as more:
        more.write(tone(440, 0.5).tobytes())
    samples = read_all(target, ext)
    assert abs(len(samples) - RATE) <= 1000 and abs(freq_of(samples[400:7600]) - 440) < 3  # GSM pads
    dropped = SoundWriter(tmp_path / f"gone.{ext}", ext)
    dropped.write(b"\0" * 320)
    dropped.discard()
    assert not (tmp_path / f"gone.{ext}").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


# ---------------------------------------------------------------------- say
def test_say_number_file_lists() -> None:
    d = lambda *names: [f"digits/{n}" for n in names]  # noqa: E731
    assert say.number_files(1234) == d(1, "thousand", 2, "hundred", 30, 4)
    assert say.number_files(0) == d(0)
    assert say.number_files(-15) == d("minus", 15)
    assert say.number_files(100) == d(1, "hundred")
    assert say.number_files(1000) == d(1, "thousand")
    assert say.number_files(20) == d(20)
    assert say.number_files(2_000_019) == d(2, "million", 19)
    assert say.number_files(123_456_789) == d(1, "hundred", 20, 3, "million", 4, "hundred", 50, 6,
                                               "thousand", 7, "hundred", 80, 9)


def test_say_digits_alpha_phonetic_lists() -> None:
    assert say.digit_files("1*#-x") == ["digits/1", "digits/star", "digits/pound", "digits/minus"]
    assert say.digit_files("12", exists=lambda n: n != "digits/2") == ["digits/1"]
    assert say.alpha_files("aB1.") == ["letters/a", "letters/b", "digits/1", "letters/dot"]
    assert say.phonetic_files("a9") == ["phonetic/a_p", "phonetic/9_p"]


# ---------------------------------------------------------------------- Playback
def test_playback_sends_the_tone_at_a_steady_pace(tmp_path: Path) -> None:
    chan, phone, lines = scenario(tmp_path, """
        [t]
        exten => s,1,Playback(tone440)
         same => n,Set(DONE=${PLAYBACKSTATUS})
        """, "s@t")
    assert chan.vars["DONE"] == "SUCCESS"
    assert chan.state == ChannelState.UP  # Playback answered
    assert len(phone.frames) == 50
    assert abs(freq_of(phone.audio) - 440) < 2
    times = [t for t, _ in phone.frames]
    assert abs((times[-1] - times[0]) - 49 * 0.020) < 0.08  # N frames take N x 20 ms
    assert max(b - a for a, b in zip(times, times[1:])) < 0.06  # no bursts and stalls
    assert any("Playing 'tone440.wav'" in line for line in lines)


def test_playback_missing_file_fails_but_plays_the_rest(tmp_path: Path) -> None:
    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Playback(nosuchfile&tone1k)
         same => n,Set(S=${PLAYBACKSTATUS})
        """, "s@t")
    assert chan.vars["S"] == "FAILED"
    assert len(phone.frames) == 10 and abs(freq_of(phone.audio) - 1000) < 5


def test_playback_skip_and_noanswer(tmp_path: Path) -> None:
    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Playback(tone1k,skip)
         same => n,Set(A=${PLAYBACKSTATUS})
         same => n,Playback(tone1k,noanswer)
         same => n,Set(STATE=${CHANNEL(state)})
        """, "s@t")
    assert chan.vars["A"] == "SUCCESS"
    assert len(phone.frames) == 10  # only the noanswer one played
    assert chan.vars.get("STATE", "Ring") != "Up"


def test_playback_stops_at_hangup(tmp_path: Path) -> None:
    async def hang(phone: Phone) -> None:
        await asyncio.sleep(0.2)
        await phone.one.hangup()

    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Playback(long)
         same => n,Set(NEVER=1)
        """, "s@t", hang, timeout=2)
    assert "NEVER" not in chan.vars and len(phone.frames) < 30


# ---------------------------------------------------------------------- Background / WaitExten
def test_background_digit_goes_to_that_extension(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.3)
        await phone.digits("2")

    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Background(long)
         same => n,Set(FELL=through)
        exten => 2,1,Set(GOT=two)
        """, "s@t", press)
    assert chan.vars["GOT"] == "two" and "FELL" not in chan.vars
    assert len(phone.frames) < 40  # the 5 s prompt was cut short
    assert chan.vars["BACKGROUNDSTATUS"] == "SUCCESS"


def test_background_then_more_digits_make_a_longer_extension(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.2)
        await phone.digits("123", gap=0.1)

    chan, _, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Background(long)
        exten => 1,1,Set(GOT=one)
        exten => 123,1,Set(GOT=one-two-three)
        """, "s@t", press)
    assert chan.vars["GOT"] == "one-two-three"


def test_waitexten_collects_multi_digit_extension(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.1)
        await phone.digits("42", gap=0.2)

    async def main() -> tuple[Channel, float]:
        async with media_pbx(tmp_path, textwrap.dedent("""
            [t]
            exten => s,1,Set(TIMEOUT(digit)=0.5)
             same => n,WaitExten(3)
            exten => 42,1,Set(GOT=${EXTEN})
            exten => 4,1,Set(GOT=four)
            exten => _4XX,1,Set(GOT=pattern)
            """)) as (pbx, _):
            loop = asyncio.get_running_loop()
            phone = await dial(pbx, "s@t")
            await press(phone)
            sent = loop.time()
            chan = await phone.finished()
            return chan, loop.time() - sent
    chan, waited = run(main())
    # "42" exists but _4XX could still match: the pbx waits out the digit timeout
    assert chan.vars["GOT"] == "42"
    assert 0.2 < waited < 1.3  # (the script returns 0.2 s after the last digit)


def test_waitexten_invalid_goes_to_i(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.1)
        await phone.digits("9")

    chan, _, _ = scenario(tmp_path, """
        [t]
        exten => s,1,WaitExten(2)
        exten => 1,1,Set(GOT=one)
        exten => i,1,Set(BAD=${INVALID_EXTEN})
        """, "s@t", press)
    assert chan.vars["BAD"] == "9" and "GOT" not in chan.vars


def test_waitexten_timeout_goes_to_t_or_continues(tmp_path: Path) -> None:
    async def main() -> tuple[Channel, Channel, float]:
        async with media_pbx(tmp_path, textwrap.dedent("""
            [t]
            exten => s,1,WaitExten(0.3)
            exten => t,1,Set(TIMEDOUT=yes)
            exten => c,1,WaitExten(0.2)
             same => n,Set(CONTINUED=yes)
            """)) as (pbx, _):
            loop = asyncio.get_running_loop()
            start = loop.time()
            first = await (await dial(pbx, "s@t")).finished()
            elapsed = loop.time() - start
            second = await (await dial(pbx, "c@t")).finished()
            return first, second, elapsed
    first, second, elapsed = run(main())
    assert first.vars["TIMEDOUT"] == "yes" and 0.25 < elapsed < 1.5
    assert second.vars["CONTINUED"] == "yes"


def test_digit_timeout_from_timeout_function_ends_a_partial_extension(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.1)
        await phone.digits("1")

    chan, _, lines = scenario(tmp_path, """
        [t]
        exten => s,1,Set(TIMEOUT(digit)=0.4)
         same => n,Set(D=${TIMEOUT(digit)})
         same => n,WaitExten(5)
        exten => 12,1,Set(GOT=twelve)
        exten => i,1,Set(BAD=${INVALID_EXTEN})
        """, "s@t", press, timeout=3)
    assert chan.vars["D"] == "0.400"
    assert chan.vars["BAD"] == "1"


# ---------------------------------------------------------------------- Read
def read_case(tmp_path: Path, app: str, keys: str, delay: float = 0.1,
              timeout: float = 10) -> tuple[Channel, Phone, float]:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(delay)
        await phone.digits(keys)

    async def main() -> tuple[Channel, Phone, float]:
        async with media_pbx(tmp_path, f"[t]\nexten => s,1,{app}\n") as (pbx, _):
            loop = asyncio.get_running_loop()
            start = loop.time()
            phone = await dial(pbx, "s@t")
            await press(phone)
            chan = await phone.finished(timeout)
            return chan, phone, loop.time() - start
    return run(main())  # type: ignore[no-any-return]


def test_read_stops_at_maxdigits(tmp_path: Path) -> None:
    chan, _, _ = read_case(tmp_path, "Read(V,,3)", "1234")
    assert chan.vars["V"] == "123" and chan.vars["READSTATUS"] == "OK"


def test_read_stops_at_pound(tmp_path: Path) -> None:
    chan, _, _ = read_case(tmp_path, "Read(V)", "42#")
    assert chan.vars["V"] == "42" and chan.vars["READSTATUS"] == "OK"


def test_read_timeout_and_attempts(tmp_path: Path) -> None:
    chan, _, elapsed = read_case(tmp_path, "Read(V,,,,2,0.3)", "")
    assert chan.vars["V"] == "" and chan.vars["READSTATUS"] == "TIMEOUT"
    assert 0.55 < elapsed < 2.0  # two attempts of 0.3 s


def test_read_digits_without_terminator_time_out_with_value(tmp_path: Path) -> None:
    chan, _, _ = read_case(tmp_path, "Read(V,,,,,0.4)", "7")
    assert chan.vars["V"] == "7" and chan.vars["READSTATUS"] == "TIMEOUT"


def test_read_skip_when_not_answered(tmp_path: Path) -> None:
    chan, _, _ = read_case(tmp_path, "Read(V,,,s)", "")
    assert chan.vars["V"] == "" and chan.vars["READSTATUS"] == "SKIPPED"


def test_read_chapter_prompts_and_digit_interrupts(tmp_path: Path) -> None:
    # as in the chapter: the "1" lands in the options, so maxdigits stays 255 and Read
    # ends after the digit timeout, with READSTATUS=TIMEOUT (as Asterisk's does)
    chan, phone, elapsed = read_case(
        tmp_path, "Set(TIMEOUT(digit)=0.3)\nexten => s,2,"
        "Read(CheckMeetingAcceptance,to-confirm-wakeup&press-1&otherwise&press-2,,1)",
        "1", delay=0.15)
    assert chan.vars["CheckMeetingAcceptance"] == "1" and chan.vars["READSTATUS"] == "TIMEOUT"
    assert elapsed < 1.5
    heard = phone.audio
    assert abs(freq_of(heard[: 5 * 320]) - 300) < 10  # the first prompt was playing
    assert len(phone.frames) < 20  # the digit stopped the prompts (4 x 5 frames)


def test_read_hangup_status(tmp_path: Path) -> None:
    async def hang(phone: Phone) -> None:
        await asyncio.sleep(0.2)
        await phone.one.hangup()

    async def main() -> Channel:
        async with media_pbx(tmp_path, "[t]\nexten => s,1,Read(V,,,,,5)\n"
                                       "exten => h,1,Set(HS=${READSTATUS})\n") as (pbx, _):
            phone = await dial(pbx, "s@t")
            await hang(phone)
            return await phone.finished(3)
    chan = run(main())
    assert chan.vars["HS"] == "HANGUP"


# ---------------------------------------------------------------------- Record
def recorded(tmp_path: Path, chan: Channel, ext: str) -> np.ndarray:
    name = chan.vars["RECORDED_FILE"]
    path = Path(name if name.startswith("/") else tmp_path / "data" / "sounds" / name)
    return read_all(path.with_name(f"{path.name}.{ext}"), ext)


def test_record_stores_the_audio_and_stops_on_pound(tmp_path: Path) -> None:
    async def talk(phone: Phone) -> None:
        await asyncio.sleep(0.3)  # the beep
        await phone.send_audio(frames_of(440, 1.0))
        await phone.digits("#")

    chan, phone, _ = scenario(tmp_path, f"""
        [t]
        exten => s,1,Record({tmp_path}/rec/msg.wav)
         same => n,Set(DUR=${{RECORDING_INFO(duration)}})
        """, "s@t", talk)
    assert chan.vars["RECORD_STATUS"] == "DTMF"
    assert chan.vars["RECORDED_FILE"] == f"{tmp_path}/rec/msg"
    samples = recorded(tmp_path, chan, "wav")
    assert abs(freq_of(samples) - 440) < 3
    assert 0.55 < len(samples) / RATE < 1.0  # a second of tone, minus the last 250 ms
    assert abs(freq_of(phone.audio[: 5 * 320]) - 1000) < 10  # the beep came first
    assert 800 < int(chan.vars["DUR"]) < 2000


def test_record_stops_on_silence_and_keeps_one_second_of_it(tmp_path: Path) -> None:
    async def talk(phone: Phone) -> None:
        await asyncio.sleep(0.05)
        await phone.send_audio(frames_of(440, 0.5))
        await phone.send_audio([b"\0" * 320] * 115)

    chan, _, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Record(quiet/%d.gsm,2,,q)
        """, "s@t", talk)
    assert chan.vars["RECORD_STATUS"] == "SILENCE"
    assert chan.vars["RECORDED_FILE"] == "quiet/0"
    samples = recorded(tmp_path, chan, "gsm")
    assert abs(len(samples) / RATE - 1.5) < 0.1  # 0.5 s of tone + 1 s of the silence
    assert abs(freq_of(samples[: 4000]) - 440) < 5


def test_record_maxduration_and_unique_names(tmp_path: Path) -> None:
    async def talk(phone: Phone) -> None:
        await phone.send_audio(frames_of(440, 2.2))

    (tmp_path / "data" / "sounds").mkdir(parents=True, exist_ok=True)
    chan, _, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Answer()
         same => n,Record(take-%d.WAV,0,1,q)
         same => n,Set(FIRST=${RECORDED_FILE})
         same => n,Record(take-%d.WAV,0,1,q)
        """, "s@t", talk)
    assert chan.vars["FIRST"] == "take-0" and chan.vars["RECORDED_FILE"] == "take-1"
    assert chan.vars["RECORD_STATUS"] == "TIMEOUT"
    samples = recorded(tmp_path, chan, "WAV")
    assert 0.8 < len(samples) / RATE < 1.1 and abs(freq_of(samples) - 440) < 5


def test_record_hangup_discards_unless_k(tmp_path: Path) -> None:
    async def talk(phone: Phone) -> None:
        await phone.send_audio(frames_of(440, 0.3))
        await phone.one.hangup()

    for opts, kept in (("q", False), ("qk", True)):
        chan, _, _ = scenario(tmp_path / opts, f"""
            [t]
            exten => s,1,Record(r.ulaw,0,0,{opts})
            exten => h,1,Set(HS=${{RECORD_STATUS}})
            """, "s@t", talk, timeout=3)
        assert chan.vars["HS"] == "HANGUP"
        assert (tmp_path / opts / "data" / "sounds" / "r.ulaw").exists() is kept


def test_record_without_extension_is_an_error(tmp_path: Path) -> None:
    chan, _, _ = scenario(tmp_path, "[t]\nexten => s,1,Record(nofmt)\n", "s@t")
    assert chan.vars["RECORD_STATUS"] == "ERROR"


# ---------------------------------------------------------------------- SendDTMF, Say, Echo
def test_senddtmf_digits_and_pauses(tmp_path: Path) -> None:
    got: list[tuple[str, float]] = []

    async def listen(phone: Phone) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            digit = await phone.one.wait_digit(3)
            assert digit is not None
            got.append((digit, loop.time()))

    scenario(tmp_path, "[t]\nexten => s,1,SendDTMF(12w3,50,60)\n", "s@t", listen)
    assert [d for d, _ in got] == ["1", "2", "3"]
    assert got[2][1] - got[1][1] > 0.5


def test_saynumber_plays_the_english_file_list(tmp_path: Path) -> None:
    _, phone, lines = scenario(tmp_path, "[t]\nexten => s,1,SayNumber(1234)\n"
                                         " same => n,SayDigits(5#)\n", "s@t")
    played = [line.split("'")[1] for line in lines if "Playing '" in line]
    assert played == ["digits/1.sln", "digits/thousand.sln", "digits/2.sln", "digits/hundred.sln",
                      "digits/30.sln", "digits/4.sln", "digits/5.sln", "digits/pound.sln"]
    assert len(phone.frames) == 8 * 2


def test_echo_returns_audio_until_pound(tmp_path: Path) -> None:
    async def talk(phone: Phone) -> None:
        await asyncio.sleep(0.05)
        await phone.send_audio(frames_of(700, 0.4))
        await asyncio.sleep(0.1)
        await phone.digits("#")

    chan, phone, _ = scenario(tmp_path, "[t]\nexten => s,1,Answer()\n same => n,Echo()\n"
                                        " same => n,Set(AFTER=1)\n", "s@t", talk)
    assert chan.vars["AFTER"] == "1"
    assert len(phone.frames) == 20 and abs(freq_of(phone.audio) - 700) < 3


# ---------------------------------------------------------------------- tones, MOH
def hangup_after(seconds: float) -> Script:
    async def script(phone: Phone) -> None:
        await asyncio.sleep(seconds)
        await phone.one.hangup()
    return script


def test_milliwatt_is_1004_hz(tmp_path: Path) -> None:
    _, phone, _ = scenario(tmp_path, "[t]\nexten => s,1,Milliwatt()\n", "s@t", hangup_after(0.4))
    assert len(phone.frames) >= 10
    assert abs(freq_of(phone.audio) - 1004) < 3
    assert np.abs(np.frombuffer(phone.audio, "<i2")).max() > 20000


def test_playtones_busy_runs_in_background_until_stopped(tmp_path: Path) -> None:
    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Answer()
         same => n,Playtones(busy)
         same => n,Set(BG=running)
         same => n,Wait(1.2)
         same => n,StopPlaytones()
         same => n,Wait(0.3)
        """, "s@t")
    assert chan.vars["BG"] == "running"
    frames = [p for _, p in phone.frames]
    assert 55 <= len(frames) <= 63  # about 1.2 s, nothing after StopPlaytones
    on = b"".join(frames[2:22])
    off = b"".join(frames[27:47])
    assert goertzel(on, 480) > 1e5 and goertzel(on, 620) > 1e5
    assert not np.frombuffer(off, "<i2").any()  # the cadence's silent half


def test_playtones_tone_string_and_playback_stops_it(tmp_path: Path) -> None:
    _, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Answer()
         same => n,Playtones(825)
         same => n,Wait(0.3)
         same => n,Playback(tone1k)
         same => n,Wait(0.3)
        """, "s@t")
    audio = phone.audio
    assert abs(freq_of(audio[: 10 * 320]) - 825) < 5
    assert abs(freq_of(audio[-10 * 320:]) - 1000) < 5  # the generator did not come back


def test_musiconhold_loops_the_class_files_in_order(tmp_path: Path) -> None:
    _, phone, lines = scenario(tmp_path, """
        [t]
        exten => s,1,Answer()
         same => n,MusicOnHold(,1)
         same => n,Set(DONE=1)
        """, "s@t", musiconhold_conf="[default]\nmode=files\ndirectory=moh\nsort=alpha\n")
    frames = [p for _, p in phone.frames]
    assert 45 <= len(frames) <= 55
    blocks = [round(freq_of(b"".join(frames[i:i + 10])) / 100) * 100 for i in range(0, 40, 10)]
    assert blocks == [300, 700, 300, 700]
    assert any("Started music on hold, class 'default'" in line for line in lines)


def test_playtones_uses_indications_conf_country(tmp_path: Path) -> None:
    _, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Playtones(dial)
         same => n,Wait(0.3)
        """, "s@t", indications_conf="[general]\ncountry=xx\n[xx]\ndial=425\n")
    assert abs(freq_of(phone.audio) - 425) < 5


def test_musiconhold_without_duration_ends_at_hangup(tmp_path: Path) -> None:
    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Answer()
         same => n,MusicOnHold()
         same => n,Set(NEVER=1)
        """, "s@t", hangup_after(0.5), timeout=3)
    assert "NEVER" not in chan.vars
    assert 15 <= len(phone.frames) <= 30  # the default class (astdatadir/moh) played


def test_read_indication_option_plays_the_tone_until_a_digit(tmp_path: Path) -> None:
    chan, phone, _ = read_case(tmp_path, "Read(V,dial,1,i)", "5", delay=0.4)
    assert chan.vars["V"] == "5" and chan.vars["READSTATUS"] == "OK"
    heard = phone.audio
    assert goertzel(heard, 350) > 1e5 and goertzel(heard, 440) > 1e5


def test_background_m_option_ignores_digits_that_are_not_extensions(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.2)
        await phone.digits("9")  # no extension 9: ignored by 'm'
        await asyncio.sleep(0.2)
        await phone.digits("3")

    chan, phone, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Background(long,m)
        exten => 3,1,Set(GOT=three)
        exten => i,1,Set(BAD=${INVALID_EXTEN})
        """, "s@t", press)
    assert chan.vars["GOT"] == "three" and "BAD" not in chan.vars
    assert 15 <= len(phone.frames) <= 35


def test_say_dtmf_interrupt_lets_a_digit_choose_an_extension(tmp_path: Path) -> None:
    async def press(phone: Phone) -> None:
        await asyncio.sleep(0.1)
        await phone.digits("7")

    chan, _, _ = scenario(tmp_path, """
        [t]
        exten => s,1,Set(SAY_DTMF_INTERRUPT=yes)
         same => n,SayNumber(987654321)
         same => n,Set(FINISHED=1)
        exten => 7,1,Set(GOT=seven)
        """, "s@t", press)
    assert chan.vars["GOT"] == "seven" and "FINISHED" not in chan.vars
