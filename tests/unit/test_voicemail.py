"""Voicemail: voicemail.conf parsing, the spool store (layout, Asterisk metadata, numbering,
crash safety with a killed process), e-mail templates (delivered to a real aiosmtpd and
through mailcmd), and the applications on a real Pbx driven through Local channels.

The application tests use prompts of one silent frame (every stock name the module
plays, made in a temporary data directory) so they run in a fraction of real time; the
real prompts and real phones are exercised in tests/integration/test_voicemail.py."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from hookflash.channels.channel import Channel, Frame
from hookflash.channels.local import LocalTech
from hookflash.conf import ConfigError
from hookflash.conf.parser import parse_text
from hookflash.engine.pbx import Pbx
from hookflash.engine.registry import CliArgs
from hookflash.media.files import read_all, write_sound
from hookflash.media.tone import tone_frames
from hookflash.voicemail.config import parse_config
from hookflash.voicemail.notify import EmailJob, build_email, send_email
from hookflash.voicemail.store import FileStore, MailboxFull, MessageInfo
from tests.helpers import run, write_config

CHAPTER = """\
[shifteight]
100 => 0107,Leif Madsen,leif@shifteight.org
101 => 0523,Jim VanMeggelen,jim@shifteight.org,,attach=no|maxmsg=100
102 => 11042,Tilghman Lesher,,,attach=no|tz=central
"""

ASTERISK_TXT = """\
;
; Message Information file
;
[message]
origmailbox=100
context=shifteight
macrocontext=
exten=100
rdnis=unknown
priority=4
callerchan=SIP/0000FFFF0001-00000003
callerid="Russell Bryant" <5551234>
origdate=Tue Mar  4 09:15:02 AM UTC 2025
origtime=1741079702
category=
msg_id=1741079702-00000000
flag=
duration=7
"""


def conf(text: str):  # type: ignore[no-untyped-def]
    return parse_config(parse_text(textwrap.dedent(text), "voicemail.conf"))


def pcm(freq: float, seconds: float) -> bytes:
    return b"".join(itertools.islice(tone_frames(str(freq), amplitude=6000), int(seconds * 50)))


# ---------------------------------------------------------------------- config
def test_chapter_mailbox_lines() -> None:
    cfg = conf(CHAPTER)
    leif = cfg.find("100", "shifteight")
    assert leif is not None and (leif.password, leif.fullname, leif.email, leif.pager) == \
        ("0107", "Leif Madsen", "leif@shifteight.org", "")
    jim = cfg.find("101", "ShiftEight")  # contexts compare case-insensitively, as find_user does
    assert jim is not None and jim.options == {"attach": "no", "maxmsg": "100"}
    assert jim.option("attach", cfg.general) is False and jim.option("maxmsg", cfg.general) == 100
    assert cfg.find("102", "shifteight").options["tz"] == "central"  # type: ignore[union-attr]
    assert leif.option("attach", cfg.general) is True  # [general] attach defaults to yes
    assert cfg.find("100", "default") is None
    assert (leif.filename, leif.lineno) == ("voicemail.conf", 2)


def test_general_options_templates_and_zones() -> None:
    cfg = conf(r"""
        [general]
        format=wav49|gsm|wav
        serveremail=pbx@example.com
        fromstring=The PBX
        attach=no
        maxmsg=50
        maxsecs=180
        minsecs=2
        maxsilence=10
        silencethreshold=128
        skipms=2000
        maxlogins=5
        minpassword=4
        review=yes
        operator=yes
        saycid=yes
        envelope=no
        sayduration=no
        emailsubject=New ${VM_MSGNUM} for ${VM_MAILBOX}
        emailbody=Dear ${VM_NAME}:\n\n\tFrom ${VM_CALLERID} (${VM_DUR})\n
        mailcmd=/usr/sbin/sendmail -t
        charset=UTF-8
        pollmailboxes=yes
        pollfreq=60
        tz=eastern
        imapserver=imap.example.com

        [zonemessages]
        eastern=America/New_York|'vm-received' Q 'digits/at' IMp
        military=Zulu|'vm-received' q 'digits/at' H N 'hours' 'phonetic/z_p'

        [default]
        1234 => 4242,Example Mailbox,root@localhost,,tz=military|delete=yes|saycid=no|imapuser=ex|imappassword=pw|imapfolder=VM|imapvmshareid=shared
    """)
    g = cfg.general
    assert g.formats == ("wav49", "gsm", "wav") and g.serveremail == "pbx@example.com"
    assert (g.attach, g.maxmsg, g.maxsecs, g.minsecs, g.maxsilence, g.silencethreshold, g.skipms) == \
        (False, 50, 180, 2, 10, 128, 2000)
    assert (g.maxlogins, g.minpassword, g.review, g.operator, g.saycid, g.envelope, g.sayduration) == \
        (5, 4, True, True, True, False, False)
    assert g.emailsubject == "New ${VM_MSGNUM} for ${VM_MAILBOX}"
    assert g.emailbody == "Dear ${VM_NAME}:\n\n\tFrom ${VM_CALLERID} (${VM_DUR})\n"
    assert (g.mailcmd, g.charset, g.pollmailboxes, g.pollfreq, g.tz) == \
        ("/usr/sbin/sendmail -t", "UTF-8", True, 60, "eastern")
    assert g.extra["imapserver"] == "imap.example.com"
    assert cfg.zones["eastern"].timezone == "America/New_York"
    assert cfg.zones["military"].format.startswith("'vm-received' q")
    box = cfg.find("1234", "default")
    assert box is not None and box.option("delete", g) is True and box.option("saycid", g) is False
    assert box.option("tz", g) == "military"
    assert {k: box.options[k] for k in ("imapuser", "imappassword", "imapfolder", "imapvmshareid")} == \
        {"imapuser": "ex", "imappassword": "pw", "imapfolder": "VM", "imapvmshareid": "shared"}


@pytest.mark.parametrize("text,where,words", [
    ("[general]\nattach=maybe\n", 2, "attach value 'maybe' is not a yes/no value"),
    ("[general]\nmaxmsg=lots\n", 2, "maxmsg value 'lots' is not a whole number"),
    ("[general]\nmaxmsg=10000\n", 2, "maxmsg value 10000 is out of range"),
    ("[general]\nformat=wav|mp3\n", 2, "unknown sound format 'mp3'"),
    ("[default]\n\n100 => 1,A,,,attach\n", 3, "option 'attach' has no value"),
    ("[default]\n100 => 1,A,,,attach=sometimes\n", 2, "attach value 'sometimes'"),
    ("[zonemessages]\neastern=America/New_York\n", 2, "zone 'eastern' has no timezone and format"),
])
def test_config_errors_name_file_and_line(text: str, where: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf(text)
    assert info.value.filename == "voicemail.conf" and info.value.lineno == where
    assert words in str(info.value) and "expected" in str(info.value)


# ---------------------------------------------------------------------- store
def _info(n: int = 0, **kw: object) -> MessageInfo:
    values: dict[str, object] = {"origmailbox": "100", "context": "default", "exten": "100", "priority": 2,
                                     "callerchan": f"SIP/1001-{n:08x}", "callerid": '"Alice" <1001>',
                                     "origdate": MessageInfo.asterisk_date(1_700_000_000 + n),
                                     "origtime": 1_700_000_000 + n, "msg_id": f"1700000000-{n:08x}", "duration": 3}
    values.update(kw)
    return MessageInfo(**values)  # type: ignore[arg-type]


def _audio(store: FileStore, box: tuple[str, str], freq: float, seconds: float = 0.5) -> dict[str, Path]:
    tmp = store.temp_dir(box)
    stem = f"t{time.monotonic_ns()}"
    return {ext: write_sound(tmp / f"{stem}.{ext}", ext, pcm(freq, seconds)) for ext in ("wav", "gsm")}


def test_asterisk_txt_round_trip_and_layout(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    inbox = tmp_path / "spool" / "voicemail" / "shifteight" / "100" / "INBOX"
    inbox.mkdir(parents=True)
    (inbox / "msg0000.txt").write_text(ASTERISK_TXT)  # as Asterisk wrote it
    write_sound(inbox / "msg0000.wav", "wav", pcm(440, 1))
    [msg] = store.list(("shifteight", "100"), "INBOX")
    info = msg.info
    assert (info.callerid, info.cid_name, info.cid_num) == ('"Russell Bryant" <5551234>', "Russell Bryant", "5551234")
    assert (info.priority, info.origtime, info.duration, info.msg_id) == (4, 1741079702, 7, "1741079702-00000000")
    assert info.to_text() == ASTERISK_TXT  # written back byte for byte
    assert msg.formats == ("wav",) and store.counts(("shifteight", "100")) == (1, 0, 0)
    assert MessageInfo.asterisk_date(1741079702) == "Tue Mar 04 09:15:02 AM UTC 2025".replace("04", " 4", 1)


def test_numbering_delete_resequence_move_and_copy(tmp_path: Path) -> None:
    async def main() -> None:
        store = FileStore(tmp_path)
        box = ("default", "100")
        for n, freq in enumerate((300, 500, 700)):
            saved = await store.save(box, "INBOX", _info(n), _audio(store, box, freq))
            assert saved.name == f"msg{n:04d}"
        folder = store.folder_dir(box, "INBOX")
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            f"msg{n:04d}.{e}" for n in range(3) for e in ("gsm", "txt", "wav")]
        assert not list(store.temp_dir(box).iterdir())  # the recordings were moved, not copied
        msgs = store.list(box, "INBOX")
        await store.delete(msgs[1])
        await store.resequence(box, "INBOX")
        after = store.list(box, "INBOX")
        assert [m.number for m in after] == [0, 1] and after[1].info.msg_id == msgs[2].info.msg_id
        assert abs(_freq(store.audio(after[1])[0]) - 700) < 15  # type: ignore[index]
        moved = await store.move(after[0], "Old")
        assert (moved.folder, moved.number) == ("Old", 0) and store.counts(box) == (1, 1, 0)
        copy = await store.copy(after[1], ("default", "200"), "INBOX")
        assert copy.name == "msg0000" and store.count(("default", "200"), "INBOX") == 1
        assert store.count(box, "INBOX") == 1  # the copy left the original alone
        nxt = await store.save(box, "INBOX", _info(9), _audio(store, box, 900))
        assert nxt.number == 2  # msg0001 is still there: never overwritten
        await store.resequence(box, "INBOX")
        assert [(m.number, m.info.msg_id) for m in store.list(box, "INBOX")] == [
            (0, msgs[2].info.msg_id), (1, "1700000000-00000009")]
        assert store.find(box, "1700000000-00000009") is not None
        with pytest.raises(MailboxFull):
            await store.save(box, "INBOX", _info(10), _audio(store, box, 900), maxmsg=2)
    run(main())


def _freq(path: Path) -> float:
    data, rate = soundfile.read(str(path))
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


def test_orphan_audio_from_a_crashed_save_is_not_a_message_and_not_kept(tmp_path: Path) -> None:
    async def main() -> None:
        store = FileStore(tmp_path)
        box = ("default", "100")
        await store.save(box, "INBOX", _info(0), _audio(store, box, 300))
        folder = store.folder_dir(box, "INBOX")
        write_sound(folder / "msg0001.wav", "wav", pcm(500, 0.2))  # audio renamed, .txt never written
        assert [m.number for m in store.list(box, "INBOX")] == [0] and store.counts(box)[0] == 1
        saved = await store.save(box, "INBOX", _info(1), _audio(store, box, 700))
        assert saved.number == 1 and abs(_freq(folder / "msg0001.wav") - 700) < 15
    run(main())


CRASH_WRITER = r"""
import asyncio, itertools, os, sys
from pathlib import Path
from hookflash.media.files import read_all, write_sound
from hookflash.voicemail.store import FileStore, MessageInfo
store = FileStore(sys.argv[1]); box = ("default", "100")
pcm = bytes(range(256)) * 400  # 6.4 s of noise per message
async def main():
    for n in itertools.count():
        tmp = store.temp_dir(box)
        audio = {ext: write_sound(tmp / f"r{n}.{ext}", ext, pcm) for ext in ("wav", "gsm", "ulaw")}
        await store.save(box, "INBOX", MessageInfo(origmailbox="100", msg_id=f"{os.getpid()}-{n}", duration=4), audio)
        print(n, flush=True)
asyncio.run(main())
"""


def test_killed_writer_leaves_whole_messages_and_numbers_are_never_reused(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER)
    spool = tmp_path / "spool"
    store = FileStore(spool)
    box = ("default", "100")
    folder = store.folder_dir(box, "INBOX")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    rng = np.random.default_rng(7)
    seen: dict[str, str] = {}  # msg_id -> file name, for messages that were whole
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(spool)], env=env, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one save done by this process
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        messages = store.list(box, "INBOX")
        for msg in messages:  # every message is complete: all three formats, all the audio
            assert set(msg.formats) == {"wav", "gsm", "ulaw"}, msg
            for ext in msg.formats:
                assert len(read_all(folder / f"{msg.name}.{ext}", ext)) == 51200, (msg, ext)
        for msg in messages:  # a message once written keeps its number and content
            assert seen.setdefault(msg.info.msg_id, msg.name) == msg.name
        assert [m.number for m in messages] == list(range(len(messages)))  # no gaps
    before = {p.name: p.read_bytes() for p in folder.glob("msg*.txt")}

    async def one_more() -> int:
        audio = _audio(store, box, 440)
        return (await store.save(box, "INBOX", _info(99), audio)).number
    number = run(one_more())
    assert number == len(before)
    assert all((folder / name).read_bytes() == data for name, data in before.items())


# ---------------------------------------------------------------------- e-mail
def _mail_fixture(vm_text: str):  # type: ignore[no-untyped-def]
    from hookflash.voicemail.store import StoredMessage
    cfg = conf(vm_text)
    box = cfg.find("100", "default")
    msg = StoredMessage(("default", "100"), "INBOX", 4, _info(0, duration=75))
    return cfg, box, msg


def test_default_email_is_asterisks(tmp_path: Path) -> None:
    cfg, box, msg = _mail_fixture("""
        [general]
        format=wav49|gsm
        [zonemessages]
        utc=UTC|'vm-received' q
        [default]
        100 => 1,Bob Owner,bob@example.com,,tz=utc
    """)
    audio = write_sound(tmp_path / "msg0004.WAV", "WAV", pcm(440, 1))
    mail = build_email(None, cfg, box, msg, audio, host="pbx.example.com")
    assert mail["Subject"] == "[PBX]: New message 5 in mailbox 100"
    assert mail["From"] == "Asterisk PBX <asterisk@pbx.example.com>"
    assert mail["To"] == "Bob Owner <bob@example.com>"
    assert mail["X-Asterisk-VM-Caller-ID-Num"] == "1001" and mail["X-Asterisk-VM-Duration"] == "75"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body == ("Dear Bob Owner:\n\n\tJust wanted to let you know you were just left a 1:15 long message "
                    "(number 5)\nin mailbox 100 from \"Alice\" <1001>, on Tuesday, November 14, 2023 at "
                    "10:13:20 PM so you might\nwant to check it when you get a chance.  Thanks!\n\n"
                    "\t\t\t\t--Asterisk\n")
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "msg0004.WAV" and part.get_content_type() == "audio/x-wav"
    assert part["Content-Description"] == "Voicemail sound attachment."
    assert part.get_content() == audio.read_bytes()


def test_templates_escapes_and_hostile_caller_id(tmp_path: Path) -> None:
    cfg, box, msg = _mail_fixture(r"""
        [general]
        emailsubject=VM ${VM_MSGNUM} for ${VM_MAILBOX} from ${VM_CIDNAME}
        emailbody=Hi ${VM_NAME},\n\t${VM_CIDNUM} left ${VM_DUR} (${VM_MESSAGEFILE})\n
        [default]
        100 => 1,Bob Owner,bob@example.com,,attach=no
    """)
    from dataclasses import replace
    msg = replace(msg, info=_info(0, callerid='"Eve\r\nBcc: victim@example.com" <666>'))
    mail = build_email(None, cfg, box, msg, tmp_path / "none.wav", host="h")
    assert "Bcc" not in mail and "\n" not in mail["Subject"]
    assert mail["Subject"].startswith("VM 5 for 100 from Eve")
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body == "Hi Bob Owner,\n\t666 left 0:03 (INBOX/msg0004)\n"
    assert list(mail.iter_attachments()) == []  # attach=no


def test_email_goes_out_over_smtp_and_through_mailcmd(tmp_path: Path) -> None:
    controller_mod = pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd")
    import socket
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append(envelope.content)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = controller_mod.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg, box, msg = _mail_fixture(f"[general]\nsmtphost=127.0.0.1\nsmtpport={port}\n"
                                      "[default]\n100 => 1,Bob,bob@example.com\n")
        mail = build_email(None, cfg, box, msg, None, host="h")
        assert run(send_email(EmailJob(cfg.general, mail, "bob@example.com")))
        assert len(received) == 1
        assert email.message_from_bytes(received[0], policy=email.policy.default)["To"] == "Bob <bob@example.com>"
    finally:
        controller.stop()
    out = tmp_path / "sent.eml"
    cfg, box, msg = _mail_fixture(f"[general]\nmailcmd=tee {out}\n[default]\n100 => 1,Bob,bob@example.com\n")
    assert run(send_email(EmailJob(cfg.general, build_email(None, cfg, box, msg, None, host="h"), "b")))
    assert b"Subject: [PBX]: New message 5 in mailbox 100" in out.read_bytes()
    cfg, box, msg = _mail_fixture("[general]\nmailcmd=/nonexistent/sendmail -t\n[default]\n100 => 1,B,b@x\n")
    assert not run(send_email(EmailJob(cfg.general, build_email(None, cfg, box, msg, None, host="h"), "b")))
    cfg, box, msg = _mail_fixture("[general]\nsmtphost=127.0.0.1\nsmtpport=1\n[default]\n100 => 1,B,b@x\n")
    assert not run(send_email(EmailJob(cfg.general, build_email(None, cfg, box, msg, None, host="h"), "b")))


def test_a_stalled_smtp_server_does_not_hold_up_other_worker_threads() -> None:
    """A mail server that accepts and then says nothing keeps its e-mails waiting (up to
    the 30 s timeout) but never the worker threads voicemail saves, the spooler and the
    calendars use."""
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return
    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    port = listener.getsockname()[1]
    cfg, box, msg = _mail_fixture(f"[general]\nsmtphost=127.0.0.1\nsmtpport={port}\n"
                                  "[default]\n100 => 1,Bob,bob@example.com\n")

    async def main() -> float:
        jobs = [asyncio.ensure_future(send_email(EmailJob(cfg.general, build_email(None, cfg, box, msg, None,
                                                                                   host="h"), "b")))
                for _ in range(40)]
        await asyncio.sleep(0.5)
        began = time.monotonic()
        await asyncio.wait_for(asyncio.to_thread(lambda: None), 10)
        waited = time.monotonic() - began
        stop.set()  # now let the stuck e-mails fail fast
        await asyncio.to_thread(acceptor.join)
        listener.close()
        for conn in accepted:
            conn.close()
        assert not any(await asyncio.gather(*jobs))
        return waited

    try:
        assert run(main()) < 1.0
    finally:
        listener.close()


# ---------------------------------------------------------------------- applications
PROMPTS = ["beep", "auth-thankyou"] + [f"digits/{d}" for d in (
    list(range(21)) + [30, 40, 50, 60, 70, 80, 90] + ["at", "oh", "oclock", "a-m", "p-m", "today", "yesterday"]
    + [f"day-{i}" for i in range(7)] + [f"mon-{i}" for i in range(12)] + [f"h-{i}" for i in range(1, 21)]
    + ["h-30", "star", "pound", "hundred", "thousand"])]


def silent_prompts(data: Path) -> Path:
    """One 20 ms silent frame for every stock vm- prompt and the digits used (the
    greeting's first prompt lasts a second, so there is time to press a key in it)."""
    real = Path("/usr/share/asterisk/sounds/en")
    names = {p.name.split(".")[0] for p in real.glob("vm-*")} if real.is_dir() else set()
    names |= {f"vm-{n}" for n in ("intro", "theperson", "isunavail", "isonphone", "goodbye", "login", "password",
                                  "incorrect", "incorrect-mailbox", "youhave", "no", "messages", "message",
                                  "INBOX", "Old", "Work", "Family", "Friends", "Urgent", "and", "first",
                                  "last", "received", "opts", "onefor", "helpexit", "prev", "next",
                                  "repeat", "delete", "undelete", "deleted", "undeleted", "toforward",
                                  "savemessage", "advopts", "savefolder", "press", "for", "tocancel",
                                  "savedto", "options", "rec-unv", "rec-busy", "rec-name", "rec-temp",
                                  "review", "msgsaved", "newpassword", "reenterpassword", "passchanged",
                                  "mismatch", "changeto", "nomore", "sorry", "extension", "msgforwarded",
                                  "mailboxfull", "whichbox", "tempgreeting2", "tempremoved")}
    for name in sorted(names) + PROMPTS:
        path = data / "sounds" / "en" / f"{name}.sln"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * (320 * 50 if name == "vm-theperson" else 320))  # a 1 s greeting
    return data


class Phone:
    """The ;1 side of a Local channel: sends audio and digits to the application."""

    def __init__(self, pbx: Pbx, one: Channel, two: Channel) -> None:
        self.pbx, self.one, self.two = pbx, one, two
        self._drain = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while not self.one.softhangup:
            await self.one.read_frame(0.05)

    async def audio(self, freq: float, seconds: float) -> None:
        for frame in itertools.islice(tone_frames(str(freq), amplitude=6000), int(seconds * 50)):
            await self.one.write_frame(Frame("voice", frame, len(frame) // 2))
            await asyncio.sleep(0.02)

    async def keys(self, text: str, gap: float = 0.1) -> None:
        for digit in text:
            await self.one.send_digit(digit)
            await asyncio.sleep(gap)

    async def done(self, timeout: float = 15) -> Channel:
        async def settle() -> None:
            while not self.two.hung_up:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(settle(), timeout)
        await self.one.hangup()
        self._drain.cancel()
        return self.two


async def dial(pbx: Pbx, target: str) -> Phone:
    exten, _, context = target.partition("@")
    one = await pbx.request(f"Local/{exten}@{context}/n")
    tech = one.tech
    assert isinstance(tech, LocalTech) and tech.pair.chan is not None
    await tech.call(one, target, 10)
    return Phone(pbx, one, tech.pair.chan)


DIALPLAN = """
[default]
exten => 100,1,Set(CALLERID(all)="Alice" <1001>)
 same => n,VoiceMail(${BOXES},${VMOPTS})
 same => n,Set(DB(vm/status)=${VMSTATUS})
 same => n,Hangup()
exten => a,1,Set(DB(vm/went)=a:${VMSTATUS})
 same => n,Hangup()
exten => o,1,Set(DB(vm/went)=o:${VMSTATUS})
 same => n,Hangup()
exten => 500,1,VoiceMailMain(${MAINARGS})
 same => n,Hangup()
exten => 600,1,VMAuthenticate(100@default,s)
 same => n,Set(DB(vm/auth)=${AUTH_MAILBOX}@${AUTH_CONTEXT})
exten => 700,1,Set(DB(vm/info)=${VM_INFO(100,count)}:${VM_INFO(100@default,fullname)}:${VM_INFO(999,exists)}:${MAILBOX_EXISTS(100)})
 same => n,VoiceMailPlayMsg(100@default,${MSGID})
 same => n,Set(DB(vm/play)=${VOICEMAIL_PLAYBACKSTATUS})

[globals]
BOXES=100@default
VMOPTS=u
MAINARGS=100@default
"""

VM = """
[general]
format=wav|gsm
minsecs=1
maxsecs=20
[default]
100 => 1234,Leif Madsen,,,saycid=yes
101 => 5555,Jim
"""


def vm_pbx(tmp_path: Path, dialplan: str = DIALPLAN, vm: str = VM):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def ctx():  # type: ignore[no-untyped-def]
        data = silent_prompts(tmp_path / "data")
        etc = write_config(tmp_path / "etc", dialplan, voicemail_conf=vm,
                           asterisk_conf=f"[directories]\nastdatadir => {data}\n")
        pbx = Pbx(etc, state_dir=tmp_path / "var", verbose=3)
        lines: list[str] = []
        pbx.verbosity.sinks.append(lines.append)
        await pbx.start()
        try:
            yield pbx, lines
        finally:
            await pbx.stop()
    return ctx()


def spool(tmp_path: Path, box: str = "100") -> Path:
    return tmp_path / "var" / "spool" / "voicemail" / "default" / box


async def leave(pbx: Pbx, seconds: float = 1.5, keys_before: str = "#", end: str = "#") -> Phone:
    phone = await dial(pbx, "100@default")
    await asyncio.sleep(0.2)
    await phone.keys(keys_before)
    await asyncio.sleep(0.3)
    await phone.audio(440, seconds)
    if end:
        await phone.keys(end)
    return phone


def db(pbx: Pbx, key: str) -> str | None:
    assert pbx.astdb is not None
    return pbx.astdb.get("vm", key)  # type: ignore[no-any-return]


def test_voicemail_leaves_a_message_in_every_format_and_lights_counts(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, lines):
            await (await leave(pbx, 2.0)).done()
            assert db(pbx, "status") == "SUCCESS"
            assert pbx.mailbox_counts("100@default") == (1, 0)  # type: ignore[attr-defined]
            assert pbx.mailbox_counts("100") == (1, 0)  # type: ignore[attr-defined]
            text = "\n".join(lines)
            assert "Playing 'vm-theperson" in text and "Playing 'beep" in text  # '#' skipped the rest
    run(main())
    inbox = spool(tmp_path) / "INBOX"
    meta = (inbox / "msg0000.txt").read_text()
    for line in ("origmailbox=100", "context=default", "exten=100", "priority=2", 'callerid="Alice" <1001>',
                 "rdnis=unknown", "flag="):
        assert f"\n{line}\n" in meta, meta
    assert abs(_freq(inbox / "msg0000.wav") - 440) < 15
    assert abs(len(read_all(inbox / "msg0000.gsm", "gsm")) - len(read_all(inbox / "msg0000.wav", "wav"))) <= 160


def test_short_message_is_dropped_and_escapes_leave(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, lines):
            await (await leave(pbx, 0.4)).done()
            assert db(pbx, "status") == "FAILED"  # under minsecs
            assert pbx.mailbox_counts("100") == (0, 0)  # type: ignore[attr-defined]
            await (await leave(pbx, 0, keys_before="*", end="")).done()
            assert db(pbx, "went") == "a:USEREXIT"
            await (await leave(pbx, 0, keys_before="0", end="")).done()
            assert db(pbx, "went") == "o:USEREXIT"
            pbx.globals["BOXES"] = "404@default"
            await (await leave(pbx, 0, keys_before="", end="")).done()
            assert db(pbx, "status") == "FAILED"
            assert "No entry in voicemail config file for '404@default'" in caplog_text(lines)
    run(main())
    assert not list(spool(tmp_path).glob("*/msg*"))


def caplog_text(lines: list[str]) -> str:
    return "\n".join(lines)


def test_several_mailboxes_and_urgent(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, _):
            pbx.globals["BOXES"] = "100@default&101"
            pbx.globals["VMOPTS"] = "uU"
            await (await leave(pbx, 1.5)).done()
            assert pbx.mailbox_counts("100") == (1, 0) and pbx.mailbox_counts("101") == (1, 0)  # type: ignore[attr-defined]
    run(main())
    one = (spool(tmp_path) / "Urgent" / "msg0000.txt").read_text()
    two = (spool(tmp_path, "101") / "Urgent" / "msg0000.txt").read_text()
    assert "flag=Urgent" in one and "origmailbox=101" in two
    assert one.split("msg_id=")[1].split()[0] != two.split("msg_id=")[1].split()[0]


def test_recorded_greeting_replaces_the_stock_one(tmp_path: Path) -> None:
    greeting = spool(tmp_path) / "unavail.wav"
    write_sound(greeting, "wav", pcm(600, 0.2))

    async def main() -> list[str]:
        async with vm_pbx(tmp_path) as (pbx, lines):
            await (await leave(pbx, 1.2)).done()
            return lines
    text = "\n".join(run(main()))
    assert f"Playing '{greeting}'" in text and "vm-theperson" not in text


def test_voicemailmain_login_play_save_delete_and_heard_to_old(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, lines):
            for _ in range(3):
                await (await leave(pbx, 1.2)).done()
            assert pbx.mailbox_counts("100") == (3, 0)  # type: ignore[attr-defined]
            phone = await dial(pbx, "500@default")
            await asyncio.sleep(0.2)
            await phone.keys("1234#")
            await asyncio.sleep(0.3)
            await phone.keys("1")          # message 1
            await asyncio.sleep(1.6)
            await phone.keys("92")         # save it to Work (folder 2)
            await asyncio.sleep(0.4)
            await phone.keys("6")          # message 2
            await asyncio.sleep(1.6)
            await phone.keys("7")          # delete it
            await asyncio.sleep(0.3)
            await phone.keys("6")          # message 3, heard
            await asyncio.sleep(1.6)
            await phone.keys("#")
            await phone.done()
            text = "\n".join(lines)
            assert "logged in to mailbox 100@default" in text and "Playing 'vm-youhave" in text
            assert pbx.mailbox_counts("100") == (0, 1)  # type: ignore[attr-defined]
    run(main())
    box = spool(tmp_path)
    assert [p.name for p in sorted((box / "Work").glob("msg*.txt"))] == ["msg0000.txt"]
    assert [p.name for p in sorted((box / "Old").glob("msg*.txt"))] == ["msg0000.txt"]
    assert not list((box / "INBOX").glob("msg*"))


def test_voicemailmain_wrong_passwords_hang_up_after_maxlogins(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, lines):
            pbx.globals["MAINARGS"] = ""
            phone = await dial(pbx, "500@default")
            await asyncio.sleep(0.2)
            for _ in range(3):
                await phone.keys("100#")
                await asyncio.sleep(0.2)
                await phone.keys("9999#")
                await asyncio.sleep(0.3)
            chan = await phone.done()
            assert chan.hung_up
            text = "\n".join(lines)
            assert "logged in" not in text and "Playing 'vm-goodbye" in text
            assert "9999" not in text  # passwords are not logged
    run(main())


def test_mailbox_options_change_password_in_voicemail_conf(tmp_path: Path) -> None:
    vm = VM.replace("100 => 1234,Leif Madsen,,,saycid=yes", "100 => 1234,Leif Madsen,,,saycid=yes ; keep me")

    async def main() -> None:
        async with vm_pbx(tmp_path, vm=vm) as (pbx, lines):
            phone = await dial(pbx, "500@default")
            await asyncio.sleep(0.2)
            await phone.keys("1234#")
            await asyncio.sleep(0.3)
            await phone.keys("05")
            await asyncio.sleep(0.2)
            await phone.keys("8642#")
            await asyncio.sleep(0.2)
            await phone.keys("8642#")
            await asyncio.sleep(0.3)
            await phone.keys("*#")
            await phone.done()
            assert "Playing 'vm-passchanged" in "\n".join(lines)
            auth = await dial(pbx, "600@default")
            await asyncio.sleep(0.2)
            await auth.keys("8642#")
            await auth.done()
            assert db(pbx, "auth") == "100@default"
    run(main())
    text = (tmp_path / "etc" / "voicemail.conf").read_text()
    assert "100 => 8642,Leif Madsen,,,saycid=yes ; keep me" in text and "1234" not in text


def test_vm_info_mailbox_exists_and_playmsg(tmp_path: Path) -> None:
    async def main() -> None:
        async with vm_pbx(tmp_path) as (pbx, _lines):
            await (await leave(pbx, 1.2)).done()
            msg_id = FileStore(pbx.dirs.astspooldir).list(("default", "100"), "INBOX")[0].info.msg_id
            pbx.globals["MSGID"] = msg_id
            await (await dial(pbx, "700@default")).done()
            assert db(pbx, "info") == "1:Leif Madsen:0:1"
            assert db(pbx, "play") == "SUCCESS"
            assert pbx.mailbox_counts("100") == (0, 1)  # type: ignore[attr-defined]
            pbx.globals["MSGID"] = "nope"
            await (await dial(pbx, "700@default")).done()
            assert db(pbx, "play") == "FAILED"
    run(main())


def test_console_commands(tmp_path: Path) -> None:
    vm = VM + "\n[zonemessages]\neastern=America/New_York|'vm-received' Q 'digits/at' IMp\n"
    vm = vm.replace("101 => 5555,Jim", "101 => 5555,Jim,,,tz=eastern")

    async def main() -> dict[str, str]:
        async with vm_pbx(tmp_path, vm=vm) as (pbx, _):
            await (await leave(pbx, 1.2)).done()
            module = pbx.modules.loaded["app_voicemail"]
            out = {}
            for words in (["voicemail", "show", "users"], ["voicemail", "show", "users", "for", "other"],
                          ["voicemail", "show", "zones"], ["voicemail", "show", "mailbox", "100", "default"]):
                cmd = pbx.registry.find_command(words)
                assert cmd is not None
                result = cmd.handler(CliArgs(pbx, words, words[len(cmd.words):]))
                out[" ".join(words[2:])] = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
            (tmp_path / "etc" / "voicemail.conf").write_text("[general]\nattach=perhaps\n")
            cmd = pbx.registry.find_command(["voicemail", "reload"])
            out["reload"] = await cmd.handler(CliArgs(pbx, ["voicemail", "reload"], []))  # type: ignore[misc,union-attr]
            assert module.cfg.find("100", "default") is not None  # the running configuration is kept
            return out
    out = run(main())
    row = "%-10s %-5s %-25s %-10s %6s\n"  # app_voicemail's layout
    assert out["users"] == (row % ("Context", "Mbox", "User", "Zone", "NewMsg")
                            + row % ("default", "100", "Leif Madsen", "", 1)
                            + row % ("default", "101", "Jim", "eastern", 0)
                            + "2 voicemail users configured.\n")
    assert out["users for other"] == 'No such voicemail context "other"\n'
    assert out["zones"].splitlines() == [
        "Zone            Timezone             Message Format                               ",
        "eastern         America/New_York     'vm-received' Q 'digits/at' IMp              "]
    lines = out["mailbox 100 default"].splitlines()
    assert lines[0].split() == ["Full", "Name", "Email", "Pager", "Language", "Locale", "Time", "Zone"]
    assert lines[1].startswith("Leif Madsen") and lines[2] == ""
    assert lines[3].split() == ["Folder", "Caller", "ID", "Date", "Duration", "Flag", "ID"]
    assert lines[4].startswith('INBOX    "Alice" <1001>') and lines[-1] == "1 Message Total"
    assert out["reload"].startswith("Reloading voicemail configuration...\n")
    assert "attach value 'perhaps'" in out["reload"]


def test_pollmailboxes_notices_a_message_copied_into_the_spool(tmp_path: Path) -> None:
    """An Asterisk message dropped into the spool by another program lights the lamp of a
    sip.conf peer (static host: an unsolicited NOTIFY to a UDP socket of this test)."""
    import socket

    async def main() -> list[str]:
        received: list[str] = []

        class PhoneSocket(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                received.append(data.decode(errors="replace"))

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(PhoneSocket, local_addr=("127.0.0.1", 0))
        phone_port = transport.get_extra_info("sockname")[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            sip_port = s.getsockname()[1]
        sip = (f"[general]\nbindaddr=127.0.0.1\nbindport={sip_port}\n"
               f"[owner]\ntype=friend\nhost=127.0.0.1\nport={phone_port}\nmailbox=100\n")
        vm = VM.replace("[general]\n", "[general]\npollmailboxes=yes\npollfreq=1\n")
        try:
            async with vm_pbx(tmp_path, vm=vm) as (pbx, _):
                (tmp_path / "etc" / "sip.conf").write_text(sip)
                await pbx.modules.load("chan_sip")
                await asyncio.sleep(1.2)  # one poll with the empty box
                inbox = spool(tmp_path) / "INBOX"
                inbox.mkdir(parents=True, exist_ok=True)
                write_sound(inbox / "msg0000.wav", "wav", pcm(440, 0.5))
                (inbox / "msg0000.txt").write_text(ASTERISK_TXT)
                for _ in range(40):
                    if any("Messages-Waiting: yes" in r for r in received):
                        break
                    await asyncio.sleep(0.1)
        finally:
            transport.close()
        return received

    notifies = [r for r in run(main()) if r.startswith("NOTIFY ")]
    assert notifies and "Messages-Waiting: yes" in notifies[-1] and "Voice-Message: 1/0" in notifies[-1]
    assert "Event: message-summary" in notifies[-1]


def test_delete_option_mails_the_message_then_removes_it(tmp_path: Path) -> None:
    out = tmp_path / "mail.eml"
    vm = VM.replace("[general]\n", f"[general]\nmailcmd=tee {out}\n").replace(
        "100 => 1234,Leif Madsen,,,saycid=yes", "100 => 1234,Leif Madsen,leif@example.com,,delete=yes")

    async def main() -> tuple[int, int]:
        async with vm_pbx(tmp_path, vm=vm) as (pbx, _):
            await (await leave(pbx, 1.2)).done()
            for _ in range(100):
                if out.exists() and not list((spool(tmp_path) / "INBOX").glob("msg*")):
                    break
                await asyncio.sleep(0.05)
            return pbx.mailbox_counts("100")  # type: ignore[attr-defined,no-any-return]
    assert run(main()) == (0, 0)
    mail = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert [a.get_filename() for a in mail.iter_attachments()] == ["msg0000.wav"]
    assert not list((spool(tmp_path) / "INBOX").glob("msg*"))


def test_vmsayname_and_d_option_jump(tmp_path: Path) -> None:
    dialplan = DIALPLAN + """
[default]
exten => 800,1,VMSayName(100@default)
 same => n,VMSayName(101@default)
[jump]
exten => 42,1,Set(DB(vm/went)=42:${VMSTATUS})
"""
    write_sound(spool(tmp_path) / "greet.wav", "wav", pcm(500, 0.1))

    async def main() -> list[str]:
        async with vm_pbx(tmp_path, dialplan=dialplan) as (pbx, lines):
            await (await dial(pbx, "800@default")).done()
            pbx.globals["VMOPTS"] = "ud(jump)"
            pbx.globals["BOXES"] = "101@default"  # no recorded name: the 1 s stock greeting
            phone = await dial(pbx, "100@default")
            await asyncio.sleep(0.2)
            await phone.keys("42", gap=0.05)
            await phone.done()
            assert db(pbx, "went") == "42:USEREXIT"
            return lines
    text = "\n".join(run(main()))
    assert f"Playing '{spool(tmp_path) / 'greet.wav'}'" in text  # 100 has a recorded name
    assert "Playing 'digits/1" in text  # 101 has none: its digits


def test_review_lets_the_caller_record_again(tmp_path: Path) -> None:
    vm = VM.replace("[general]\n", "[general]\nreview=yes\n")

    async def main() -> str | None:
        async with vm_pbx(tmp_path, vm=vm) as (pbx, _):
            phone = await dial(pbx, "100@default")
            await asyncio.sleep(0.2)
            await phone.keys("#")
            await asyncio.sleep(0.3)
            await phone.audio(300, 1.5)
            await phone.keys("#")
            await asyncio.sleep(0.3)
            await phone.keys("3")      # record again
            await asyncio.sleep(0.4)
            await phone.audio(600, 1.5)
            await phone.keys("#")
            await asyncio.sleep(0.3)
            await phone.keys("1")      # accept
            await phone.done()
            return db(pbx, "status")
    assert run(main()) == "SUCCESS"
    inbox = spool(tmp_path) / "INBOX"
    assert [p.name for p in inbox.glob("msg*.txt")] == ["msg0000.txt"]
    assert abs(_freq(inbox / "msg0000.wav") - 600) < 15  # the second take, not the first
    assert not list(spool(tmp_path).glob("tmp/*"))  # the first take is gone


def test_email_attachment_is_read_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recording (megabytes for a long message) is read and encoded in a worker
    thread, never on the loop that carries every call."""
    import threading
    out = tmp_path / "mail.eml"
    vm = VM.replace("[general]\n", f"[general]\nmailcmd=tee {out}\n").replace(
        "100 => 1234,Leif Madsen,,,saycid=yes", "100 => 1234,Leif Madsen,leif@example.com,,")
    readers: list[bool] = []
    original = Path.read_bytes

    def spy(self: Path) -> bytes:
        if self.name.startswith("msg0000."):
            readers.append(threading.current_thread() is threading.main_thread())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)

    async def main() -> None:
        async with vm_pbx(tmp_path, vm=vm) as (pbx, _):
            await (await leave(pbx, 1.2)).done()
            for _ in range(100):
                if out.exists() and out.stat().st_size:
                    break
                await asyncio.sleep(0.05)
    run(main())
    mail = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert [a.get_filename() for a in mail.iter_attachments()] == ["msg0000.wav"]
    assert readers == [False]


def test_message_scans_run_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder can hold 9999 messages, each a .txt to read: listing a folder
    (VoiceMailMain login), finding a message by id (VoiceMailPlayMsg), counting for the
    greeting's maxmsg check, the intro and the pollmailboxes poller, and the console's
    show users/mailbox all scan in a worker thread, never on the loop carrying the calls."""
    import threading
    dialplan = DIALPLAN + "[default]\nexten => 900,1,VoiceMailPlayMsg(100@default,${MSGID})\n" \
        " same => n,Set(DB(vm/play)=${VOICEMAIL_PLAYBACKSTATUS})\n"
    vm = VM.replace("[general]\n", "[general]\npollmailboxes=yes\npollfreq=1\nmaxmsg=50\n")
    scans: list[tuple[str, bool]] = []  # (what, on the loop's thread)
    numbers, read_text = FileStore._numbers, Path.read_text

    def spy_numbers(folder: Path) -> dict[int, set[str]]:
        scans.append((f"scan {folder.name}", threading.current_thread() is threading.main_thread()))
        return numbers(folder)

    def spy_read(self: Path, *args: object, **kwargs: object) -> str:
        if self.name.startswith("msg") and self.suffix == ".txt":
            scans.append((f"read {self.name}", threading.current_thread() is threading.main_thread()))
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    async def main() -> dict[str, str]:
        async with vm_pbx(tmp_path, dialplan=dialplan, vm=vm) as (pbx, lines):
            monkeypatch.setattr(FileStore, "_numbers", staticmethod(spy_numbers))
            monkeypatch.setattr(Path, "read_text", spy_read)
            await (await leave(pbx, 1.2)).done()  # the maxmsg count
            assert db(pbx, "status") == "SUCCESS"
            meta = parse_text(read_text(spool(tmp_path) / "INBOX" / "msg0000.txt"), "msg0000.txt")
            pbx.globals["MSGID"] = meta.get("message", "msg_id")
            phone = await dial(pbx, "500@default")  # login: the intro counts, INBOX is listed
            await asyncio.sleep(0.2)
            await phone.keys("1234#")
            await asyncio.sleep(0.5)
            await phone.keys("#")
            await phone.done()
            assert "Playing 'vm-youhave" in "\n".join(lines)
            await (await dial(pbx, "900@default")).done()  # every folder searched for the id
            assert db(pbx, "play") == "SUCCESS"
            await asyncio.sleep(1.5)  # the poller counts every mailbox
            out = {}
            for words in (["voicemail", "show", "users"], ["voicemail", "show", "mailbox", "100", "default"]):
                cmd = pbx.registry.find_command(words)
                assert cmd is not None
                result = cmd.handler(CliArgs(pbx, words, words[len(cmd.words):]))
                out[words[2]] = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
            return out  # type: ignore[return-value]
    out = run(main())
    assert "Leif Madsen" in out["users"] and "1 Message Total" in out["mailbox"]
    assert any(what.startswith("read msg0000") for what, _ in scans)
    assert [what for what, on_loop in scans if on_loop] == []
