"""The pure parts of the LDAP realtime driver: res_ldap.conf, filter building with RFC 4515
escaping (no filter injection), and entries mapped back to Asterisk's columns."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("ldap3")

from hookflash.conf.parser import ConfigError, parse_text  # noqa: E402
from hookflash.realtime.driver import RealtimeError  # noqa: E402
from hookflash.realtime.ldap import (  # noqa: E402
    build_filter,
    entry_to_record,
    format_duration,
    like_pattern,
    modifications,
    parse_settings,
    store_entry,
)

CONF = """
[_general]
url = ldap://127.0.0.1:3389
protocol = 3
basedn = dc=example,dc=org
user = cn=admin,dc=example,dc=org
pass = adminpw
timeout = 1.5
pool = 2
language = AstAccountLanguage
additionalFilter = (objectClass=inetOrgPerson)

[sip]
name = cn
md5secret = userPassword
callerid = AstAccountCallerID
fullcontact = AstAccountFullContact
fullcontact = gecos
allow = AstAccountAllowedCodec
additionalFilter = (objectClass=AsteriskSIPUser)

[plain]
name = uid
"""


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    return parse_settings(parse_text(CONF, "res_ldap.conf"))


def test_settings(settings) -> None:  # type: ignore[no-untyped-def]
    assert (settings.url, settings.host, settings.port, settings.scheme) == (
        "ldap://127.0.0.1:3389", "127.0.0.1", 3389, "ldap")
    assert settings.user == "cn=admin,dc=example,dc=org" and settings.password == "adminpw"
    assert settings.timeout == 1.5 and settings.pool == 2
    assert settings.general.mappings == [("language", "AstAccountLanguage")]
    assert settings.table("SIP").mappings[-1] == ("allow", "AstAccountAllowedCodec")
    with pytest.raises(RealtimeError):
        settings.table("nosuch")


@pytest.mark.parametrize("text, where", [
    ("[_general]\nurl = http://x\n", "url"),
    ("[_general]\nurl = ldap://x\ntimeout = soon\n", "timeout"),
    ("[_general]\nurl = ldap://x\n[sip]\nname = cn)(uid=*\n", "attribute"),
    ("[_general]\nurl = ldap://x\n[sip]\nadditionalFilter = objectClass=x\n", "additionalFilter"),
    ("[_general]\nbasedn = dc=x\n", "url"),
])
def test_settings_errors_are_located(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(parse_text(text, "res_ldap.conf"))
    assert "res_ldap.conf:" in str(info.value) and where in str(info.value)


def test_host_and_port_without_url() -> None:
    s = parse_settings(parse_text("[_general]\nhost = 127.0.0.1\nport = 1389\nuser = cn=x\n", "res_ldap.conf"))
    assert s.url == "ldap://127.0.0.1:1389" and s.password == "asterisk"  # Asterisk's default pass


def test_filter_shape(settings) -> None:  # type: ignore[no-untyped-def]
    assert build_filter(settings, "sip", [("name", "alice")]) == (
        "(&(objectClass=AsteriskSIPUser)(objectClass=inetOrgPerson)(cn=alice))")
    # unmapped columns pass through; [_general] mappings are inherited
    assert build_filter(settings, "plain", [("name", "a"), ("language", "en"), ("uid", "b")]) == (
        "(&(objectClass=inetOrgPerson)(uid=a)(AstAccountLanguage=en)(uid=b))")
    # the first attribute of a repeated mapping is the one searched
    assert build_filter(settings, "sip", [("fullcontact", "x")]).endswith("(AstAccountFullContact=x))")


@pytest.mark.parametrize("value, escaped", [
    ("*", "\\2a"),
    ("(", "\\28"),
    (")", "\\29"),
    ("\\", "\\5c"),
    ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
    ("alice)(|(cn=*", "alice\\29\\28|\\28cn=\\2a"),
    ("Jürgen", "Jürgen"),  # non-ASCII goes as UTF-8, unescaped (RFC 4515 allows it)
    ("日本", "日本"),
])
def test_values_are_escaped(settings, value: str, escaped: str) -> None:  # type: ignore[no-untyped-def]
    flt = build_filter(settings, "plain", [("name", value)])
    assert flt == f"(&(objectClass=inetOrgPerson)(uid={escaped}))"
    # balanced: the value cannot close the term early
    assert flt.count("(") == flt.count(")") == 3


def test_nul_is_refused_and_logged(settings, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="hookflash.realtime.ldap"):
        with pytest.raises(RealtimeError, match="NUL"):
            build_filter(settings, "sip", [("name", "alice\x00")])
    assert "NUL" in caplog.text
    with pytest.raises(RealtimeError, match="NUL"):
        modifications(settings, "sip", [("callerid", "x\x00y")])


def test_bad_column_names_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    for column in ("cn=*)(uid", "a b", "x(", ""):
        with pytest.raises(RealtimeError):
            build_filter(settings, "sip", [(column, "v")])
    with pytest.raises(RealtimeError):  # a lone surrogate cannot be sent
        build_filter(settings, "sip", [("name", "\udcff")])


def test_like(settings) -> None:  # type: ignore[no-untyped-def]
    assert like_pattern("al%") == "al*"
    assert like_pattern("%a%%b%") == "*a*b*"
    assert like_pattern("50\\%") == "50%"           # escaped % is literal
    assert like_pattern("a\\_b_c") == "a_b_c"       # \_ -> _ (and a bare _ stays literal, as Asterisk)
    assert like_pattern("*)(x%") == "\\2a\\29\\28x*"  # LDAP specials in a LIKE are still escaped
    assert like_pattern("a\\\\%") == "a\\5c*"
    assert build_filter(settings, "sip", [("name LIKE", "al%")]).endswith("(cn=al*))")
    assert build_filter(settings, "sip", [("name NOT LIKE", "al%")]).endswith("(!(cn=al*)))")


def test_operators(settings) -> None:  # type: ignore[no-untyped-def]
    f = build_filter(settings, "plain", [("port !=", "5060"), ("regseconds >", "10"), ("lastms <=", "5")])
    # unmapped chan_sip columns use the Asterisk schema's attributes (DEFAULT_MAPPINGS)
    assert f == ("(&(objectClass=inetOrgPerson)(!(AstAccountPort=5060))(&(AstAccountExpirationTimestamp>=10)"
                 "(!(AstAccountExpirationTimestamp=10)))(AstAccountLastQualifyMilliseconds<=5))")
    f = build_filter(settings, "plain", [("othercolumn >=", "1")])
    assert f == "(&(objectClass=inetOrgPerson)(othercolumn>=1))"  # and other columns pass through


def test_no_fields(settings) -> None:  # type: ignore[no-untyped-def]
    assert build_filter(settings, "plain", []) == "(&(objectClass=inetOrgPerson))"


def test_result_mapping(settings, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    attrs = {
        "cn": [b"alice"],
        "AstAccountCallerID": [b'"Alice" <1001>'],
        "userPassword": [b"{MD5}0123456789abcdef0123456789ABCDEF"],
        "gecos": [b"Alice Example"],
        "AstAccountAllowedCodec": [b"ulaw;alaw;", b"g722"],
        "AstAccountFullContact": [b"sip:alice@127.0.0.1:5060;transport=udp"],
        "objectClass": [b"inetOrgPerson", b"AsteriskSIPUser"],
        "jpegPhoto": [b"\xff\xd8\xff\xe0"],
        "description": [b"x" * (64 * 1024 + 1)],
        "language": ["fr"],
    }
    with caplog.at_level(logging.WARNING, logger="hookflash.realtime.ldap"):
        rec = entry_to_record(settings, "sip", attrs, "uid=alice,dc=example,dc=org")
    assert rec == [
        ("name", "alice"),
        ("callerid", '"Alice" <1001>'),
        ("md5secret", "0123456789abcdef0123456789ABCDEF"),   # {MD5} stripped, any case
        ("fullcontact", "Alice Example"),                    # every attribute of a column maps back
        ("allow", "ulaw"), ("allow", "alaw"), ("allow", "g722"),  # multi-valued + ';' split
        ("fullcontact", "sip:alice@127.0.0.1:5060;transport=udp"),  # not split: a SIP URI
        ("objectClass", "inetOrgPerson"), ("objectClass", "AsteriskSIPUser"),  # unmapped pass through
        ("language", "fr"),
    ]
    assert "not UTF-8" in caplog.text and "65537 bytes" in caplog.text


@pytest.mark.parametrize("value, kept", [
    ("{md5}a7be810a28ca1fc0668effb4ea982e58", "a7be810a28ca1fc0668effb4ea982e58"),
    ("a7be810a28ca1fc0668effb4ea982e58", "a7be810a28ca1fc0668effb4ea982e58"),
    ("{MD5}2BGPG7a9mZgDEFMXaixL7g==", None),  # RFC 2307 hash of the bare password: useless to SIP
    ("canada", None),                          # plain text: refused, as the chapter says
    ("{SSHA}abcdef", None),
    ("a7be;810a", None),
])
def test_md5secret(settings, value: str, kept: str | None,  # type: ignore[no-untyped-def]
                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hookflash.realtime.ldap"):
        rec = entry_to_record(settings, "sip", {"userPassword": [value.encode()]})
    assert rec == ([("md5secret", kept)] if kept else [])
    if kept is None:
        assert "md5secret" in caplog.text


def test_modifications(settings) -> None:  # type: ignore[no-untyped-def]
    from ldap3 import MODIFY_REPLACE
    changes = modifications(settings, "sip", [("callerid", "A"), ("allow", "ulaw"), ("allow", "alaw"),
                                              ("fullcontact", "")])
    assert changes == {"AstAccountCallerID": [(MODIFY_REPLACE, ["A"])],
                       "AstAccountAllowedCodec": [(MODIFY_REPLACE, ["ulaw", "alaw"])],
                       "AstAccountFullContact": [(MODIFY_REPLACE, [])]}  # empty: delete


def test_store_entry(settings) -> None:  # type: ignore[no-untyped-def]
    dn, classes, attrs = store_entry(settings, "sip", "ou=people,dc=example,dc=org",
                                     [("name", "carol, jr+x"), ("callerid", "Carol"), ("sn", "C")])
    assert dn == "cn=carol\\, jr\\+x,ou=people,dc=example,dc=org"
    assert classes == ["AsteriskSIPUser", "inetOrgPerson"]  # from the additionalFilters
    assert attrs == {"cn": ["carol, jr+x"], "AstAccountCallerID": ["Carol"], "sn": ["C"]}
    with pytest.raises(RealtimeError):
        store_entry(settings, "sip", "dc=x", [("name", "")])


def test_format_duration() -> None:
    assert format_duration(0) == "0 seconds"
    assert format_duration(1) == "1 second"
    assert format_duration(3725) == "1 hour, 2 minutes, 5 seconds"
    assert format_duration(3600) == "60 minutes"  # Asterisk's '>' comparison
