"""In-process SIP registrar profile: REGISTER -> 401 -> REGISTER with digest -> 200,
fed straight into the endpoint (no sockets, no SIPp), to see where the CPU goes.

    .venv/bin/python bench/sip_inprocess.py [--users 1000] [--count 5000] [--profile]

Prints registrations per second of CPU (one core, this process only) and, with
--profile, the top functions. The socket-level figure is bench/sip.py (c).
"""

from __future__ import annotations

import argparse
import logging
import asyncio
import cProfile
import hashlib
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hookflash.engine.pbx import Pbx  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from integration.sip_peers import free_port  # noqa: E402


class Capture:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5060) if name == "sockname" else default

    def close(self) -> None:
        pass


def register(user: str, cseq: int, call_id: str, branch: str, auth: str = "") -> bytes:
    lines = ["REGISTER sip:127.0.0.1:5060 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK{branch}",
             f"From: <sip:{user}@127.0.0.1>;tag=t{call_id}",
             f"To: <sip:{user}@127.0.0.1>",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} REGISTER",
             f"Contact: <sip:{user}@127.0.0.1:6000>",
             "Max-Forwards: 70", "Expires: 3600", "User-Agent: bench"]
    if auth:
        lines.append(auth)
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def answer(challenge: bytes, user: str, password: str) -> str:
    text = challenge.decode()
    realm = re.search(r'realm="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    nonce = re.search(r'nonce="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    uri = "sip:127.0.0.1:5060"
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5')


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "etc"
        etc.mkdir()
        users = "".join(f"[u{i}]\ntype=friend\nhost=dynamic\nsecret=pw{i}\n" for i in range(args.users))
        (etc / "sip.conf").write_text(f"[general]\nbindaddr=127.0.0.1\nbindport={free_port()}\n{users}")
        (etc / "extensions.conf").write_text("[default]\n")
        (etc / "modules.conf").write_text("[modules]\nautoload=no\nload => chan_sip\n")
        pbx = Pbx(etc, state_dir=Path(tmp) / "var", verbose=0)
        await pbx.start()
        stack = pbx.modules.loaded["chan_sip"].stack  # type: ignore[attr-defined]
        endpoint = stack.endpoint
        capture = Capture()
        endpoint.transport = capture  # type: ignore[assignment]
        source = ("127.0.0.1", 6000)

        def one(i: int) -> None:
            user = f"u{i % args.users}"
            call_id = f"c{i}"
            capture.sent.clear()
            endpoint.datagram_received(register(user, 1, call_id, f"a{i}"), source)
            challenge = capture.sent[-1]
            capture.sent.clear()
            endpoint.datagram_received(
                register(user, 2, call_id, f"b{i}", answer(challenge, user, f"pw{i % args.users}")), source)
            assert capture.sent and capture.sent[-1].startswith(b"SIP/2.0 200"), capture.sent[-1][:80]

        for i in range(200):  # warm up
            one(i)
        profiler = cProfile.Profile() if args.profile else None
        start = time.process_time()
        if profiler:
            profiler.enable()
        for i in range(args.count):
            one(i)
        if profiler:
            profiler.disable()
        cpu = time.process_time() - start
        print(f"{args.count} registrations (2 REGISTER transactions each) in {cpu:.2f} s CPU: "
              f"{args.count / cpu:.0f}/s, {cpu / args.count * 1e6:.0f} us each "
              "(the bench client's own digest computing included)")
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        await pbx.stop()


if __name__ == "__main__":
    asyncio.run(main())
