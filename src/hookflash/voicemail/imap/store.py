"""Voicemail on IMAP: :class:`ImapStore`, a :class:`MessageStore` that keeps the
messages of IMAP mailboxes on an IMAP server and every other mailbox in the file spool.

Storage model (Asterisk's, ``../shared/ASTERISK-REFERENCE.md`` 2.4):

* New and Old messages live in ``imapfolder`` (default INBOX), told apart by
  ``\\Seen``; Urgent is unseen and ``\\Flagged``. Work, Family, Friends and Cust1-5
  are folders of those names (under ``imapparentfolder`` when set). Greetings live in
  ``greetingfolder`` when ``imapgreetings=yes``.
* Only voicemail counts: a mail is ours when its ``X-Asterisk-VM-Context`` and
  ``X-Asterisk-VM-Extension`` (the mailbox or its ``imapvmshareid``) match.

What hookflash does differently (the reasons are in the issue and the README):

* **Never lose a message.** VoiceMail commits the recording to the local spool first
  (the file store's durable save), which makes it count (lamp lit) at once, then the
  *outbox* APPENDs it and deletes the local copy only once the server has confirmed
  it (APPENDUID, or finding its Message-ID). A server that is down, hung or drops the
  connection mid-APPEND only delays the upload; before each retry the folder is
  searched for the message's Message-ID, so a message the server did store before
  the connection dropped is not stored twice. The local spool of an IMAP mailbox *is*
  its outbox: messages waiting there are listed and played like the others.
* **An index, not searches.** Each watched folder has a :class:`FolderIndex`: UID ->
  flags and voicemail headers, built once (one header SEARCH), then kept current from
  IDLE (or a poll where the server has no IDLE) by fetching only new UIDs and the
  flags of known voicemail UIDs. Counts (MWI, VM_INFO, the console) are read from it
  without touching the network; during an outage they are the last known ones, and
  the console says they are stale.
* **Lamp in seconds.** A watcher per folder IDLEs (RFC 2177) on its own connection;
  a change made in a mail client is fetched and the lamps NOTIFYed within
  milliseconds. IDLE connections are capped (``imapidlemax``, default 1000); folders
  beyond the cap are polled every ``pollfreq`` seconds on a connection opened for the
  poll and closed after it (at most 8 at a time), so the cap bounds the connections
  held. A server without IDLE is polled on a connection kept open between polls, as
  c-client does, unless ``imap_poll_logout=yes``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.voicemail.imap.client import (
    Account,
    Connection,
    ImapError,
    ImapRefused,
    ImapUnavailable,
    OverQuota,
    Pool,
)
from hookflash.voicemail.imap.layout import (
    HEADER_FIELDS,
    BadMessage,
    VmHeaders,
    build_greeting,
    build_message,
    extract_audio,
    parse_headers,
)
from hookflash.voicemail.imap.wire import ProtocolError, quote, sequence_set
from hookflash.voicemail.store import (
    ALL_FOLDERS,
    GREETINGS,
    BoxRef,
    FileStore,
    MailboxFull,
    MessageInfo,
    MessageStore,
    StoredMessage,
    StoreError,
)

if TYPE_CHECKING:
    from hookflash.voicemail.config import General, Mailbox

log = logging.getLogger("hookflash.voicemail.imap")

FIELDS = "BODY.PEEK[HEADER.FIELDS (" + " ".join(HEADER_FIELDS) + ")]"
MAIN_FOLDERS = ("INBOX", "Old", "Urgent")  # all three live in imapfolder


@dataclass(frozen=True, slots=True)
class ImapBox:
    """The IMAP side of one voicemail mailbox."""

    box: BoxRef
    account: Account
    folder: str = "INBOX"
    parent: str = ""
    greetings: bool = False
    greetingfolder: str = "INBOX"
    extension: str = ""  # mailbox number or imapvmshareid
    expungeonhangup: bool = True
    fullname: str = ""
    email: str = ""

    def folder_for(self, folder: str, delimiter: str = ".") -> str:
        """The IMAP folder holding the messages of a voicemail folder."""
        if folder in MAIN_FOLDERS:
            return self.folder
        return f"{self.parent}{delimiter}{folder}" if self.parent else folder

    def mine(self, headers: VmHeaders) -> bool:
        return (headers.context.lower() == self.box[0].lower()
                and headers.extension.lower() == self.extension.lower())


def _flags(value: str) -> frozenset[str]:
    return frozenset(f.strip().lower() for f in value.replace("|", "/").split("/") if f.strip())


def imap_box(box: Mailbox, general: General) -> ImapBox | None:
    """The IMAP settings of a mailbox (per-mailbox options over [general]), or None when
    it is stored in files: a mailbox uses IMAP when it has ``imapuser`` and an
    ``imapserver`` is configured for it (in [general] or on the mailbox line)."""
    opts = box.options
    extra = general.extra
    user = opts.get("imapuser", "")
    server = opts.get("imapserver") or extra.get("imapserver", "")
    if not user:
        return None
    if not server:
        log.warning("Mailbox %s has imapuser but no imapserver is configured: stored in files", box.id)
        return None

    def num(name: str, default: float) -> float:
        value = opts.get(name) or extra.get(name)
        try:
            return float(value) if value else default
        except ValueError:
            return default

    flags = _flags(opts.get("imapflags") or extra.get("imapflags", ""))
    account = Account(
        server=server.strip(), port=int(num("imapport", 993 if "ssl" in flags else 143)),
        flags=flags, user=user, password=opts.get("imappassword", ""),
        authuser=extra.get("authuser", ""), authpassword=extra.get("authpassword", ""),
        cafile=opts.get("imapcafile") or extra.get("imapcafile", ""),
        opentimeout=num("imapopentimeout", 60), readtimeout=num("imapreadtimeout", 60),
        writetimeout=num("imapwritetimeout", 60), closetimeout=num("imapclosetimeout", 60))
    folder = opts.get("imapfolder") or extra.get("imapfolder") or "INBOX"
    greetings = (opts.get("imapgreetings") or extra.get("imapgreetings", "no")).lower() in ("yes", "true", "1", "on")
    expunge = (extra.get("expungeonhangup", "yes")).lower() in ("yes", "true", "1", "on")
    return ImapBox(box=(box.context, box.mailbox), account=account, folder=folder,
                   parent=opts.get("imapparentfolder") or extra.get("imapparentfolder", ""),
                   greetings=greetings,
                   greetingfolder=extra.get("greetingfolder") or folder,
                   extension=opts.get("imapvmshareid") or box.mailbox, expungeonhangup=expunge,
                   fullname=box.fullname, email=box.email)


@dataclass
class Entry:
    uid: int
    flags: set[str]
    headers: VmHeaders


@dataclass
class FolderIndex:
    """What one IMAP folder holds that is voicemail (shared by the mailboxes whose
    messages live in it)."""

    account: Account
    folder: str
    entries: dict[int, Entry] = field(default_factory=dict)
    uidvalidity: int = 0
    uidnext: int = 0
    synced: bool = False
    stale: bool = True
    mode: str = "-"  # "IDLE", "poll" or "-"
    synced_at: float = 0.0
    error: str = ""
    watcher: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def messages(self, ibox: ImapBox) -> list[Entry]:
        return [e for uid, e in sorted(self.entries.items()) if "\\Deleted" not in e.flags and ibox.mine(e.headers)
                and not e.headers.is_greeting]

    async def sync(self, conn: Connection, full: bool = False) -> bool:
        """Bring the index up to date on a connection; True if anything changed."""
        await conn.select(self.folder)
        changed = False
        if full or not self.synced or conn.uidvalidity != self.uidvalidity:
            uids = await conn.uid_search("HEADER", "X-Asterisk-VM-Context", '""')
            entries: dict[int, Entry] = {}
            for chunk in _chunks(uids, 500):
                entries.update(_entries(await conn.uid_fetch(sequence_set(chunk), f"(UID FLAGS {FIELDS})")))
            changed = _summary(entries) != _summary(self.entries) or not self.synced
            self.entries = entries
            self.uidvalidity = conn.uidvalidity
            self.uidnext = max([conn.uidnext] + [u + 1 for u in entries])
        else:
            # new mail since the last look
            fresh = await conn.uid_fetch(f"{max(self.uidnext, 1)}:*", f"(UID FLAGS {FIELDS})")
            fresh = {uid: v for uid, v in fresh.items() if uid >= self.uidnext}
            for uid, entry in _entries(fresh).items():
                self.entries[uid] = entry
                changed = True
            if fresh:
                self.uidnext = max(fresh) + 1
            if conn.uidnext > self.uidnext:
                self.uidnext = conn.uidnext
            # flags (and existence) of what we know
            known = sorted(self.entries)
            present: set[int] = set()
            for chunk in _chunks(known, 1000):
                for uid, values in (await conn.uid_fetch(sequence_set(chunk), "(UID FLAGS)")).items():
                    present.add(uid)
                    flags = values.get("FLAGS")
                    entry = self.entries.get(uid)
                    if entry is not None and isinstance(flags, set) and flags != entry.flags:
                        entry.flags = flags
                        changed = True
            for uid in set(known) - present:
                del self.entries[uid]
                changed = True
        self.synced = True
        self.stale = False
        self.error = ""
        self.synced_at = time.time()
        return changed


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _summary(entries: dict[int, Entry]) -> list[tuple[int, frozenset[str]]]:
    return [(uid, frozenset(e.flags)) for uid, e in sorted(entries.items())]


def _entries(fetched: dict[int, dict[str, Any]]) -> dict[int, Entry]:
    out: dict[int, Entry] = {}
    for uid, values in fetched.items():
        raw = next((v for k, v in values.items() if k.startswith("BODY[HEADER")), None)
        if not isinstance(raw, bytes) or raw == b"NIL":
            continue
        headers = parse_headers(bytes(raw))
        if headers is None:
            continue
        flags = values.get("FLAGS")
        out[uid] = Entry(uid, set(flags) if isinstance(flags, set) else set(), headers)
    return out


@dataclass(frozen=True, slots=True)
class Remote:
    """Where a stored message lives on the server."""

    folder: str
    uid: int
    uidvalidity: int


class ImapStore(MessageStore):
    """IMAP mailboxes on their server (local spool as outbox), the rest in files."""

    def __init__(self, files: FileStore, *, idle_max: int = 1000, pollfreq: float = 30.0,
                 poll_logout: bool = False, host: str | None = None) -> None:
        self.files = files
        self.boxes: dict[BoxRef, ImapBox] = {}
        self._by_folder: dict[tuple[Any, ...], list[ImapBox]] = {}  # (account, folder) -> its boxes
        self.pools: dict[tuple[Any, ...], Pool] = {}
        self.indexes: dict[tuple[Any, ...], FolderIndex] = {}
        self._fresh_ids: set[str] = set()
        self._in_flight: dict[BoxRef, dict[str, str]] = {}  # on the server, local copy not yet removed  # saved here, never tried: no need to search first
        self.idle_max = idle_max
        self.pollfreq = pollfreq
        self.poll_logout = poll_logout
        self.host = host or socket.gethostname()
        self.on_change: Callable[[BoxRef], None] = lambda box: None
        # subject, body and X-Asterisk-VM-Orig-date (emaildateformat) of a message's mail
        self.render: Callable[[ImapBox, StoredMessage, MessageInfo], tuple[str, str, str]] = \
            lambda ibox, msg, info: (f"[PBX]: New message {msg.number + 1} in mailbox {ibox.box[1]}", "",
                                     info.origdate)
        self.general: General | None = None
        self.outbox_tasks: dict[BoxRef, asyncio.Task[None]] = {}
        self.outbox_wake: dict[BoxRef, asyncio.Event] = {}
        self.quota_full: dict[tuple[Any, ...], bool] = {}
        self._quota_refused_at: dict[tuple[Any, ...], int] = {}
        self.to_expunge: dict[tuple[Any, ...], set[int]] = {}
        self.uploaded = 0
        self.upload_times: list[float] = []
        self._last_counts: dict[BoxRef, tuple[int, int, int]] = {}
        self._idle_used = 0
        self._poll_sem = asyncio.Semaphore(8)
        self._running = False

    # ------------------------------------------------------------------ configuration
    def configure(self, boxes: list[ImapBox], general: General) -> None:
        """Take a (re)loaded configuration: which mailboxes are on IMAP."""
        self.general = general
        old = self.boxes
        self.boxes = {b.box: b for b in boxes}
        self._by_folder = {}
        for ibox in boxes:
            self._by_folder.setdefault((ibox.account.key, ibox.folder_for("INBOX")), []).append(ibox)
        if self._running:
            for ref in set(old) - set(self.boxes):
                self._stop_outbox(ref)
            self._start_all()

    def add_box(self, ibox: ImapBox) -> None:
        """A mailbox found later (realtime): watch it and upload for it from now on."""
        if self.boxes.get(ibox.box) == ibox:
            return
        self.boxes[ibox.box] = ibox
        self._by_folder.setdefault((ibox.account.key, ibox.folder_for("INBOX")), []).append(ibox)
        if self._running:
            self._start_all()

    def imap(self, box: BoxRef) -> ImapBox | None:
        return self.boxes.get(box)

    def pool(self, account: Account) -> Pool:
        pool = self.pools.get(account.key)
        if pool is None or pool.account != account:
            pool = self.pools[account.key] = Pool(account, size=2)
        return pool

    def index(self, ibox: ImapBox, folder: str) -> FolderIndex:
        key = (ibox.account.key, ibox.folder_for(folder))
        found = self.indexes.get(key)
        if found is None or found.account != ibox.account:
            found = self.indexes[key] = FolderIndex(ibox.account, ibox.folder_for(folder))
        return found

    async def start(self) -> None:
        self._running = True
        self._start_all()

    def _start_all(self) -> None:
        for ibox in self.boxes.values():
            idx = self.index(ibox, "INBOX")
            if idx.watcher is None or idx.watcher.done():
                idx.watcher = asyncio.ensure_future(self._watch(idx))
            self._kick(ibox.box)

    async def stop(self) -> None:
        self._running = False
        for idx in self.indexes.values():
            if idx.watcher is not None:
                idx.watcher.cancel()
                idx.watcher = None
        for ref in list(self.outbox_tasks):
            self._stop_outbox(ref)
        for pool in self.pools.values():
            await pool.close()

    def _stop_outbox(self, ref: BoxRef) -> None:
        task = self.outbox_tasks.pop(ref, None)
        if task is not None:
            task.cancel()

    # ------------------------------------------------------------------ watching
    async def _watch(self, idx: FolderIndex) -> None:
        """Keep one folder's index current: IDLE when offered (and under the cap),
        else poll every pollfreq seconds. Reconnects with backoff."""
        failures = 0
        while True:
            conn: Connection | None = None
            idling = False
            try:
                conn = await Connection.open(idx.account)
                async with idx.lock:
                    changed = await idx.sync(conn)
                failures = 0
                self._changed_boxes(idx, changed)
                idling = conn.has("IDLE") and self._idle_used < self.idle_max
                if idling:
                    self._idle_used += 1
                    idx.mode = "IDLE"
                    while True:
                        # whatever the server reported, or 25 quiet minutes (RFC 2177 asks
                        # to re-IDLE within 29): look again, it is cheap
                        lines = await conn.idle(timeout=25 * 60)
                        if lines and all(line[:2].upper() == b"OK" for line in lines):
                            continue  # Dovecot's "* OK Still here" every 2 minutes: nothing changed
                        async with idx.lock:
                            changed = await idx.sync(conn)
                        self._changed_boxes(idx, changed)
                else:
                    idx.mode = "poll"
                    # over the IDLE cap, a folder holds no connection between polls (that
                    # is what the cap bounds); a server without IDLE keeps one, as c-client
                    # does, unless imap_poll_logout=yes
                    keep = not conn.has("IDLE") and not self.poll_logout
                    if not keep:
                        await conn.logout()
                        conn = None
                    while True:
                        await asyncio.sleep(self.pollfreq)
                        async with self._poll_sem:
                            if conn is None or conn.dead is not None:
                                conn = await Connection.open(idx.account)
                            async with idx.lock:
                                if conn.selected == idx.folder:
                                    await conn.noop()
                                changed = await idx.sync(conn)
                            if not keep:
                                await conn.logout()
                                conn = None
                        self._changed_boxes(idx, changed)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                raise
            except (ImapError, ProtocolError, OSError) as exc:
                failures += 1
                idx.stale = True
                idx.error = str(exc)
                delay = min(2 ** min(failures - 1, 5), 30.0)
                log.warning("Watching %s%s failed (%s); counts kept from %s, retry in %g s",
                            idx.account.spec, idx.folder, exc,
                            time.strftime("%H:%M:%S", time.localtime(idx.synced_at)) if idx.synced_at else "never",
                            delay)
                self._changed_boxes(idx, False)
                await asyncio.sleep(delay)
            except Exception:
                failures += 1
                idx.stale = True
                log.exception("Watching %s%s failed", idx.account.spec, idx.folder)
                await asyncio.sleep(min(2 ** failures, 30.0))
            finally:
                if idling:
                    self._idle_used -= 1
                if conn is not None:
                    conn.close()
                if idx.mode != "-":
                    idx.mode = "-"

    def _changed_boxes(self, idx: FolderIndex, changed: bool) -> None:
        for ibox in self._by_folder.get((idx.account.key, idx.folder), ()):
            counts = self.counts(ibox.box)
            if self._last_counts.get(ibox.box) != counts:
                self._last_counts[ibox.box] = counts
                self.on_change(ibox.box)
            elif changed:
                self.on_change(ibox.box)

    # ------------------------------------------------------------------ MessageStore
    def temp_dir(self, box: BoxRef) -> Path:
        return self.files.temp_dir(box)

    def _server_entries(self, ibox: ImapBox, folder: str) -> list[Entry]:
        idx = self.indexes.get((ibox.account.key, ibox.folder_for(folder)))
        if idx is None:
            return []
        entries = idx.messages(ibox)
        if folder == "INBOX":
            return [e for e in entries if "\\Seen" not in e.flags and "\\Flagged" not in e.flags]
        if folder == "Urgent":
            return [e for e in entries if "\\Seen" not in e.flags and "\\Flagged" in e.flags]
        if folder == "Old":
            return [e for e in entries if "\\Seen" in e.flags]
        return entries

    def count(self, box: BoxRef, folder: str) -> int:
        ibox = self.boxes.get(box)
        local = self.files.count(box, folder)
        if ibox is None:
            return local
        in_flight = sum(1 for f in self._in_flight.get(box, {}).values() if f == folder)
        return len(self._server_entries(ibox, folder)) + max(local - in_flight, 0)

    async def acount(self, box: BoxRef, folder: str) -> int:
        if box not in self.boxes:
            return await self.files.acount(box, folder)
        return self.count(box, folder)

    async def acounts(self, box: BoxRef) -> tuple[int, int, int]:
        if box not in self.boxes:
            return await self.files.acounts(box)
        return self.counts(box)

    def stale(self, box: BoxRef) -> bool:
        ibox = self.boxes.get(box)
        if ibox is None:
            return False
        idx = self.indexes.get((ibox.account.key, ibox.folder_for("INBOX")))
        return idx is None or idx.stale

    async def _fresh_index(self, ibox: ImapBox, folder: str) -> FolderIndex:
        """The index of the folder, synced now if nobody watches it (Work, ...)."""
        idx = self.index(ibox, folder)
        watched = idx.watcher is not None and not idx.watcher.done()
        if watched and idx.synced and not idx.stale:
            return idx
        pool = self.pool(ibox.account)
        try:
            async with pool.connection(wait=False) as conn:
                if folder not in MAIN_FOLDERS:
                    await conn.ensure_folder(idx.folder)
                async with idx.lock:
                    await idx.sync(conn)
        except ImapRefused as exc:
            log.warning("Reading %s%s: %s", ibox.account.spec, idx.folder, exc)
        except ImapUnavailable as exc:
            idx.stale = True
            log.warning("Reading %s%s: %s (showing what was last known)", ibox.account.spec, idx.folder, exc)
        return idx

    async def alist(self, box: BoxRef, folder: str) -> list[StoredMessage]:
        ibox = self.boxes.get(box)
        if ibox is None:
            return await self.files.alist(box, folder)
        if folder not in ALL_FOLDERS:
            raise StoreError(f"unknown folder {folder!r}")
        messages: list[StoredMessage] = []
        if folder != "Deleted":
            idx = await self._fresh_index(ibox, folder)
            for entry in self._server_entries(ibox, folder):
                where = Remote(idx.folder, entry.uid, idx.uidvalidity)
                messages.append(StoredMessage(box, folder, len(messages), entry.headers.info(box[1]),
                                              ("imap",), where))
        offset = len(messages)
        for local in await self.files.alist(box, folder):  # waiting in the outbox
            messages.append(replace(local, number=offset + local.number, where=local))
        return messages

    def _where(self, msg: StoredMessage) -> Remote | StoredMessage:
        """The server copy of a listed message, or its local (outbox) self."""
        if isinstance(msg.where, (Remote, StoredMessage)):
            return msg.where
        return msg  # a message the file store returned (save, copy) is local

    def audio(self, msg: StoredMessage) -> tuple[Path, str] | None:
        if msg.box not in self.boxes:
            return self.files.audio(msg)
        where = self._where(msg)
        if isinstance(where, StoredMessage):
            return self.files.audio(where)
        return self._cached(msg.box, where)

    def _cached(self, box: BoxRef, where: Remote) -> tuple[Path, str] | None:
        cached = self._cache_path(box, where)
        for ext in ("WAV", "wav", "gsm", "ulaw", "alaw", "sln", "wav16", "g722"):
            path = cached.with_suffix(f".{ext}")
            if path.is_file():
                return path, ext
        return None

    async def aaudio(self, msg: StoredMessage) -> tuple[Path, str] | None:
        if msg.box not in self.boxes:
            return self.files.audio(msg)
        try:
            where = await self._resolve(msg)
        except StoreError as exc:
            log.warning("%s", exc)
            return None
        if isinstance(where, StoredMessage):
            return self.files.audio(where)
        found = self._cached(msg.box, where)
        if found is not None:
            return found
        ibox = self.boxes[msg.box]
        try:
            async with self.pool(ibox.account).connection(wait=False) as conn:
                await conn.select(where.folder)
                if where.uidvalidity and conn.uidvalidity != where.uidvalidity:
                    raise StoreError("the folder was recreated (UIDVALIDITY changed)")
                fetched = await conn.uid_fetch(str(where.uid), "(UID BODY.PEEK[])")
        except ImapError as exc:
            log.warning("Fetching message %s of %s: %s", where.uid, ibox.account.spec, exc)
            return None
        raw = next((v for k, v in fetched.get(where.uid, {}).items() if k.startswith("BODY[")), None)
        if not isinstance(raw, bytes):
            log.warning("Message UID %s of %s%s has vanished", where.uid, ibox.account.spec, where.folder)
            return None
        try:
            audio, ext, _intro = await asyncio.to_thread(extract_audio, bytes(raw))
        except BadMessage as exc:
            log.warning("Skipping voicemail UID %s in %s%s: %s", where.uid, ibox.account.spec, where.folder, exc)
            return None
        ext = _known_ext(ext)
        if ext is None:
            log.warning("Voicemail UID %s in %s%s has audio in a format hookflash cannot play",
                        where.uid, ibox.account.spec, where.folder)
            return None
        path = self._cache_path(msg.box, where).with_suffix(f".{ext}")
        await asyncio.to_thread(_write_file, path, audio)
        return path, ext

    def _cache_path(self, box: BoxRef, where: Remote) -> Path:
        safe = "".join(ch if ch.isalnum() else "_" for ch in where.folder)
        return self.files.box_dir(box) / ".imapcache" / f"{safe}-{where.uidvalidity}-{where.uid}"

    # ------------------------------------------------------------------ writing
    async def save(self, box: BoxRef, folder: str, info: MessageInfo, audio: dict[str, Path],
                   maxmsg: int = 0) -> StoredMessage:
        ibox = self.boxes.get(box)
        if ibox is None:
            return await self.files.save(box, folder, info, audio, maxmsg)
        if maxmsg and self.count(box, folder) >= maxmsg:
            raise MailboxFull(f"{box[1]}@{box[0]} holds {maxmsg} messages (maxmsg)")
        info = _with_message_id(info, self._message_id(box, info))
        saved = await self.files.save(box, folder, info, audio, 0)
        self._fresh_ids.add(self._message_id(box, info))
        self._kick(box)
        return saved

    def _message_id(self, box: BoxRef, info: MessageInfo) -> str:
        for key, value in info.extra:
            if key == "imapmessageid":
                return value
        return f"<Asterisk-{info.msg_id}-{box[1]}@{self.host}>"

    async def quota_check(self, box: BoxRef) -> bool:
        """True when the mailbox's IMAP quota is used up (GETQUOTAROOT), as Asterisk checks
        before recording. A server that does not answer quickly is not waited for."""
        ibox = self.boxes.get(box)
        if ibox is None:
            return False
        pool = self.pool(ibox.account)
        try:
            async with pool.connection(wait=False) as conn:
                quota = await asyncio.wait_for(conn.quota(ibox.folder), 0.5)
        except (ImapError, asyncio.TimeoutError):
            return bool(self.quota_full.get(ibox.account.key))
        key = ibox.account.key
        if quota is None:
            return bool(self.quota_full.get(key))
        used, limit = quota
        full = limit > 0 and used >= limit
        if not full and self.quota_full.get(key):
            # an APPEND was refused for quota: full until usage drops below what it was then
            at = self._quota_refused_at.setdefault(key, used)
            full = used >= at
        if not full:
            self._quota_refused_at.pop(key, None)
            if self.quota_full.pop(key, None):
                self._kick(box)  # room again: the outbox can try
        else:
            self.quota_full[key] = True
        return full

    def _kick(self, box: BoxRef) -> None:
        if box not in self.boxes or not self._running:
            return
        event = self.outbox_wake.setdefault(box, asyncio.Event())
        event.set()
        task = self.outbox_tasks.get(box)
        if task is None or task.done():
            self.outbox_tasks[box] = asyncio.ensure_future(self._outbox(box))

    def pending(self, box: BoxRef) -> int:
        return sum(self.files.count(box, f) for f in ALL_FOLDERS) if box in self.boxes else 0

    async def _outbox(self, box: BoxRef) -> None:
        """Upload what waits in the local spool of an IMAP mailbox, oldest first, until
        nothing is left; retry with backoff while the server is away."""
        event = self.outbox_wake.setdefault(box, asyncio.Event())
        failures = 0
        while box in self.boxes:
            event.clear()
            ibox = self.boxes[box]
            waiting = []
            for folder in ALL_FOLDERS:
                waiting += await self.files.alist(box, folder)
            if not waiting:
                await event.wait()
                continue
            try:
                # one at a time, listing again after each: removing an uploaded message
                # renumbers the ones after it
                await self._upload(ibox, waiting[0])
                failures = 0
                event.set()
            except OverQuota as exc:
                self.quota_full[ibox.account.key] = True
                failures += 1
                log.error("Voicemail for %s cannot be uploaded, the IMAP mailbox is over quota (%s); "
                          "kept in the local spool", ibox.account.spec, exc)
            except (ImapError, ProtocolError, OSError, StoreError) as exc:
                failures += 1
                log.warning("Voicemail upload for %s@%s waits (%s); %d message(s) kept in the local spool",
                            box[1], box[0], exc, self.pending(box))
            except Exception:
                failures += 1
                log.exception("Voicemail upload for %s@%s failed", box[1], box[0])
            if failures:
                delay = min(2 ** min(failures - 1, 5), 30.0)
                try:
                    await asyncio.wait_for(event.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def _upload(self, ibox: ImapBox, msg: StoredMessage) -> None:
        box = ibox.box
        info = msg.info
        message_id = self._message_id(box, info)
        found = self.files.audio(msg)
        if found is None:
            log.error("Voicemail %s/%s of %s@%s has no audio; not uploaded", msg.folder, msg.name, box[1], box[0])
            return
        path, ext = found
        audio = await asyncio.to_thread(path.read_bytes)
        folder = ibox.folder_for(msg.folder)
        flags = {"Old": "\\Seen", "Urgent": "\\Flagged"}.get(msg.folder, "")
        number = len(self._server_entries(ibox, msg.folder)) + msg.number
        subject, body, origdate = self.render(ibox, replace(msg, number=number), info)
        general = self.general
        fromstring = general.fromstring if general else "Asterisk PBX"
        server = (general.serveremail if general else "") or "asterisk"
        from_addr = server if "@" in server else f"{server}@{self.host}"
        data = build_message(
            mailbox=box[1], context=box[0], extension=ibox.extension, info=info, number=number,
            audio=audio, ext=ext, subject=subject, body=body, fromstring=fromstring, from_addr=from_addr,
            to_name=ibox.fullname, to_addr=ibox.email or ibox.account.user, message_id=message_id,
            origdate=origdate, charset=(general.charset if general else "ISO-8859-1"))
        idx = self.index(ibox, msg.folder)
        async with self.pool(ibox.account).connection() as conn:
            if folder.upper() != "INBOX":
                await conn.ensure_folder(folder)
            uid: int | None = None
            if message_id not in self._fresh_ids:
                # idempotent: a copy the server kept before a lost connection is not stored twice
                await conn.select(folder)
                hits = await conn.uid_search("HEADER", "Message-ID", quote(message_id))
                uid = hits[-1] if hits else None
            async with idx.lock:  # the watcher must not count it twice meanwhile
                if uid is None:
                    self._fresh_ids.discard(message_id)  # from now on, a retry searches first
                    started = time.monotonic()
                    uid = await conn.append(folder, data, flags)
                    if uid is None:  # no UIDPLUS: confirm by searching
                        conn.selected = None  # a fresh SELECT sees the new message
                        await conn.select(folder)
                        hits = await conn.uid_search("HEADER", "Message-ID", quote(message_id))
                        if not hits:
                            raise ImapUnavailable(f"APPEND of {message_id} not confirmed")
                        uid = hits[-1]
                    self.upload_times.append(time.monotonic() - started)
                    del self.upload_times[:-1000]
                headers = parse_headers(data)
                assert headers is not None
                # confirmed: the server copy replaces the local one in the counts at once
                self._in_flight.setdefault(box, {})[message_id] = msg.folder
                self.uploaded += 1
                if idx.synced:
                    idx.entries[uid] = Entry(uid, set(flags.split()) if flags else set(), headers)
                    idx.uidnext = max(idx.uidnext, uid + 1)
        # only now does the local copy go (found again by its msg_id: a VoiceMailMain
        # session may have moved or renumbered it meanwhile)
        current: StoredMessage | None = None
        try:
            current = await self.files.afind(box, info.msg_id)
            if current is not None:
                await self.files.delete(current)
        finally:
            # at once: from here the local copy no longer counts by itself
            self._in_flight.get(box, {}).pop(message_id, None)
        if current is not None:
            await self.files.resequence(box, current.folder)
        log.info("Voicemail %s of %s@%s stored on %s%s (UID %s)", info.msg_id, box[1], box[0],
                 ibox.account.spec, folder, uid)

    async def copy(self, msg: StoredMessage, dest: BoxRef, folder: str = "INBOX",
                   info: MessageInfo | None = None, maxmsg: int = 0) -> StoredMessage:
        source = self.boxes.get(msg.box)
        if source is None and dest not in self.boxes:
            return await self.files.copy(msg, dest, folder, info, maxmsg)
        found = await self.aaudio(msg)
        if found is None:
            raise StoreError(f"message {msg.name} of {msg.box[1]} has no audio to copy")
        path, ext = found
        tmp = self.temp_dir(dest) / f"copy-{os.getpid()}-{time.monotonic_ns()}.{ext}"
        await asyncio.to_thread(_copy_file, path, tmp)
        return await self.save(dest, folder, info or msg.info, {ext: tmp}, maxmsg)

    async def _resolve(self, msg: StoredMessage) -> Remote | StoredMessage:
        """Where a listed message is now: its UID on the server, or its current local
        self (the outbox may have uploaded or renumbered it since it was listed; the
        msg_id is its identity)."""
        where = self._where(msg)
        if isinstance(where, Remote):
            return where
        current = await self.files.afind(msg.box, where.info.msg_id)
        if current is not None:
            return current
        ibox = self.boxes[msg.box]
        idx = self.index(ibox, where.folder)
        for entry in idx.entries.values():
            if entry.headers.msg_id == where.info.msg_id:
                return Remote(idx.folder, entry.uid, idx.uidvalidity)
        raise StoreError(f"message {where.info.msg_id} of {msg.box[1]}@{msg.box[0]} is gone")

    async def move(self, msg: StoredMessage, folder: str, maxmsg: int = 0) -> StoredMessage:
        ibox = self.boxes.get(msg.box)
        if ibox is None:
            return await self.files.move(msg, folder, maxmsg)
        if folder == msg.folder:
            return msg
        where = await self._resolve(msg)
        if isinstance(where, StoredMessage):
            moved = await self.files.move(where, folder, maxmsg)
            self._kick(msg.box)
            return moved
        add, remove = {"Old": ({"\\Seen"}, set()), "Urgent": ({"\\Flagged"}, {"\\Seen"}),
                       "INBOX": (set(), {"\\Seen", "\\Flagged"})}.get(folder, (set(), set()))
        target = ibox.folder_for(folder)
        async with self.pool(ibox.account).connection(wait=False) as conn:
            await conn.select(where.folder)
            uid = str(where.uid)
            if add:
                await conn.uid_store(uid, "+FLAGS.SILENT", " ".join(sorted(add)))
            if remove:
                await conn.uid_store(uid, "-FLAGS.SILENT", " ".join(sorted(remove)))
            src_idx = self.index(ibox, msg.folder)
            if target != where.folder:
                await conn.ensure_folder(target)
                await conn.uid_move(uid, target)
                src_idx.entries.pop(where.uid, None)
                dst = self.index(ibox, folder)
                if dst.watcher is None:
                    dst.synced = False  # re-read on its next listing
            else:
                entry = src_idx.entries.get(where.uid)
                if entry is not None:
                    entry.flags = (entry.flags | add) - remove
        self._changed_boxes(self.index(ibox, "INBOX"), True)
        return replace(msg, folder=folder)

    async def delete(self, msg: StoredMessage) -> None:
        ibox = self.boxes.get(msg.box)
        if ibox is None:
            return await self.files.delete(msg)
        where = await self._resolve(msg)
        if isinstance(where, StoredMessage):
            await self.files.delete(where)
            return
        async with self.pool(ibox.account).connection(wait=False) as conn:
            await conn.select(where.folder)
            await conn.uid_store(str(where.uid), "+FLAGS.SILENT", "\\Deleted")
        idx = self.index(ibox, msg.folder)
        entry = idx.entries.get(where.uid)
        if entry is not None:
            entry.flags.add("\\Deleted")
        self.to_expunge.setdefault((ibox.account.key, where.folder), set()).add(where.uid)

    async def resequence(self, box: BoxRef, folder: str) -> None:
        ibox = self.boxes.get(box)
        await self.files.resequence(box, folder)
        if ibox is None or not ibox.expungeonhangup:
            return
        key = (ibox.account.key, ibox.folder_for(folder))
        uids = self.to_expunge.pop(key, set())
        if not uids:
            return
        try:
            async with self.pool(ibox.account).connection(wait=False) as conn:
                await conn.select(key[1])
                await conn.uid_expunge(sequence_set(uids))
        except ImapError as exc:
            log.warning("Expunging deleted voicemail of %s: %s", ibox.account.spec, exc)
            self.to_expunge.setdefault(key, set()).update(uids)
            return
        idx = self.indexes.get(key)
        if idx is not None:
            for uid in uids:
                idx.entries.pop(uid, None)

    async def afind(self, box: BoxRef, msg_id: str) -> StoredMessage | None:
        for folder in ALL_FOLDERS:
            for msg in await self.alist(box, folder):
                if msg.info.msg_id == msg_id:
                    return msg
        return None

    # ------------------------------------------------------------------ greetings
    def greeting(self, box: BoxRef, name: str) -> tuple[Path, str] | None:
        return self.files.greeting(box, name)

    async def agreeting(self, box: BoxRef, name: str) -> tuple[Path, str] | None:
        ibox = self.boxes.get(box)
        if ibox is None or not ibox.greetings:
            return self.files.greeting(box, name)
        try:
            await asyncio.wait_for(self._fetch_greeting(ibox, name), 0.5)
        except (ImapError, asyncio.TimeoutError, BadMessage, ProtocolError) as exc:
            log.warning("Greeting '%s' of %s@%s from IMAP: %s (using the local copy)", name, box[1], box[0], exc)
        return self.files.greeting(box, name)

    async def _greeting_entries(self, ibox: ImapBox, conn: Connection) -> list[tuple[int, VmHeaders]]:
        await conn.select(ibox.greetingfolder)
        uids = await conn.uid_search("HEADER", "X-Asterisk-VM-Extension", quote(ibox.extension),
                                     "HEADER", "X-Asterisk-VM-Context", quote(ibox.box[0]), "UNDELETED")
        if not uids:
            return []
        fetched = await conn.uid_fetch(sequence_set(uids), f"(UID FLAGS {FIELDS})")
        return [(uid, e.headers) for uid, e in sorted(_entries(fetched).items()) if e.headers.is_greeting]

    async def _fetch_greeting(self, ibox: ImapBox, name: str) -> None:
        marker = self.files.box_dir(ibox.box) / f".imap-{name}.uid"
        async with self.pool(ibox.account).connection(wait=False) as conn:
            found = [uid for uid, h in await self._greeting_entries(ibox, conn)
                     if h.message_type.lower() == name]
            if not found:
                if marker.is_file():  # deleted on the server (by another PBX or a mail client)
                    await self.files.delete_greeting(ibox.box, name)
                    marker.unlink(missing_ok=True)
                return
            uid = found[-1]
            tag = f"{conn.uidvalidity}-{uid}"
            if marker.is_file() and marker.read_text().strip() == tag:
                return
            fetched = await conn.uid_fetch(str(uid), "(UID BODY.PEEK[])")
        raw = next((v for k, v in fetched.get(uid, {}).items() if k.startswith("BODY[")), None)
        if not isinstance(raw, bytes):
            return
        audio, ext, _ = await asyncio.to_thread(extract_audio, bytes(raw))
        ext = _known_ext(ext)
        if ext is None:
            return
        tmp = self.temp_dir(ibox.box) / f"greeting-{name}-{uid}.{ext}"
        await asyncio.to_thread(_write_file, tmp, audio)
        await self.files.save_greeting(ibox.box, name, {ext: tmp})
        await asyncio.to_thread(_write_file, marker, tag.encode())

    async def save_greeting(self, box: BoxRef, name: str, audio: dict[str, Path]) -> None:
        ibox = self.boxes.get(box)
        if name not in GREETINGS:
            raise StoreError(f"unknown greeting {name!r}")
        await self.files.save_greeting(box, name, audio)  # durable first
        if ibox is not None and ibox.greetings:
            task = asyncio.ensure_future(self._upload_greeting(ibox, name))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _upload_greeting(self, ibox: ImapBox, name: str, attempts: int = 6) -> None:
        found = self.files.greeting(ibox.box, name)
        if found is None:
            return
        path, ext = found
        data = await asyncio.to_thread(path.read_bytes)
        general = self.general
        server = (general.serveremail if general else "") or "asterisk"
        message = build_greeting(
            name=name, mailbox=ibox.box[1], context=ibox.box[0], extension=ibox.extension, audio=data,
            ext=ext, fromstring=general.fromstring if general else "Asterisk PBX",
            from_addr=server if "@" in server else f"{server}@{self.host}", to_name=ibox.fullname,
            to_addr=ibox.email or ibox.account.user,
            message_id=f"<Asterisk-greeting-{name}-{time.time_ns()}-{ibox.box[1]}@{self.host}>")
        marker = self.files.box_dir(ibox.box) / f".imap-{name}.uid"
        for attempt in range(attempts):
            try:
                async with self.pool(ibox.account).connection() as conn:
                    await conn.ensure_folder(ibox.greetingfolder)
                    old = [uid for uid, h in await self._greeting_entries(ibox, conn)
                           if h.message_type.lower() == name]
                    uid = await conn.append(ibox.greetingfolder, message, "\\Seen")
                    conn.selected = None
                    if old:  # the previous recording goes, as in Asterisk
                        await conn.select(ibox.greetingfolder)
                        await conn.uid_store(sequence_set(old), "+FLAGS.SILENT", "\\Deleted")
                        await conn.uid_expunge(sequence_set(old))
                    if uid is not None:
                        await asyncio.to_thread(_write_file, marker, f"{conn.uidvalidity}-{uid}".encode())
                log.info("Greeting '%s' of %s@%s stored on %s%s", name, ibox.box[1], ibox.box[0],
                         ibox.account.spec, ibox.greetingfolder)
                return
            except ImapError as exc:
                log.warning("Uploading greeting '%s' of %s@%s: %s", name, ibox.box[1], ibox.box[0], exc)
                await asyncio.sleep(min(2 ** attempt, 30))

    async def delete_greeting(self, box: BoxRef, name: str) -> None:
        await self.files.delete_greeting(box, name)
        ibox = self.boxes.get(box)
        if ibox is None or not ibox.greetings:
            return
        try:
            async with self.pool(ibox.account).connection(wait=False) as conn:
                old = [uid for uid, h in await self._greeting_entries(ibox, conn) if h.message_type.lower() == name]
                if old:
                    await conn.uid_store(sequence_set(old), "+FLAGS.SILENT", "\\Deleted")
                    await conn.uid_expunge(sequence_set(old))
        except ImapError as exc:
            log.warning("Deleting greeting '%s' of %s@%s on IMAP: %s", name, box[1], box[0], exc)

    # ------------------------------------------------------------------ console
    async def refresh(self, box: BoxRef) -> bool:
        """Re-read a mailbox from the server now (VoicemailRefresh)."""
        ibox = self.boxes.get(box)
        if ibox is None:
            return False
        idx = self.index(ibox, "INBOX")
        try:
            async with self.pool(ibox.account).connection(wait=False) as conn:
                async with idx.lock:
                    await idx.sync(conn, full=True)
        except ImapError as exc:
            idx.stale = True
            log.warning("Refreshing %s@%s: %s", box[1], box[0], exc)
            return False
        self._last_counts.pop(box, None)
        self._changed_boxes(idx, True)
        return True

    def state(self, box: BoxRef) -> dict[str, Any]:
        ibox = self.boxes.get(box)
        if ibox is None:
            return {}
        idx = self.indexes.get((ibox.account.key, ibox.folder_for("INBOX")))
        pool = self.pools.get(ibox.account.key)
        return {
            "spec": ibox.account.spec + ibox.folder,
            "mode": idx.mode if idx else "-",
            "stale": idx.stale if idx else True,
            "synced_at": idx.synced_at if idx else 0.0,
            "error": (idx.error if idx else "") or (pool.last_error if pool else ""),
            "outbox": self.pending(box),
            "connections": (pool.connections if pool else 0) + (1 if idx and idx.mode == "IDLE" else 0),
        }


def _with_message_id(info: MessageInfo, message_id: str) -> MessageInfo:
    if any(key == "imapmessageid" for key, _ in info.extra):
        return info
    return replace(info, extra=info.extra + (("imapmessageid", message_id),))


_EXTS = {"wav": "wav", "WAV": "WAV", "wav49": "WAV", "gsm": "gsm", "ulaw": "ulaw", "alaw": "alaw",
         "sln": "sln", "wav16": "wav16", "g722": "g722", "x-wav": "wav"}


def _known_ext(ext: str) -> str | None:
    from hookflash.media.files import FORMATS
    ext = _EXTS.get(ext, ext)
    return ext if ext in FORMATS else None


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _copy_file(source: Path, target: Path) -> None:
    _write_file(target, source.read_bytes())
