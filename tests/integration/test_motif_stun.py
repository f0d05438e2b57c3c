"""Server-reflexive and relayed ICE candidates from a real STUN/TURN server (coturn, from
Debian, on loopback): rtp.conf's ``stunaddr`` and ``turnaddr``/``turnusername``/
``turnpassword`` reach the candidates a Jingle call offers, and a call connects through
the TURN relay alone."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from hookflash.motif.transport import AddressFilter, MediaTransport
from tests.integration.sip_peers import free_port

LOOPBACK = AddressFilter(permit=["127.0.0.0/8"], deny=["0.0.0.0/0", "::/0"])


@pytest.fixture
def coturn(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (scripts/test installs it from Debian)")
    port = free_port()
    log = tmp_path / "turn.log"
    proc = subprocess.Popen(["turnserver", "-n", "-L", "127.0.0.1", "--relay-ip", "127.0.0.1", "-p", str(port),
                             "--user", "hook:flash", "--realm", "hookflash.test", "-a", "--no-cli", "--no-tls",
                             "--no-dtls", "--allow-loopback-peers", "--min-port", "49200", "--max-port", "49400",
                             "--log-file", "stdout", "--simple-log"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while "Total General servers" not in log.read_text(errors="replace") and "listener opened" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(log.read_text(errors="replace"))
        time.sleep(0.1)
    time.sleep(0.3)
    yield port
    proc.terminate()
    proc.wait(5)


def test_stun_gives_a_server_reflexive_candidate(coturn: int) -> None:
    async def go() -> list[str]:
        t = MediaTransport(controlling=True, addresses=["127.0.0.1"], filt=LOOPBACK, stun=("127.0.0.1", coturn))
        cands = await t.gather()
        t.close()
        return [f"{c.type} {c.ip} {c.rel_addr}" for c in cands]
    types = asyncio.run(go())
    assert any(t.startswith("srflx 127.0.0.1 127.0.0.1") for t in types), types
    assert any(t.startswith("host ") for t in types), types


def test_a_call_connects_through_the_turn_relay(coturn: int) -> None:
    async def go() -> tuple[list[str], int]:
        # no host address for a: its only candidate is the relay, so every packet crosses coturn
        a = MediaTransport(controlling=True, addresses=[], filt=LOOPBACK,
                           turn=("127.0.0.1", coturn), turn_username="hook", turn_password="flash")
        b = MediaTransport(controlling=False, addresses=["127.0.0.1"], filt=LOOPBACK)
        ca, cb = await a.gather(), await b.gather()
        relayed = [c for c in ca if c.type == "relay"]
        a.set_remote(b.ufrag, b.pwd)
        b.set_remote(a.ufrag, a.pwd)
        await a.add_candidates(cb)
        await b.add_candidates(relayed)

        class Sink:
            n = 0

            def datagram_received(self, data: bytes, addr: object) -> None:
                Sink.n += 1

            def on_rtcp(self, data: bytes, addr: object) -> None:
                pass
        b.session = Sink()  # type: ignore[assignment]
        await asyncio.gather(a.connect(b.local_fingerprint("active"), 10), b.connect(a.local_fingerprint("actpass"), 10))
        for seq in range(10):
            a.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 1) + b"\xff" * 160)
        await asyncio.sleep(0.5)
        a.close()
        b.close()
        return [f"{c.type} {c.ip}" for c in ca], Sink.n
    types, received = asyncio.run(go())
    assert types and all(t.startswith("relay 127.0.0.1") for t in types), types
    assert received == 10
