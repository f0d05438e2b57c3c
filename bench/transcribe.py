"""Voicemail transcription accuracy and cost: WER per TTS voice, CPU s per audio minute.

    .venv/bin/python bench/transcribe.py [--configs NAME ...] [--voices NAME ...]
                                         [--no-ulaw] [--limit N] [--verbose]

Synthesises voicemail-style English sentences with every TTS voice installed
here (Festival kal16k and the SLT HTS voice via text2wave, espeak-ng, flite),
resamples each to 8 kHz mono 16-bit like a phone call records, passes it through
G.711 µ-law encode/decode (the call path; --no-ulaw to skip), writes a WAV and
transcribes it with hookflash.voicemail.transcribe.Transcriber in each
configuration. Prints per configuration and voice: word error rate (word-level
Levenshtein after normalising case, punctuation and numbers written as digits),
CPU seconds per minute of audio (time.process_time around transcribe, the
model load excluded and shown apart) and the real-time factor (wall time /
audio time). Goal: WER under 25 %. Figures only; nothing here fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np
import soundfile as sf

from hookflash.media.codecs import g711
from hookflash.voicemail.transcribe import Transcriber, resample

# What a caller leaves: names, call-back requests, phone numbers read as
# digits, times, dates, places. Written as spoken (the reference).
SENTENCES = [
    "hi this is john please call me back about the invoice",
    "hello it's sarah from the dentist's office calling to confirm your appointment on tuesday",
    "my number is five five five one two three four",
    "please call me back at eight four seven two nine one six",
    "hey it's mike I'm running late I'll be there around three thirty",
    "this is a message for david the meeting has been moved to friday morning",
    "good morning this is the pharmacy your prescription is ready for pick up",
    "hi mom just calling to say happy birthday give me a call when you get this",
    "this is peter from accounts we still haven't received the payment for last month",
    "can you send me the report before the end of the day thanks",
    "hello this is emma I wanted to ask about the apartment for rent",
    "the delivery will arrive tomorrow between nine and eleven in the morning",
    "please call the front desk if you need to change your reservation",
    "hi it's robert I left my keys at your place can I pick them up tonight",
    "we are calling about your car warranty please press one to speak to an agent",
    "this is doctor brown's office your test results are back and everything looks fine",
    "call me on my mobile at seven one three four four two nine",
    "I'm at the airport my flight was delayed by two hours",
    "hi lisa the conference call is at ten o'clock tomorrow",
    "just checking in to see if you are still coming to dinner on saturday",
    "this is the school calling your son is not feeling well please pick him up",
    "hello James it's Anna the package was delivered to the wrong address",
    "please return my call as soon as possible it's about the contract",
    "thank you for calling we will get back to you within two business days",
]

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SPELLING = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "mum": "mom", "pickup": "pick up"}


def _number_words(tok: str) -> str:
    """'3' -> 'three', '30' -> 'thirty', '555' -> 'five five five' (digit strings)."""
    n = int(tok)
    if len(tok) <= 2 and not (len(tok) == 2 and tok[0] == "0"):
        if n < 20:
            return _UNITS[n]
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _UNITS[n % 10])
    return " ".join(_UNITS[int(d)] for d in tok)


def normalise(text: str) -> list[str]:
    """Words for WER: lowercase, no punctuation, digits spelt out, common spellings unified."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(\d):(\d\d)", lambda m: m.group(1) + " " + ("" if m.group(2) == "00" else m.group(2)), text)
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text)
    # "8-4-7-2916", "7-1-34-429": a phone number, read digit by digit
    text = re.sub(r"\d+(?:-\d+)+", lambda m: " ".join(d for d in m.group(0) if d.isdigit()), text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words: list[str] = []
    for tok in text.split():
        tok = tok.strip("'")
        if not tok:
            continue
        if tok.isdigit():
            words.extend(_number_words(tok).split())
        else:
            words.extend(_SPELLING.get(tok, tok).split())
    return words


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: total word edits / total reference words."""
    edits = total = 0
    for r, h in zip(refs, hyps, strict=True):
        rw = normalise(r)
        edits += edit_distance(rw, normalise(h))
        total += len(rw)
    return edits / max(total, 1)


# ----------------------------------------------------------------------------- TTS

VOICES: dict[str, tuple[str, list[str]]] = {
    # name: (binary, argv with {txt} and {wav})
    "festival-kal16k": ("text2wave", ["text2wave", "{txt}", "-o", "{wav}"]),
    "festival-slt-hts": ("text2wave", ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "{txt}", "-o", "{wav}"]),
    "espeak-ng": ("espeak-ng", ["espeak-ng", "-v", "en-us", "-f", "{txt}", "-w", "{wav}"]),
    "flite": ("flite", ["flite", "-f", "{txt}", "-o", "{wav}"]),
}


def to_phone_line(src: Path, dst: Path, ulaw: bool) -> float:
    """src (any rate) -> 8 kHz mono 16-bit WAV dst, optionally via G.711 µ-law. Returns seconds."""
    x, sr = sf.read(str(src), dtype="float32", always_2d=True)
    x = resample(x.mean(axis=1), int(sr), 8000)
    peak = float(np.max(np.abs(x))) or 1.0
    pcm = (np.clip(x / peak * 0.7, -1, 1) * 32767).astype("<i2")  # -3 dBFS, a typical recorded level
    if ulaw:
        pcm = np.frombuffer(g711.ulaw_decode(g711.ulaw_encode(pcm.tobytes())), dtype="<i2")
    sf.write(str(dst), pcm, 8000, subtype="PCM_16")
    return len(pcm) / 8000


def synthesise(voice: str, text: str, workdir: Path, idx: int, ulaw: bool) -> tuple[Path, float]:
    _, argv = VOICES[voice]
    txt = workdir / f"{voice}-{idx}.txt"
    raw = workdir / f"{voice}-{idx}.raw.wav"
    out = workdir / f"{voice}-{idx}.wav"
    txt.write_text(text + "\n")
    subprocess.run([a.format(txt=txt, wav=raw) for a in argv], check=True, capture_output=True, timeout=120)
    return out, to_phone_line(raw, out, ulaw)


# ----------------------------------------------------------------------------- configs

CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    "whisper-tiny.en-beam5": ("whisper", {}),
    "whisper-tiny.en-greedy": ("whisper", {"beam_size": 1}),
    "pocketsphinx-default": ("pocketsphinx", {}),
    # best cheap decoder tweak found (default lw 6.5, wip 0.65); wider beams and
    # lw 3/4/10 did no better, and 8 kHz decoding is refused by the 16 kHz model
    "pocketsphinx-lw5-wip0.5": ("pocketsphinx", {"lw": 5.0, "wip": 0.5}),
}


@dataclass
class Result:
    wer: float
    cpu_per_min: float
    rtf: float
    audio_s: float
    load_s: float
    hyps: list[str]


def run_config(name: str, items: list[tuple[Path, float]], refs: list[str]) -> Result:
    backend, options = CONFIGS[name]
    t = Transcriber(backend, **options)
    t0 = time.perf_counter()
    t._get_engine()  # model load, timed apart
    load_s = time.perf_counter() - t0
    hyps: list[str] = []
    cpu = wall = audio = 0.0
    for path, secs in items:
        c0, w0 = time.process_time(), time.perf_counter()
        hyps.append(t.transcribe(path))
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        audio += secs
    return Result(wer(refs, hyps), cpu / (audio / 60), wall / audio, audio, load_s, hyps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--voices", nargs="*", default=list(VOICES), choices=list(VOICES))
    ap.add_argument("--no-ulaw", action="store_true", help="skip the G.711 µ-law round trip")
    ap.add_argument("--limit", type=int, default=len(SENTENCES), help="first N sentences only")
    ap.add_argument("--verbose", action="store_true", help="print every wrong hypothesis")
    args = ap.parse_args()

    sentences = SENTENCES[: args.limit]
    configs = [c for c in args.configs if Transcriber(CONFIGS[c][0]).available()]
    for c in set(args.configs) - set(configs):
        print(f"# {c}: recogniser not installed, skipped")
    voices = [v for v in args.voices if shutil.which(VOICES[v][0])]
    for v in set(args.voices) - set(voices):
        print(f"# {v}: {VOICES[v][0]} not installed, skipped")
    line = "8 kHz mono 16-bit" + ("" if args.no_ulaw else " via G.711 µ-law")
    print(f"# {len(sentences)} sentences, {line}, WER goal < 25 %")

    with tempfile.TemporaryDirectory(prefix="hf-transcribe-") as tmp:
        work = Path(tmp)
        audio = {v: [synthesise(v, s, work, i, not args.no_ulaw) for i, s in enumerate(sentences)] for v in voices}
        print(f"{'config':26} {'voice':18} {'audio s':>8} {'WER %':>7} {'CPU s/min':>10} {'RTF':>6} {'load s':>7}")
        for c in configs:
            total_edits_words: list[tuple[float, int]] = []
            for v in voices:
                r = run_config(c, audio[v], sentences)
                nwords = sum(len(normalise(s)) for s in sentences)
                total_edits_words.append((r.wer * nwords, nwords))
                print(f"{c:26} {v:18} {r.audio_s:8.1f} {100 * r.wer:7.1f} {r.cpu_per_min:10.2f} {r.rtf:6.3f} {r.load_s:7.2f}")
                if args.verbose:
                    for ref, hyp in zip(sentences, r.hyps, strict=True):
                        if normalise(ref) != normalise(hyp):
                            print(f"    ref: {ref}\n    hyp: {hyp}")
            edits = sum(e for e, _ in total_edits_words)
            words = sum(n for _, n in total_edits_words)
            print(f"{c:26} {'ALL':18} {'':8} {100 * edits / max(words, 1):7.1f}")


if __name__ == "__main__":
    main()
