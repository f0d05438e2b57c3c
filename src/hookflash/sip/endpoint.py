"""The SIP endpoint: UDP transport + transaction layer + timers, on the event loop.

Thin I/O around the sans-IO cores: datagrams are parsed (``message.py``), routed by the
:class:`TransactionLayer` (``transaction.py``), and the resulting actions are carried
out here: ``Send`` goes on the wire, ``Deliver``/``Timeout`` go to the transaction user
(the :class:`~hookflash.sip.stack.SipStack`). One timer handle tracks the layer's
earliest deadline: re-armed only when a deadline comes earlier than it (a timer that
fires for a stopped deadline finds nothing due and re-arms), a few ms late so that
deadlines close together fire in one go. A malformed datagram is answered with the
status the parser names when a response can be addressed, else dropped; it never
raises out of here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from hookflash.sip.dialog import build_response
from hookflash.sip.message import SipParseError, SipRequest, SipResponse, StreamParser, parse_message
from hookflash.sip.transaction import (
    ClientTransaction,
    Deliver,
    Send,
    Terminated,
    Timeout,
    TimerConfig,
    TransactionLayer,
    TransportError,
)

log = logging.getLogger("hookflash.sip")
wire = logging.getLogger("hookflash.sip.wire")  # `sip set debug on`

Addr = tuple[str, int]
ResponseHandler = Callable[[SipResponse | None], None]  # None: timeout / transport error


class TransactionUser(Protocol):
    def on_request(self, request: SipRequest, txn: Any, source: Addr) -> None: ...
    def on_stray(self, message: SipRequest | SipResponse, source: Addr) -> None: ...


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self, tu: TransactionUser, timers: TimerConfig | None = None) -> None:
        self.tu = tu
        self.layer = TransactionLayer(timers or TimerConfig(), shrink=True)
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_event_loop()
        self.handlers: dict[ClientTransaction, ResponseHandler] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # how late the timer may fire to take several deadlines at once: 1 % of T1
        # (5 ms by default), well inside the granularity RFC 3261 timers need
        self.coalesce = (timers or TimerConfig()).t1 / 100
        self.debug_peers: set[str] | None = None  # None = off; empty set = everyone
        self.local_addr: Addr = ("0.0.0.0", 0)
        self.stats = {"received": 0, "sent": 0, "malformed": 0}
        # stream transports: open connections by remote address, and listening servers
        self.connections: dict[Addr, tuple[asyncio.StreamWriter, str]] = {}
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.stream_ports: dict[str, int] = {}
        self.ssl_client: Any = None

    async def start(self, host: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        await self.loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        assert self.transport is not None
        self.local_addr = self.transport.get_extra_info("sockname")[:2]

    async def start_stream(self, kind: str, host: str, port: int, ssl_context: Any = None) -> int:
        """Listen for SIP over TCP (``kind`` 'tcp') or TLS ('tls'); returns the port."""
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")[:2]
            await self._serve_stream(reader, writer, (peer[0], peer[1]), kind)

        server = await asyncio.start_server(accept, host, port, ssl=ssl_context)
        self.servers[kind] = server
        self.stream_ports[kind] = server.sockets[0].getsockname()[1]
        return self.stream_ports[kind]

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            addr: Addr, kind: str) -> None:
        self.connections[addr] = (writer, kind)
        parser = StreamParser()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.stats["received"] += 1
                if self.debug_peers is not None:
                    self._trace(f"<--- SIP read over {kind.upper()} from", addr, data)
                try:
                    messages = parser.feed(data)
                except SipParseError as exc:
                    self.stats["malformed"] += 1
                    log.debug("Malformed SIP over %s from %s:%d: %s", kind, addr[0], addr[1], exc)
                    if exc.fatal:
                        break
                    continue
                for message in messages:
                    try:
                        self.execute(self.layer.receive(message, addr, self.loop.time(), reliable=True))
                    except Exception:
                        log.exception("Error handling SIP %s from %s:%d", _describe(message), *addr)
        except (ConnectionError, OSError):
            pass
        finally:
            if self.connections.get(addr, (None,))[0] is writer:
                del self.connections[addr]
            writer.close()

    async def _connect(self, dest: Addr, kind: str, data: bytes) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                dest[0], dest[1], ssl=self.ssl_client if kind == "tls" else None)
        except OSError as exc:
            log.warning("Cannot open SIP %s connection to %s:%d: %s", kind.upper(), dest[0], dest[1], exc)
            return
        writer.write(data)
        self.loop.create_task(self._serve_stream(reader, writer, dest, kind))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        for server in self.servers.values():
            server.close()
        for writer, _ in list(self.connections.values()):
            writer.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    # ------------------------------------------------------------------ receiving
    def datagram_received(self, data: bytes, addr: Addr) -> None:  # type: ignore[override]
        self.stats["received"] += 1
        if data[:1] in b"\r\n \0" and not data.strip(b"\r\n \0"):
            return  # keep-alive (checked only when the datagram starts like one)
        if self.debug_peers is not None:
            self._trace("<--- SIP read from", addr, data)
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.stats["malformed"] += 1
            log.debug("Malformed SIP from %s:%d: %s", addr[0], addr[1], exc)
            self._answer_malformed(data, exc, addr)
            return
        except Exception:  # the parser must not take the endpoint down
            self.stats["malformed"] += 1
            log.exception("SIP parser failed on a datagram from %s:%d", *addr)
            return
        try:
            self.execute(self.layer.receive(message, addr, self.loop.time()))
        except Exception:
            log.exception("Error handling SIP %s from %s:%d", _describe(message), *addr)

    def _answer_malformed(self, data: bytes, exc: SipParseError, addr: Addr) -> None:
        """Answer with the parser's status when the request is good enough to address."""
        if not exc.status or not data[:1].isalpha() or data.startswith(b"SIP/"):
            return
        try:
            from hookflash.sip.message import Headers
            head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            lines = head.replace("\r\n", "\n").split("\n")
            headers = Headers()
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if colon and name.strip().lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"):
                    headers.add(name.strip(), value.strip())
            if headers.get("Via") is None or headers.get("CSeq") is None:
                return
            method = lines[0].split(" ", 1)[0]
            fake = SipRequest(method, "sip:invalid", headers)
            response = build_response(fake, exc.status, exc.reason[:100] or None)
            self.send(response, addr)
        except Exception:  # nothing sensible to answer
            return

    # ------------------------------------------------------------------ actions
    def execute(self, actions: list[Any]) -> None:
        for action in actions:
            kind = type(action)  # the action classes are final: one identity test each
            if kind is Send:
                txn = action.transaction  # an unreliable one goes over UDP: no Via lookup
                self.send(action.message, action.dest, udp=txn is not None and not txn.reliable)
            elif kind is Deliver:
                self._deliver(action)
            elif kind is Terminated:
                self.handlers.pop(action.transaction, None)
            elif kind is Timeout or kind is TransportError:
                handler = self.handlers.pop(action.transaction, None)
                if handler is not None:
                    handler(None)
        self._reschedule()

    def _deliver(self, action: Deliver) -> None:
        message = action.message
        source = action.source or ("0.0.0.0", 0)
        if action.transaction is None:
            self.tu.on_stray(message, source)
        elif isinstance(message, SipResponse):
            handler = self.handlers.get(action.transaction)  # type: ignore[arg-type]
            if handler is not None:
                if message.status >= 200:
                    self.handlers.pop(action.transaction, None)  # type: ignore[arg-type]
                handler(message)
        else:
            self.tu.on_request(message, action.transaction, source)

    def _reschedule(self) -> None:
        """Arm the timer for the layer's earliest deadline unless it is armed for then
        or sooner already. A deadline that goes away (a timer stopped) leaves the
        timer armed: it fires for nothing and re-arms, which is cheaper than
        re-arming on every message that stops a timer."""
        deadline = self.layer.next_deadline()
        if deadline is None:
            return
        at = self._timer_at
        if at is not None and at <= deadline + self.coalesce:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at = deadline + self.coalesce
        self._timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.execute(self.layer.on_timer(self.loop.time()))
        except Exception:
            log.exception("SIP timer handling failed")
            self._reschedule()

    # ------------------------------------------------------------------ sending
    def transport_for(self, message: SipRequest | SipResponse) -> str:
        try:
            return message.top_via.transport.lower()
        except Exception:
            return "udp"

    def send(self, message: SipRequest | SipResponse | bytes, dest: Addr, *, udp: bool = False) -> None:
        """Send a message (or the bytes of one a shrunk UDP transaction sends); ``udp``:
        the caller knows it goes over UDP (a transaction on an unreliable transport)."""
        if isinstance(message, bytes):
            data, kind = message, "udp"  # only UDP transactions shrink
        else:
            data, kind = bytes(message), "udp" if udp else self.transport_for(message)
        if self.debug_peers is not None:
            self._trace("---> SIP sent to", dest, data)
        self.stats["sent"] += 1
        if kind in ("tcp", "tls"):
            conn = self.connections.get(dest)
            if conn is not None:
                conn[0].write(data)
            elif isinstance(message, SipRequest):
                self.loop.create_task(self._connect(dest, kind, data))
            else:
                log.debug("No %s connection to %s:%d for a response", kind, *dest)
            return
        if self.transport is not None:
            self.transport.sendto(data, dest)

    def request(self, request: SipRequest, dest: Addr, handler: ResponseHandler) -> ClientTransaction:
        """Send a request in a new client transaction; ``handler`` gets each response
        (provisional ones too) and None on timeout."""
        reliable = self.transport_for(request) in ("tcp", "tls")
        txn, actions = self.layer.send_request(request, dest, self.loop.time(), reliable=reliable)
        self.handlers[txn] = handler
        self.execute(actions)
        return txn

    async def request_final(self, request: SipRequest, dest: Addr) -> SipResponse | None:
        """Send and wait for the final response (None on timeout)."""
        future: asyncio.Future[SipResponse | None] = self.loop.create_future()

        def handler(response: SipResponse | None) -> None:
            if (response is None or response.status >= 200) and not future.done():
                future.set_result(response)

        self.request(request, dest, handler)
        return await future

    def respond(self, request: SipRequest, response: SipResponse) -> None:
        try:
            self.execute(self.layer.respond(request, response, self.loop.time()))
        except Exception as exc:  # the transaction is gone (e.g. timed out)
            log.debug("Could not send %d for %s: %s", response.status, request.method, exc)

    def _trace(self, what: str, addr: Addr, data: bytes) -> None:
        if self.debug_peers and addr[0] not in self.debug_peers:
            return
        text = data.decode("utf-8", "replace")
        wire.info("\n%s %s:%d --->\n%s\n<------------->", what, addr[0], addr[1], text)


def _describe(message: SipRequest | SipResponse) -> str:
    if isinstance(message, SipRequest):
        return message.method
    return f"{message.status} response"
