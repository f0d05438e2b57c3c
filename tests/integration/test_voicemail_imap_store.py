"""The IMAP message store against a real Dovecot (tests/integration/imap_server.py):
upload through the outbox, Asterisk's layout on the server, counts kept by IDLE, moves,
deletes and expunge, greetings, STARTTLS/IMAPS/master user, and the faults (server
stopped, frozen, killed mid-APPEND): nothing lost, nothing stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import base64
import email
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookflash.voicemail.config import General, Mailbox
from hookflash.voicemail.imap.client import Account, Connection, ImapUnavailable
from hookflash.voicemail.imap.store import ImapStore, imap_box
from hookflash.voicemail.store import FileStore, MessageInfo, new_msg_id
from tests.integration.imap_garbage import GarbageImapServer
from tests.integration.imap_server import Dovecot, dovecot  # noqa: F401  (fixture)
from tests.integration.sip_peers import tone_wav


def general(dv: Dovecot, **extra: str) -> General:
    values = {"imapserver": "127.0.0.1", "imapport": str(dv.port), "imapflags": "notls",
              "imapopentimeout": "3", "imapreadtimeout": "3", "imapwritetimeout": "3"}
    values.update(extra)
    return General(formats=("wav",), extra=values)


def mailbox(user: str = "alice", password: str = "alicepw", number: str = "100",
            context: str = "shifteight", **opts: str) -> Mailbox:
    return Mailbox(context, number, "0107", "Leif Madsen", "", "",
                   {"imapuser": user, "imappassword": password, **opts})


def info(flag: str = "", cid: str = '"Jane Caller" <5551234>') -> MessageInfo:
    now = time.time()
    return MessageInfo(origmailbox="100", context="phones", exten="100", callerid=cid,
                       origdate=MessageInfo.asterisk_date(now), origtime=int(now),
                       msg_id=new_msg_id(now), flag=flag, duration=3)


def recording(store: ImapStore, box: tuple[str, str], freq: float = 440.0) -> dict[str, Path]:
    path = store.temp_dir(box) / f"rec-{time.monotonic_ns()}.wav"
    tone_wav(path, freq, 1.0)
    return {"wav": path}


async def until(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


@contextlib.asynccontextmanager
async def running_store(tmp_path: Path, gen: General, *boxes: Mailbox
                        ) -> AsyncIterator[tuple[ImapStore, list[tuple[str, str]]]]:
    """A started store (stopped afterwards) and the mailboxes whose counts changed."""
    store, changes = make_store(tmp_path, gen, *boxes)
    await store.start()
    try:
        yield store, changes
    finally:
        await store.stop()


def make_store(tmp_path: Path, gen: General, *boxes: Mailbox) -> tuple[ImapStore, list[tuple[str, str]]]:
    store = ImapStore(FileStore(tmp_path / "spool"))
    changes: list[tuple[str, str]] = []
    store.on_change = changes.append
    ibs = [imap_box(b, gen) for b in boxes]
    assert all(ibs)
    store.configure(ibs, gen)  # type: ignore[arg-type]
    return store, changes


def test_message_reaches_the_folder_in_asterisks_layout(dovecot: Dovecot, tmp_path: Path) -> None:
    async def main() -> None:
        gen = general(dovecot)
        box = ("shifteight", "100")
        async with running_store(tmp_path, gen, mailbox()) as (store, changes):
            assert await until(lambda: not store.stale(box))
            assert store.counts(box) == (0, 0, 0)
            await store.save(box, "INBOX", info(), recording(store, box))
            # counted at once (lamp), before the upload is confirmed
            assert store.counts(box) == (1, 0, 0)
            assert await until(lambda: store.pending(box) == 0)
            assert store.counts(box) == (1, 0, 0)

    asyncio.run(main())
    raw = dovecot.messages("alice")
    assert len(raw) == 1
    mail = email.message_from_bytes(raw[0])
    assert mail["X-Asterisk-VM-Context"] == "shifteight"
    assert mail["X-Asterisk-VM-Extension"] == "100"
    assert mail["X-Asterisk-VM-Caller-ID-Num"] == "5551234"
    assert mail["X-Asterisk-VM-Caller-ID-Name"] == "Jane Caller"
    assert mail["X-Asterisk-VM-Duration"] == "3"
    parts = [p for p in mail.walk() if not p.is_multipart()]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "audio/x-wav"
    assert parts[1].get_filename() == "msg0000.wav"
    assert parts[1].get_payload(decode=True)[:4] == b"RIFF"
    assert [(uid, f - {"\\Recent"}) for uid, f in dovecot.flags("alice")] == [(1, set())]


def test_mail_client_changes_reach_the_counts_within_a_second(dovecot: Dovecot, tmp_path: Path) -> None:
    async def main() -> None:
        gen = general(dovecot)
        box = ("shifteight", "100")
        async with running_store(tmp_path, gen, mailbox()) as (store, changes):
            assert await until(lambda: store.index(store.boxes[box], "INBOX").mode == "IDLE")
            await store.save(box, "INBOX", info(), recording(store, box))
            assert await until(lambda: store.pending(box) == 0)
            # ordinary mail in the same INBOX does not count
            await asyncio.to_thread(dovecot.append, "alice", b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n")
            changes.clear()
            started = time.monotonic()
            c = await asyncio.to_thread(dovecot.login, "alice")
            await asyncio.to_thread(c.select, "INBOX")
            await asyncio.to_thread(c.uid, "STORE", "1", "+FLAGS", "(\\Seen)")
            await asyncio.to_thread(c.logout)
            assert await until(lambda: store.counts(box) == (0, 1, 0), timeout=1.0)
            assert time.monotonic() - started < 1.0
            assert changes and changes[-1] == box
            # deleted in the mail client (flag + expunge): gone from the counts at once too
            started = time.monotonic()
            c = await asyncio.to_thread(dovecot.login, "alice")
            await asyncio.to_thread(c.select, "INBOX")
            await asyncio.to_thread(c.uid, "STORE", "1", "+FLAGS", "(\\Deleted)")
            await asyncio.to_thread(c.expunge)
            await asyncio.to_thread(c.logout)
            assert await until(lambda: store.counts(box) == (0, 0, 0), timeout=1.0)
            assert time.monotonic() - started < 1.0

    asyncio.run(main())


def test_play_move_delete_and_expunge(dovecot: Dovecot, tmp_path: Path) -> None:
    async def main() -> None:
        gen = general(dovecot)
        box = ("shifteight", "100")
        async with running_store(tmp_path, gen, mailbox()) as (store, _):
            for _ in range(3):
                await store.save(box, "INBOX", info(), recording(store, box))
            assert await until(lambda: store.pending(box) == 0)
            messages = await store.alist(box, "INBOX")
            assert len(messages) == 3
            path, ext = await store.aaudio(messages[0])
            assert path.read_bytes()[:4] == b"RIFF" and ext == "wav"
            await store.move(messages[0], "Old")
            await store.move(messages[1], "Work")
            await store.delete(messages[2])
            await store.resequence(box, "INBOX")  # VoiceMailMain closing the folder: expunge
            assert store.counts(box) == (0, 1, 0)
            work = await store.alist(box, "Work")
            assert [m.info.msg_id for m in work] == [messages[1].info.msg_id]

    asyncio.run(main())
    assert "Work" in dovecot.folders("alice")
    assert [f - {"\\Recent"} for _, f in dovecot.flags("alice")] == [{"\\Seen"}]  # the deleted one is expunged
    assert len(dovecot.messages("alice", "Work")) == 1


def test_greetings_on_imap(dovecot: Dovecot, tmp_path: Path) -> None:
    async def main() -> None:
        gen = general(dovecot, imapgreetings="yes", greetingfolder="Greetings")
        box = ("shifteight", "100")
        store, _ = make_store(tmp_path, gen, mailbox())
        await store.start()
        try:
            await store.save_greeting(box, "unavail", recording(store, box, 660.0))
            assert await until(lambda: "Greetings" in dovecot.folders("alice") and
                               len(dovecot.messages("alice", "Greetings")) == 1)
            # a second PBX sharing the mail box (fresh spool) gets it from the server
            other, _ = make_store(tmp_path / "other", gen, mailbox())
            found = await other.agreeting(box, "unavail")
            assert found is not None and found[0].read_bytes()[:4] == b"RIFF"
            # re-recording replaces the server copy
            await store.save_greeting(box, "unavail", recording(store, box, 880.0))
            await asyncio.sleep(0.5)
            assert await until(lambda: len(dovecot.messages("alice", "Greetings")) == 1)
            await other.stop()
        finally:
            await store.stop()

    asyncio.run(main())
    mail = email.message_from_bytes(dovecot.messages("alice", "Greetings")[0])
    assert mail["X-Asterisk-VM-Message-Type"] == "unavail"
    assert [p.get_filename() for p in mail.walk() if not p.is_multipart()][1] == "unavail.wav"


@pytest.mark.parametrize("how", ["starttls", "imaps", "master"])
def test_tls_and_master_user(dovecot: Dovecot, tmp_path: Path, how: str) -> None:
    async def main() -> None:
        if how == "starttls":
            account = Account("127.0.0.1", dovecot.port, frozenset(), "alice", "alicepw",
                              cafile=str(dovecot.cafile), opentimeout=5)
        elif how == "imaps":
            account = Account("127.0.0.1", dovecot.ssl_port, frozenset({"ssl"}), "alice", "alicepw",
                              cafile=str(dovecot.cafile), opentimeout=5)
        else:
            account = Account("127.0.0.1", dovecot.port, frozenset(), "alice", "",
                              authuser="master", authpassword="masterpw",
                              cafile=str(dovecot.cafile), opentimeout=5)
        conn = await Connection.open(account)
        try:
            await conn.select("INBOX")
            assert conn.uidvalidity > 0
            if how == "starttls":
                assert conn.transport.get_extra_info("ssl_object") is not None
        finally:
            await conn.logout()
        if how != "master":  # the certificate is checked: without the CA it is refused
            bad = Account(account.server, account.port, account.flags, "alice", "alicepw", opentimeout=5)
            with pytest.raises(ImapUnavailable):
                await Connection.open(bad)

    asyncio.run(main())


@pytest.mark.parametrize("fault", ["stopped", "frozen", "killed"])
def test_faults_lose_nothing_and_store_once(dovecot: Dovecot, tmp_path: Path, fault: str) -> None:
    async def main() -> None:
        gen = general(dovecot)
        box = ("shifteight", "100")
        async with running_store(tmp_path, gen, mailbox()) as (store, _):
            assert await until(lambda: not store.stale(box))
            if fault == "stopped":
                await asyncio.to_thread(dovecot.stop)
            elif fault == "frozen":
                await asyncio.to_thread(dovecot.freeze)
            started = time.monotonic()
            for _ in range(2):
                await store.save(box, "INBOX", info(), recording(store, box))
            if fault == "killed":
                await asyncio.sleep(0.01)
                await asyncio.to_thread(dovecot.kill_imap_processes)
            # saving never waits for the server; the lamp counts both at once
            assert time.monotonic() - started < 1.0
            assert store.counts(box)[0] == 2
            await asyncio.sleep(1.5)
            if fault == "stopped":
                await asyncio.to_thread(dovecot.start)
            elif fault == "frozen":
                await asyncio.to_thread(dovecot.thaw)
            assert await until(lambda: store.pending(box) == 0, timeout=40)
            assert store.counts(box)[0] == 2

    asyncio.run(main())
    assert len(dovecot.messages("alice")) == 2


@pytest.mark.parametrize("mode", ["garbage", "silent", "close", "huge-line"])
def test_a_server_that_is_not_imap_is_refused_quickly(mode: str) -> None:
    async def main() -> None:
        with GarbageImapServer(mode) as server:
            account = Account("127.0.0.1", server.port, frozenset({"notls"}), "alice", "pw",
                              opentimeout=2, readtimeout=2)
            started = time.monotonic()
            with pytest.raises(ImapUnavailable):
                await Connection.open(account)
            assert time.monotonic() - started < 3

    asyncio.run(main())


def _vm_mail(number: str = "100", context: str = "shifteight", audio: bytes | None = b"RIFF....WAVE",
             extra: str = "", part_size: int = 0) -> bytes:
    """A hand-made mail in the folder: the hostile cases of a shared mail box."""
    import base64
    head = (f"From: x@example.com\r\nSubject: t\r\nX-Asterisk-VM-Context: {context}\r\n"
            f"X-Asterisk-VM-Extension: {number}\r\nX-Asterisk-VM-Message-ID: {time.monotonic_ns()}\r\n"
            f"X-Asterisk-VM-Duration: 12abc\r\n{extra}MIME-Version: 1.0\r\n")
    if audio is None and not part_size:
        return (head + "Content-Type: text/plain\r\n\r\nno audio here\r\n").encode()
    data = audio if not part_size else b"\0" * part_size
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
            '--b\r\nContent-Type: audio/x-wav; name="msg0000.wav"\r\nContent-Transfer-Encoding: base64\r\n'
            'Content-Disposition: attachment; filename="msg0000.wav"\r\n\r\n').encode() + b64 + b"\r\n--b--\r\n"


def test_hostile_mails_in_the_folder_are_skipped_with_a_clear_log(dovecot: Dovecot, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from hookflash.voicemail.imap import layout
    good = tone_wav(tmp_path / "good.wav", 440, 0.5).read_bytes()
    dovecot.append("alice", _vm_mail(audio=good))                       # fine
    dovecot.append("alice", _vm_mail(audio=None))                       # no audio
    dovecot.append("alice", _vm_mail(part_size=300_000))                # "huge" (limit lowered below)
    dovecot.append("alice", b"From: a@b\r\nX-Asterisk-VM-Context: \x01\r\n\r\nbroken headers\r\n")
    dovecot.append("alice", _vm_mail(number="999"))                     # someone else's voicemail
    dovecot.append("alice", b"\r\n\r\n")                                # not even headers

    async def main() -> None:
        store, _ = make_store(tmp_path, general(dovecot), mailbox())
        await store.start()
        old = layout.MAX_AUDIO
        layout.MAX_AUDIO = 200_000
        try:
            box = ("shifteight", "100")
            assert await until(lambda: not store.stale(box))
            assert store.counts(box) == (3, 0, 0)  # the three of mailbox 100 count
            messages = await store.alist(box, "INBOX")
            assert messages[0].info.duration == 12  # "12abc" read leniently
            played = [await store.aaudio(m) for m in messages]
            assert played[0] is not None and played[1] is None and played[2] is None
        finally:
            layout.MAX_AUDIO = old
            await store.stop()

    asyncio.run(main())
    text = caplog.text
    assert "no audio attachment" in text
    assert "larger than" in text


def test_special_characters_in_caller_id_and_names_are_safe(dovecot: Dovecot, tmp_path: Path) -> None:
    async def main() -> None:
        gen = general(dovecot)
        box = ('shift"eight', "1 0)0")
        mb = Mailbox(box[0], box[1], "0107", 'Leif "The" Madsen\r\nBcc: evil@example.com', "", "",
                     {"imapuser": "alice", "imappassword": "alicepw"})
        async with running_store(tmp_path, gen, mb) as (store, _):
            hostile = info(cid='"Eve\\" {5}\r\nA1 LOGOUT\r\n" <555*)(>')
            await store.save(box, "INBOX", hostile, recording(store, box))
            assert await until(lambda: store.pending(box) == 0)
            listed = await store.alist(box, "INBOX")
            assert len(listed) == 1 and await store.aaudio(listed[0]) is not None

    asyncio.run(main())
    raw = dovecot.messages("alice")[0]
    head = raw.split(b"\r\n\r\n")[0]
    assert b"\nBcc:" not in head and b"LOGOUT\r\n" not in head
    mail = email.message_from_bytes(raw)
    assert mail["X-Asterisk-VM-Context"] == 'shift"eight'


def test_quota_full_is_reported_and_nothing_is_lost(tmp_path: Path) -> None:
    from tests.integration.imap_server import need_dovecot
    need_dovecot()
    with Dovecot(tmp_path / "dv", quota_kb=60) as dv:
        async def main() -> None:
            store, _ = make_store(tmp_path, general(dv), mailbox())
            await store.start()
            box = ("shifteight", "100")
            try:
                assert not await store.quota_check(box)
                await store.save(box, "INBOX", info(), recording(store, box))  # about 22 KB as a mail
                assert await until(lambda: store.pending(box) == 0)
                await store.save(box, "INBOX", info(), recording(store, box))
                await store.save(box, "INBOX", info(), recording(store, box))  # this one is over
                assert await until(lambda: store.quota_full.get(store.boxes[box].account.key), timeout=10)
                assert store.pending(box) == 1  # kept locally, not lost
                assert await store.quota_check(box)  # VoiceMail plays vm-mailboxfull
            finally:
                await store.stop()

        asyncio.run(main())


def test_without_idle_the_folder_is_polled(tmp_path: Path) -> None:
    from tests.integration.imap_server import need_dovecot
    need_dovecot()
    with Dovecot(tmp_path / "dv", idle=False) as dv:
        async def main() -> None:
            store, changes = make_store(tmp_path, general(dv), mailbox())
            store.pollfreq = 0.5
            await store.start()
            box = ("shifteight", "100")
            try:
                assert await until(lambda: store.index(store.boxes[box], "INBOX").mode == "poll")
                uid = await asyncio.to_thread(dv.append, "alice", _vm_mail(audio=b"RIFF"))
                assert await until(lambda: store.counts(box) == (1, 0, 0), timeout=3)
                assert uid == 1
            finally:
                await store.stop()

        asyncio.run(main())


def test_debug_log_shows_the_conversation_but_no_password(dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    async def main() -> None:
        for authuser in ("", "master"):
            account = Account("127.0.0.1", dovecot.port, frozenset({"notls"}), "alice", "alicepw",
                              authuser=authuser, authpassword="masterpw" if authuser else "", opentimeout=5)
            conn = await Connection.open(account)
            await conn.select("INBOX")
            await conn.logout()

    with caplog.at_level(logging.DEBUG, logger="hookflash.voicemail.imap.wire"):
        asyncio.run(main())
    text = caplog.text
    assert "C: " in text and "SELECT" in text and "S: " in text
    assert "alicepw" not in text and "masterpw" not in text
    assert base64.b64encode(b"alice\0master\0masterpw").decode() not in text


GOLDEN = Path(__file__).parent.parent / "data" / "imap"


def test_messages_asterisk_stored_play_in_hookflash(dovecot: Dovecot, tmp_path: Path) -> None:
    """Mails recorded from a real Asterisk 20 (tests/data/imap/README.md) in a shared box."""
    import soundfile
    dovecot.append("alice", (GOLDEN / "asterisk20-msg1.eml").read_bytes())
    dovecot.append("alice", (GOLDEN / "asterisk20-urgent.eml").read_bytes(), flags="\\Flagged")
    dovecot.append("alice", (GOLDEN / "asterisk20-greeting-unavail.eml").read_bytes())

    async def main() -> None:
        store, _ = make_store(tmp_path, general(dovecot, imapgreetings="yes"), mailbox())
        await store.start()
        box = ("shifteight", "100")
        try:
            assert await until(lambda: not store.stale(box))
            assert store.counts(box) == (2, 0, 1)  # the greeting is not a message
            new = await store.alist(box, "INBOX")
            urgent = await store.alist(box, "Urgent")
            assert [m.info.callerid for m in new] == ['"Jane Caller" <5551234>']
            assert new[0].info.duration == 5 and urgent[0].info.flag == "Urgent"
            for msg in (new[0], urgent[0]):
                path, ext = await store.aaudio(msg)
                assert ext == "WAV"
                sound = soundfile.info(str(path))
                assert sound.samplerate == 8000 and sound.duration > 2
            greeting = await store.agreeting(box, "unavail")
            assert greeting is not None and soundfile.info(str(greeting[0])).duration > 1
            await store.move(new[0], "Old")  # heard: \Seen, as Asterisk marks it
        finally:
            await store.stop()

    asyncio.run(main())
    assert sorted(sorted(f - {"\\Recent"}) for _, f in dovecot.flags("alice")) == [[], ["\\Flagged"], ["\\Seen"]]
