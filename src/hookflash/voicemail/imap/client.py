"""The IMAP connection: aioimaplib underneath, with what a PBX needs on top.

aioimaplib (asyncio, well kept, IDLE) does the framing. This module adds:

* **STARTTLS** (aioimaplib has none): by default whenever the server offers it, as
  c-client does; ``imapflags=ssl`` is implicit TLS (IMAPS); ``notls`` never upgrades.
  Certificates are verified against the system store (``SSL_CERT_FILE``/
  ``SSL_CERT_DIR`` honoured) or ``imapcafile`` unless ``novalidate-cert``.
* **The master user** (``authuser``): ``AUTHENTICATE PLAIN`` with the mailbox owner as
  authorisation identity and the master user as authentication identity (RFC 4616),
  as c-client's ``/authuser=`` does.
* **Time limits on everything**: ``imapopentimeout`` for connect + greeting + TLS +
  login, ``imapreadtimeout`` for each command, ``imapwritetimeout`` for APPEND. A
  connection that times out, drops, or sends something that is not IMAP is closed and
  raises :class:`ImapUnavailable`; a ``NO``/``BAD`` raises :class:`ImapRefused`.
* **A bounded read**: a response line longer than ``MAX_LINE`` closes the connection.
* **Debug logging** of the conversation (``core set debug`` >= 1 logs at DEBUG on
  ``hookflash.voicemail.imap.wire``) with the password never written.
* :class:`Pool`: a few authenticated connections per account, reused, with
  exponential backoff after a failure so a dead server is not hammered (and calls do
  not wait for it: while the account is backing off, :meth:`Pool.acquire` fails at
  once).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from hookflash.voicemail.store import StoreError
from hookflash.voicemail.imap.wire import (
    ProtocolError,
    encode_mailbox,
    parse_fetch,
    parse_response_code,
    parse_search,
    quote,
)

log = logging.getLogger("hookflash.voicemail.imap")
wire_log = logging.getLogger("hookflash.voicemail.imap.wire")

MAX_LINE = 16 * 1024 * 1024

# GETQUOTAROOT answers with two untagged responses (QUOTAROOT and QUOTA); aioimaplib
# routes untagged data of an "async" command by name and would drop the QUOTA line.
# As a "sync" command every untagged line reaches it.
aioimaplib.Commands["GETQUOTAROOT"] = aioimaplib.Cmd("GETQUOTAROOT", (aioimaplib.AUTH, aioimaplib.SELECTED),
                                                    aioimaplib.Exec.is_sync)

__all__ = ["Account", "Connection", "ImapError", "ImapRefused", "ImapUnavailable", "Pool", "OverQuota"]


class ImapError(StoreError):
    """Any IMAP failure (a StoreError: the voicemail applications handle it as one)."""


class ImapUnavailable(ImapError):
    """No usable connection: refused, timed out, dropped, TLS failed, or garbage."""


class ImapRefused(ImapError):
    """The server answered NO or BAD."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


class OverQuota(ImapRefused):
    """APPEND refused for quota ([OVERQUOTA], RFC 9208 / Dovecot 'Quota exceeded')."""


@dataclass(frozen=True, slots=True)
class Account:
    """Where and as whom to log in (one per distinct server/port/flags/user)."""

    server: str = "localhost"
    port: int = 143
    flags: frozenset[str] = frozenset()
    user: str = ""
    password: str = field(default="", repr=False, compare=False)
    authuser: str = ""
    authpassword: str = field(default="", repr=False, compare=False)
    cafile: str = ""
    opentimeout: float = 60.0
    readtimeout: float = 60.0
    writetimeout: float = 60.0
    closetimeout: float = 60.0

    @property
    def key(self) -> tuple[str, int, frozenset[str], str, str]:
        return (self.server.lower(), self.port, self.flags, self.user, self.authuser)

    @property
    def spec(self) -> str:
        """c-client's mailbox spec, as Asterisk logs it (no password)."""
        auth = f"/authuser={self.authuser}" if self.authuser else ""
        flags = "".join(f"/{f}" for f in sorted(self.flags))
        return f"{{{self.server}:{self.port}/imap{auth}{flags}/user={self.user}}}"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile or None)
        if "novalidate-cert" in self.flags:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, made to fail closed: any parse error or overlong line
    closes the connection instead of leaving commands waiting forever."""

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: Connection) -> None:
        super().__init__(loop, owner._lost)
        self.owner = owner

    def data_received(self, d: bytes) -> None:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("%s S: %r", self.owner.account.spec, d[:2000])
        if len(self.incomplete_line) + len(d) > MAX_LINE:
            self.owner._fail(f"server sent a line longer than {MAX_LINE} bytes")
            return
        try:
            super().data_received(d)
        except Exception as exc:  # aioimaplib raises on responses it cannot place
            self.owner._fail(f"unexpected data from the server: {exc}")
        for task in list(self.tasks):  # aioimaplib's own tasks (the greeting): never "unretrieved"
            task.add_done_callback(_retrieve)

    def send(self, line: str, scrub: str | None = None) -> None:
        if wire_log.isEnabledFor(logging.DEBUG):
            shown = line.replace(scrub, "***") if scrub else line
            wire_log.debug("%s C: %s", self.owner.account.spec, shown)
        if self.transport is None or self.transport.is_closing():
            raise ImapUnavailable("connection closed")
        try:
            self.transport.write((line + "\r\n").encode())
        except (RuntimeError, OSError) as exc:  # uvloop: the handle closed under us
            raise ImapUnavailable(f"connection closed: {exc}") from None


def _retrieve(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("IMAP connection task ended: %s", task.exception())


class Connection:
    """One authenticated IMAP connection."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.protocol: _Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.dead: str | None = None
        self.selected: str | None = None
        self.uidvalidity: int = 0
        self.exists = 0
        self.uidnext = 0
        self.created = time.monotonic()
        self.used = self.created
        self._dead_event = asyncio.Event()

    # ------------------------------------------------------------------ life
    @classmethod
    async def open(cls, account: Account) -> Connection:
        conn = cls(account)
        try:
            await asyncio.wait_for(conn._open(), account.opentimeout)
        except asyncio.TimeoutError:
            conn.close()
            raise ImapUnavailable(f"{account.spec}: no answer within {account.opentimeout:g} s") from None
        except ImapRefused:
            conn.close()
            raise
        except (OSError, ssl.SSLError, aioimaplib.AioImapException, ProtocolError, ValueError) as exc:
            conn.close()
            raise ImapUnavailable(f"{account.spec}: {exc or type(exc).__name__}") from None
        except ImapUnavailable:
            conn.close()
            raise
        return conn

    async def _open(self) -> None:
        account = self.account
        loop = asyncio.get_running_loop()
        implicit = "ssl" in account.flags
        self.protocol = _Protocol(loop, self)
        self.transport, _ = await loop.create_connection(
            lambda: self.protocol, account.server, account.port,
            ssl=account.ssl_context() if implicit else None,
            server_hostname=account.server if implicit else None)
        await self._guard(self.protocol.wait("AUTH|NONAUTH"))
        if self.protocol.state == "AUTH":
            return  # PREAUTH
        caps = self.protocol.capabilities
        if not implicit and "notls" not in account.flags:
            if "STARTTLS" in caps:
                await self._starttls()
            elif "tls" in account.flags:
                raise ImapUnavailable(f"{account.spec}: server does not offer STARTTLS (imapflags=tls)")
        await self._login()
        caps = self.protocol.capabilities
        if not any(c.upper().startswith("IMAP4REV1") for c in caps) or len(caps) < 2:
            await self._guard(self.protocol.capability())

    async def _starttls(self) -> None:
        assert self.protocol is not None
        loop = asyncio.get_running_loop()
        response = await self._guard(self.protocol.execute(
            aioimaplib.Command("STARTTLS", self.protocol.new_tag(), loop=loop)))
        if response.result != "OK":
            raise ImapUnavailable(f"{self.account.spec}: STARTTLS refused: {_text(response)}")
        ctx = self.account.ssl_context()
        new = await loop.start_tls(self.transport, self.protocol, ctx, server_hostname=self.account.server)
        self.transport = new
        self.protocol.transport = new
        self.protocol.capabilities = set()
        await self._guard(self.protocol.capability())  # RFC 3501: forget what was said before TLS

    async def _login(self) -> None:
        assert self.protocol is not None
        account = self.account
        loop = asyncio.get_running_loop()
        if account.authuser:
            password = account.authpassword or account.password
            token = base64.b64encode(f"{account.user}\0{account.authuser}\0{password}".encode()).decode()
            command = aioimaplib.Command("AUTHENTICATE", self.protocol.new_tag(), "PLAIN", token, loop=loop)
            response = await self._guard(self.protocol.execute(command, scrub=token))
            if response.result == "OK":
                self.protocol.state = "AUTH"
        else:
            command = aioimaplib.Command("LOGIN", self.protocol.new_tag(), quote(account.user),
                                         quote(account.password), loop=loop)
            response = await self._guard(self.protocol.execute(command, scrub=quote(account.password)))
            if response.result == "OK":
                self.protocol.state = "AUTH"
        if response.result != "OK":
            raise ImapRefused(f"{account.spec}: login refused: {_text(response)}")
        for line in response.lines:
            if isinstance(line, bytes) and b"CAPABILITY" in line:
                words = line.decode("ascii", "replace").replace("[", " ").replace("]", " ").split()
                if "CAPABILITY" in words:
                    self.protocol.capabilities = set(words[words.index("CAPABILITY") + 1:])

    def _lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost{': ' + str(exc) if exc else ''}")

    def _fail(self, reason: str) -> None:
        if self.dead is None:
            self.dead = reason
            log.debug("%s: %s", self.account.spec, reason)
        self._dead_event.set()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort() if hasattr(self.transport, "abort") else self.transport.close()

    def close(self) -> None:
        self._fail("closed")

    async def logout(self) -> None:
        if self.dead is None and self.protocol is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.protocol.logout(), min(self.account.closetimeout, 5))
        self.close()

    @property
    def capabilities(self) -> set[str]:
        return {c.upper() for c in self.protocol.capabilities} if self.protocol else set()

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    # ------------------------------------------------------------------ commands
    async def _guard(self, coro: Any, timeout: float | None = None) -> Any:
        """Run one aioimaplib awaitable; raise ImapUnavailable on timeout or loss."""
        if self.dead is not None:
            coro.close() if hasattr(coro, "close") else None
            raise ImapUnavailable(f"{self.account.spec}: {self.dead}")
        task = asyncio.ensure_future(coro)
        dead = asyncio.ensure_future(self._dead_event.wait())
        try:
            done, _ = await asyncio.wait({task, dead}, timeout=timeout or self.account.readtimeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            dead.cancel()
            self._fail("cancelled in the middle of a command")
            raise
        dead.cancel()
        if task in done:
            try:
                return task.result()
            except (aioimaplib.AioImapException, ProtocolError, OSError, ValueError) as exc:
                self._fail(f"{type(exc).__name__}: {exc}")
                raise ImapUnavailable(f"{self.account.spec}: {exc}") from None
        task.cancel()
        if self.dead is None:
            self._fail(f"no answer within {timeout or self.account.readtimeout:g} s")
        raise ImapUnavailable(f"{self.account.spec}: {self.dead}")

    async def command(self, name: str, *args: str, prefix: str | None = None,
                      untagged: str | None = None, timeout: float | None = None,
                      ok: bool = True) -> Any:
        assert self.protocol is not None
        self.used = time.monotonic()
        cls = aioimaplib.FetchCommand if name == "FETCH" else aioimaplib.Command
        if cls is aioimaplib.FetchCommand:
            command = cls(self.protocol.new_tag(), *args, prefix=prefix, loop=asyncio.get_running_loop())
        else:
            command = cls(name, self.protocol.new_tag(), *args, prefix=prefix, untagged_resp_name=untagged,
                          loop=asyncio.get_running_loop())
        response = await self._guard(self.protocol.execute(command), timeout)
        if ok and response.result != "OK":
            code = parse_response_code(_last(response))
            raise ImapRefused(f"{name} {' '.join(args)[:80]}: {response.result} {_text(response)}",
                              code[0] if code else None)
        return response

    async def select(self, folder: str, readonly: bool = False) -> None:
        if self.selected == folder:
            return
        name = "EXAMINE" if readonly else "SELECT"
        response = await self.command(name, encode_mailbox(folder))
        assert self.protocol is not None
        self.protocol.state = "SELECTED"
        self.selected = folder
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            code = parse_response_code(line)
            if code and code[0] == "UIDVALIDITY" and code[1].strip().isdigit():
                self.uidvalidity = int(code[1])
            if code and code[0] == "UIDNEXT" and code[1].strip().isdigit():
                self.uidnext = int(code[1])
            words = line.split()
            if len(words) == 2 and words[1].upper() == b"EXISTS" and words[0].isdigit():
                self.exists = int(words[0])

    async def ensure_folder(self, folder: str) -> None:
        """CREATE the folder if it is missing (as Asterisk does on first use)."""
        if folder.upper() == "INBOX":
            return
        response = await self.command("CREATE", encode_mailbox(folder), ok=False)
        if response.result != "OK" and b"exist" not in _last(response).lower():
            code = parse_response_code(_last(response))
            if not (code and code[0] == "ALREADYEXISTS"):
                raise ImapRefused(f"CREATE {folder}: {_text(response)}")

    async def uid_search(self, *criteria: str) -> list[int]:
        response = await self.command("SEARCH", *criteria, prefix="UID")
        return parse_search(response.lines)

    async def uid_fetch(self, uids: str, items: str, timeout: float | None = None) -> dict[int, dict[str, Any]]:
        response = await self.command("FETCH", uids, items, prefix="UID", timeout=timeout)
        found: dict[int, dict[str, Any]] = {}
        for _seq, values in parse_fetch(response.lines):
            uid = values.get("UID")
            if isinstance(uid, int):
                found[uid] = values
        return found

    async def uid_store(self, uids: str, change: str, flags: str) -> None:
        await self.command("STORE", uids, change, f"({flags})", prefix="UID", untagged="FETCH")

    async def uid_copy(self, uids: str, folder: str) -> int | None:
        response = await self.command("COPY", uids, encode_mailbox(folder), prefix="UID")
        code = parse_response_code(_last(response))
        if code and code[0] == "COPYUID":
            parts = code[1].split()
            if len(parts) == 3 and parts[2].isdigit():
                return int(parts[2])
        return None

    async def uid_move(self, uids: str, folder: str) -> None:
        if self.has("MOVE"):
            await self.command("MOVE", uids, encode_mailbox(folder), prefix="UID")
            return
        await self.uid_copy(uids, folder)
        await self.uid_store(uids, "+FLAGS.SILENT", "\\Deleted")
        await self.uid_expunge(uids)

    async def uid_expunge(self, uids: str) -> None:
        if self.has("UIDPLUS"):
            await self.command("EXPUNGE", uids, prefix="UID")
        else:  # c-client's fallback, as Asterisk: removes every \Deleted mail of the folder
            await self.command("EXPUNGE")

    async def append(self, folder: str, data: bytes, flags: str = "") -> int | None:
        """APPEND; the new UID when the server says (UIDPLUS), else None. OverQuota when
        the server refuses for quota."""
        assert self.protocol is not None
        self.used = time.monotonic()
        args = [encode_mailbox(folder)]
        if flags:
            args.append(f"({flags})")
        args.append("{%d}" % len(data))
        self.protocol.literal_data = data
        command = aioimaplib.Command("APPEND", self.protocol.new_tag(), *args, loop=asyncio.get_running_loop())
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("%s C: (%d bytes of message)", self.account.spec, len(data))
        response = await self._guard(self.protocol.execute(command), self.account.writetimeout)
        text = _last(response)
        code = parse_response_code(text)
        if response.result != "OK":
            if (code and code[0] in ("OVERQUOTA", "LIMIT")) or b"quota" in text.lower():
                raise OverQuota(f"APPEND to {folder}: {_text(response)}", code[0] if code else None)
            raise ImapRefused(f"APPEND to {folder}: {response.result} {_text(response)}",
                              code[0] if code else None)
        if code and code[0] == "APPENDUID":
            parts = code[1].split()
            if len(parts) == 2 and parts[1].isdigit():
                return int(parts[1])
        return None

    async def quota(self, folder: str = "INBOX") -> tuple[int, int] | None:
        """(used, limit) in KiB of the STORAGE resource, or None without QUOTA."""
        if not self.has("QUOTA"):
            return None
        response = await self.command("GETQUOTAROOT", encode_mailbox(folder), ok=False)
        for line in response.lines:
            if isinstance(line, bytes) and line.upper().startswith(b"QUOTA "):
                words = line.replace(b"(", b" ").replace(b")", b" ").split()
                for i, word in enumerate(words):
                    if word.upper() == b"STORAGE" and i + 2 < len(words):
                        if words[i + 1].isdigit() and words[i + 2].isdigit():
                            return int(words[i + 1]), int(words[i + 2])
        return None

    async def noop(self) -> None:
        await self.command("NOOP")

    # ------------------------------------------------------------------ IDLE
    async def idle(self, timeout: float) -> list[bytes]:
        """IDLE until the server reports something or ``timeout`` passes; returns the
        untagged lines received (empty on timeout). The connection is back in the
        selected state afterwards."""
        assert self.protocol is not None
        protocol = self.protocol
        loop = asyncio.get_running_loop()
        command = aioimaplib.IdleCommand(protocol.new_tag(), protocol.idle_queue, loop=loop)
        idle_task = asyncio.ensure_future(protocol.execute(command))
        try:
            await self._guard(protocol.wait_for_idle_response(), self.account.readtimeout)
            if idle_task.done():
                idle_task.result()
                raise ImapUnavailable(f"{self.account.spec}: IDLE refused")
            lines: list[bytes] = []
            try:
                batch = await self._guard(protocol.idle_queue.get(), timeout)
                lines.extend(x for x in batch if isinstance(x, (bytes, bytearray)))
            except ImapUnavailable:
                if self.dead is not None and "no answer within" not in self.dead:
                    raise
                if self.dead is not None:
                    raise
            while not protocol.idle_queue.empty():
                lines.extend(x for x in protocol.idle_queue.get_nowait() if isinstance(x, (bytes, bytearray)))
            protocol.idle_done()
            wire_log.debug("%s C: DONE", self.account.spec)
            await self._guard(idle_task, self.account.readtimeout)
            while not protocol.idle_queue.empty():
                lines.extend(x for x in protocol.idle_queue.get_nowait() if isinstance(x, (bytes, bytearray)))
            return [bytes(x) for x in lines]
        finally:
            if not idle_task.done():
                idle_task.cancel()


def _last(response: Any) -> bytes:
    for line in reversed(response.lines):
        if isinstance(line, bytes):
            return line
    return b""


def _text(response: Any) -> str:
    return _last(response).decode("utf-8", "replace")[:200]


class Pool:
    """Up to ``size`` idle authenticated connections for one account, with backoff."""

    def __init__(self, account: Account, size: int = 4) -> None:
        self.account = account
        self.size = size
        self.idle: list[Connection] = []
        self.busy = 0
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self.connected_once = False
        self._sem = asyncio.Semaphore(size)

    @property
    def backing_off(self) -> bool:
        return time.monotonic() < self.retry_at

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)
        delay = min(2 ** min(self.failures - 1, 6), 60.0)
        self.retry_at = time.monotonic() + delay
        log.warning("IMAP server for %s unusable (%s); next attempt in %g s", self.account.spec, exc, delay)

    def ok(self) -> None:
        if self.failures:
            log.info("IMAP server for %s is back", self.account.spec)
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""

    @contextlib.asynccontextmanager
    async def connection(self, wait: bool = True) -> AsyncIterator[Connection]:
        if self.backing_off and not wait:
            raise ImapUnavailable(f"{self.account.spec}: unavailable ({self.last_error})")
        async with self._sem:
            conn = None
            while self.idle:
                candidate = self.idle.pop()
                if candidate.dead is None:
                    conn = candidate
                    break
            if conn is None:
                if self.backing_off:
                    raise ImapUnavailable(f"{self.account.spec}: unavailable ({self.last_error})")
                try:
                    conn = await Connection.open(self.account)
                except ImapRefused as exc:
                    self._failed(exc)
                    raise
                except ImapUnavailable as exc:
                    self._failed(exc)
                    raise
                self.connected_once = True
            self.busy += 1
            try:
                yield conn
            except ImapUnavailable as exc:
                conn.close()
                self._failed(exc)
                raise
            except BaseException:
                if conn.dead is None and conn.protocol is not None and conn.protocol.pending_sync_command:
                    conn.close()
                raise
            finally:
                self.busy -= 1
            self.ok()
            if conn.dead is None and len(self.idle) < self.size:
                self.idle.append(conn)
            else:
                conn.close()

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.logout()

    @property
    def connections(self) -> int:
        return len(self.idle) + self.busy
