"""pbx_spool: call files dropped into ``<astspooldir>/outgoing`` place calls.

The directory is watched with Linux inotify (through libc, no extra package) and, where
that is not available, polled every second. A file is read when it is closed after
writing, moved in, or touched; a file whose modification time is in the future waits
until then (a delayed call). Each attempt appends ``StartRetry`` to the file; a failed
attempt appends ``EndRetry`` and moves the file's mtime ``RetryTime`` seconds ahead,
which is when the next attempt starts, up to ``MaxRetries`` retries (so MaxRetries + 1
attempts). When the call completes (after the answered call ends, as Asterisk waits for
it) or the retries run out, the file is deleted or, with ``Archive: yes``, moved to
``<astspooldir>/outgoing_done`` with ``Status: Completed``, ``Expired`` or ``Failed``
appended. With ``AlwaysDelete: no`` a file whose mtime was moved into the future during
the call is kept and runs again then.

Safety: only regular files are read (a symbolic link is refused and removed; FIFOs and
directories are left alone); files starting with ``.`` are ignored (write the file
there, then rename it); a file that cannot be opened or parsed is logged with its name
and line, then removed (archived as ``Failed`` when it asked for archiving). File I/O
runs in worker threads, never on the event loop. The format is in
:mod:`hookflash.apps.callfile`; docs/callfiles.md describes the whole feature.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hookflash.apps.callfile import (
    MAX_SIZE,
    CallFile,
    CallFileError,
    parse_call_file,
    retry_line,
)
from hookflash.apps.originate import Origination, place
from hookflash.engine.modules import Module, ModuleDeclined

log = logging.getLogger("hookflash.pbx_spool")

POLL_INTERVAL = 1.0


# ---------------------------------------------------------------------- inotify through libc
class Inotify:
    """A non-blocking inotify descriptor watching one directory for finished files."""

    IN_ATTRIB = 0x4
    IN_CLOSE_WRITE = 0x8
    IN_MOVED_TO = 0x80
    IN_Q_OVERFLOW = 0x4000
    IN_NONBLOCK = os.O_NONBLOCK
    IN_CLOEXEC = 0o2000000
    _EVENT = struct.Struct("iIII")

    def __init__(self, directory: Path) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        libc = ctypes.CDLL(name, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        mask = self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_ATTRIB
        if libc.inotify_add_watch(self.fd, os.fsencode(str(directory)), mask) < 0:
            errno = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(errno, f"inotify_add_watch {directory} failed")

    def read(self) -> list[str] | None:
        """Names of the files that changed; None when the kernel queue overflowed."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            if not data:
                return names
            offset = 0
            while offset + self._EVENT.size <= len(data):
                _wd, mask, _cookie, length = self._EVENT.unpack_from(data, offset)
                raw = data[offset + self._EVENT.size:offset + self._EVENT.size + length]
                offset += self._EVENT.size + length
                if mask & self.IN_Q_OVERFLOW:
                    return None
                name = raw.rstrip(b"\0")
                if name:
                    names.append(os.fsdecode(name))

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------------- file work (worker threads)
def _examine(path: str, now: float) -> tuple[str, Any]:
    """('skip', None) | ('future', mtime) | ('unreadable', reason) | ('bad', CallFileError)
    | ('ok', CallFile)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "bad", CallFileError(path, 0, "is a symbolic link; a call file must be a regular file")
    if not stat.S_ISREG(st.st_mode):
        return "skip", None
    if st.st_mtime > now:
        return "future", st.st_mtime
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except PermissionError as exc:
        return "unreadable", exc.strerror or str(exc)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return "skip", None
        data = f.read(MAX_SIZE + 1)
    try:
        return "ok", parse_call_file(data, path)
    except CallFileError as exc:
        return "bad", exc


def _append(path: str, text: str, mtime: float | None = None) -> None:
    """Append lines (after a newline if the file lacks its last one) and set the mtime."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(path, (time.time(), mtime), follow_symlinks=False)


def _finish(path: str, done_dir: Path, status: str, archive: bool, always_delete: bool,
            now: float) -> float | None:
    """Archive or delete a call file; returns its mtime instead when it is to be kept."""
    if not always_delete:
        st = os.lstat(path)
        if st.st_mtime > now:
            return st.st_mtime
    if archive:
        done_dir.mkdir(mode=0o700, exist_ok=True)
        _append(path, f"Status: {status}\n")
        os.replace(path, done_dir / os.path.basename(path))
    else:
        os.unlink(path)
    return None


def _listing(directory: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            found[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


# ---------------------------------------------------------------------- the module
class SpoolModule(Module):
    description = "Outgoing Spool Support"

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.clock: Callable[[], float] = time.time
        self.poll_interval = POLL_INTERVAL
        self.qdir = Path()
        self.done_dir = Path()
        self.active: dict[str, asyncio.Task[Any]] = {}  # path -> attempt under way
        self.due: dict[str, float] = {}  # path -> when to look again
        self.seen: dict[str, tuple[int, int, int]] = {}  # name -> (inode, mtime, size) when polling
        self.busy: set[str] = set()  # paths being examined right now
        self.inotify: Inotify | None = None
        self.completed = self.expired = self.failed = 0  # counters (bench, tests)
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        spool = Path(self.pbx.dirs.astspooldir)
        self.qdir, self.done_dir = spool / "outgoing", spool / "outgoing_done"
        try:
            self.qdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ModuleDeclined(f"Unable to create queue directory {self.qdir}: {exc} -- "
                                 "outgoing spool disabled") from exc
        if self.qdir.stat().st_mode & stat.S_IWOTH:
            log.warning("%s is writable by every user: anyone on this host can place calls", self.qdir)
        try:
            self.inotify = Inotify(self.qdir)
            asyncio.get_running_loop().add_reader(self.inotify.fd, self._on_inotify)
        except (OSError, AttributeError, NotImplementedError) as exc:
            log.info("inotify unavailable (%s); polling %s every %g s", exc, self.qdir, self.poll_interval)
            self.inotify = None
        self._runner = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        if self.inotify is not None:
            asyncio.get_running_loop().remove_reader(self.inotify.fd)
            self.inotify.close()
            self.inotify = None

    # ------------------------------------------------------------------ watching
    def _on_inotify(self) -> None:
        assert self.inotify is not None
        names = self.inotify.read()
        if names is None:  # overflow: look at everything
            self.seen.clear()
            self._wake.set()
            return
        for name in dict.fromkeys(names):
            if not name.startswith("."):
                self.pbx.spawn(self._consider(str(self.qdir / name)))

    async def _run(self) -> None:
        full = True
        while True:
            try:
                if full or self.inotify is None:
                    await self._scan()
                full = False
                now = self.clock()
                for path, when in list(self.due.items()):
                    if when <= now:
                        del self.due[path]
                        self.pbx.spawn(self._consider(path))
                nearest = min(self.due.values(), default=now + self.poll_interval)
                delay = max(0.01, min(self.poll_interval, nearest - self.clock()))
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                    self._wake.clear()
                    full = True
                except TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher must outlive any surprise
                log.exception("Spool scan of %s failed", self.qdir)
                await asyncio.sleep(self.poll_interval)

    async def _scan(self) -> None:
        try:
            listing = await asyncio.to_thread(_listing, self.qdir)
        except OSError as exc:
            log.warning("Unable to read directory %s: %s", self.qdir, exc)
            return
        for name in list(self.seen):
            if name not in listing:
                del self.seen[name]
        for name, signature in listing.items():
            if self.seen.get(name) != signature:
                self.seen[name] = signature
                self.pbx.spawn(self._consider(str(self.qdir / name)))

    # ------------------------------------------------------------------ one file
    async def _consider(self, path: str) -> None:
        if path in self.active or path in self.busy:
            return
        self.busy.add(path)
        try:
            await self._examine_and_launch(path)
        except Exception:
            log.exception("Call file %s could not be handled", path)
        finally:
            self.busy.discard(path)

    async def _examine_and_launch(self, path: str) -> None:
        try:
            kind, payload = await asyncio.to_thread(_examine, path, self.clock())
        except FileNotFoundError:
            self.due.pop(path, None)
            return
        if kind == "skip":
            return
        if kind == "future":
            self.due[path] = payload
            return
        if kind == "unreadable":
            log.warning("Unable to open call file %s: %s; deleting", path, payload)
            await self._remove(path, "Failed", archive=False, always_delete=True)
            return
        if kind == "bad":
            log.warning("Invalid call file %s; %s", payload, "archiving" if payload.archive else "deleting")
            await self._remove(path, "Failed", archive=payload.archive, always_delete=True)
            return
        cf: CallFile = payload
        for warning in cf.warnings:
            log.warning("Call file %s: %s", path, warning)
        for note in cf.notes:
            log.debug("Call file %s: %s", path, note)
        if cf.retries > cf.maxretries:
            self._expired(cf)
            await self._remove(path, "Expired", cf.archive, cf.always_delete)
            return
        await self._launch(path, cf)

    async def _launch(self, path: str, cf: CallFile) -> None:
        now = self.clock()
        pid = os.getpid()
        # A StartRetry without its EndRetry is an attempt that died with its process (we
        # track our own attempts in memory, so this works even when the PID is reused).
        lines = retry_line("AbortRetry", pid, cf.retries, int(now)) if cf.calling_pid else ""
        cf.retries += 1
        start = now + cf.retrytime
        lines += retry_line("StartRetry", pid, cf.retries, int(start))
        try:
            await asyncio.to_thread(_append, path, lines, start + cf.retrytime)
        except FileNotFoundError:
            return
        except OSError as exc:
            # without its StartRetry line the file would never count this attempt and
            # could retry forever: give up on it instead
            log.error("Unable to update call file %s (%s): not calling", path, exc)
            await self._remove(path, "Failed", cf.archive, cf.always_delete)
            return
        self.active[path] = self.pbx.spawn(self._attempt(path, cf))

    async def _attempt(self, path: str, cf: CallFile) -> None:
        order = Origination(cf.channel, "app" if cf.app else "exten", context=cf.context,
                            exten=cf.exten or "s", priority=cf.priority, app=cf.app, data=cf.data,
                            timeout=float(cf.waittime), callerid=cf.callerid,
                            variables=list(cf.variables), account=cf.account,
                            predial_callee=cf.predial_callee)
        self.pbx.verbose(3, f"Attempting call on {cf.channel} for {cf.target} (Retry {cf.retries})")
        try:
            try:
                status, _ = await place(self.pbx, order, wait_done=True)
            except Exception:
                log.exception("Call file %s: the call to %s failed", path, cf.channel)
                status = "FAILED"
            if status == "SUCCESS":
                log.info("Call completed to %s", cf.channel)
                self.completed += 1
                await self._remove(path, "Completed", cf.archive, cf.always_delete)
                return
            log.info("Call failed to go through, reason %s (attempt %d of %d) for %s", status,
                     cf.retries, cf.maxretries + 1, path)
            if cf.retries >= cf.maxretries + 1:
                self._expired(cf)
                await self._remove(path, "Expired", cf.archive, cf.always_delete)
                return
            now = self.clock()
            try:
                await asyncio.to_thread(_append, path, retry_line("EndRetry", os.getpid(), cf.retries, int(now)),
                                        now + cf.retrytime)
            except FileNotFoundError:
                return  # someone removed it: nothing left to retry
            except OSError as exc:
                log.warning("Unable to update call file %s: %s", path, exc)
            self.due[path] = now + cf.retrytime
        finally:
            self.active.pop(path, None)

    def _expired(self, cf: CallFile) -> None:
        attempts = cf.retries
        log.info("Queued call to %s expired without completion after %d attempt%s", cf.channel,
                 attempts, "" if attempts == 1 else "s")
        self.expired += 1

    async def _remove(self, path: str, status: str, archive: bool, always_delete: bool) -> None:
        if status == "Failed":
            self.failed += 1
        self.due.pop(path, None)
        try:
            kept = await asyncio.to_thread(_finish, path, self.done_dir, status, archive, always_delete,
                                           self.clock())
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("Unable to %s call file %s: %s", "archive" if archive else "delete", path, exc)
            return
        if kept is not None:
            self.due[path] = kept
