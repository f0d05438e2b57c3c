"""The conference mixer (sans-IO): each listener hears the others' sum, never itself."""

from __future__ import annotations

import numpy as np
import pytest

from hookflash.conference.mixer import FRAME_SAMPLES, Mixer, mix_reference

T = np.arange(FRAME_SAMPLES) / 8000


def tone(freq: float, amplitude: int = 6000, phase: float = 0.0) -> bytes:
    return (amplitude * np.sin(2 * np.pi * freq * T + phase)).astype("<i2").tobytes()


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int64)


def test_each_participant_hears_the_sum_of_the_others_and_not_itself() -> None:
    mixer = Mixer(clipping="saturate")
    frames = {"a": tone(500), "b": tone(900), "c": tone(1400), "d": tone(2000)}
    for key in frames:
        mixer.add(key)
    for key, data in frames.items():
        mixer.push(key, data)
    out = mixer.tick()
    assert set(out) == set(frames)
    for key, frame in frames.items():
        expected = mix_reference(f for k, f in frames.items() if k != key)
        assert out[key] == expected
        own = pcm(frame)
        # the own signal is absent: the output is orthogonal to it, unlike the others'
        assert abs(float(np.dot(pcm(out[key]), own))) < 0.05 * float(np.dot(own, own))


def test_a_lone_participant_hears_silence() -> None:
    mixer = Mixer()
    mixer.add("a")
    mixer.push("a", tone(500))
    assert pcm(mixer.tick()["a"]).any() is np.False_


def test_saturation_clamps_to_int16() -> None:
    mixer = Mixer(clipping="saturate")
    loud = (np.full(FRAME_SAMPLES, 30000)).astype("<i2").tobytes()
    for key in "abc":
        mixer.add(key)
        mixer.push(key, loud)
    out = pcm(mixer.tick()["a"])
    assert out.max() == 32767 and out.min() == 32767  # 60000 clamped, no wrap-around


def test_soft_limiter_keeps_quiet_sums_and_bends_loud_ones_below_full_scale() -> None:
    mixer = Mixer(clipping="limit", knee=20000)
    for key in "abc":
        mixer.add(key)
    mixer.push("a", tone(500, 3000))
    mixer.push("b", tone(900, 3000))
    mixer.push("c", tone(1400, 3000))
    quiet = mixer.tick()
    assert quiet["a"] == mix_reference([tone(900, 3000), tone(1400, 3000)])  # below the knee: exact
    loud = (np.full(FRAME_SAMPLES, 25000)).astype("<i2").tobytes()
    for key in "abc":
        mixer.push(key, loud)
    out = pcm(mixer.tick()["a"])
    assert 20000 < out.min() <= out.max() < 32767  # 50000 bent, not clamped nor wrapped
    negative = (np.full(FRAME_SAMPLES, -25000)).astype("<i2").tobytes()
    for key in "abc":
        mixer.push(key, negative)
    assert -32768 < pcm(mixer.tick()["b"]).min() < -20000


def test_muted_and_listen_only_contribute_nothing_but_still_hear() -> None:
    mixer = Mixer(clipping="saturate")
    mixer.add("a")
    mixer.add("b", talk=False)  # listen only
    mixer.add("c", muted=True)
    for key, freq in zip("abc", (500, 900, 1400)):
        mixer.push(key, tone(freq))
    out = mixer.tick()
    assert pcm(out["a"]).any() is np.False_  # b and c are not heard
    assert out["b"] == tone(500) and out["c"] == tone(500)
    mixer.participants["c"].muted = False
    for key, freq in zip("abc", (500, 900, 1400)):
        mixer.push(key, tone(freq))
    assert mixer.tick()["a"] == tone(1400)


def test_talk_only_participant_gets_no_output() -> None:
    mixer = Mixer()
    mixer.add("a", listen=False)
    mixer.add("b")
    mixer.push("a", tone(500))
    out = mixer.tick()
    assert "a" not in out and out["b"] == tone(500)


def test_late_frame_counts_as_silence_and_queue_depth_is_bounded() -> None:
    mixer = Mixer(depth=3)
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", tone(500))
    mixer.tick()
    out = mixer.tick()  # a's next frame is late
    assert pcm(out["b"]).any() is np.False_ and mixer.participants["a"].underruns == 1
    frames = [tone(500, 1000 + 100 * i) for i in range(6)]
    for frame in frames:  # a burst: only the newest three are kept
        mixer.push("a", frame)
    assert mixer.participants["a"].dropped == 3
    heard = [mixer.tick()["b"] for _ in range(3)]
    assert heard == frames[3:]


def test_odd_sized_frames_are_reframed() -> None:
    mixer = Mixer(clipping="saturate")
    mixer.add("a")
    mixer.add("b")
    data = (np.arange(480) % 1000).astype("<i2").tobytes()  # 30 ms packets
    mixer.push("a", data[:480])  # 240 samples
    first = mixer.tick()["b"]
    mixer.push("a", data[480:])
    second = mixer.tick()["b"]
    third = mixer.tick()["b"]
    assert first + second + third == data


def test_other_rates_are_resampled_both_ways() -> None:
    mixer = Mixer(clipping="saturate")
    mixer.add("wide", rate=16000)
    mixer.add("narrow")
    t16 = np.arange(320 * 20) / 16000
    wide = (8000 * np.sin(2 * np.pi * 700 * t16)).astype("<i2").tobytes()
    heard_narrow, heard_wide = b"", b""
    for i in range(20):
        mixer.push("wide", wide[i * 640:(i + 1) * 640])
        mixer.push("narrow", tone(1200, 8000, 2 * np.pi * 1200 * i * 0.02))
        out = mixer.tick()
        heard_narrow += out["narrow"]
        heard_wide += out["wide"]
    assert len(out["wide"]) == 640  # 20 ms at 16 kHz

    def peak(data: bytes, rate: int) -> float:
        x = np.frombuffer(data, dtype="<i2").astype(float)[len(data) // 8:]
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])

    assert abs(peak(heard_narrow, 8000) - 700) < 20
    assert abs(peak(heard_wide, 16000) - 1200) < 20


def test_talker_detection_with_hangover() -> None:
    mixer = Mixer(talk_hangover=3)
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", tone(500, 4000))
    mixer.push("b", bytes(320))
    mixer.tick()
    assert mixer.talking() == ["a"]
    for _ in range(2):
        mixer.push("a", bytes(320))
        mixer.tick()
    assert mixer.talking() == ["a"]  # still within the hangover
    mixer.push("a", bytes(320))
    mixer.tick()
    assert mixer.talking() == []


def test_gains_scale_what_is_said_and_heard() -> None:
    mixer = Mixer(clipping="saturate")
    a = mixer.add("a")
    b = mixer.add("b")
    a.talk_gain = 2.0
    b.listen_gain = 0.5
    mixer.push("a", tone(500, 4000))
    assert np.abs(pcm(mixer.tick()["b"]) - pcm(tone(500, 4000))).max() <= 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Mixer(clipping="wrap")
    mixer = Mixer()
    mixer.add("a")
    with pytest.raises(KeyError):
        mixer.add("a")
