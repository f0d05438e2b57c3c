"""The chapter's prompts that Debian's sound packages lack are found by name once
scripts/make-prompts.sh has made them (Festival's text2wave) into the venv."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile

from hookflash.media.files import find_sound

PROMPTS = ["this-is-yr-wakeup-call", "to-confirm-wakeup", "press-1", "press-2", "otherwise",
           "pls-rcrd-name-at-tone", "and-prs-pound-whn-finished"]
OWN = Path(sys.prefix) / "share" / "hookflash" / "sounds" / "en"


@pytest.mark.parametrize("name", PROMPTS)
def test_prompt_is_found_and_is_8khz_speech(name: str) -> None:
    if not OWN.is_dir():
        pytest.skip(f"{OWN} missing: run scripts/make-prompts.sh (needs Debian's festival)")
    found = find_sound(name, "en", "/usr/share/asterisk")
    assert found is not None, name
    path, fmt = found
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels) == (8000, 1) and 0.4 < info.duration < 5
    data, _ = soundfile.read(str(path))
    assert abs(data).max() > 0.05  # not silence


def test_language_fallback_reaches_the_own_directory() -> None:
    if not OWN.is_dir():
        pytest.skip(f"{OWN} missing: run scripts/make-prompts.sh")
    assert find_sound("press-1", "en_US", "/nonexistent") is not None
    assert find_sound("no-such-prompt-xyz", "en", "/nonexistent") is None
