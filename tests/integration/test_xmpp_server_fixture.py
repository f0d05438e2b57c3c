"""Self-tests of the real Prosody fixture (tests/integration/xmpp_server.py) and its slixmpp client."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.xmpp_server import Prosody, XmppUser, prosody, xmpp_users  # noqa: F401


@pytest.fixture
def users(xmpp_users: Callable[..., XmppUser]) -> dict[str, XmppUser]:
    """Started clients alice/test and bob/test; stopped afterwards."""
    return {name: xmpp_users(name) for name in ("alice", "bob")}


def test_message_over_starttls_with_verified_certificate(prosody: Prosody, users: dict[str, XmppUser]) -> None:
    alice, bob = users["alice"], users["bob"]
    assert alice.tls_version in ("TLSv1.2", "TLSv1.3")
    cert = alice.peer_certificate   # only filled in when the chain and name were verified
    assert cert and ("DNS", "localhost") in cert["subjectAltName"]
    alice.send("bob@localhost", "hello bob")
    got = bob.wait_message(timeout=5)
    assert (got.frm, got.body) == ("alice@localhost/test", "hello bob")
    assert 'type="chat"' in got.xml
    bob.send(got.frm, "pong: " + got.body)
    assert alice.wait_message(timeout=5).body == "pong: hello bob"
    assert "Stream encrypted (TLSv1" in prosody.log()
    # raw bytes on the stream (bad-input tests use this)
    alice.send_raw("<message to='bob@localhost' type='chat' id='raw1'><body>raw &amp; ok</body></message>")
    assert bob.wait_message(lambda m: 'id="raw1"' in m.xml, timeout=5).body == "raw & ok"
    assert "urn:xmpp:ping" in alice.disco_features()
    assert alice.ping() < 1


def test_untrusted_certificate_and_wrong_password_fail_fast(prosody: Prosody, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(other)], check=True, capture_output=True)
    for kwargs in ({"cafile": other}, {"password": "wrong"}):
        u = XmppUser(prosody, "alice", **kwargs)
        t0 = time.monotonic()
        try:
            with pytest.raises(ConnectionError):
                u.start(timeout=5)
        finally:
            u.stop()
        assert time.monotonic() - t0 < 3, kwargs


def test_presence_change_seen_by_subscribed_buddy(users: dict[str, XmppUser]) -> None:
    alice, bob = users["alice"], users["bob"]
    alice.subscribe("bob@localhost")            # bob auto-accepts and subscribes back
    deadline = time.monotonic() + 5
    while alice.roster().get("bob@localhost") != "both" or bob.roster().get("alice@localhost") != "both":
        assert time.monotonic() < deadline, (alice.roster(), bob.roster())
        time.sleep(0.05)
    n = len(alice.presences)
    bob.set_presence("dnd", "on a call")
    p = alice.wait_presence(lambda p: p.frm == "bob@localhost/test" and p.show == "dnd", since=n, timeout=5)
    assert (p.type, p.status) == ("available", "on a call")
    bob.set_presence(ptype="unavailable")
    alice.wait_presence(lambda p: p.frm == "bob@localhost/test" and p.type == "unavailable", since=n, timeout=5)


def test_muc_join_and_groupchat(prosody: Prosody, users: dict[str, XmppUser]) -> None:
    alice, bob = users["alice"], users["bob"]
    assert "conference.localhost" in alice.disco_items()
    assert "http://jabber.org/protocol/muc" in alice.disco_features("conference.localhost")
    assert "http://jabber.org/protocol/pubsub" in alice.disco_features("pubsub.localhost")
    room = "pbx@conference.localhost"
    alice.join_muc(room, "alice")
    bob.join_muc(room, "bob")
    alice.send_muc(room, "hello room")
    got = bob.wait_muc_message(lambda m: m.body == "hello room", timeout=5)
    assert got.frm == f"{room}/alice"
    assert alice.wait_muc_message(lambda m: m.body == "hello room", timeout=5)  # the room echoes it


def test_freeze_makes_login_time_out_and_thaw_restores(prosody: Prosody, users: dict[str, XmppUser]) -> None:
    alice = users["alice"]
    prosody.freeze()
    late = XmppUser(prosody, "asterisk")
    t0 = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            late.start(timeout=1.5)
        assert time.monotonic() - t0 < 5
    finally:
        late.stop(timeout=0.5)
        prosody.thaw()
    assert time.monotonic() - t0 < 5
    with XmppUser(prosody, "asterisk") as ast:
        ast.send("alice@localhost", "after thaw")
        assert alice.wait_message(lambda m: m.body == "after thaw", timeout=5).frm == "asterisk@localhost/test"


def test_restart_keeps_users_and_rosters(prosody: Prosody) -> None:
    prosody.add_user("carol", "carolpw")         # written while running: usable at once
    prosody.befriend("alice", "carol")
    with XmppUser(prosody, "carol") as carol:
        assert carol.roster() == {"alice@localhost": "both"}
    old = prosody.proc.pid if prosody.proc else None
    prosody.restart()
    assert prosody.running and prosody.proc is not None and prosody.proc.pid != old
    with XmppUser(prosody, "carol") as carol, XmppUser(prosody, "alice") as alice:
        assert alice.roster() == {"carol@localhost": "both"}
        # mutual subscription: alice sees carol's presence without any directed presence
        carol.set_presence("away", "lunch")
        alice.wait_presence(lambda p: p.frm == "carol@localhost/test" and p.show == "away", timeout=5)
