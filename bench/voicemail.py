"""Voicemail benchmark: from the caller's hangup to the message durable on disk and to
the message-waiting NOTIFY on the wire.

    .venv/bin/python bench/voicemail.py [--messages N] [--seconds S] [--formats wav|gsm] [--dir D]

One Pbx in this process (uvloop when installed, verbose 0) with chan_sip and
app_voicemail. Each caller is a Local channel into ``VoiceMail(100@default,us)`` that
speaks ``S`` seconds of tone and hangs up (the same soft-hangup path a SIP BYE takes).
The mailbox owner is a sip.conf peer (``mailbox=100@default``, static host) whose
address is a UDP socket here: it answers 200 to each NOTIFY and notes when it arrived.
Messages are left one after another, N times. Printed, median and p99 over N:

1. hangup -> message durable (audio renamed into INBOX and the .txt written, both
   fsynced, directory fsynced: the moment ``FileStore.save`` returns);
2. hangup -> NOTIFY ``Messages-Waiting: yes`` received by the phone's socket.

The spool goes to a temporary directory under ``--dir`` (default: the system temp
directory; removed at the end unless ``--keep``), so the figure includes that
filesystem's fsync. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import shutil
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# bench/ holds calendar.py, which would shadow the standard library's calendar module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hookflash.channels.channel import Frame
from hookflash.channels.local import LocalTech
from hookflash.engine.pbx import Pbx
from hookflash.media.tone import tone_frames


class PhoneSocket(asyncio.DatagramProtocol):
    """The owner's phone: answers NOTIFY with 200 OK, notes arrival of each new count."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []  # (time, new messages)
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        if not text.startswith("NOTIFY "):
            return
        head = text.split("\r\n\r\n", 1)[0]
        headers = [line for line in head.split("\r\n")[1:]
                   if line.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
        reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(headers) + "\r\nContent-Length: 0\r\n\r\n"
        assert self.transport is not None
        self.transport.sendto(reply.encode(), addr)
        call_id = re.search(r"(?im)^call-id:\s*(\S+)", head)
        key = call_id.group(1) if call_id else text
        if key in self.seen:  # a retransmission
            return
        self.seen.add(key)
        match = re.search(r"Voice-Message:\s*(\d+)/", text)
        if match:
            self.arrivals.append((time.perf_counter(), int(match.group(1))))


def silent_prompts(data: Path) -> None:
    for name in ("beep", "vm-goodbye", "vm-theperson", "vm-isunavail", "digits/1", "digits/0"):
        path = data / "sounds" / "en" / f"{name}.sln"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 320)


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="vmbench-", dir=args.dir))
    silent_prompts(root / "data")
    phone = PhoneSocket()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", 0))
    phone_port = transport.get_extra_info("sockname")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    etc = root / "etc"
    etc.mkdir()
    files = {
        "asterisk.conf": f"[directories]\nastdatadir => {root / 'data'}\nastspooldir => {root / 'spool'}\n",
        "modules.conf": "[modules]\nautoload=yes\n",
        "sip.conf": f"""
            [general]
            bindaddr=127.0.0.1
            bindport={sip_port}
            [owner]
            type=friend
            host=127.0.0.1
            port={phone_port}
            mailbox=100@default
            """,
        "voicemail.conf": f"[general]\nformat={args.formats}\nmaxmsg=9999\n[default]\n100 => 1234,Owner\n",
        "extensions.conf": "[default]\nexten => 100,1,VoiceMail(100@default,us)\n same => n,Hangup()\n",
    }
    for name, text in files.items():
        (etc / name).write_text(textwrap.dedent(text))
    pbx = Pbx(etc, state_dir=root / "var", verbose=args.verbose)
    await pbx.start()
    module = pbx.modules.loaded["app_voicemail"]
    frames = list(itertools.islice(tone_frames("440", amplitude=6000), int(args.seconds * 50)))
    durable: list[float] = []
    notified: list[float] = []
    try:
        for n in range(args.messages):
            one = await pbx.request("Local/100@default/n")
            tech = one.tech
            assert isinstance(tech, LocalTech) and tech.pair.chan is not None
            two = tech.pair.chan
            await tech.call(one, "100@default", 10)
            await asyncio.sleep(0.1)  # greeting and beep (silent prompts)
            for frame in frames:
                await one.write_frame(Frame("voice", frame, len(frame) // 2))
                await asyncio.sleep(0.02)
            before = len(module.timings)
            hangup_wall, hangup = time.time(), time.perf_counter()
            await one.hangup()
            deadline = time.perf_counter() + 10
            while (len(module.timings) == before or len(phone.arrivals) <= n) and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            if len(module.timings) == before or len(phone.arrivals) <= n:
                raise SystemExit(f"message {n}: no save or no NOTIFY within 10 s")
            durable.append((module.timings[-1]["durable"] - hangup_wall) * 1000)
            notified.append((phone.arrivals[n][0] - hangup) * 1000)
            while not two.hung_up:
                await asyncio.sleep(0.005)
        counts = module.mailbox_counts("100@default")
    finally:
        await pbx.stop()
        transport.close()

    def p99(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    print(f"voicemail: {args.messages} messages of {args.seconds:.1f} s, formats {args.formats}, spool {root}")
    print(f"  hangup -> durable on disk : median {statistics.median(durable):7.2f} ms   p99 {p99(durable):7.2f} ms")
    print(f"  hangup -> NOTIFY received : median {statistics.median(notified):7.2f} ms   p99 {p99(notified):7.2f} ms")
    print(f"  mailbox counts at the end : {counts[0]} new / {counts[1]} old; NOTIFYs seen: {len(phone.arrivals)}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--formats", default="wav49|gsm|wav")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the spool directory")
    try:
        import uvloop  # type: ignore[import-not-found]
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(parser.parse_args()))
