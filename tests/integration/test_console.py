"""The server as a user runs it: `hookflash -f`, then `hookflash -rx` and `hookflash -r`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

HOOKFLASH = [sys.executable, "-m", "hookflash"]


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"hookflash exited early: {proc.stdout.read() if proc.stdout else ''}")
        if time.time() > deadline:
            raise AssertionError("console socket never appeared")
        time.sleep(0.05)


def rx(sock: Path, command: str) -> str:
    done = subprocess.run(HOOKFLASH + ["--socket", str(sock), "-rx", command],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text(textwrap.dedent("""
        [t]
        exten => 1,1,Answer()
         same => n,Set(DB(test/ran)=${CHANNEL})
         same => n,Wait(2)
        """))
    sock = tmp_path / "run" / "ctl"
    proc = subprocess.Popen(HOOKFLASH + ["--config", str(etc), "-f", "--socket", str(sock)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(sock, proc)
        yield proc, sock, etc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_rx_commands_and_stop(server) -> None:  # type: ignore[no-untyped-def]
    proc, sock, etc = server
    assert rx(sock, "core show version").startswith("hookflash ")
    assert rx(sock, "database put fam key v1") == "Updated database successfully\n"
    assert rx(sock, "database show") == f"{'/fam/key':<50s}: {'v1':<25s}\n1 results found.\n"
    rx(sock, "channel originate Local/1@t application Wait 3")
    deadline = time.time() + 5
    while "/test/ran" not in rx(sock, "database show test") and time.time() < deadline:
        time.sleep(0.1)
    channels = rx(sock, "core show channels")
    assert "Local/1@t-" in channels and "Wait(2)" in channels
    assert "Shutting down" in rx(sock, "core stop now")
    assert proc.wait(10) == 0
    # the state went where the defaults say: ./var beside the config directory
    assert (etc / "var" / "db" / "astdb.sqlite3").exists()


def test_remote_console_reads_commands_and_shows_verbose(server) -> None:  # type: ignore[no-untyped-def]
    proc, sock, etc = server
    done = subprocess.run(HOOKFLASH + ["--socket", str(sock), "-r"], input="core show uptime\nhelp core set\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "System uptime:" in done.stdout
    assert "core set verbose" in done.stdout


def test_rx_without_server_says_so(tmp_path: Path) -> None:
    done = subprocess.run(HOOKFLASH + ["--socket", str(tmp_path / "none"), "-rx", "core show version"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "Unable to connect" in done.stderr


def test_embedded_default_starts_and_says_where_the_socket_is(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.Popen(HOOKFLASH + ["-f"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=tmp_path)
    sock = tmp_path / "state" / "hookflash" / "run" / "hookflash.ctl"
    try:
        _wait_for(sock, proc)
        out = subprocess.run(HOOKFLASH + ["-rx", "dialplan show demo"], capture_output=True, text=True,
                             env=env, timeout=30).stdout
        assert "[ Context 'demo' created by 'pbx_config' ]" in out
        # the demo calendar (demo.ics beside calendar.conf) is read whatever the cwd
        deadline = time.time() + 10
        while time.time() < deadline:
            cal = subprocess.run(HOOKFLASH + ["-rx", "calendar show calendar demo"], capture_output=True,
                                 text=True, env=env, timeout=30).stdout
            if "Stand-up" in cal:
                break
            time.sleep(0.2)
        assert "Summary     : Stand-up" in cal and "Location    : 700" in cal, cal
        users = subprocess.run(HOOKFLASH + ["-rx", "voicemail show users"], capture_output=True,
                               text=True, env=env, timeout=30).stdout
        assert "1001" in users and "Alice" in users, users
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"console socket: {sock}" in (proc.stdout.read() if proc.stdout else "")


def test_bad_config_file_names_file_and_line(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[t]\nexten => 1,1,NoOp()\nnot a valid line\n")
    done = subprocess.run(HOOKFLASH[:] + ["dialplan", "try", "1@t", "--config", str(etc)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "extensions.conf:3" in done.stdout + done.stderr
