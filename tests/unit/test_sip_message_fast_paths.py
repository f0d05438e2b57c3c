"""The shortcuts of the SIP message layer's usual forms (issue 14) give exactly what the
general code gives: known header names, simple parameters, name-addr by one regex, views
parsed at validation, prepared header items in build_response and dialog requests,
escaping only when needed. Errors and their messages included."""

from __future__ import annotations

from hookflash.sip.dialog import build_response
from hookflash.sip.message import SipUri, parse_message

INVITE = (b"INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0\r\n"
          b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1\r\nTo: <sip:1000@127.0.0.1:5060>\r\n"
          b"Call-ID: 1-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _outcome(data: bytes) -> object:
    try:
        msg = parse_message(data)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)
    return type(msg).__name__, msg.headers.items(), msg.body, repr(msg.vias), repr(msg.from_addr), \
        repr(msg.to_addr), msg.cseq, msg.call_id, bytes(msg)


def test_header_lines_outside_the_fast_path_parse_as_before() -> None:
    # LWS before the colon, a new name, a continuation line, a bare LF: the general loop
    plain = _outcome(INVITE)
    assert plain == _outcome(INVITE.replace(b"\r\n", b"\n"))
    spaced = _outcome(INVITE.replace(b"CSeq:", b"CSeq  :"))
    assert spaced[1] == plain[1]  # type: ignore[index]
    folded = _outcome(INVITE.replace(b"Call-ID: 1-1", b"Call-ID:\r\n 1-1"))
    assert folded[1] == plain[1]  # type: ignore[index]
    new_name = parse_message(INVITE.replace(b"Max-Forwards", b"X-Never-Seen-Before: 1\r\nMax-Forwards"))
    assert new_name.headers.get("x-never-seen-before") == "1"
    assert _outcome(INVITE.replace(b"CSeq: 1 INVITE", b"CSeq 1 INVITE"))[1] == "400 Malformed header line"


def test_name_addr_shortcut_keeps_results_and_errors() -> None:
    from hookflash.sip.message import Address, SipParseError

    a = Address.parse('  "A <b>" \t<sip:x@y;lr>;tag=1;Foo=Bar;flag  ')
    assert (a.display, str(a.uri), a.params) == ("A <b>", "sip:x@y;lr", {"tag": "1", "foo": "Bar", "flag": None})
    b = Address.parse("John \t Doe<sip:jd@h>")
    assert (b.display, b.params) == ("John Doe", {})
    for bad, reason in [
        ('"a" b <sip:x>', "Display name without <URI>"), ("<sip:a b>", "Whitespace inside <URI>"),
        ("<sip:x>;", "Empty parameter"), ("<sip:x> junk", "Garbage after <URI>"),
        ("<sip:x>;tag=a b", "Invalid value of parameter 'tag'"), ("<>", "Invalid URI ''"),
    ]:
        try:
            Address.parse(bad)
        except SipParseError as exc:
            assert exc.reason == reason, (bad, exc.reason)
        else:
            raise AssertionError(bad)


def test_build_response_copies_vias_as_get_all_gives_them() -> None:
    msg = parse_message(INVITE)
    msg.headers.add("Via", "  SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb , SIP/2.0/TCP 10.0.0.8;branch=z9hG4bKc ")
    msg.headers.add("v", " SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKd\t")
    for parsed_first in (False, True):
        if parsed_first:
            assert len(msg.vias) == 4
        response = build_response(msg, 180, to_tag="t", headers=[("Contact", "<sip:s@h>")])
        assert [v for n, v in response.headers.items() if n == "Via"] == msg.headers.get_all("Via")
        assert response.top_via.branch == "z9hG4bK-1-1-0"
    extra_via = build_response(msg, 200, headers=[("Via", "SIP/2.0/UDP x;branch=z9hG4bKz")])
    assert extra_via.vias[-1].host == "x"  # the shared view was dropped with the added Via


def test_dialog_requests_follow_changed_addresses_and_tags() -> None:
    from hookflash.sip.dialog import Dialog
    from hookflash.sip.message import Address

    msg = parse_message(INVITE)
    dialog = Dialog.from_uas(msg, "ltag", "<sip:1000@127.0.0.1>")  # type: ignore[arg-type]
    bye = dialog.create_request("BYE")
    assert bye.headers.get("From") == "<sip:1000@127.0.0.1:5060>;tag=ltag"
    assert bye.headers.get("To") == '"sipp" <sip:sipp@127.0.0.1:5061>;tag=1'
    dialog.remote_tag = "2"
    dialog.local = Address.parse("Me <sip:me@h>")
    again = dialog.create_request("INFO")
    assert again.headers.get("From") == '"Me" <sip:me@h>;tag=ltag'
    assert again.headers.get("To") == '"sipp" <sip:sipp@127.0.0.1:5061>;tag=2'


def test_serialise_writes_one_content_length_where_the_first_was() -> None:
    msg = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", b"l: 0\r\nMax-Forwards: 70\r\n"))
    msg.body = b"abc"
    text = bytes(msg).decode()
    assert "\r\nl: 3\r\nMax-Forwards: 70\r\n" in text and "Content-Length" not in text
    assert text.endswith("\r\n\r\nabc")


def test_uri_parts_escaped_only_when_needed() -> None:
    from urllib.parse import quote

    from hookflash.sip.message import _PARAM_SAFE, _USER_SAFE, _escape

    for text in ["alice", "a b", "ü", "a%b", "a;b?c/d", "x[1]", "~_.-", "\udcff", "", "a@b", "\x00"]:
        for safe in (_USER_SAFE, _PARAM_SAFE):
            assert _escape(text, safe) == quote(text, safe=safe, errors="surrogateescape")
    assert str(SipUri.parse("sip:%61lice@h;x=a%20b")) == "sip:alice@h;x=a%20b"


def test_get_after_changes_and_copies_sees_the_change() -> None:
    msg = parse_message(INVITE)  # validation built the index of first values
    h = msg.headers
    assert h.get("i") == "1-1@127.0.0.1" and h.get("Subject", "none") == "none"
    h.add("Subject", "a")
    assert h.get("subject") == "a"
    h.insert_first("Subject", "b")
    assert h.get("Subject") == "b" and h.get_all("Subject") == ["b", "a"]
    copy = h.copy()
    h.set("Subject", "c")
    assert h.get("Subject") == "c" and copy.get("Subject") == "b"
    h.remove("Subject")
    assert h.get("Subject") is None and "Subject" not in h and copy.get("Subject") == "b"
    copy.add("Call-ID", "second")
    assert copy.get("Call-ID") == "1-1@127.0.0.1" and h.get("Call-ID") == "1-1@127.0.0.1"
    copy.set("Call-ID", "other")
    assert copy.get("Call-ID") == "other" and h.get("Call-ID") == "1-1@127.0.0.1"
