"""Voicemail transcription (transcribe=yes) on a real Pbx: a caller's spoken message
(Festival's text2wave voice, as a phone would send it: 8 kHz through the call) is
transcribed after it is saved, without delaying the message or its lamp; the text is in
the message's metadata, in VM_TRANSCRIPT() and in the e-mail body."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from hookflash.channels.channel import Frame
from hookflash.media.files import open_sound
from hookflash.voicemail.transcribe import Transcriber
from tests.helpers import run
from tests.unit.test_voicemail import db, dial, spool, vm_pbx

DIALPLAN = """
[default]
exten => 100,1,Set(CALLERID(all)="Alice" <1001>)
 same => n,VoiceMail(100@default,u)
 same => n,Set(DB(vm/status)=${VMSTATUS})
 same => n,Hangup()
exten => 800,1,Set(DB(vm/text)=${VM_TRANSCRIPT(100@default,${MSGID})})
"""

VM = """
[general]
format=wav
minsecs=1
transcribe=yes
[default]
100 => 1234,Leif Madsen
"""

SENTENCE = "please call me back about the invoice tomorrow morning"


def test_a_spoken_message_is_transcribed(tmp_path: Path) -> None:
    if shutil.which("text2wave") is None:
        pytest.skip("text2wave is not installed (scripts/test installs Debian's festival)")
    if not Transcriber().available():
        pytest.skip("no speech recogniser installed (pip install faster-whisper or pocketsphinx)")
    speech = tmp_path / "speech.wav"
    subprocess.run(["text2wave", "-F", "8000", "-o", str(speech)], input=SENTENCE.encode(), check=True)

    async def main() -> None:
        async with vm_pbx(tmp_path, DIALPLAN, VM) as (pbx, lines):
            phone = await dial(pbx, "100@default")
            await asyncio.sleep(0.2)
            await phone.keys("#")
            await asyncio.sleep(0.3)
            for frame in open_sound(speech, "wav"):
                await phone.one.write_frame(Frame("voice", frame, len(frame) // 2))
                await asyncio.sleep(0.02)
            await phone.keys("#")
            started = asyncio.get_running_loop().time()
            await phone.done()
            assert db(pbx, "status") == "SUCCESS"
            assert pbx.mailbox_counts("100") == (1, 0)  # type: ignore[attr-defined]  # lamp at once
            assert asyncio.get_running_loop().time() - started < 2.0
            vm = pbx.modules.loaded["app_voicemail"]
            for _ in range(600):
                if vm.transcripts:
                    break
                await asyncio.sleep(0.1)
            (box, msg_id), text = next(iter(vm.transcripts.items()))
            words = set(text.split())
            assert len(words & set(SENTENCE.split())) >= 5, text
            one = await pbx.request("Local/800@default/n")
            one.tech.pair.chan.set_var("MSGID", msg_id)
            await one.tech.call(one, "800@default", 5)
            for _ in range(100):
                if db(pbx, "text"):
                    break
                await asyncio.sleep(0.02)
            assert db(pbx, "text") == text
        meta = (spool(tmp_path) / "INBOX" / "msg0000.txt").read_text()
        assert "transcription=" in meta
    run(main())
