"""A real Festival server for the tests (../shared/SERVICES.md section 5): ``festival
--server`` with the chapter's ``tts_textasterisk`` function, on a free port. Festival
binds 0.0.0.0 (no option to bind loopback only); ``server_access_list`` admits only
127.0.0.1 and localhost."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.imap_server import free_port


def need_festival() -> None:
    if shutil.which("festival") is None:
        pytest.skip("festival is not installed (scripts/test installs Debian's festival)")


SERVER_SCM = """
(set! server_port {port})
(set! server_access_list '("127.0.0.1" "localhost" "localhost\\\\.localdomain"))
(set! server_deny_list nil)
(set! server_log_file "{log}")
(set! server_max_clients 20)
(Parameter.set 'Wavefiletype 'riff)
(define (tts_textasterisk string mode)
  "(tts_textasterisk STRING MODE) synthesize STRING, send 8 kHz wave to client"
  (let ((wholeutt (utt.synth (eval (list 'Utterance 'Text string)))))
    (utt.wave.resample wholeutt 8000)
    (utt.wave.rescale wholeutt 5)
    (utt.send.wave.client wholeutt)))
"""


class Festival:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.dir / "server.log"
        self.scm = self.dir / "server.scm"
        self.scm.write_text(SERVER_SCM.format(port=self.port, log=self.log_path))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> "Festival":
        self.proc = subprocess.Popen(["festival", "--server", str(self.scm)], cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"festival did not start: {self.log_path.read_text(errors='replace') if self.log_path.exists() else ''}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> "Festival":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.stop()
