"""Self-tests of the IMAP test servers: the real Dovecot fixture and the garbage server."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.integration.imap_garbage import GREETING, GarbageImapServer
from tests.integration.imap_server import Dovecot, _stat, descendants, dovecot, need_dovecot  # noqa: F401

WAV = b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 8   # binary, every byte value


def voicemail(n: int = 1) -> bytes:
    """A MIME voicemail like Asterisk's: text part plus a base64 audio/wav attachment."""
    b64 = base64.encodebytes(WAV).replace(b"\n", b"\r\n")
    return (b"From: \"Asterisk PBX\" <asterisk@localhost>\r\nTo: alice <alice@localhost>\r\n"
            b"Subject: New message " + str(n).encode() + b" in mailbox 1001\r\n"
            b"Message-ID: <vm-" + str(n).encode() + b"@localhost>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"----voicemail_1\"\r\n\r\n"
            b"------voicemail_1\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nDear alice, caf\xe9 message\r\n\r\n"
            b"------voicemail_1\r\nContent-Type: audio/x-wav; name=\"msg0000.wav\"\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"msg0000.wav\"\r\n\r\n"
            + b64 + b"\r\n------voicemail_1--\r\n")


def post_login_capabilities(server: Dovecot, user: str = "alice") -> set[str]:
    c = imaplib.IMAP4("127.0.0.1", server.port, timeout=5)
    try:
        typ, data = c.login(user, server.users[user])
        assert typ == "OK"
        typ, data = c.capability()
        assert typ == "OK"
        return set(data[0].decode().split())
    finally:
        c.logout()


def banner(port: int, timeout: float = 2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        return s.recv(4096)


# -- Dovecot ----------------------------------------------------------------------------------

def test_login_plain(dovecot: Dovecot) -> None:
    c = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    assert c.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    assert c.login("alice", "alicepw")[0] == "OK"
    assert c.select("INBOX") == ("OK", [b"0"])
    c.logout()
    caps = post_login_capabilities(dovecot)
    assert {"IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "NOTIFY"} <= caps
    bad = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    t = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        bad.login("alice", "wrong")
    assert time.monotonic() - t < 1.5  # auth_failure_delay = 0: at most 0.5 s, no penalty
    bad.shutdown()


def test_starttls_verified_with_cafile(dovecot: Dovecot) -> None:
    ctx = ssl.create_default_context(cafile=str(dovecot.cafile))  # check_hostname, CERT_REQUIRED
    c = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    assert c.starttls(ctx)[0] == "OK"                              # IP SAN 127.0.0.1 matches
    assert isinstance(c.sock, ssl.SSLSocket) and c.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert c.login("bob", "bobpw")[0] == "OK"
    c.logout()
    # the verification is real: without the cafile the self-signed cert is refused
    c = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.starttls(ssl.create_default_context())
    with contextlib.suppress(OSError):
        c.shutdown()


def test_imaps_verified_with_cafile(dovecot: Dovecot) -> None:
    ctx = ssl.create_default_context(cafile=str(dovecot.cafile))
    for host in ("127.0.0.1", "localhost"):                          # both SANs
        c = imaplib.IMAP4_SSL(host, dovecot.ssl_port, ssl_context=ctx, timeout=5)
        assert c.login("alice", "alicepw")[0] == "OK"
        c.logout()
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.ssl_port, ssl_context=ssl.create_default_context(), timeout=5)


def test_master_user_sees_alices_inbox(dovecot: Dovecot) -> None:
    uid = dovecot.append("alice", voicemail(7))
    assert dovecot.flags("alice") == [(uid, set())]          # \Recent is left out
    c = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    assert c.login("alice*master", "masterpw")[0] == "OK"
    assert c.select("INBOX") == ("OK", [b"1"])
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"New message 7 in mailbox 1001" in data[0][1]
    c.logout()
    # SASL PLAIN with authzid=alice, authcid=master works the same way
    c = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5)
    assert c.authenticate("PLAIN", lambda _: b"alice\0master\0masterpw")[0] == "OK"
    assert c.select("INBOX") == ("OK", [b"1"])
    c.logout()
    with pytest.raises(imaplib.IMAP4.error):
        imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=5).login("alice*master", "wrong")


def test_freeze_makes_the_server_really_unresponsive(dovecot: Dovecot) -> None:
    session = socket.create_connection(("127.0.0.1", dovecot.port), 2)
    assert session.recv(4096).startswith(b"* OK")
    session.sendall(b"a1 LOGIN alice alicepw\r\n")
    assert b"a1 OK" in session.recv(4096)
    pids = [dovecot.proc.pid, *descendants(dovecot.proc.pid)]   # type: ignore[union-attr]
    assert "imap" in dovecot.processes().values()

    dovecot.freeze()
    assert all(_stat(pid)[0] == "T" for pid in pids if _stat(pid))  # type: ignore[index]
    with socket.create_connection(("127.0.0.1", dovecot.port), 2) as s:  # the kernel still accepts
        s.settimeout(0.4)
        with pytest.raises(TimeoutError):
            s.recv(4096)                                     # ... but no banner ever comes
    session.settimeout(0.4)
    session.sendall(b"a2 NOOP\r\n")
    with pytest.raises(TimeoutError):
        session.recv(4096)                                   # a logged-in session stalls too

    dovecot.thaw()
    session.settimeout(5)
    assert b"a2 OK" in session.recv(4096)                    # the stalled command completes
    session.close()
    assert banner(dovecot.port).startswith(b"* OK")


def test_restart_keeps_the_mail(dovecot: Dovecot) -> None:
    msg = voicemail(1)
    c = dovecot.login("alice")
    typ, data = c.append("INBOX", r"(\Seen $Urgent)", None, msg)
    assert typ == "OK", data
    assert c.create("Old")[0] == "OK"
    assert c.select("INBOX")[0] == "OK"
    port, ssl_port = dovecot.port, dovecot.ssl_port

    dovecot.restart()
    with pytest.raises(imaplib.IMAP4.abort, match="Server shutting down"):   # BYE to the old session
        c.noop()
    assert (dovecot.port, dovecot.ssl_port) == (port, ssl_port)
    assert dovecot.messages("alice") == [msg]                # byte-exact, binary base64 body and 8-bit text
    assert dovecot.flags("alice", "INBOX") == [(1, {"\\Seen", "$Urgent"})]
    assert sorted(dovecot.folders("alice")) == ["INBOX", "Old"]
    assert "messages=1" in dovecot.doveadm("mailbox", "status", "-u", "alice", "messages", "INBOX")


def test_kill_imap_processes_drops_the_session_but_not_the_server(dovecot: Dovecot) -> None:
    alice, bob = dovecot.login("alice"), dovecot.login("bob")
    assert alice.select("INBOX")[0] == "OK"
    killed = dovecot.kill_imap_processes(user="alice")
    assert len(killed) == 1
    with pytest.raises(imaplib.IMAP4.abort):
        alice.noop()
    assert bob.noop()[0] == "OK"                             # bob's process was spared
    assert dovecot.running
    again = dovecot.login("alice")
    assert again.select("INBOX")[0] == "OK"                  # the master serves new logins
    assert len(dovecot.kill_imap_processes()) == 2             # then kill everyone's
    for session in (bob, again):
        with pytest.raises(imaplib.IMAP4.abort):
            session.noop()
    assert "killed with signal 9" in dovecot.log()


def test_no_idle_server(tmp_path: Path) -> None:
    need_dovecot()
    with Dovecot(tmp_path / "dv", idle=False, quota_kb=1000) as server:
        caps = post_login_capabilities(server)
        assert "IDLE" not in caps
        assert {"UIDPLUS", "MOVE", "QUOTA", "CONDSTORE", "NOTIFY"} <= caps
        assert b"IDLE" not in banner(server.port)
        try:
            from imapclient import IMAPClient
        except ImportError:
            return
        with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=5) as client:
            client.login("bob", "bobpw")
            assert not client.has_capability("IDLE")
            assert client.has_capability("UIDPLUS")


def test_quota_overquota_and_getquotaroot(tmp_path: Path) -> None:
    need_dovecot()
    with Dovecot(tmp_path / "dv", quota_kb=10, quota_users=["alice"]) as server:
        c = server.login("alice")
        assert "QUOTA" in c.capability()[1][0].decode().split()
        typ, data = c.getquotaroot("INBOX")
        assert typ == "OK"
        assert data == [[b'INBOX "User quota"'], [b'"User quota" (STORAGE 0 10)']]
        assert c.append("INBOX", None, None, b"Subject: small\r\n\r\n" + b"a" * 4000 + b"\r\n")[0] == "OK"
        typ, data = c.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"b" * 8000 + b"\r\n")
        assert typ == "NO"
        assert data[0].startswith(b"[OVERQUOTA] Quota exceeded (mailbox for user is full)")
        assert c.getquotaroot("INBOX")[1][1] == [b'"User quota" (STORAGE 4 10)']
        c.logout()
        # bob has no rule, so no limit
        assert server.append("bob", b"Subject: big\r\n\r\n" + b"b" * 20000 + b"\r\n") == 1


def test_fixture_leaves_nothing_behind(tmp_path: Path) -> None:
    need_dovecot()
    server = Dovecot(tmp_path / "dv").start()
    pids = [server.proc.pid, *descendants(server.proc.pid)]   # type: ignore[union-attr]
    home = server.home
    assert len(str(home / "run" / "imap-urlauth-worker")) < 100
    server.freeze()
    server.close()                                           # a frozen server stops too
    assert not home.exists()
    assert not [p for p in pids if _stat(p) and _stat(p)[0] != "Z"]  # type: ignore[index]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), 1).close()


# -- the garbage server -----------------------------------------------------------------------

def test_garbage_server_modes() -> None:
    with GarbageImapServer("garbage", seed=1) as g:
        s = socket.create_connection(("127.0.0.1", g.port), 2)
        assert s.recv(4096).startswith(b"* OK")
        s.sendall(b"a1 CAPABILITY\r\n")
        s.settimeout(2)
        assert s.recv(65536)
        s.close()
    with GarbageImapServer("silent") as g:
        s = socket.create_connection(("127.0.0.1", g.port), 2)
        s.settimeout(0.2)
        with pytest.raises(TimeoutError):
            s.recv(1)
        s.close()
    with GarbageImapServer("close") as g:
        s = socket.create_connection(("127.0.0.1", g.port), 2)
        s.settimeout(2)
        assert s.recv(1) == b""
        s.close()
    with GarbageImapServer("huge-line") as g:
        s = socket.create_connection(("127.0.0.1", g.port), 2)
        s.settimeout(2)
        got = b""
        while len(got) < len(GREETING) + g.huge_size:
            try:
                chunk = s.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
        s.close()
        greeting, _, line = got.partition(b"\r\n")
        assert greeting.startswith(b"* OK") and len(line) == 10 * 1024 * 1024 and b"\n" not in line


def test_garbage_server_breaks_imaplib() -> None:
    with GarbageImapServer("garbage", seed=2) as g:
        with pytest.raises((imaplib.IMAP4.error, OSError, ValueError)):
            c = imaplib.IMAP4("127.0.0.1", g.port, timeout=1)   # its CAPABILITY gets junk
            for _ in range(20):
                c.login("alice", "alicepw")
                c.noop()
        assert g.connections == 1 and g.received[0].endswith(b" CAPABILITY\r\n")

