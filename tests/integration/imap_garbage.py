"""A deliberately broken IMAP "server" on loopback, for bad-input tests ONLY.

This exists only to feed an IMAP client malformed protocol input that a real server never
produces (binary garbage, a greeting followed by silence, a 10 MB line without CRLF, a
connection closed at once). It is the one place where a fake server is allowed: every test
of real IMAP behaviour uses the real Dovecot of ``imap_server.py``.

``with GarbageImapServer("garbage") as srv:`` listens on ``127.0.0.1:srv.port``. Modes:

* ``"garbage"``: sends a valid-looking ``* OK`` greeting, then answers every line it receives
  with random binary junk and invalid responses (bad tags, unbalanced parentheses, lying
  literals, absurd numbers, NUL bytes), deterministic for a given ``seed``;
* ``"silent"``: accepts the TCP connection and never sends a byte (input is read and dropped);
* ``"close"``: accepts, then closes at once;
* ``"huge-line"``: sends the greeting, then a ``huge_size`` (10 MB) line without CRLF, then
  stays silent.

``.connections`` counts accepted connections and ``.received`` keeps the raw lines the
clients sent (in ``"garbage"`` mode), so a test can check a client gave up or retried.
"""

from __future__ import annotations

import random
import socket
import threading
from typing import Self

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE AUTH=PLAIN] garbage server ready\r\n"
MODES = ("garbage", "silent", "close", "huge-line")


class GarbageImapServer:
    def __init__(self, mode: str, seed: int = 0, huge_size: int = 10 * 1024 * 1024) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.huge_size = huge_size
        self.port = 0
        self.connections = 0
        self.received: list[bytes] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv or sendall
            except OSError:
                pass
            conn.close()
        for thread in self._threads:
            thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, target, *args: object) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"garbage-imap-{self.mode}")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                if self._stopping.is_set():
                    conn.close()
                    return
                self._conns.append(conn)
            if self.mode == "close":
                with self._lock:
                    self._conns.remove(conn)
                conn.close()
                continue
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.mode == "garbage":
                conn.sendall(GREETING)
                buf = b""
                while not self._stopping.is_set():
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        with self._lock:
                            self.received.append(line + b"\n")
                            reply = self._garbage(line.split(b" ", 1)[0] or b"A1")
                        conn.sendall(reply)
            else:
                if self.mode == "huge-line":
                    conn.sendall(GREETING)
                    chunk = b"A" * 65536
                    conn.sendall(b"* OK ")
                    left = self.huge_size - 5
                    while left > 0 and not self._stopping.is_set():
                        conn.sendall(chunk[:left])
                        left -= len(chunk)
                while not self._stopping.is_set():  # silent: read and drop until the client leaves
                    if not conn.recv(65536):
                        return
        except OSError:
            return
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _garbage(self, tag: bytes) -> bytes:
        """One invalid answer to a command with ``tag`` (called under the lock)."""
        r = self._random
        junk = bytes(r.randrange(256) for _ in range(r.randrange(16, 512)))
        choices = [
            junk,
            junk + b"\r\n",
            b"* " + junk.replace(b"\n", b"") + b"\r\n",
            tag + b" OK [APPENDUID notanumber \xff\xfe] done\r\n",
            tag + b" NO\x00\x00\x00 [ALERT\r\n",
            b"ZZZZ" + tag + b" OK not your tag\r\n",
            b"* 99999999999999999999999999 EXISTS\r\n" + tag + b" OK [UIDVALIDITY -1] x\r\n",
            b"* FETCH ((((((((((UID 1 FLAGS (\\Seen\r\n" + tag + b" OK done\r\n",
            b"* 1 FETCH (BODY[] {4096}\r\nshort literal" + tag + b" OK done\r\n",
            b"* 1 FETCH (BODY[] {-5}\r\n" + tag + b" OK done\r\n",
            b"+ \xff\xfe\xfd unexpected continuation\r\n",
            b"* CAPABILITY \x00\x01\x02\r\n" + tag + b" BAD\r\n",
            b"* BYE\r\n" + tag + b" OK but still talking\r\n",
            b"\r\n\r\n\r\n",
            tag + b"\r\n",
        ]
        return r.choice(choices)
