"""The endpoint's one loop timer (issue 14): armed only when a deadline comes earlier,
late by at most ``coalesce``; retransmissions and timeouts keep their RFC 3261 times."""

from __future__ import annotations

import asyncio
from typing import Any

from hookflash.sip.dialog import build_response
from hookflash.sip.endpoint import SipEndpoint
from hookflash.sip.message import SipRequest, SipResponse, parse_message
from hookflash.sip.transaction import TimerConfig

DEST = ("127.0.0.1", 5062)


def invite(branch: str, method: str = "INVITE") -> SipRequest:
    msg = parse_message(
        f"{method} sip:b@127.0.0.1:5062 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n"
        f"Call-ID: {branch}@x\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode())
    assert isinstance(msg, SipRequest)
    return msg


class Capture:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent: list[tuple[float, bytes]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((self.loop.time(), data))

    def close(self) -> None:
        pass


class User:
    def __init__(self) -> None:
        self.requests: list[SipRequest] = []

    def on_request(self, request: SipRequest, txn: Any, source: Any) -> None:
        self.requests.append(request)

    def on_stray(self, message: Any, source: Any) -> None:
        pass


def test_retransmissions_and_timeout_keep_their_times() -> None:
    t1 = 0.05  # long enough that a busy test machine's loop hiccups stay within the allowance

    async def main() -> tuple[list[float], float, list[SipResponse | None], int]:
        loop = asyncio.get_running_loop()
        ep = SipEndpoint(User(), TimerConfig(t1=t1, t2=4 * t1))  # type: ignore[arg-type]
        capture = Capture(loop)
        ep.transport = capture  # type: ignore[assignment]
        got: list[SipResponse | None] = []
        start = loop.time()
        ep.request(invite("z9hG4bKlost"), DEST, got.append)
        # a second INVITE answered at once: its Timer A and B stop, the loop timer
        # may then fire for nothing; that must not disturb the first one
        answered = invite("z9hG4bKanswered")
        ep.request(answered, DEST, lambda response: None)
        ep.execute(ep.layer.receive(build_response(answered, 100), DEST, loop.time()))
        await asyncio.sleep(64 * t1 + 0.2)
        times = [t - start for t, data in capture.sent if b"z9hG4bKlost" in data]
        ep.close()
        return times, ep.coalesce, got, len(ep.layer)

    times, coalesce, got, left = asyncio.run(main())
    # sent at 0, then Timer A: T1, 3 T1, 7 T1, 15 T1, 31 T1, 63 T1; Timer B (64 T1) ends it
    expected = [0.0, t1, 3 * t1, 7 * t1, 15 * t1, 31 * t1, 63 * t1]
    assert len(times) == len(expected), times
    for at, want in zip(times, expected):
        # never early; late only by the coalescing allowance plus scheduling noise
        assert want <= at + 1e-3 and at <= want + coalesce + 0.04, (times, expected)
    assert got == [None], got  # the lost INVITE timed out
    assert left == 1  # the answered INVITE waits in Proceeding (no timers there)


def test_a_sooner_deadline_rearms_and_a_stopped_one_does_not() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ep = SipEndpoint(User(), TimerConfig())  # type: ignore[arg-type]
        ep.transport = Capture(loop)  # type: ignore[assignment]
        start = loop.time()
        ep.request(invite("z9hG4bKout"), DEST, lambda r: None)  # Timer A: T1 = 0.5 s
        assert ep._timer_at is not None and abs(ep._timer_at - (start + 0.5 + ep.coalesce)) < 0.01
        incoming = invite("z9hG4bKin")
        ep.execute(ep.layer.receive(incoming, ("127.0.0.1", 5061), loop.time()))  # Trying: 0.2 s
        sooner = ep._timer_at
        assert abs(sooner - (start + 0.2 + ep.coalesce)) < 0.01
        timer = ep._timer
        ep.respond(incoming, build_response(incoming, 100))  # stops the Trying timer
        assert ep._timer is timer and ep._timer_at == sooner  # not re-armed
        await asyncio.sleep(0.25)  # fired for nothing, re-armed for Timer A
        assert abs(ep._timer_at - (start + 0.5 + ep.coalesce)) < 0.01
        ep.close()

    asyncio.run(main())
