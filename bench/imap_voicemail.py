"""IMAP voicemail benchmark: hookflash's ImapStore against a real Dovecot started here.

    .venv/bin/python bench/imap_voicemail.py [--quick] [--keep]

Needs root and Dovecot (the fixture in tests/integration/imap_server.py). Everything
runs on 127.0.0.1 in temporary directories. Printed, p50 / p95 / max where there are
several samples:

A. alice's INBOX filled with M ordinary ~2 KB mails (Maildir files written directly,
   checked with STATUS INBOX (MESSAGES)) plus a few voicemails; an ImapStore watching
   mailbox 100@shifteight (imapuser alice, imapfolder INBOX):
   - initial index build (store.start() until not stale);
   a. hangup -> APPEND done: ``await store.save()`` start until ``pending(box) == 0``
      (upload confirmed, local copy removed), N messages of 2 s one after another;
   b. hangup -> counts/lamp: (in-process) save start until counts() include it; and
      with a whole Pbx in this process (chan_sip + app_voicemail, the path of
      bench/voicemail.py: a Local channel leaves a 2 s message and hangs up, the owner's
      phone is a UDP socket answering NOTIFY): hangup -> NOTIFY on the wire, and
      hangup -> APPEND done. (Not SIPp: the same hangup path, less moving parts.)
   c. mail-client change -> counts: another IMAP client (imaplib, a thread) sets \\Seen
      on a voicemail; time until counts() reflect it (and the on_change callback),
      N changes; same against a Dovecot without IDLE and pollfreq=1 (polling fallback);
   d. VoiceMailMain login -> first message: alist(INBOX) + aaudio(msgs[0]) on a fresh
      ImapStore (empty audio cache), index not built vs built;
B. reference, same server, same bytes: a bare imaplib APPEND, and a bare IMAPClient IDLE
   push for the \\Seen change; ratios hookflash / bare;
E. K mailboxes (one Dovecot user each) watched by one ImapStore: time to sync all, TCP
   connections held, IDLE vs polled watchers (idle_max 200 and K), CPU seconds over a
   quiet period, a mail-client change seen by an IDLE box vs a polled box, and Dovecot's
   process count and RSS (imap_hibernate_timeout = 5s: idle IMAP sessions are handed to
   the imap-hibernate process).

``--quick``: 2,000 mails, N=10, 100 mailboxes (under a minute). Figures only; nothing
fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import itertools
import logging
import os
import platform
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
from bench._common import cpu_model, loop_name, p50, stats  # noqa: E402

from hookflash.voicemail.config import General, Mailbox  # noqa: E402
from hookflash.voicemail.imap.layout import build_message  # noqa: E402
from hookflash.voicemail.imap.store import ImapStore, imap_box  # noqa: E402
from hookflash.voicemail.store import FileStore, MessageInfo, new_msg_id  # noqa: E402
from tests.integration.imap_server import Dovecot  # noqa: E402
from tests.integration.sip_peers import tone_wav  # noqa: E402

BOX = ("shifteight", "100")
MSG_SECONDS = 2.0


# ---------------------------------------------------------------------------- helpers





def line(label: str, values: list[float]) -> None:
    print(f"  {label:46s} {stats(values)}", flush=True)


def machine() -> None:
    model = cpu_model()
    try:
        from importlib.metadata import version
        aio = version("aioimaplib")
        imapclient_v = version("imapclient")
    except Exception:  # noqa: BLE001
        aio = imapclient_v = "?"
    dv = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}), "
          f"aioimaplib {aio}, imapclient {imapclient_v}, dovecot {dv}, loop {loop_name()}", flush=True)




def general(dv: Dovecot, **extra: str) -> General:
    values = {"imapserver": "127.0.0.1", "imapport": str(dv.port), "imapflags": "notls",
              "imapopentimeout": "30", "imapreadtimeout": "30", "imapwritetimeout": "30"}
    values.update(extra)
    return General(formats=("wav",), extra=values)


def mailbox(user: str, password: str, number: str = "100", context: str = "shifteight") -> Mailbox:
    return Mailbox(context, number, "0107", "Leif Madsen", "", "", {"imapuser": user, "imappassword": password})


def info() -> MessageInfo:
    now = time.time()
    return MessageInfo(origmailbox="100", context="phones", exten="100", callerid='"Jane Caller" <5551234>',
                       origdate=MessageInfo.asterisk_date(now), origtime=int(now),
                       msg_id=new_msg_id(now), flag="", duration=int(MSG_SECONDS))


def make_store(spool: Path, gen: General, boxes: list[Mailbox], **kw: object) -> ImapStore:
    store = ImapStore(FileStore(spool), **kw)  # type: ignore[arg-type]
    ibs = [imap_box(b, gen) for b in boxes]
    assert all(ibs)
    store.configure(ibs, gen)  # type: ignore[arg-type]
    return store


async def until(predicate, timeout: float = 30.0, step: float = 0.001) -> bool:  # type: ignore[no-untyped-def]
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


class Dovecot2(Dovecot):
    """The fixture's Dovecot with extra settings appended to its dovecot.conf (sections of
    the same name merge; later settings win)."""

    def __init__(self, *args: object, extra_conf: str = "", **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.extra_conf = extra_conf

    def _write_files(self) -> None:
        super()._write_files()
        if self.extra_conf:
            with open(self.conf, "a") as handle:
                handle.write("\n# bench/imap_voicemail.py\n" + textwrap.dedent(self.extra_conf))


MANY_CONF = """
default_client_limit = 10000
service anvil {
  client_limit = 10000
}
service imap {
  process_limit = 3000
  unix_listener imap-master {
    user = $default_internal_user
  }
}
service imap-login {
  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = 3000
}
imap_hibernate_timeout = 5s
"""


def maildir_root(dv: Dovecot, user: str) -> Path:
    return dv.mail_dir / user / "Maildir"


def fill_maildir(dv: Dovecot, user: str, mails: list[tuple[bytes, str]]) -> None:
    """Write messages straight into the user's Maildir (cur/, with flags), owned by nobody."""
    import grp
    import pwd
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    root = maildir_root(dv, user)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    base = int(time.time()) - len(mails)
    for i, (raw, flags) in enumerate(mails):
        path = root / "cur" / f"{base + i}.M{i}P{os.getpid()}.bench,S={len(raw)}:2,{flags}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, raw)
        os.close(fd)
        os.chown(path, uid, gid)
    for path in [dv.mail_dir / user, root, root / "cur", root / "new", root / "tmp"]:
        os.chown(path, uid, gid)


def ordinary_mail(i: int) -> bytes:
    body = "".join(f"Line {j} of the ordinary mail number {i}: lorem ipsum dolor sit amet.\n" for j in range(26))
    head = (f"From: Sender {i % 97} <sender{i % 97}@example.com>\nTo: alice@example.com\n"
            f"Subject: Ordinary mail {i}\nDate: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\n"
            f"Message-ID: <ordinary-{i}@bench.example>\nMIME-Version: 1.0\n"
            f"Content-Type: text/plain; charset=us-ascii\n\n")
    return (head + body).encode()


def voicemail_mail(context: str, extension: str, audio: bytes, n: int) -> bytes:
    vinfo = info()
    return build_message(mailbox=extension, context=context, extension=extension, info=vinfo, number=n,
                         audio=audio, ext="wav", subject=f"[PBX]: New message {n + 1} in mailbox {extension}",
                         body="", fromstring="Asterisk PBX", from_addr="asterisk@bench", to_name="Owner",
                         to_addr="owner@bench", message_id=f"<Asterisk-{vinfo.msg_id}-{n}-{extension}@bench>",
                         origdate=vinfo.origdate)


def status_messages(dv: Dovecot, user: str) -> int:
    c = dv.login(user)
    try:
        typ, data = c.status("INBOX", "(MESSAGES)")
        return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))  # type: ignore[union-attr]
    finally:
        c.logout()


def tcp_connections(port: int) -> int:
    """ESTABLISHED TCP sockets of this process whose remote port is ``port``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                count += 1
    return count


def dovecot_processes(dv: Dovecot) -> str:
    procs = dv.processes()
    rss = 0
    kinds: dict[str, int] = {}
    for pid, comm in list(procs.items()) + [(dv.proc.pid, "dovecot")]:  # type: ignore[union-attr]
        kinds[comm] = kinds.get(comm, 0) + 1
        try:
            for row in Path(f"/proc/{pid}/status").read_text().splitlines():
                if row.startswith("VmRSS:"):
                    rss += int(row.split()[1])
        except OSError:
            pass
    shown = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return f"{sum(kinds.values())} processes ({shown}), RSS {rss / 1024:.0f} MB"


class MailClient:
    """A logged-in, selected imaplib session used from a thread (the 'mail client')."""

    def __init__(self, dv: Dovecot, user: str) -> None:
        self.c = dv.login(user)
        self.c.select("INBOX")

    def seen(self, uid: int, on: bool) -> None:
        typ, data = self.c.uid("STORE", str(uid), "+FLAGS" if on else "-FLAGS", "(\\Seen)")
        assert typ == "OK", data

    def close(self) -> None:
        try:
            self.c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


async def client_change_latency(store: ImapStore, box: tuple[str, str], client: MailClient, uid: int,
                                n: int, timeout: float = 30.0) -> tuple[list[float], list[float]]:
    """Set \\Seen on ``uid`` from the mail client (a thread) n times, resetting in between;
    (ms until counts() show it, ms until on_change fired)."""
    seen_counts: list[float] = []
    seen_callback: list[float] = []
    fired: list[float] = []
    store.on_change = lambda ref: fired.append(time.perf_counter()) if ref == box else None
    for _ in range(n):
        before = store.counts(box)
        fired.clear()
        started = time.perf_counter()
        job = asyncio.ensure_future(asyncio.to_thread(client.seen, uid, True))
        ok = await until(lambda: store.counts(box)[1] == before[1] + 1, timeout)
        if not ok:
            print(f"    (change not seen within {timeout:g} s)")
        else:
            seen_counts.append((time.perf_counter() - started) * 1000)
            if fired:
                seen_callback.append((fired[0] - started) * 1000)
        await job
        await asyncio.to_thread(client.seen, uid, False)
        await until(lambda: store.counts(box) == before, timeout)
        if len(seen_counts) >= 3 and min(seen_counts) > 5000:
            break  # seconds per sample (polling): three samples say enough
    store.on_change = lambda ref: None
    return seen_counts, seen_callback


def uid_of(dv: Dovecot, user: str, message_id: str | None = None, voicemail: bool = True) -> list[int]:
    c = dv.login(user)
    try:
        c.select("INBOX", readonly=True)
        if message_id:
            typ, data = c.uid("SEARCH", "HEADER", "Message-ID", message_id)
        else:
            typ, data = c.uid("SEARCH", "HEADER", "X-Asterisk-VM-Context", '""')
        return [int(x) for x in data[0].split()]
    finally:
        c.logout()


# ---------------------------------------------------------------------------- phase A

async def phase_a(dv: Dovecot, work: Path, args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    gen = general(dv)
    store = make_store(work / "spool-a", gen, [mailbox("alice", "alicepw")])
    began = time.perf_counter()
    await store.start()
    assert await until(lambda: not store.stale(BOX), 300, 0.002), "index never built"
    build = time.perf_counter() - began
    print(f"  {'initial index build (' + str(args.mails) + ' mails + voicemail)':46s} {build * 1000:8.1f} ms "
          f"(store.start() -> not stale), mode {store.state(BOX)['mode']}, counts {store.counts(BOX)}", flush=True)
    await until(lambda: store.state(BOX)["mode"] == "IDLE", 10)

    # a + b (in-process)
    to_append: list[float] = []
    to_counts: list[float] = []
    saves: list[float] = []
    missed: list[str] = []
    for _ in range(args.n):
        path = store.temp_dir(BOX) / f"rec-{time.monotonic_ns()}.wav"
        tone_wav(path, 440.0, MSG_SECONDS)
        before = store.counts(BOX)[0]
        started = time.perf_counter()
        await store.save(BOX, "INBOX", info(), {"wav": path})
        saved = time.perf_counter()
        after = store.counts(BOX)[0]
        if after == before + 1:
            to_counts.append((saved - started) * 1000)
        else:
            missed.append(f"{after} instead of {before + 1}")
        saves.append((saved - started) * 1000)
        if not await until(lambda: store.pending(BOX) == 0, 60):
            print("    (upload not confirmed within 60 s)")
            continue
        to_append.append((time.perf_counter() - started) * 1000)
    print(f"a. hangup -> APPEND done (save() start -> pending()==0), {MSG_SECONDS:g} s messages:")
    line("hookflash ImapStore", to_append)
    line("  of which: APPEND round trip in the outbox", [t * 1000 for t in store.upload_times[-args.n:]])
    results["append"] = to_append
    results["append_only"] = [t * 1000 for t in store.upload_times[-args.n:]]
    print("b. hangup -> counts/lamp, in-process:")
    line("save() start -> counts() include it", to_counts)
    if missed:
        print(f"   !! in {len(missed)} of {args.n} saves counts() right after save() did not include the new "
              f"message ({', '.join(missed[:3])}...): the previous upload's _in_flight entry outlives its local "
              f"copy (see the report)")
    print(f"   (ImapStore.save() does not call on_change: the lamp for a new message is app_voicemail's "
          f"NOTIFY after save(); see the Pbx figure below)", flush=True)

    # c: mail client change, IDLE
    vm_uids = uid_of(dv, "alice")
    target = vm_uids[-1]
    client = await asyncio.to_thread(MailClient, dv, "alice")
    try:
        counts_ms, callback_ms = await client_change_latency(store, BOX, client, target, args.changes)
    finally:
        await asyncio.to_thread(client.close)
    print(f"c. mail-client \\Seen -> counts (watcher in {store.state(BOX)['mode']} mode, "
          f"{args.mails} mails in the folder):")
    line("hookflash: counts() reflect it (1 ms poll)", counts_ms)
    line("hookflash: on_change callback fired", callback_ms)
    results["idle"] = counts_ms
    await store.stop()

    # d: VoiceMailMain login -> first message
    cold: list[float] = []
    built: list[float] = []
    cold_list: list[float] = []
    for i in range(args.logins):
        for mode in ("cold", "built"):
            st = make_store(work / f"spool-d-{mode}-{i}", gen, [mailbox("alice", "alicepw")])
            if mode == "built":
                await st.start()
                assert await until(lambda: not st.stale(BOX), 120)
            started = time.perf_counter()
            msgs = await st.alist(BOX, "INBOX")
            listed = time.perf_counter()
            found = await st.aaudio(msgs[0]) if msgs else None
            took = (time.perf_counter() - started) * 1000
            assert found is not None, "no audio"
            (cold if mode == "cold" else built).append(took)
            if mode == "cold":
                cold_list.append((listed - started) * 1000)
            await st.stop()
    print(f"d. VoiceMailMain login -> first message (alist(INBOX) + aaudio(msgs[0]), fresh store, "
          f"empty audio cache, {len(msgs)} new voicemails):")
    line("index not built yet (first login after start)", cold)
    line("  of which alist() (header SEARCH + FETCH)", cold_list)
    line("index built by the watcher", built)


async def pbx_phase(dv: Dovecot, work: Path, args: argparse.Namespace) -> None:
    """A whole Pbx in this process: hangup -> NOTIFY on the wire with IMAP storage."""
    from hookflash.channels.channel import Frame
    from hookflash.channels.local import LocalTech
    from hookflash.engine.pbx import Pbx
    from hookflash.media.tone import tone_frames
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_voicemail", ROOT / "bench" / "voicemail.py")
    assert spec is not None and spec.loader is not None
    bench_vm = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    spec.loader.exec_module(bench_vm)  # its PhoneSocket and silent prompts
    sys.path[:] = saved_path
    PhoneSocket, silent_prompts = bench_vm.PhoneSocket, bench_vm.silent_prompts

    root = work / "pbx"
    silent_prompts(root / "data")
    phone = PhoneSocket()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", 0))
    phone_port = transport.get_extra_info("sockname")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    etc = root / "etc"
    etc.mkdir(parents=True)
    files = {
        "asterisk.conf": f"[directories]\nastdatadir => {root / 'data'}\nastspooldir => {root / 'spool'}\n",
        "modules.conf": "[modules]\nautoload=yes\n",
        "sip.conf": f"[general]\nbindaddr=127.0.0.1\nbindport={sip_port}\n"
                    f"[owner]\ntype=friend\nhost=127.0.0.1\nport={phone_port}\nmailbox=100@default\n",
        "voicemail.conf": f"[general]\nformat=wav\nmaxmsg=9999\nimapserver=127.0.0.1\nimapport={dv.port}\n"
                          f"imapflags=notls\nimapopentimeout=30\nimapreadtimeout=30\n"
                          f"[default]\n100 => 1234,Owner,,,|imapuser=alice|imappassword=alicepw\n",
        "extensions.conf": "[default]\nexten => 100,1,VoiceMail(100@default,us)\n same => n,Hangup()\n",
    }
    for name, text in files.items():
        (etc / name).write_text(text)
    pbx = Pbx(etc, state_dir=root / "var", verbose=0)
    await pbx.start()
    module = pbx.modules.loaded["app_voicemail"]
    store: ImapStore = module.store
    box = ("default", "100")
    assert await until(lambda: not store.stale(box), 300, 0.005), "Pbx index never built"
    await until(lambda: store.state(box)["mode"] == "IDLE", 10)
    frames = list(itertools.islice(tone_frames("440", amplitude=6000), int(MSG_SECONDS * 50)))
    notified: list[float] = []
    appended: list[float] = []
    try:
        for n in range(args.pbx_calls):
            one = await pbx.request("Local/100@default/n")
            tech = one.tech
            assert isinstance(tech, LocalTech) and tech.pair.chan is not None
            two = tech.pair.chan
            await tech.call(one, "100@default", 10)
            await asyncio.sleep(0.1)
            for frame in frames:
                await one.write_frame(Frame("voice", frame, len(frame) // 2))
                await asyncio.sleep(0.02)
            arrivals = len(phone.arrivals)
            hangup = time.perf_counter()
            await one.hangup()
            ok = await until(lambda: len(phone.arrivals) > arrivals, 10, 0.0005)
            if ok:
                notified.append((phone.arrivals[arrivals][0] - hangup) * 1000)
            await until(lambda: store.pending(box) > 0 or store.uploaded > n, 10, 0.0005)
            if await until(lambda: store.pending(box) == 0, 60, 0.001):
                appended.append((time.perf_counter() - hangup) * 1000)
            while not two.hung_up:
                await asyncio.sleep(0.005)
        await until(lambda: store.uploaded >= args.pbx_calls, 10)  # the last upload's bookkeeping
        counts = store.counts(box)
        left = store.pending(box)
        uploaded = store.uploaded
    finally:
        await pbx.stop()
        transport.close()
    print(f"b. hangup -> NOTIFY, whole Pbx in-process (Local channel, {MSG_SECONDS:g} s message, chan_sip "
          f"NOTIFY to a UDP phone; mailbox on IMAP):")
    line("hangup -> NOTIFY Messages-Waiting received", notified)
    line("hangup -> APPEND done (pending()==0)", appended)
    print(f"  counts at the end {counts}, uploaded {uploaded}, still in the outbox {left}", flush=True)


# ---------------------------------------------------------------------------- reference

def reference(dv: Dovecot, raw: bytes, n: int, changes: int, results: dict[str, list[float]]) -> None:
    from imapclient import IMAPClient
    c = dv.login("alice")
    times: list[float] = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            typ, data = c.append("INBOX", None, None, raw)
            times.append((time.perf_counter() - started) * 1000)
            assert typ == "OK", data
        # remove them again (they carry our voicemail headers)
        c.select("INBOX")
        new_uids = [int(x) for x in c.uid("SEARCH", "HEADER", "Message-ID", "bench-ref-")[1][0].split()]
        if new_uids:
            c.uid("STORE", ",".join(map(str, new_uids)), "+FLAGS.SILENT", "(\\Deleted)")
            c.uid("EXPUNGE", ",".join(map(str, new_uids)))
    finally:
        c.logout()
    print(f"   bare imaplib APPEND of the same {len(raw)} bytes (logged in, same folder):")
    line("reference: imaplib APPEND", times)
    results["ref_append"] = times

    # bare IDLE push
    target = uid_of(dv, "alice")[-1]
    pushes: queue.Queue[float] = queue.Queue()
    stop = threading.Event()
    ready = threading.Event()

    def idler() -> None:
        ic = IMAPClient("127.0.0.1", port=dv.port, ssl=False, timeout=30)
        ic.login("alice", "alicepw")
        ic.select_folder("INBOX")
        ic.idle()
        ready.set()
        while not stop.is_set():
            got = ic.idle_check(timeout=0.2)
            if any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"FETCH" for r in got):
                pushes.put(time.perf_counter())
        ic.idle_done()
        ic.logout()

    thread = threading.Thread(target=idler, daemon=True)
    thread.start()
    ready.wait(30)
    time.sleep(0.2)
    client = MailClient(dv, "alice")
    lat: list[float] = []
    try:
        for _ in range(changes):
            started = time.perf_counter()
            client.seen(target, True)
            try:
                lat.append((pushes.get(timeout=10) - started) * 1000)
            except queue.Empty:
                print("    (no IDLE push within 10 s)")
            client.seen(target, False)
            try:
                pushes.get(timeout=10)
            except queue.Empty:
                pass
    finally:
        client.close()
        stop.set()
        thread.join(5)
    print("   bare IMAPClient IDLE: mail-client \\Seen -> untagged FETCH received:")
    line("reference: IMAPClient IDLE push", lat)
    results["ref_idle"] = lat


# ---------------------------------------------------------------------------- polling fallback

async def phase_poll(work: Path, args: argparse.Namespace) -> list[float]:
    dv = Dovecot(work / "dovecot-noidle", idle=False)
    dv.start()
    try:
        wav = work / "ref.wav"
        tone_wav(wav, 440.0, MSG_SECONDS)
        for i in range(3):
            dv.append("alice", voicemail_mail("shifteight", "100", wav.read_bytes(), i))
        gen = general(dv)
        store = make_store(work / "spool-poll", gen, [mailbox("alice", "alicepw")], pollfreq=1.0)
        await store.start()
        assert await until(lambda: not store.stale(BOX), 60)
        await until(lambda: store.state(BOX)["mode"] == "poll", 10)
        client = await asyncio.to_thread(MailClient, dv, "alice")
        try:
            counts_ms, _ = await client_change_latency(store, BOX, client, 1, args.changes, timeout=10)
        finally:
            await asyncio.to_thread(client.close)
        mode = store.state(BOX)["mode"]
        await store.stop()
        print(f"c'. same against a Dovecot without IDLE (capability removed), pollfreq=1 "
              f"(watcher mode {mode}, a 3-voicemail INBOX):")
        line("hookflash: counts() reflect it (polling)", counts_ms)
        return counts_ms
    finally:
        dv.close()


# ---------------------------------------------------------------------------- many mailboxes

async def phase_many(work: Path, args: argparse.Namespace) -> None:
    k = args.boxes
    users = {f"u{i:04d}": f"pw{i}" for i in range(k)}
    dv = Dovecot2(work / "dovecot-many", users=users, extra_conf=MANY_CONF)
    wav = work / "many.wav"
    tone_wav(wav, 440.0, 1.0)
    audio = wav.read_bytes()
    for i, user in enumerate(users):
        fill_maildir(dv, user, [(voicemail_mail("many", str(1000 + i), audio, 0).replace(b"\r\n", b"\n"), "")])
    dv.start(timeout=60)
    try:
        print(f"E. {k} mailboxes, one Dovecot user each (1 voicemail per INBOX), pollfreq {args.pollfreq:g} s; "
              f"Dovecot with imap_hibernate_timeout=5s, service imap process_limit 3000:")
        try:
            inotify = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
        except (OSError, ValueError):
            inotify = -1
        print(f"   Dovecot before: {dovecot_processes(dv)}; fs.inotify.max_user_instances = {inotify}"
              + (" (below the box count: IDLE sessions past it fall back to Dovecot's 30 s "
                 "mailbox_idle_check_interval, and cannot hibernate)" if 0 <= inotify < k else ""), flush=True)
        gen = general(dv)
        boxes = [mailbox(user, pw, str(1000 + i), "many") for i, (user, pw) in enumerate(users.items())]
        refs = [("many", str(1000 + i)) for i in range(k)]
        for idle_max in sorted({min(200, k // 2), k}):
            store = make_store(work / f"spool-many-{idle_max}", gen, boxes, idle_max=idle_max,
                               pollfreq=args.pollfreq)
            began = time.perf_counter()
            await store.start()
            ok = await until(lambda: all(not store.stale(r) and store.counts(r) == (1, 0, 0) for r in refs),
                             300, 0.01)
            sync_s = time.perf_counter() - began
            if not ok:
                bad = [r for r in refs if store.stale(r) or store.counts(r) != (1, 0, 0)]
                print(f"   idle_max={idle_max}: {len(bad)} mailboxes not synced within 300 s, "
                      f"e.g. {bad[:3]} {store.state(bad[0])}")
            await until(lambda: sum(1 for r in refs if store.state(r)["mode"] in ("IDLE", "poll")) == k, 30, 0.01)
            await asyncio.sleep(0.5)
            modes: dict[str, int] = {}
            for r in refs:
                m = store.state(r)["mode"]
                modes[m] = modes.get(m, 0) + 1
            conns = tcp_connections(dv.port)
            print(f"   idle_max={idle_max}: all {k} synced in {sync_s:.2f} s; watchers {modes}; "
                  f"TCP connections to Dovecot held: {conns} (ESTABLISHED, this process)", flush=True)
            print(f"     Dovecot now: {dovecot_processes(dv)}", flush=True)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(args.quiet)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            print(f"     quiet {wall:.1f} s: hookflash process CPU {cpu * 1000:.1f} ms ({cpu / wall * 100:.2f} % of one core)")
            print(f"     Dovecot after the quiet period: {dovecot_processes(dv)}", flush=True)
            for mode in ("IDLE", "poll"):
                picks = [r for r in refs if store.state(r)["mode"] == mode]
                if not picks:
                    continue
                ref = picks[len(picks) // 2]
                user = store.boxes[ref].account.user
                client = await asyncio.to_thread(MailClient, dv, user)
                n = args.many_changes if mode == "IDLE" else max(2, args.many_changes // 2)
                try:
                    counts_ms, _ = await client_change_latency(store, ref, client, 1, n,
                                                               timeout=args.pollfreq * 3 + 10)
                finally:
                    await asyncio.to_thread(client.close)
                line(f"mail-client \\Seen -> counts, box in {mode} mode", counts_ms)
            stopped = time.perf_counter()
            await store.stop()
            print(f"     store.stop() {time.perf_counter() - stopped:.2f} s", flush=True)
            await asyncio.sleep(1.0)
    finally:
        rows = dv.log().splitlines()
        limited = sum(1 for row in rows if "Inotify instance limit" in row)
        if limited:
            print(f"   Dovecot log: {limited} IMAP sessions hit the inotify instance limit (no instant IDLE)")
        errors = [row for row in rows if ("rror" in row or "Fatal" in row or "arning" in row)
                  and "Inotify instance limit" not in row]
        if errors:
            print(f"   Dovecot log: {len(errors)} warning/error lines, e.g.:")
            for row in errors[:5]:
                print(f"     {row[:200]}")
        dv.close()


# ---------------------------------------------------------------------------- main

async def main(args: argparse.Namespace) -> None:
    machine()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="imapbench-"))
    results: dict[str, list[float]] = {}
    dv = Dovecot(work / "dovecot")
    try:
        # fill
        began = time.perf_counter()
        mails = [(ordinary_mail(i), "S" if i % 3 else "") for i in range(args.mails)]
        fill_maildir(dv, "alice", mails)
        dv.start()
        count = status_messages(dv, "alice")
        fill_s = time.perf_counter() - began
        wav = work / "vm.wav"
        tone_wav(wav, 440.0, MSG_SECONDS)
        audio = wav.read_bytes()
        for i in range(3):
            dv.append("alice", voicemail_mail("shifteight", "100", audio, i))
        dv.append("alice", voicemail_mail("shifteight", "100", audio, 3), flags="\\Seen")
        total = status_messages(dv, "alice")
        print(f"A. alice's INBOX: {count} ordinary mails (~{sum(len(m) for m, _ in mails) // max(1, len(mails))} B "
              f"each, Maildir written directly; STATUS MESSAGES {count}, in {fill_s:.1f} s) "
              f"+ {total - count} voicemails = {total}", flush=True)
        await phase_a(dv, work, args, results)

        # the same bytes hookflash APPENDed, as the reference client's payload
        c = dv.login("alice")
        try:
            c.select("INBOX", readonly=True)
            last = c.uid("SEARCH", "HEADER", "X-Asterisk-VM-Context", '""')[1][0].split()[-1]
            raw = [x for x in c.uid("FETCH", last, "(BODY.PEEK[])")[1] if isinstance(x, tuple)][0][1]
        finally:
            c.logout()
        raw = re.sub(rb"(?im)^(Message-ID:\s*<)", rb"\1bench-ref-", raw, count=1)  # found again to remove
        print("B. reference system (same server, same folder):")
        await asyncio.to_thread(reference, dv, raw, args.n, args.changes, results)
        print("   ratios hookflash / bare client (p50):")
        print(f"     hangup -> APPEND done / imaplib APPEND       {p50(results['append']) / p50(results['ref_append']):6.2f}")
        print(f"     APPEND inside the outbox / imaplib APPEND     "
              f"{p50(results['append_only']) / p50(results['ref_append']):6.2f}")
        print(f"     \\Seen -> counts (IDLE) / IMAPClient IDLE push {p50(results['idle']) / p50(results['ref_idle']):6.2f}",
              flush=True)

        await pbx_phase(dv, work, args)
    finally:
        dv.close()
    await phase_poll(work, args)
    await phase_many(work, args)
    print(f"total {time.perf_counter() - started:.0f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 mails, N=10, 100 mailboxes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--boxes", type=int, default=None)
    parser.add_argument("--mails", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick
    args.mails = args.mails or (2000 if quick else 20000)
    args.n = 10 if quick else 50
    args.changes = 5 if quick else 20
    args.logins = 3 if quick else 10
    args.pbx_calls = 3 if quick else 20
    args.boxes = args.boxes or (100 if quick else 1000)
    args.quiet = 3.0 if quick else 30.0
    args.pollfreq = 2.0 if quick else 10.0
    args.many_changes = 3 if quick else 10
    if os.geteuid() != 0 or shutil.which("dovecot") is None:
        raise SystemExit("needs root and Dovecot (apt-get install --no-install-recommends dovecot-imapd)")
    logging.basicConfig(level=logging.WARNING, format="  [log] %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop  # type: ignore[import-not-found]
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args))
