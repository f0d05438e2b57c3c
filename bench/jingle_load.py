"""A lightweight Jingle caller for bench/jingle.py (not aiortc): slixmpp for the
signalling, hookflash.motif.jingle to build and parse Jingle, and
hookflash.motif.transport.MediaTransport (aioice + pyOpenSSL DTLS + pylibsrtp) for the
media, i.e. the same media stack as the PBX's own Jingle legs.

    .venv/bin/python bench/jingle_load.py --port P --cafile F --to asterisk@localhost/pbx

Driven by bench/jingle.py through JSON lines on stdin/stdout (one command, one answer):

  {"cmd": "connect", "conns": K}           K XMPP sessions load@localhost/r0..r<K-1>
  {"cmd": "setup_times", "n": N, "dtls": b} N calls one after another: session-initiate ->
                                            first RTP back (decrypted), with the phases
  {"cmd": "calls", "n": N, "rate": R}       N concurrent calls set up at R/s (DTLS-SRTP)
  {"cmd": "stream", "warmup": W, "seconds": S}  50 PCMU packets/s per call for W+S s; counts
                                            what was sent and came back within the S s window
  {"cmd": "hangup"}                         session-terminate for every call
  {"cmd": "floor", "n": N, "dtls": b}       the reference: two bare MediaTransports in this
                                            process, set-up to first RTP echoed back
  {"cmd": "quit"}

Calls are spread over the K connections (hookflash refuses more than 16 sessions per
peer JID). Only 127.0.0.1 is used for ICE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hookflash.motif.jingle import (  # noqa: E402
    NS_JINGLE,
    Content,
    Jingle,
    PayloadType,
    Transport,
    build_jingle,
    parse_jingle,
)
from hookflash.motif.transport import AddressFilter, MediaTransport  # noqa: E402

FILTER = AddressFilter(["127.0.0.0/8"], ["0.0.0.0/0", "::/0"])
ADDRESSES = ["127.0.0.1"]
PAYLOADS = [PayloadType(0, "PCMU", 8000), PayloadType(101, "telephone-event", 8000, params={"events": "0-15"})]
_HDR = struct.Struct("!BBHII")
PAD = b"\xff" * 157
ICE_TIMEOUT = 15.0


def tag(seq: int) -> bytes:
    """seq in three base-100 digits: bytes < 0x7f survive a G.711 decode/encode round trip."""
    return bytes((seq // 10000 % 100, seq // 100 % 100, seq % 100))


def untag(payload: bytes) -> int:
    return payload[0] * 10000 + payload[1] * 100 + payload[2]


class Sink:
    """What MediaTransport hands decrypted RTP to (it stands where an RtpSession would)."""

    __slots__ = ("call",)

    def __init__(self, call: "Call") -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: Any) -> None:
        call = self.call
        if call.t_first == 0.0:
            call.t_first = time.perf_counter()
            if call.first is not None and not call.first.done():
                call.first.set_result(None)
        if call.measure_from >= 0 and len(data) >= 15:
            seq = untag(data[12 + 4 * (data[0] & 0x0F):])
            if call.measure_from <= seq <= call.measure_to:
                call.got += 1

    def on_rtcp(self, data: bytes, addr: Any) -> None:
        pass


class Call:
    def __init__(self, gen: "Generator", conn: "Conn", dtls: bool) -> None:
        self.gen, self.conn, self.dtls = gen, conn, dtls
        self.sid = secrets.token_hex(8)
        self.media = MediaTransport(controlling=True, addresses=ADDRESSES, filt=FILTER, dtls=dtls)
        self.media.session = Sink(self)  # type: ignore[assignment]
        self.accept: asyncio.Future[Jingle] = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[None] | None = None
        self.ended = False
        self.reason = ""
        self.up = False
        self.ssrc = secrets.randbits(32)
        self.t0 = self.t_accept = self.t_connected = self.t_first = 0.0
        self.sent = self.got = 0
        self.measure_from, self.measure_to = -1, -1

    async def start(self) -> None:
        """Gather, session-initiate, wait for the accept, ICE (+ DTLS)."""
        cands = await self.media.gather()
        fp = self.media.local_fingerprint("actpass") if self.dtls else None
        content = Content("audio", "initiator", payloads=PAYLOADS, rtcp_mux=True,
                          transport=Transport("ice-udp", self.media.ufrag, self.media.pwd, cands, fp))
        j = Jingle("session-initiate", self.sid, initiator=self.conn.jid, contents=[content])
        self.conn.calls[self.sid] = self
        self.t0 = time.perf_counter()
        await self.conn.send(j, self.gen.to)
        accept = await asyncio.wait_for(self.accept, ICE_TIMEOUT)
        self.t_accept = time.perf_counter()
        audio = accept.audio
        if audio is None or audio.transport is None:
            raise ConnectionError("session-accept without a transport")
        t = audio.transport
        self.media.set_remote(t.ufrag, t.pwd)
        await self.media.add_candidates(t.candidates)
        await self.media.connect(t.fingerprint if self.dtls else None, ICE_TIMEOUT)
        self.t_connected = time.perf_counter()
        self.up = True

    def send_rtp(self, seq: int) -> None:
        self.media.sendto(_HDR.pack(0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, self.ssrc) + tag(seq) + PAD)

    async def terminate(self) -> None:
        if not self.ended:
            self.ended = True
            try:
                await self.conn.send(Jingle("session-terminate", self.sid, initiator=self.conn.jid,
                                            reason="success"), self.gen.to, wait=False)
            except Exception:  # noqa: BLE001
                pass
        self.media.close()
        self.conn.calls.pop(self.sid, None)


class Conn:
    """One XMPP session (a resource of load@localhost) carrying up to 16 Jingle sessions."""

    def __init__(self, gen: "Generator", resource: str) -> None:
        import slixmpp
        self.gen = gen
        self.jid = f"{gen.user}@localhost/{resource}"
        c = self.xmpp = slixmpp.ClientXMPP(self.jid, gen.password)
        c.enable_direct_tls = False
        c.enable_starttls = True
        c.enable_plaintext = False
        c.ca_certs = gen.cafile
        c.use_ipv6 = False
        self.calls: dict[str, Call] = {}

    async def connect(self) -> None:
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        c = self.xmpp
        c.register_handler(Callback("jingle", MatchXPath(f"{{{c.default_ns}}}iq/{{{NS_JINGLE}}}jingle"), self._on_iq))
        ready = asyncio.get_running_loop().create_future()
        c.add_event_handler("session_start", lambda _e: ready.done() or ready.set_result(None))
        c.add_event_handler("failed_all_auth", lambda e: ready.done() or ready.set_exception(ConnectionError(str(e))))
        c.connect("127.0.0.1", self.gen.port)
        await asyncio.wait_for(ready, 20)
        c.send_presence()

    async def send(self, j: Jingle, to: str, wait: bool = True) -> None:
        iq = self.xmpp.make_iq_set(ito=to)
        iq.xml.append(build_jingle(j))
        if wait:
            await iq.send(timeout=10)
        else:
            iq.send(timeout=10)

    def _on_iq(self, iq: Any) -> None:
        if iq["type"] != "set":
            return
        try:
            j = parse_jingle(iq.xml.find(f"{{{NS_JINGLE}}}jingle"))
        except Exception:  # noqa: BLE001
            iq.reply(clear=True).error().send()
            return
        iq.reply().send()
        call = self.calls.get(j.sid)
        if call is None:
            return
        if j.action == "session-accept" and not call.accept.done():
            call.accept.set_result(j)
        elif j.action == "transport-info" and j.audio is not None and j.audio.transport is not None:
            asyncio.ensure_future(call.media.add_candidates(j.audio.transport.candidates))
        elif j.action == "session-terminate":
            call.ended, call.reason = True, j.reason
            self.gen.terminated += 1
            if not call.accept.done():
                call.accept.set_exception(ConnectionError(f"terminated: {j.reason}"))


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.port, self.cafile, self.to = args.port, args.cafile, args.to
        self.user, self.password = args.user, args.password
        self.conns: list[Conn] = []
        self.calls: list[Call] = []
        self.terminated = 0

    def _conn_for(self, i: int) -> Conn:
        return self.conns[i % len(self.conns)]

    async def connect(self, conns: int) -> dict[str, Any]:
        t = time.perf_counter()
        new = [Conn(self, f"r{len(self.conns) + i}") for i in range(conns - len(self.conns))]
        await asyncio.gather(*(c.connect() for c in new))
        self.conns.extend(new)
        await asyncio.sleep(0.5)  # presence settles
        return {"conns": len(self.conns), "s": time.perf_counter() - t}

    async def setup_times(self, n: int, dtls: bool) -> dict[str, Any]:
        rows, failed = [], []
        for i in range(n):
            call = Call(self, self._conn_for(0), dtls)
            call.first = asyncio.get_running_loop().create_future()
            sender = None
            try:
                await call.start()

                async def pump(c: Call = call) -> None:
                    seq = 0
                    while True:
                        c.send_rtp(seq)
                        seq += 1
                        await asyncio.sleep(0.02)
                sender = asyncio.ensure_future(pump())
                await asyncio.wait_for(call.first, 5)
                rows.append({"accept": (call.t_accept - call.t0) * 1000,
                             "connected": (call.t_connected - call.t0) * 1000,
                             "first": (call.t_first - call.t0) * 1000})
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{type(exc).__name__}: {exc}"[:120])
            finally:
                if sender is not None:
                    sender.cancel()
                await call.terminate()
            await asyncio.sleep(0.05 + secrets.randbelow(50) / 1000)  # no phase lock with timers
        return {"rows": rows, "failed": failed}

    async def floor(self, n: int, dtls: bool) -> dict[str, Any]:
        """Two bare endpoints in this process: A (controlling, DTLS server as our callers
        are) and B (controlled, DTLS client, echoes RTP back as Echo() does)."""
        rows, failed = [], []
        for _ in range(n):
            a = MediaTransport(controlling=True, addresses=ADDRESSES, filt=FILTER, dtls=dtls)
            b = MediaTransport(controlling=False, addresses=ADDRESSES, filt=FILTER, dtls=dtls)
            first = asyncio.get_running_loop().create_future()

            class Echo:
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    b.sendto(data)

                def on_rtcp(self, data: bytes, addr: Any) -> None:
                    pass

            class Back:
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    if not first.done():
                        first.set_result(time.perf_counter())

                def on_rtcp(self, data: bytes, addr: Any) -> None:
                    pass
            a.session, b.session = Back(), Echo()  # type: ignore[assignment]
            sender = None
            try:
                ca = await a.gather()
                t0 = time.perf_counter()  # as for a call: the caller has gathered, then signals
                cb = await b.gather()
                b.set_remote(a.ufrag, a.pwd)
                a.set_remote(b.ufrag, b.pwd)
                await b.add_candidates(ca)
                await a.add_candidates(cb)
                fa = a.local_fingerprint("actpass") if dtls else None
                fb = b.local_fingerprint("active") if dtls else None
                ssrc = secrets.randbits(32)
                t_conn = 0.0

                async def pump() -> None:
                    seq = 0
                    while True:
                        a.sendto(_HDR.pack(0x80, 0, seq, seq * 160, ssrc) + tag(seq) + PAD)
                        seq += 1
                        await asyncio.sleep(0.02)
                other = asyncio.ensure_future(b.connect(fa, ICE_TIMEOUT))
                await a.connect(fb, ICE_TIMEOUT)  # the caller sends as soon as its side is up
                t_conn = time.perf_counter()
                sender = asyncio.ensure_future(pump())
                await other
                t1 = await asyncio.wait_for(first, 5)
                rows.append({"connected": (t_conn - t0) * 1000, "first": (t1 - t0) * 1000})
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{type(exc).__name__}: {exc}"[:120])
            finally:
                if sender is not None:
                    sender.cancel()
                a.close()
                b.close()
            await asyncio.sleep(0.05 + secrets.randbelow(50) / 1000)  # no phase lock with timers
        return {"rows": rows, "failed": failed}

    async def setup_calls(self, n: int, rate: float) -> dict[str, Any]:
        t = time.perf_counter()
        errors: dict[str, int] = {}

        async def one(i: int) -> None:
            call = Call(self, self._conn_for(i), True)
            self.calls.append(call)
            try:
                await call.start()
            except Exception as exc:  # noqa: BLE001
                key = f"{type(exc).__name__}: {exc}"[:100]
                errors[key] = errors.get(key, 0) + 1
        tasks = []
        for i in range(n):
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(max(0.0, t + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        up = [c for c in self.calls if c.up and not c.ended]
        ms = sorted((c.t_connected - c.t0) * 1000 for c in up)
        ports = []
        for c in up:
            ports += [p.transport.get_extra_info("sockname")[1] for p in c.media.ice._protocols]
        remote = [c.media.remote_addr[1] for c in up if c.media.remote_addr]
        return {"up": len(up), "n": n, "s": time.perf_counter() - t, "errors": errors, "ports": ports,
                "remote_ports": remote,
                "setup_p50": ms[len(ms) // 2] if ms else None, "setup_max": ms[-1] if ms else None}

    async def stream(self, warmup: float, seconds: float) -> dict[str, Any]:
        """50 packets/s per call, calls staggered over the 20 ms; 1 ms ticks."""
        loop = asyncio.get_running_loop()
        up = [c for c in self.calls if c.up and not c.ended]
        slots: list[list[Call]] = [[] for _ in range(20)]
        for i, c in enumerate(up):
            slots[i % 20].append(c)
            c.sent = c.got = 0
        first_seq = int(warmup / 0.02)
        last_seq = first_seq + int(seconds / 0.02) - 1
        for c in up:
            c.measure_from, c.measure_to = first_seq, last_seq
        t0 = loop.time()
        cpu0, late, tick = time.process_time(), 0, 0
        ended0 = self.terminated
        cpu_window = 0.0
        while True:
            seq, slot = divmod(tick, 20)
            if seq > last_seq:
                break
            due = t0 + tick * 0.001
            now = loop.time()
            if now < due:
                await asyncio.sleep(due - now)
            elif now - due > 0.02:
                late += 1
            if seq == first_seq and slot == 0:
                cpu_w0 = time.process_time()
            for c in slots[slot]:
                if c.ended:
                    continue
                c.send_rtp(seq)
                if seq >= first_seq:
                    c.sent += 1
            tick += 1
        cpu_window = time.process_time() - cpu_w0
        await asyncio.sleep(1.0)  # the last packets come back
        for c in up:
            c.measure_from = c.measure_to = -1
        sent = sum(c.sent for c in up)
        got = sum(c.got for c in up)
        return {"calls": len(up), "sent": sent, "got": got, "late": late, "ticks": tick,
                "cpu": time.process_time() - cpu0, "cpu_window": cpu_window, "seconds": seconds,
                "ended": self.terminated - ended0,
                "dead": sum(1 for c in up if c.got == 0)}

    async def hangup(self) -> dict[str, Any]:
        calls, self.calls = self.calls, []
        for i, c in enumerate(calls):
            await c.terminate()
            if i % 20 == 19:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        return {"hung_up": len(calls)}

    async def close(self) -> None:
        await self.hangup()
        for c in self.conns:
            try:
                c.xmpp.disconnect(wait=1)
            except Exception:  # noqa: BLE001
                pass
        await asyncio.sleep(0.3)


async def main(args: argparse.Namespace) -> None:
    gen = Generator(args)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        what = cmd.pop("cmd")
        try:
            if what == "quit":
                await gen.close()
                print(json.dumps({"bye": True}), flush=True)
                break
            out = await {"connect": gen.connect, "setup_times": gen.setup_times, "calls": gen.setup_calls,
                         "stream": gen.stream, "hangup": gen.hangup, "floor": gen.floor}[what](**cmd)
        except Exception as exc:  # noqa: BLE001
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--to", default="asterisk@localhost/pbx")
    p.add_argument("--user", default="load")
    p.add_argument("--password", default="loadpw")
    p.add_argument("--asyncio", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if not a.asyncio:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    asyncio.run(main(a))
