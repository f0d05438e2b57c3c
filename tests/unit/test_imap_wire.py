"""Sans-IO parts of IMAP voicemail: quoting, response parsing (fuzzed: only
ProtocolError may come out of hostile bytes), Asterisk's message layout both ways."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.voicemail.imap.layout import (
    BadMessage,
    build_greeting,
    build_message,
    extract_audio,
    parse_headers,
)
from hookflash.voicemail.imap.wire import (
    ProtocolError,
    encode_mailbox,
    parse_fetch,
    parse_response_code,
    parse_search,
    quote,
    sequence_set,
    tokenize,
)
from hookflash.voicemail.store import MessageInfo


def test_quote_escapes_and_refuses_what_cannot_be_quoted() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    for bad in ("a\r\nA1 LOGOUT", "nul\0", "caf\u00e9"):
        with pytest.raises(ValueError):
            quote(bad)


def test_mailbox_names_in_modified_utf7() -> None:
    assert encode_mailbox("INBOX.Work") == '"INBOX.Work"'
    assert encode_mailbox("R&D") == '"R&-D"'
    assert encode_mailbox("Entw\u00fcrfe") == '"Entw&APw-rfe"'  # RFC 3501's own example form


def test_sequence_sets() -> None:
    assert sequence_set([5, 1, 2, 3, 9]) == "1:3,5,9"
    with pytest.raises(ValueError):
        sequence_set([])


def test_search_in_both_forms_and_garbage() -> None:
    assert parse_search([b"SEARCH 1 4 9", b"Search completed."]) == [1, 4, 9]
    assert parse_search([b"2 3", b"Search completed (0.001 + 0.000 secs)."]) == [2, 3]
    assert parse_search([b"Search completed."]) == []
    with pytest.raises(ProtocolError):
        parse_search([b"SEARCH 1 x", b"done"])


def test_fetch_with_literals_flags_and_quoted_values() -> None:
    lines = [b'3 FETCH (UID 7 FLAGS (\\Seen \\Flagged) BODY[HEADER.FIELDS (X-A)] {9}',
             bytearray(b"X-A: 1\r\n\r"), b")", b'4 FETCH (UID 8 FLAGS () BODY[] "q\\"x")', b"Fetch completed."]
    got = parse_fetch(lines)
    assert got[0] == (3, {"UID": 7, "FLAGS": {"\\Seen", "\\Flagged"},
                          "BODY[HEADER.FIELDS (X-A)]": b"X-A: 1\r\n\r"})
    assert got[1][1]["BODY[]"] == b'q"x'


def test_response_codes() -> None:
    assert parse_response_code(b"OK [APPENDUID 38505 3955] done") == ("APPENDUID", "38505 3955")
    assert parse_response_code(b"NO [OVERQUOTA] Quota exceeded") == ("OVERQUOTA", "")
    assert parse_response_code(b"OK done") is None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.binary(max_size=40).map(bytearray)), max_size=6))
def test_hostile_responses_raise_only_protocol_error(lines: list[bytes | bytearray]) -> None:
    for parse in (tokenize, parse_fetch, parse_search):
        try:
            parse(lines)
        except ProtocolError:
            pass


def _info(**kw: object) -> MessageInfo:
    base = dict(origmailbox="100", context="phones", callerid='"Jane Caller" <5551234>',
                origdate="Mon Dec  7 10:00:00 AM UTC 2026", origtime=1796630400, msg_id="1796630400-0000abcd",
                flag="", duration=7, priority=2, category="sales")
    base.update(kw)
    return MessageInfo(**base)  # type: ignore[arg-type]


def test_message_layout_round_trip() -> None:
    audio = b"RIFF" + bytes(range(256)) * 20
    raw = build_message(mailbox="100", context="shifteight", extension="100", info=_info(), number=0, audio=audio,
                        ext="WAV", subject="[PBX]: New message 1 in mailbox 100", body="Dear Leif:\n\thi\n",
                        fromstring="Asterisk PBX", from_addr="asterisk@pbx", to_name="Leif Madsen",
                        to_addr="leif@example.com", message_id="<Asterisk-x-100@pbx>", origdate="Monday")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    names = [k for k in mail.keys() if k.startswith("X-Asterisk")]
    assert names[:5] == ["X-Asterisk-VM-Message-Num", "X-Asterisk-VM-Server-Name", "X-Asterisk-VM-Context",
                         "X-Asterisk-VM-Extension", "X-Asterisk-VM-Flag"]
    assert mail["X-Asterisk-VM-Message-Num"] == "1" and mail["X-Asterisk-CallerID"] == "5551234"
    parts = list(mail.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_filename() == "msg0000.WAV" and parts[1]["Content-Description"] == "Voicemail sound attachment."
    got, ext, intro = extract_audio(raw)
    assert got == audio and ext == "WAV" and intro is None
    headers = parse_headers(raw)
    assert headers is not None and headers.duration == 7 and headers.cid_name == "Jane Caller"
    info = headers.info("100")
    assert info.callerid == '"Jane Caller" <5551234>' and info.msg_id == "1796630400-0000abcd"


def test_header_injection_through_caller_id_is_impossible() -> None:
    raw = build_message(mailbox="100", context="c", extension="100",
                        info=_info(callerid='"X\r\nBcc: evil@x" <1\r\n2>'), number=0, audio=b"RIFF",
                        ext="wav", subject="s\r\nBcc: a@b", body="", fromstring="A\r\nB", from_addr="a@b",
                        to_name="n\r\nCc: c@d", to_addr="t@x", message_id="<m@x>", origdate="")
    head = raw.split(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n"):
        assert not line.startswith((b"Bcc:", b"Cc:", b"B")), line


def test_greeting_layout() -> None:
    raw = build_greeting(name="busy", mailbox="100", context="c", extension="100", audio=b"RIFFxx", ext="wav",
                         fromstring="Asterisk PBX", from_addr="a@b", to_name="L", to_addr="l@x", message_id="<g@x>")
    mail = email.message_from_bytes(raw)
    assert mail["X-Asterisk-VM-Message-Type"] == "busy"
    assert mail["Subject"].startswith("New greeting 'busy' on ")
    headers = parse_headers(raw)
    assert headers is not None and headers.is_greeting


def test_not_voicemail_and_broken_audio() -> None:
    assert parse_headers(b"From: a@b\r\nSubject: hi\r\n\r\nbody") is None
    with pytest.raises(BadMessage, match="no audio"):
        extract_audio(b"X-Asterisk-VM-Context: c\r\nContent-Type: text/plain\r\n\r\nhello")
    bad = (b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: audio/x-wav\r\n'
           b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--b--\r\n")
    with pytest.raises(BadMessage, match="base64"):
        extract_audio(bad)
    big = (b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: audio/x-wav\r\n'
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"\0" * 5000) + b"\r\n--b--\r\n")
    with pytest.raises(BadMessage, match="larger"):
        extract_audio(big, limit=1000)
