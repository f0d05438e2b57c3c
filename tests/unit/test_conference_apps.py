"""MeetMe and ConfBridge in a real Pbx with in-memory channels.

The channels here are the engine's Channel with a technology that keeps what is
written to it and a feeder that queues tone frames every 20 ms, as a SIP leg would:
these tests check the rooms' logic quickly; tests/integration/test_conference.py
does the same with real SIP phones.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hookflash.channels.channel import Channel, ChannelState, ChannelTech, Frame
from hookflash.conf import ConfigError
from hookflash.conf.parser import parse_text
from hookflash.conference import confbridge, meetme
from hookflash.engine.registry import CliArgs
from hookflash.media.tone import goertzel
from tests.helpers import running_pbx
from tests.integration.sip_peers import tone_wav


def async_test(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


EXT = """
[default]
exten => s,1,NoOp()
"""


class Capture(ChannelTech):
    tech_name = "Test"

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        self.frames.append(frame.payload)


class Leg:
    """A channel that 'speaks' a tone and records what it hears."""

    def __init__(self, pbx: Any, name: str, freq: float) -> None:
        self.tech = Capture()
        self.chan = pbx.new_channel(f"Test/{name}", self.tech, state=ChannelState.UP)
        self.chan.caller.num = name
        self.freq = freq
        self.task: asyncio.Task[Any] | None = None
        self.feeder = asyncio.ensure_future(self._feed())

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        t = np.arange(160) / 8000
        while not self.chan.softhangup:
            phase = 2 * np.pi * self.freq * n * 0.02
            pcm = (5000 * np.sin(2 * np.pi * self.freq * t + phase)).astype("<i2").tobytes() if self.freq \
                else bytes(320)
            self.chan.queue_frame(Frame("voice", pcm, 160))
            n += 1
            await asyncio.sleep(max(start + n * 0.02 - loop.time(), 0))

    def run(self, pbx: Any, app: str, data: str) -> Leg:
        execute = pbx.registry.application(app).execute
        self.task = asyncio.ensure_future(execute(self.chan, data))
        return self

    def heard(self, seconds: float = 1.0) -> bytes:
        return b"".join(self.tech.frames[-int(seconds * 50):])

    def mark(self) -> int:
        return len(self.tech.frames)

    def since(self, mark: int) -> bytes:
        return b"".join(self.tech.frames[mark:])

    async def hangup(self) -> Any:
        self.chan.request_hangup()
        result = await asyncio.wait_for(self.task, 5) if self.task else None
        self.feeder.cancel()
        return result


def power(pcm: bytes, freq: float) -> float:
    return goertzel(pcm, freq)


def cli(module: Any, handler: str, *argv: str) -> str:
    return getattr(module, handler)(CliArgs(module.pbx, list(argv), list(argv)))


@async_test
async def test_meetme_three_legs_each_hear_the_other_two_not_themselves(tmp_path: Path) -> None:
    async with running_pbx(tmp_path, EXT) as (pbx, _lines):
        legs = [Leg(pbx, n, f) for n, f in (("a", 500), ("b", 900), ("c", 1400))]
        for leg in legs:
            leg.run(pbx, "MeetMe", "4321,dq1")
        await asyncio.sleep(1.0)
        module = pbx.modules.loaded["app_meetme"]
        assert module.rooms["4321"].count == 3
        for leg in legs:
            heard = leg.heard(0.6)
            others = [x.freq for x in legs if x is not leg]
            for f in others:
                assert power(heard, f) > 1e6, (leg.freq, f)
            assert power(heard, leg.freq) < 0.01 * min(power(heard, f) for f in others)
        results = [await leg.hangup() for leg in legs]
        assert results == [-1, -1, -1]
        await asyncio.sleep(0.1)
        assert "4321" not in module.rooms  # a dynamic room ends with its last member


@async_test
async def test_meetme_w_waits_with_music_on_hold_until_the_marked_user_joins(tmp_path: Path) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    tone_wav(moh / "tune.wav", 300, 3)
    async with running_pbx(tmp_path, EXT, musiconhold_conf=f"[default]\nmode=files\ndirectory={moh}\n") as (pbx, _):
        a = Leg(pbx, "a", 500).run(pbx, "MeetMe", "7000,dwq")
        b = Leg(pbx, "b", 900).run(pbx, "MeetMe", "7000,dwq")
        await asyncio.sleep(1.0)
        module = pbx.modules.loaded["app_meetme"]
        room = module.rooms["7000"]
        assert all(m.waiting for m in room.members.values())
        heard = a.heard(0.6)
        assert power(heard, 300) > 1e6 and power(heard, 900) < 1e4  # music, not b
        assert "(unmonitored)" in cli(module, "cli_list", "7000")
        mark_a = a.mark()
        leader = Leg(pbx, "boss", 1400).run(pbx, "MeetMe", "7000,dAq")
        await asyncio.sleep(1.0)
        assert not any(m.waiting for m in room.members.values())
        heard = a.since(mark_a)[-int(0.5 * 50) * 320:]
        assert power(heard, 900) > 1e6 and power(heard, 1400) > 1e6 and power(heard, 300) < 1e4
        listing = cli(module, "cli_list")
        assert listing.splitlines()[0].split() == ["Conf", "Num", "Parties", "Marked", "Activity", "Creation",
                                                   "Locked"]
        assert listing.splitlines()[1].startswith("7000") and " 0003\t" in listing and "0001" in listing
        assert "Dynamic" in listing and "* Total number of MeetMe users: 3" in listing
        # the leader leaves: w users wait again with music
        await leader.hangup()
        await asyncio.sleep(0.6)
        assert all(m.waiting for m in room.members.values())
        assert power(a.heard(0.4), 300) > 1e6
        await a.hangup()
        await b.hangup()


@async_test
async def test_meetme_x_leaves_when_the_last_marked_user_leaves(tmp_path: Path) -> None:
    async with running_pbx(tmp_path, EXT) as (pbx, _):
        leader = Leg(pbx, "boss", 500).run(pbx, "MeetMe", "55,dAq")
        user = Leg(pbx, "u", 900).run(pbx, "MeetMe", "55,dxqC")
        await asyncio.sleep(0.5)
        await leader.hangup()
        assert await asyncio.wait_for(user.task, 3) is None  # C: continue in the dialplan
        await user.hangup()


@async_test
async def test_meetme_console_kick_mute_and_static_room_pin(tmp_path: Path) -> None:
    conf = "[rooms]\nconf => 600,1234,9999\n"
    async with running_pbx(tmp_path, EXT, meetme_conf=conf) as (pbx, _):
        module = pbx.modules.loaded["app_meetme"]
        assert cli(module, "cli_list") == "No active MeetMe conferences.\n"
        a = Leg(pbx, "a", 500).run(pbx, "MeetMe", "600,q,1234")
        b = Leg(pbx, "b", 900).run(pbx, "MeetMe", "600,qT,9999")  # the admin PIN
        bad = Leg(pbx, "c", 700).run(pbx, "MeetMe", "nosuchroom,q")
        assert await asyncio.wait_for(bad.task, 10) is None  # conf-invalid, then on
        await asyncio.sleep(0.6)
        room = module.rooms["600"]
        assert not room.dynamic and room.count == 2
        listing = cli(module, "cli_list", "600")
        assert "User #: 01            a <no name>            Channel: Test/a" in listing
        assert "(Admin)" in listing.splitlines()[1] and "(talking)" in listing.splitlines()[1]
        assert listing.endswith("2 users in that conference.\n")
        assert "Static" in cli(module, "cli_list")
        assert cli(module, "cli_mute", "600", "1") == ""
        await asyncio.sleep(0.5)
        assert "(Admin Muted)" in cli(module, "cli_list", "600")
        assert power(b.heard(0.3), 500) < 1e4  # a is muted
        cli(module, "cli_unmute", "600", "1")
        await asyncio.sleep(0.5)
        assert power(b.heard(0.3), 500) > 1e6
        assert pbx.registry.function("MEETME_INFO").read(None, "parties,600") == "2"
        assert cli(module, "cli_kick", "600", "1") == ""
        assert await asyncio.wait_for(a.task, 10) == -1  # kicked, no C: hang up
        cli(module, "cli_kick", "600", "all")
        assert await asyncio.wait_for(b.task, 10) == -1
        await asyncio.sleep(0.1)
        assert "600" not in module.rooms
        a.feeder.cancel()
        b.feeder.cancel()
        bad.feeder.cancel()


@async_test
async def test_meetme_wrong_pin_three_times_hangs_up(tmp_path: Path) -> None:
    async with running_pbx(tmp_path, EXT, meetme_conf="[rooms]\nconf => 601,4321\n") as (pbx, _):
        leg = Leg(pbx, "a", 0)
        leg.run(pbx, "MeetMe", "601,q,1111")

        async def typing() -> None:  # wrong PINs, over and over (digits during a prompt are dropped)
            while True:
                await asyncio.sleep(0.5)
                for d in "0000#":
                    leg.chan.queue_dtmf(d)

        typist = asyncio.ensure_future(typing())
        assert await asyncio.wait_for(leg.task, 40) == -1
        typist.cancel()
        assert "601" not in pbx.modules.loaded["app_meetme"].rooms
        leg.feeder.cancel()


def test_meetme_conf_errors_name_the_line() -> None:
    conf = parse_text("[rooms]\nconf => 1,2,3\nconf => ,5\n", "meetme.conf")
    with pytest.raises(ConfigError) as err:
        meetme.parse_config(conf)
    assert "meetme.conf" in str(err.value) and "3" in str(err.value)


CB = """
[quietuser]
type=user
quiet=yes

[leader]
type=user
marked=yes
quiet=yes

[follower]
type=user
wait_marked=yes
end_marked=yes
music_on_hold_when_empty=yes
quiet=yes

[small]
type=bridge
max_members=2

[menu1]
type=menu
*1=toggle_mute
*2=leave_conference
"""


@async_test
async def test_confbridge_mixes_and_console_lists_kicks_mutes(tmp_path: Path) -> None:
    async with running_pbx(tmp_path, EXT, confbridge_conf=CB) as (pbx, _):
        module = pbx.modules.loaded["app_confbridge"]
        legs = [Leg(pbx, n, f).run(pbx, "ConfBridge", "room1,small,quietuser,menu1")
                for n, f in (("a", 500), ("b", 900))]
        extra = Leg(pbx, "c", 1400).run(pbx, "ConfBridge", "room1,small,quietuser")
        assert await asyncio.wait_for(extra.task, 10) == -1  # max_members=2
        await asyncio.sleep(0.8)
        a, b = legs
        assert power(a.heard(0.4), 900) > 1e6 and power(a.heard(0.4), 500) < 1e4
        listing = cli(module, "cli_list")
        assert listing.splitlines()[2].split() == ["room1", "2", "0", "unlocked"]
        detail = cli(module, "cli_list", "room1")
        assert detail.splitlines()[2].split() == ["Test/a", "quietuser", "small", "menu1", "a"]
        assert cli(module, "cli_mute", "room1", "Test/a") == "Muting Test/a from confbridge room1\n"
        await asyncio.sleep(0.4)
        assert power(b.heard(0.3), 500) < 1e4
        assert cli(module, "cli_list", "room1").splitlines()[2].split()[1] == "m"
        cli(module, "cli_unmute", "room1", "Test/a")
        for d in "*2":
            b.chan.queue_dtmf(d)  # the menu: leave_conference
        assert await asyncio.wait_for(b.task, 5) is None
        assert b.chan.get_var("CONFBRIDGE_RESULT") == "DTMF"
        assert cli(module, "cli_kick", "room1", "nobody") == "No participant named 'nobody' found!\n"
        assert cli(module, "cli_kick", "room1", "Test/a") == "Kicked 'Test/a' out of conference 'room1'\n"
        assert await asyncio.wait_for(a.task, 10) is None
        assert a.chan.get_var("CONFBRIDGE_RESULT") == "KICKED"
        assert cli(module, "cli_list", "room1") == "No conference bridge named 'room1' found!\n"
        for leg in (a, b, extra):
            leg.feeder.cancel()


@async_test
async def test_confbridge_wait_marked_and_end_marked(tmp_path: Path) -> None:
    moh = tmp_path / "moh"
    moh.mkdir()
    tone_wav(moh / "tune.wav", 300, 3)
    async with running_pbx(tmp_path, EXT, confbridge_conf=CB,
                           musiconhold_conf=f"[default]\nmode=files\ndirectory={moh}\n") as (pbx, _):
        module = pbx.modules.loaded["app_confbridge"]
        f1 = Leg(pbx, "f1", 500).run(pbx, "ConfBridge", "r,,follower")
        f2 = Leg(pbx, "f2", 900).run(pbx, "ConfBridge", "r,,follower")
        await asyncio.sleep(0.8)
        assert power(f1.heard(0.4), 300) > 1e6 and power(f1.heard(0.4), 900) < 1e4
        rows = cli(module, "cli_list", "r").splitlines()[2:]
        assert [r.split()[:2] for r in rows] == [["Test/f1", "WEw"], ["Test/f2", "WEw"]]  # both waiting
        assert pbx.registry.function("CONFBRIDGE_INFO").read(None, "marked,r") == "0"
        boss = Leg(pbx, "boss", 1400).run(pbx, "ConfBridge", "r,,leader")
        await asyncio.sleep(0.8)
        heard = f1.heard(0.4)
        assert power(heard, 900) > 1e6 and power(heard, 1400) > 1e6 and power(heard, 300) < 1e4
        assert pbx.registry.function("CONFBRIDGE_INFO").read(None, "marked,r") == "1"
        await boss.hangup()
        assert await asyncio.wait_for(f1.task, 5) is None
        assert await asyncio.wait_for(f2.task, 5) is None
        assert f1.chan.get_var("CONFBRIDGE_RESULT") == "ENDMARKED"
        for leg in (f1, f2):
            leg.feeder.cancel()


def test_confbridge_conf_errors_name_the_line() -> None:
    with pytest.raises(ConfigError) as err:
        confbridge.parse_config(parse_text("[u]\ntype=user\nmarked=perhaps\n", "confbridge.conf"))
    assert "line 3" in str(err.value) or ":3" in str(err.value)
    with pytest.raises(ConfigError) as err:
        confbridge.parse_config(parse_text("[u]\ntype=user\nfrobnicate=yes\n", "confbridge.conf"))
    assert "frobnicate" in str(err.value)
    with pytest.raises(ConfigError):
        confbridge.parse_config(parse_text("[m]\ntype=menu\n1=explode\n", "confbridge.conf"))
    with pytest.raises(ConfigError):
        confbridge.parse_config(parse_text("[x]\nmax_members=3\n", "confbridge.conf"))
    cfg = confbridge.parse_config(parse_text("[b]\ntype=bridge\nsound_join=beep\n", "confbridge.conf"))
    assert cfg.bridges["b"].sound("join") == "beep" and "default_user" in cfg.users


class Broken(Capture):
    async def write_frame(self, chan: Channel, frame: Frame) -> None:
        raise RuntimeError("driver exploded")


@async_test
async def test_a_leg_whose_writes_fail_leaves_and_the_room_goes_on(tmp_path: Path) -> None:
    """A driver error while writing one member's mix ends that member only."""
    async with running_pbx(tmp_path, EXT) as (pbx, _lines):
        legs = [Leg(pbx, n, f) for n, f in (("a", 500), ("b", 900))]
        bad = Leg(pbx, "c", 1400)
        bad.chan.tech = Broken()
        for leg in [*legs, bad]:
            leg.run(pbx, "MeetMe", "4321,dq1")
        await asyncio.sleep(1.0)
        module = pbx.modules.loaded["app_meetme"]
        assert "4321" in module.rooms
        assert module.rooms["4321"].count == 2
        assert bad.task is not None and bad.task.done()
        for leg, other in ((legs[0], legs[1]), (legs[1], legs[0])):
            assert power(leg.heard(0.4), other.freq) > 1e6
        for leg in legs:
            await leg.hangup()
        bad.feeder.cancel()


@async_test
async def test_confbridge_recorded_name_is_finished_off_the_event_loop(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """announce_join_leave: the recorded name (flush, fsync, rename) is closed in a worker
    thread, then the caller joins."""
    import threading

    from hookflash.media.files import SoundWriter
    closers: list[bool] = []
    original = SoundWriter.close

    def spy(self: SoundWriter) -> Any:
        closers.append(threading.current_thread() is threading.main_thread())
        return original(self)
    monkeypatch.setattr(SoundWriter, "close", spy)
    conf = CB + "\n[announcer]\ntype=user\nannounce_join_leave=yes\n"
    async with running_pbx(tmp_path, EXT, confbridge_conf=conf) as (pbx, _):
        a = Leg(pbx, "a", 500).run(pbx, "ConfBridge", "room1,,quietuser")
        await asyncio.sleep(0.3)
        b = Leg(pbx, "b", 900).run(pbx, "ConfBridge", "room1,,announcer")
        for _ in range(300):
            if closers:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert closers == [False]
        assert pbx.modules.loaded["app_confbridge"].rooms["room1"].count == 2
        for leg in (a, b):
            await leg.hangup()
