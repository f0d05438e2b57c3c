"""Chapter section 5 with a baresip phone: extension 203 (Festival() through a Festival
server started by the test) and 202 (text2wave through System(), then Playback), the
listings unchanged. The phone must hear speech: voiced energy for about the sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from tests.integration.festival_server import Festival, need_festival
from tests.integration.sip_peers import Baresip, Server, free_port, need, tone_wav
from tests.integration.test_voicemail import _rtp_conf, wait_for

SIP = """
[general]
bindaddr=127.0.0.1
bindport={port}
context=unauthenticated
allowguest=no

[1001]
type=friend
host=dynamic
secret=secret1001
context=LocalSets
disallow=all
allow=ulaw
"""

DIALPLAN = """
[LocalSets]
exten => 203,1,Verbose(2,This is a Festival test)
 same => n,Answer()
 same => n,Playback(silence/1)
 same => n,Festival(Hello World)
 same => n,Hangup()

; without the server, through text2wave
exten => 202,1,Verbose(2,Trying out Festival)
 same => n,Answer()
 same => n,System(echo "This is a test of Festival" | /usr/bin/text2wave -scale 1.5 -F 8000 -o /tmp/festival.wav)
 same => n,Playback(/tmp/festival)
 same => n,System(rm -f /tmp/festival.wav)
 same => n,Hangup()
"""


def voiced_seconds(path: Path) -> float:
    data, rate = soundfile.read(str(path), dtype="int16")
    if data.ndim > 1:
        data = data[:, 0]
    n = rate // 50
    frames = data[: len(data) // n * n].astype(np.float64).reshape(-1, n)
    return float((np.sqrt((frames ** 2).mean(axis=1)) > 300).sum() * 0.02)


def test_chapter_203_and_202(tmp_path: Path) -> None:
    need("baresip")
    need_festival()
    with Festival(tmp_path / "festival") as festival:
        port = free_port()
        server = Server(tmp_path / "etc", {
            "sip.conf": SIP.format(port=port), "extensions.conf": DIALPLAN, "rtp.conf": _rtp_conf(),
            "festival.conf": f"[general]\nhost=127.0.0.1\nport={festival.port}\n",
            "asterisk.conf": "[options]\nverbose=3\n"}).start()
        phone = None
        try:
            d = tmp_path / "phone"
            account = f"<sip:1001@127.0.0.1:{port}>;auth_pass=secret1001;audio_codecs=pcmu;regint=60"
            phone = Baresip(d, account, tone_wav(tmp_path / "quiet.wav", 440, 40, amplitude=0.001)).start()
            wait_for(lambda: "Registered SIP '1001'" in server.output(), what="registration")
            heard = []
            for exten in ("203", "202"):
                phone.command("dial", f"sip:{exten}@127.0.0.1:{port}")
                phone.wait_event("CALL_ESTABLISHED")
                phone.wait_event("CALL_CLOSED", timeout=30)
                wait_for(lambda: len(phone.recordings("dec")) >= len(heard) + 1, what="the recording")
                heard.append(voiced_seconds(sorted(phone.recordings("dec"))[-1]))
            assert 0.5 < heard[0] < 4.0, heard   # "Hello World"
            assert 1.0 < heard[1] < 5.0, heard   # "This is a test of Festival"
        finally:
            if phone is not None:
                phone.stop()
            server.stop()
