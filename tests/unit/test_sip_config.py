"""sip.conf and rtp.conf parsing: the chan_sip dialect the chapter uses."""

from __future__ import annotations

import textwrap

import pytest

from hookflash.conf import ConfigError, parse_text
from hookflash.sip.config import parse_rtp_conf, parse_sip_conf

SIP_CONF = """
[general]
context=unauthenticated
allowguest=no
alwaysauthreject=yes
bindport=5070
bindaddr=127.0.0.1
transport=udp,tcp
disallow=all
allow=ulaw
allow=alaw,g722
accept_outofcall_message=yes
outofcall_message_context=IncomingMessages
auth_message_requests=yes
localnet=192.168.0.0/255.255.0.0
register => tls://1001:s3cret:authid@provider.example.com:5061/3000~300
register => 2002@other.example.com

[phone](!)
type=friend
host=dynamic
context=LocalSets
disallow=all
allow=ulaw
dtmfmode=rfc2833
qualify=yes

[0000FFFF0001](phone)
secret=welcome
callerid="Leif Madsen" <100>
mailbox=100@shifteight

[0000FFFF0002](phone)
md5secret=6c3a1c6e41ac4ad3e7b5de6b2e3e5c7d
call-limit=2
allow=g722

[my_itsp]
type=peer
host=127.0.0.2
port=5080
insecure=port,invite
defaultuser=trunk
"""


def test_chapter_style_sip_conf() -> None:
    config = parse_sip_conf(parse_text(textwrap.dedent(SIP_CONF), "sip.conf"))
    g = config.general
    assert (g.bindaddr, g.bindport, g.context) == ("127.0.0.1", 5070, "unauthenticated")
    assert g.allowguest is False and g.alwaysauthreject is True
    assert g.codecs == ("ulaw", "alaw", "g722")
    assert g.transports == ("udp", "tcp")
    assert g.accept_outofcall_message and g.outofcall_message_context == "IncomingMessages"
    assert g.localnets[0].contains("192.168.3.4") and not g.localnets[0].contains("10.0.0.1")
    r1, r2 = g.registrations
    assert (r1.transport, r1.user, r1.secret, r1.authuser, r1.host, r1.port, r1.extension, r1.expiry) == (
        "tls", "1001", "s3cret", "authid", "provider.example.com", 5061, "3000", 300)
    assert (r2.user, r2.host, r2.port, r2.extension, r2.expiry) == ("2002", "other.example.com", 5060, "2002", 120)
    assert "phone" not in config.peers  # templates are not peers
    p1 = config.peers["0000FFFF0001"]
    assert (p1.type, p1.host, p1.context, p1.secret, p1.qualify) == ("friend", "dynamic", "LocalSets", "welcome", 2000)
    assert (p1.callerid_name, p1.callerid_num, p1.mailbox) == ("Leif Madsen", "100", ("100@shifteight",))
    assert p1.codecs == ("ulaw",)
    p2 = config.peers["0000FFFF0002"]
    assert p2.codecs == ("ulaw", "g722") and p2.call_limit == 2 and p2.md5secret.startswith("6c3a")
    itsp = config.peers["my_itsp"]
    assert (itsp.host, itsp.port, itsp.insecure, itsp.auth_user) == ("127.0.0.2", 5080, frozenset({"port", "invite"}), "trunk")


@pytest.mark.parametrize("line,fragment", [
    ("bindport=abc", "whole number"),
    ("allowguest=maybe", "yes or no"),
    ("allow=nosuchcodec", "unknown codec"),
    ("dtmfmode=smoke", "unknown dtmfmode"),
    ("register => nohost", "no '@host'"),
    ("localnet=notanet", "bad localnet"),
    ("frobnicate=1", "unknown option"),
])
def test_bad_general_values_name_file_and_line(line: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sip_conf(parse_text(f"[general]\n{line}\n", "sip.conf"))
    text = str(err.value)
    assert text.startswith("sip.conf:2:") and fragment in text and "expected" in text


def test_bad_peer_value() -> None:
    with pytest.raises(ConfigError) as err:
        parse_sip_conf(parse_text("[general]\n[p]\ntype=router\n", "sip.conf"))
    assert str(err.value).startswith("sip.conf:3:")


def test_rtp_conf() -> None:
    assert parse_rtp_conf(parse_text("[general]\nrtpstart=20000\nrtpend=20100\n", "rtp.conf")).rtpstart == 20000
    with pytest.raises(ConfigError):
        parse_rtp_conf(parse_text("[general]\nrtpstart=20000\nrtpend=100\n", "rtp.conf"))
