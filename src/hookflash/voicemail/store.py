"""Where messages live: the :class:`MessageStore` interface and :class:`FileStore`,
Asterisk's spool layout on disk.

Layout (the same as Asterisk's file storage, so a spool can be moved in and out)::

    <astspooldir>/voicemail/<context>/<mailbox>/
        INBOX/msg0000.txt  INBOX/msg0000.wav  INBOX/msg0000.WAV  INBOX/msg0000.gsm ...
        Old/ Work/ Family/ Friends/ Urgent/ (Cust1..Cust5, Deleted are read too)
        unavail.<fmt> busy.<fmt> temp.<fmt> greet.<fmt>     greetings and recorded name
        tmp/                                                recordings in progress
        .lock                                               hookflash's lock (flock)

A message is its ``msgNNNN.txt`` (the ``[message]`` metadata, :class:`MessageInfo`)
plus one audio file per format; numbers are 0-based, 4 digits, contiguous after each
mailbox session as Asterisk keeps them.

Durability and numbering (never lose, never overwrite):

* audio is recorded into ``tmp/`` (:class:`~hookflash.media.files.SoundWriter`:
  temporary file, fsync, rename), so an interrupted recording never shows up as a
  message;
* saving takes the mailbox lock (``flock`` on ``.lock``, which also serialises
  several processes sharing a spool), removes *orphans* (audio without a ``.txt``: the
  leftovers of a crash in the middle of a save), claims the number after the highest
  one present, renames the audio files into place, then writes the ``.txt`` last
  (temporary file, fsync, rename, fsync of the directory). The ``.txt`` is the commit
  point: after a crash there is either no message (and the number is free again,
  so no gap) or a complete one (and its number is never handed out again);
* moving and renumbering hard-link the audio to the new name, rename the ``.txt``
  (commit), then unlink the old audio; deleting removes the ``.txt`` first. A crash
  at any step leaves each message either where it was or where it was going.

Every blocking step (fsync, rename, directory scans, reading the ``.txt`` of every
message of a folder, up to 9999 of them) runs in a worker thread; async callers await
the ``a*`` methods (:meth:`MessageStore.alist`, ``afind``, ``acount``, ``acounts``).
The synchronous :meth:`MessageStore.count` / ``counts`` remain for callers that
cannot await (the ``VM_INFO`` dialplan function, chan_sip's MWI query): one directory
listing per folder, no file read.
"""

from __future__ import annotations

import abc
import asyncio
import fcntl
import itertools
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hookflash.conf.parser import parse_text
from hookflash.media.files import FORMATS

log = logging.getLogger("hookflash.voicemail.store")

__all__ = [
    "FOLDERS",
    "GREETINGS",
    "BoxRef",
    "FileStore",
    "MailboxFull",
    "MessageInfo",
    "MessageStore",
    "StoreError",
    "StoredMessage",
]

FOLDERS = ("INBOX", "Old", "Work", "Family", "Friends", "Urgent")
ALL_FOLDERS = FOLDERS + ("Cust1", "Cust2", "Cust3", "Cust4", "Cust5", "Deleted")
GREETINGS = ("unavail", "busy", "temp", "greet")
_MSG = re.compile(r"msg(\d{4})\.(.+)$")
_ids = itertools.count(random.getrandbits(31))

BoxRef = tuple[str, str]  # (context, mailbox)


class StoreError(Exception):
    """A message could not be stored, found or changed."""


class MailboxFull(StoreError):
    """The folder holds maxmsg messages already."""


def new_msg_id(now: float | None = None) -> str:
    """Asterisk's form: ``<epoch>-<8 hex digits>``."""
    return f"{int(now if now is not None else time.time())}-{next(_ids) & 0xFFFFFFFF:08x}"


def _clean(value: str) -> str:
    """A metadata value safe to write on one line of a .conf file."""
    value = value.replace("\r", " ").replace("\n", " ").replace("\0", "")
    return value.replace(";", "\\;")


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """The ``[message]`` section of ``msgNNNN.txt``, in Asterisk's key order."""

    origmailbox: str = ""
    context: str = ""
    macrocontext: str = ""
    exten: str = ""
    rdnis: str = "unknown"
    priority: int = 1
    callerchan: str = ""
    callerid: str = "Unknown"
    origdate: str = ""
    origtime: int = 0
    category: str = ""
    msg_id: str = ""
    flag: str = ""
    duration: int = 0
    extra: tuple[tuple[str, str], ...] = ()

    _KEYS = ("origmailbox", "context", "macrocontext", "exten", "rdnis", "priority", "callerchan",
             "callerid", "origdate", "origtime", "category", "msg_id", "flag", "duration")

    @staticmethod
    def asterisk_date(epoch: float) -> str:
        """``origdate``: ``%a %b %e %r UTC %Y`` in UTC, as app_voicemail writes it."""
        return time.strftime("%a %b %e %I:%M:%S %p UTC %Y", time.gmtime(epoch))

    def to_text(self) -> str:
        lines = [";", "; Message Information file", ";", "[message]"]
        for key in self._KEYS:
            lines.append(f"{key}={_clean(str(getattr(self, key)))}")
        for key, value in self.extra:
            lines.append(f"{key}={_clean(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, filename: str = "<msg>") -> MessageInfo:
        conf = parse_text(text, filename)
        sections = [s for s in conf.sections if s.name.lower() == "message"]
        if not sections:
            raise StoreError(f"{filename}: no [message] section")
        values: dict[str, object] = {}
        extra: list[tuple[str, str]] = []
        for var in sections[0].variables:
            key = var.name.lower()
            if key in ("priority", "origtime", "duration"):
                match = re.match(r"\s*(-?\d+)", var.value)
                values[key] = int(match.group(1)) if match else 0
            elif key in cls._KEYS:
                values[key] = var.value
            else:
                extra.append((var.name, var.value))
        return cls(extra=tuple(extra), **values)  # type: ignore[arg-type]

    @property
    def cid_name(self) -> str:
        match = re.match(r'\s*"([^"]*)"', self.callerid)
        return match.group(1) if match else ("" if "<" in self.callerid else self.callerid)

    @property
    def cid_num(self) -> str:
        match = re.search(r"<([^>]*)>", self.callerid)
        if match:
            return match.group(1)
        return self.callerid if re.fullmatch(r"[0-9*#+]+", self.callerid.strip()) else ""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    box: BoxRef
    folder: str
    number: int
    info: MessageInfo
    formats: tuple[str, ...] = field(default=())  # file extensions present
    where: object = field(default=None, compare=False)  # a store's own locator (IMAP: UID)

    @property
    def name(self) -> str:
        return f"msg{self.number:04d}"


Messages = list[StoredMessage]  # an alias: FileStore.list shadows ``list`` in its class body


class MessageStore(abc.ABC):
    """What the voicemail applications need from storage. The file store below keeps
    Asterisk's spool; an IMAP store can sit under the same applications.

    Reading messages is async (``alist``, ``afind``, ``acount``, ``acounts``): a folder
    holds up to 9999 messages and must never be scanned on the event loop. Only
    ``count``/``counts`` are synchronous, for callers that cannot await."""

    @abc.abstractmethod
    def temp_dir(self, box: BoxRef) -> Path:
        """Where recordings in progress are written (same filesystem as the box)."""

    @abc.abstractmethod
    async def save(self, box: BoxRef, folder: str, info: MessageInfo, audio: dict[str, Path],
                   maxmsg: int = 0) -> StoredMessage:
        """Store a finished recording (``audio``: extension -> durable temp file,
        consumed) as the next message of ``folder``."""

    @abc.abstractmethod
    async def copy(self, msg: StoredMessage, dest: BoxRef, folder: str = "INBOX",
                   info: MessageInfo | None = None, maxmsg: int = 0) -> StoredMessage: ...

    @abc.abstractmethod
    async def move(self, msg: StoredMessage, folder: str, maxmsg: int = 0) -> StoredMessage: ...

    @abc.abstractmethod
    async def delete(self, msg: StoredMessage) -> None: ...

    @abc.abstractmethod
    async def resequence(self, box: BoxRef, folder: str) -> None:
        """Close the gaps left by deletes and moves (msg0000.. contiguous)."""

    @abc.abstractmethod
    async def alist(self, box: BoxRef, folder: str) -> list[StoredMessage]:
        """The messages of ``folder`` in number order (StoreError: unknown folder)."""

    @abc.abstractmethod
    async def acount(self, box: BoxRef, folder: str) -> int:
        """How many messages ``folder`` holds (0 for an unknown folder)."""

    @abc.abstractmethod
    def count(self, box: BoxRef, folder: str) -> int:
        """``acount`` for callers that cannot await; must stay cheap."""

    @abc.abstractmethod
    def audio(self, msg: StoredMessage) -> tuple[Path, str] | None:
        """A playable file of the message and its format extension."""

    @abc.abstractmethod
    def greeting(self, box: BoxRef, name: str) -> tuple[Path, str] | None: ...

    @abc.abstractmethod
    async def save_greeting(self, box: BoxRef, name: str, audio: dict[str, Path]) -> None: ...

    @abc.abstractmethod
    async def delete_greeting(self, box: BoxRef, name: str) -> None: ...

    async def aaudio(self, msg: StoredMessage) -> tuple[Path, str] | None:
        """:meth:`audio`, fetching it first where it is not local (IMAP)."""
        return self.audio(msg)

    async def quota_check(self, box: BoxRef) -> bool:
        """True when the storage behind the mailbox refuses more messages (IMAP quota)."""
        return False

    async def agreeting(self, box: BoxRef, name: str) -> tuple[Path, str] | None:
        """:meth:`greeting`, fetching it first where greetings are remote (IMAP)."""
        return self.greeting(box, name)

    def counts(self, box: BoxRef) -> tuple[int, int, int]:
        """(new, old, urgent); new includes urgent, as Asterisk counts INBOX."""
        urgent = self.count(box, "Urgent")
        return self.count(box, "INBOX") + urgent, self.count(box, "Old"), urgent

    async def acounts(self, box: BoxRef) -> tuple[int, int, int]:
        """:meth:`counts` without blocking the event loop."""
        urgent = await self.acount(box, "Urgent")
        return await self.acount(box, "INBOX") + urgent, await self.acount(box, "Old"), urgent

    async def afind(self, box: BoxRef, msg_id: str) -> StoredMessage | None:
        """The message with this ``msg_id`` in any folder, or None."""
        for folder in ALL_FOLDERS:
            for msg in await self.alist(box, folder):
                if msg.info.msg_id == msg_id:
                    return msg
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, text: str) -> None:
    """temp file beside ``path``, fsync, rename over it, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class FileStore(MessageStore):
    def __init__(self, spooldir: Path | str) -> None:
        self.root = Path(spooldir) / "voicemail"

    # ------------------------------------------------------------------ paths
    @staticmethod
    def _safe(part: str) -> str:
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise StoreError(f"invalid mailbox or context name {part!r}")
        return part

    def box_dir(self, box: BoxRef) -> Path:
        context, mailbox = box
        return self.root / self._safe(context) / self._safe(mailbox)

    def folder_dir(self, box: BoxRef, folder: str) -> Path:
        if folder not in ALL_FOLDERS:
            raise StoreError(f"unknown folder {folder!r}")
        return self.box_dir(box) / folder

    def temp_dir(self, box: BoxRef) -> Path:
        path = self.box_dir(box) / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def _locked(self, box: BoxRef) -> Iterator[Path]:
        directory = self.box_dir(box)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(directory / ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            os.close(fd)  # releases the lock

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _numbers(folder: Path) -> dict[int, set[str]]:
        """number -> extensions present (``txt`` included) in a folder."""
        found: dict[int, set[str]] = {}
        try:
            entries = os.scandir(folder)
        except OSError:
            return found
        with entries:
            for entry in entries:
                match = _MSG.match(entry.name)
                if match:
                    found.setdefault(int(match.group(1)), set()).add(match.group(2))
        return found

    def count(self, box: BoxRef, folder: str) -> int:
        try:
            directory = self.folder_dir(box, folder)
        except StoreError:
            return 0
        return sum(1 for exts in self._numbers(directory).values() if "txt" in exts)

    def list(self, box: BoxRef, folder: str) -> list[StoredMessage]:
        """Blocking (reads every ``.txt``): async code uses :meth:`alist`."""
        directory = self.folder_dir(box, folder)
        messages = []
        for number, exts in sorted(self._numbers(directory).items()):
            if "txt" not in exts:
                continue
            path = directory / f"msg{number:04d}.txt"
            try:
                info = MessageInfo.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
            except (OSError, StoreError, ValueError) as exc:
                log.warning("Skipping unreadable voicemail metadata %s: %s", path, exc)
                continue
            audio = tuple(e for e in FORMATS if e in exts) + tuple(sorted(e for e in exts - {"txt"} if e not in FORMATS))
            messages.append(StoredMessage(box, folder, number, info, audio))
        return messages

    def find(self, box: BoxRef, msg_id: str) -> StoredMessage | None:
        for folder in ALL_FOLDERS:
            for msg in self.list(box, folder):
                if msg.info.msg_id == msg_id:
                    return msg
        return None

    # the same, in a worker thread: one hop per call, however many folders it reads
    async def alist(self, box: BoxRef, folder: str) -> Messages:
        return await asyncio.to_thread(self.list, box, folder)

    async def afind(self, box: BoxRef, msg_id: str) -> StoredMessage | None:
        return await asyncio.to_thread(self.find, box, msg_id)

    async def acount(self, box: BoxRef, folder: str) -> int:
        return await asyncio.to_thread(self.count, box, folder)

    async def acounts(self, box: BoxRef) -> tuple[int, int, int]:
        return await asyncio.to_thread(self.counts, box)

    def audio(self, msg: StoredMessage) -> tuple[Path, str] | None:
        directory = self.folder_dir(msg.box, msg.folder)
        for ext in FORMATS:
            path = directory / f"{msg.name}.{ext}"
            if path.is_file():
                return path, ext
        return None

    def greeting(self, box: BoxRef, name: str) -> tuple[Path, str] | None:
        directory = self.box_dir(box)
        for ext in FORMATS:
            path = directory / f"{name}.{ext}"
            if path.is_file():
                return path, ext
        return None

    # ------------------------------------------------------------------ writing (threads)
    @staticmethod
    def _remove_orphans(directory: Path) -> None:
        for number, exts in FileStore._numbers(directory).items():
            if "txt" not in exts:
                for ext in exts:
                    (directory / f"msg{number:04d}.{ext}").unlink(missing_ok=True)
                log.warning("Removed the audio of an unfinished voicemail save: %s/msg%04d",
                            directory, number)

    def _claim(self, directory: Path, maxmsg: int) -> int:
        directory.mkdir(parents=True, exist_ok=True)
        self._remove_orphans(directory)
        numbers = self._numbers(directory)
        if maxmsg and len(numbers) >= maxmsg:
            raise MailboxFull(f"{directory} holds {len(numbers)} messages (maxmsg {maxmsg})")
        number = max(numbers) + 1 if numbers else 0
        if number > 9999:
            raise MailboxFull(f"{directory}: no message number left")
        return number

    def _save_sync(self, box: BoxRef, folder: str, info: MessageInfo, audio: dict[str, Path],
                   maxmsg: int, link: bool) -> StoredMessage:
        directory = self.folder_dir(box, folder)
        with self._locked(box):
            number = self._claim(directory, maxmsg)
            stem = directory / f"msg{number:04d}"
            placed = []
            for ext, source in audio.items():
                target = stem.with_name(f"{stem.name}.{ext}")
                if link:
                    self._link_or_copy(source, target)
                else:
                    os.replace(source, target)
                placed.append(ext)
            if audio:
                _fsync_dir(directory)
            _write_durable(stem.with_name(f"{stem.name}.txt"), info.to_text())
        return StoredMessage(box, folder, number, info, tuple(placed))

    @staticmethod
    def _link_or_copy(source: Path, target: Path) -> None:
        try:
            os.link(source, target)
        except OSError:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
            os.close(fd)
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)

    async def save(self, box: BoxRef, folder: str, info: MessageInfo, audio: dict[str, Path],
                   maxmsg: int = 0) -> StoredMessage:
        return await asyncio.to_thread(self._save_sync, box, folder, info, audio, maxmsg, False)

    def _files(self, msg: StoredMessage) -> dict[str, Path]:
        directory = self.folder_dir(msg.box, msg.folder)
        exts = self._numbers(directory).get(msg.number, set()) - {"txt"}
        return {ext: directory / f"{msg.name}.{ext}" for ext in exts}

    async def copy(self, msg: StoredMessage, dest: BoxRef, folder: str = "INBOX",
                   info: MessageInfo | None = None, maxmsg: int = 0) -> StoredMessage:
        new_info = info or msg.info
        return await asyncio.to_thread(self._copy_sync, msg, dest, folder, new_info, maxmsg)

    def _copy_sync(self, msg: StoredMessage, dest: BoxRef, folder: str, info: MessageInfo,
                   maxmsg: int) -> StoredMessage:
        return self._save_sync(dest, folder, info, self._files(msg), maxmsg, True)

    def _move_sync(self, msg: StoredMessage, folder: str, maxmsg: int) -> StoredMessage:
        source_dir = self.folder_dir(msg.box, msg.folder)
        target_dir = self.folder_dir(msg.box, folder)
        with self._locked(msg.box):
            number = self._claim(target_dir, maxmsg)
            stem = f"msg{number:04d}"
            files = self._files(msg)
            for ext, path in files.items():
                self._link_or_copy(path, target_dir / f"{stem}.{ext}")
            _fsync_dir(target_dir)
            os.replace(source_dir / f"{msg.name}.txt", target_dir / f"{stem}.txt")  # commit
            _fsync_dir(target_dir)
            for path in files.values():
                path.unlink(missing_ok=True)
            _fsync_dir(source_dir)
        return StoredMessage(msg.box, folder, number, msg.info, tuple(files))

    async def move(self, msg: StoredMessage, folder: str, maxmsg: int = 0) -> StoredMessage:
        if folder == msg.folder:
            return msg
        return await asyncio.to_thread(self._move_sync, msg, folder, maxmsg)

    def _delete_sync(self, msg: StoredMessage) -> None:
        directory = self.folder_dir(msg.box, msg.folder)
        with self._locked(msg.box):
            (directory / f"{msg.name}.txt").unlink(missing_ok=True)  # commit
            _fsync_dir(directory)
            for path in self._files(msg).values():
                path.unlink(missing_ok=True)

    async def delete(self, msg: StoredMessage) -> None:
        await asyncio.to_thread(self._delete_sync, msg)

    def _resequence_sync(self, box: BoxRef, folder: str) -> None:
        directory = self.folder_dir(box, folder)
        if not directory.is_dir():
            return
        with self._locked(box):
            self._remove_orphans(directory)
            numbers = sorted(self._numbers(directory))
            for want, have in enumerate(numbers):
                if want == have:
                    continue
                exts = self._numbers(directory).get(have, set()) - {"txt"}
                for ext in exts:
                    self._link_or_copy(directory / f"msg{have:04d}.{ext}", directory / f"msg{want:04d}.{ext}")
                os.replace(directory / f"msg{have:04d}.txt", directory / f"msg{want:04d}.txt")
                for ext in exts:
                    (directory / f"msg{have:04d}.{ext}").unlink(missing_ok=True)
            _fsync_dir(directory)

    async def resequence(self, box: BoxRef, folder: str) -> None:
        await asyncio.to_thread(self._resequence_sync, box, folder)

    def _greeting_sync(self, box: BoxRef, name: str, audio: dict[str, Path]) -> None:
        with self._locked(box) as directory:
            for ext, source in audio.items():
                os.replace(source, directory / f"{name}.{ext}")
            for ext in FORMATS:  # an older greeting in a format not recorded now would win
                if ext not in audio:
                    (directory / f"{name}.{ext}").unlink(missing_ok=True)
            _fsync_dir(directory)

    async def save_greeting(self, box: BoxRef, name: str, audio: dict[str, Path]) -> None:
        if name not in GREETINGS:
            raise StoreError(f"unknown greeting {name!r}")
        await asyncio.to_thread(self._greeting_sync, box, name, audio)

    async def delete_greeting(self, box: BoxRef, name: str) -> None:
        await asyncio.to_thread(self._greeting_sync, box, name, {})

    def clean_temp(self, max_age: float = 3600.0) -> int:
        """Forget recordings abandoned by a crash (``tmp/`` files older than max_age)."""
        removed = 0
        now = time.time()
        for tmp in self.root.glob("*/*/tmp/*"):
            try:
                if now - tmp.stat().st_mtime > max_age:
                    tmp.unlink()
                    removed += 1
            except OSError:
                pass
        return removed
