"""Calendar backends against real servers, and against recorded protocol answers.

* caldav: a real Radicale (pip) started by the test on a free loopback port, with
  htpasswd (Basic) auth and ``owner_write`` rights (tests/integration/calendar_servers.py).
* ical: a local ``http.server`` serving an .ics (plain, Digest auth, bearer token, TLS
  with a self-signed certificate), and local files.
* ews and exchange: no Exchange server can run here, so a local ``http.server``
  answers with recorded EWS SOAP / Exchange 2003 WebDAV responses
  (tests/data/ews, tests/data/exchange) and records what the backend sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hookflash.calendar import caldav, ews, exchange, ical
from hookflash.calendar.event import (
    BackendSettings,
    BusyState,
    CalendarError,
    CalendarEvent,
    calendar_types,
)
from tests.integration.calendar_servers import Radicale, free_tcp_port

DATA = Path(__file__).parent.parent / "data"
NOW = datetime.now(UTC).replace(microsecond=0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def vevent(uid: str, start: datetime, summary: str, extra: str = "", hours: int = 1) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20200101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{start + timedelta(hours=hours):%Y%m%dT%H%M%SZ}\r\nSUMMARY:{summary}\r\n"
            f"{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


# =========================================================================== CalDAV / Radicale
@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    with Radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


_counter = iter(range(10_000))


@pytest.fixture
def collection(radicale: Radicale) -> str:
    return radicale.make_calendar(f"cal{next(_counter)}")


def backend(url: str, user: str = "alice", secret: str = "alicepw", **options: str) -> caldav.CalDavBackend:
    return caldav.CalDavBackend(BackendSettings("work", url, user, secret, options))


def test_caldav_fetches_single_and_recurring_events(radicale: Radicale, collection: str) -> None:
    start = NOW + timedelta(hours=1)
    radicale.put(collection, "one.ics", vevent("one@test", start, "Dentist",
                                               "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\n"))
    radicale.put(collection, "daily.ics", vevent("daily@test", NOW - timedelta(days=10, minutes=30), "Standup",
                                                 "RRULE:FREQ=DAILY\r\nEXDATE:" +
                                                 f"{NOW - timedelta(minutes=30) + timedelta(days=1):%Y%m%dT%H%M%SZ}\r\n"))
    radicale.put(collection, "later.ics", vevent("later@test", NOW + timedelta(days=30), "Far away"))

    async def go() -> list[CalendarEvent]:
        b = backend(collection)
        try:
            return await b.fetch(NOW, NOW + timedelta(days=3))
        finally:
            await b.close()

    events = run(go())
    got = [(e.uid, e.start, e.summary) for e in events]
    first = NOW - timedelta(minutes=30)  # started half an hour ago, still running
    assert got == [("daily@test", first, "Standup"),
                   ("one@test", start, "Dentist"),
                   # the day after is excluded by EXDATE
                   ("daily@test", first + timedelta(days=2), "Standup"),
                   ("daily@test", first + timedelta(days=3), "Standup")]
    assert events[1].alarm == start - timedelta(minutes=10)
    assert events[0].recurrence_id and events[1].recurrence_id == ""


def test_caldav_answers_are_parsed_off_the_event_loop(radicale: Radicale, collection: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every multistatus answer (up to max_size bytes) is parsed in a worker thread:
    the sync-token PROPFIND, the calendar-query and the sync-collection REPORTs."""
    radicale.put(collection, "one.ics", vevent("one@test", NOW + timedelta(hours=1), "Dentist"))
    on_loop: list[tuple[str, bool]] = []
    original = caldav.CalDavBackend._multistatus

    def spy(self: caldav.CalDavBackend, method: str, body: bytes) -> Any:
        on_loop.append((method, threading.current_thread() is threading.main_thread()))
        return original(self, method, body)
    monkeypatch.setattr(caldav.CalDavBackend, "_multistatus", spy)

    async def go() -> None:
        b = backend(collection)
        try:
            await b.fetch(NOW, NOW + timedelta(days=1))
            await b.fetch(NOW, NOW + timedelta(days=1))  # incremental: sync-collection
        finally:
            await b.close()
    run(go())
    assert {m for m, _ in on_loop} >= {"PROPFIND", "REPORT"}
    assert not any(main for _, main in on_loop), on_loop


def test_caldav_sync_collection_picks_up_added_changed_and_deleted(radicale: Radicale, collection: str) -> None:
    for name in ("a", "b", "c"):
        radicale.put(collection, f"{name}.ics", vevent(f"{name}@test", NOW + timedelta(hours=2), f"event {name}"))
    filler = "DESCRIPTION:" + "x" * 2000 + "\r\n"
    for i in range(20):  # unchanged events that a sync refresh should not fetch again
        radicale.put(collection, f"f{i}.ics", vevent(f"f{i}@test", NOW + timedelta(hours=5), "filler", filler))

    async def go() -> None:
        b = backend(collection)
        try:
            first = await b.fetch(NOW, NOW + timedelta(hours=12))
            assert b.last_refresh == "full" and b.sync_supported is True
            assert len(first) == 23
            full_bytes = b.bytes_fetched

            radicale.put(collection, "d.ics", vevent("d@test", NOW + timedelta(hours=3), "added"))
            radicale.put(collection, "b.ics", vevent("b@test", NOW + timedelta(hours=4), "changed"))
            radicale.delete(collection, "c.ics")
            second = await b.fetch(NOW, NOW + timedelta(hours=12))
            assert b.last_refresh == "sync"
            by_uid = {e.uid: e for e in second}
            assert "c@test" not in by_uid
            assert by_uid["d@test"].summary == "added"
            assert (by_uid["b@test"].summary, by_uid["b@test"].start) == ("changed", NOW + timedelta(hours=4))
            assert by_uid["a@test"].summary == "event a" and len(second) == 23
            sync_bytes = b.bytes_fetched - full_bytes
            assert sync_bytes < full_bytes / 4, (sync_bytes, full_bytes)

            third = await b.fetch(NOW, NOW + timedelta(hours=12))  # nothing changed
            assert b.last_refresh == "sync" and [e.key for e in third] == [e.key for e in second]
        finally:
            await b.close()

    run(go())


def test_caldav_refused_sync_token_falls_back_to_full_refresh(radicale: Radicale, collection: str) -> None:
    radicale.put(collection, "a.ics", vevent("a@test", NOW + timedelta(hours=2), "a"))

    async def go() -> None:
        b = backend(collection)
        try:
            await b.fetch(NOW, NOW + timedelta(hours=12))
            b._token = "http://radicale.org/ns/sync/" + "0" * 64  # a token the server never issued
            radicale.put(collection, "b.ics", vevent("b@test", NOW + timedelta(hours=2), "b"))
            events = await b.fetch(NOW, NOW + timedelta(hours=12))
            assert b.last_refresh == "full"
            assert sorted(e.uid for e in events) == ["a@test", "b@test"]
        finally:
            await b.close()

    run(go())


def test_caldav_window_moving_past_what_was_covered_refreshes_in_full(radicale: Radicale, collection: str) -> None:
    radicale.put(collection, "far.ics", vevent("far@test", NOW + timedelta(days=5), "far"))

    async def go() -> None:
        b = backend(collection)
        try:
            assert await b.fetch(NOW, NOW + timedelta(hours=1)) == []
            events = await b.fetch(NOW + timedelta(days=4, hours=23), NOW + timedelta(days=5, hours=1))
            assert b.last_refresh == "full" and [e.uid for e in events] == ["far@test"]
        finally:
            await b.close()

    run(go())


def test_caldav_write_stores_the_event(radicale: Radicale, collection: str) -> None:
    event = CalendarEvent(uid="call-1@pbx", start=NOW, end=NOW + timedelta(minutes=3),
                          summary="Call from 1001", description="billsec: 42", busy_state=BusyState.BUSY)

    async def go() -> list[CalendarEvent]:
        b = backend(collection)
        try:
            await b.write(event)
            return await b.fetch(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
        finally:
            await b.close()

    events = run(go())
    stored = radicale.get(collection, "call-1@pbx.ics")
    assert stored.status_code == 200 and "SUMMARY:Call from 1001" in stored.text
    assert [(e.uid, e.summary, e.description, e.start, e.end) for e in events] == [
        ("call-1@pbx", "Call from 1001", "billsec: 42", event.start, event.end)]


def test_caldav_refused_write_raises(radicale: Radicale, collection: str) -> None:
    event = CalendarEvent(uid="x", start=NOW, end=NOW + timedelta(minutes=1), summary="x")

    async def write(b: caldav.CalDavBackend) -> None:
        try:
            await b.write(event)
        finally:
            await b.close()

    # bob may read alice's calendars but not write them (rights: owner_write)
    with pytest.raises(CalendarError, match="HTTP 403"):
        run(write(backend(collection, "bob", "bobpw")))
    # a collection that does not exist
    with pytest.raises(CalendarError, match=r"PUT .*/alice/nosuch/sub/x\.ics: HTTP 4[0-9][0-9]"):
        run(write(backend(f"{radicale.base}/alice/nosuch/sub/")))
    assert radicale.get(collection, "x.ics").status_code == 404


def test_caldav_basic_auth_wrong_password_is_a_clear_error(radicale: Radicale, collection: str) -> None:
    async def go() -> None:
        b = backend(collection, secret="wrong")
        try:
            await b.fetch(NOW, NOW + timedelta(hours=1))
        finally:
            await b.close()

    with pytest.raises(CalendarError) as info:
        run(go())
    text = str(info.value)
    assert "calendar 'work'" in text and "HTTP 401" in text and "wrong" not in text


def test_caldav_server_down_is_a_clear_error() -> None:
    async def go() -> None:
        b = backend(f"http://127.0.0.1:{free_tcp_port()}/alice/cal/")
        try:
            await b.fetch(NOW, NOW + timedelta(hours=1))
        finally:
            await b.close()

    with pytest.raises(CalendarError, match="connection refused"):
        run(go())


# =========================================================================== a scriptable HTTP server
@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    """A local HTTP(S) server whose answers a test sets; it records every request."""

    answer: Callable[[Seen], tuple[int, dict[str, str], bytes]]
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length))
                outer.seen.append(seen)
                status, headers, body = outer.answer(seen)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_REPORT = do_SEARCH = do_PROPPATCH = do_PROPFIND = handle_one

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that give up (the timeout tests) reset their connections

        self.server = Server(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(answer: Callable[[Seen], tuple[int, dict[str, str], bytes]], **kw: Any) -> Scripted:
        servers.append(Scripted(answer, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


ICS = vevent("ics-1@test", NOW + timedelta(hours=1), "From ics") .encode()


def ical_backend(url: str, tmp: Path | None = None, user: str = "", secret: str = "", **options: str) -> ical.ICalBackend:
    filename = str((tmp or Path("/nonexistent")) / "calendar.conf")
    return ical.ICalBackend(BackendSettings("feed", url, user, secret, options, filename))


def fetch_once(b: Any, start: datetime = NOW, end: datetime = NOW + timedelta(hours=3)) -> list[CalendarEvent]:
    async def go() -> list[CalendarEvent]:
        try:
            return await b.fetch(start, end)  # type: ignore[no-any-return]
        finally:
            await b.close()
    return run(go())  # type: ignore[no-any-return]


# =========================================================================== ical
def test_ical_over_http_with_etag_revalidation(scripted: Callable[..., Scripted]) -> None:
    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("if-none-match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {"Content-Type": "text/calendar", "ETag": '"v1"'}, ICS

    srv = scripted(answer)
    b = ical_backend(srv.url("/feed.ics"))

    async def go() -> tuple[list[CalendarEvent], list[CalendarEvent]]:
        try:
            return await b.fetch(NOW, NOW + timedelta(hours=3)), await b.fetch(NOW, NOW + timedelta(hours=3))
        finally:
            await b.close()

    first, second = run(go())
    assert [e.summary for e in first] == ["From ics"] and [e.key for e in second] == [e.key for e in first]
    assert [r.headers.get("if-none-match") for r in srv.seen] == [None, '"v1"']
    assert b.bytes_fetched == len(ICS)


def test_ical_from_file_path_relative_path_and_file_url(tmp_path: Path) -> None:
    (tmp_path / "team.ics").write_bytes(ICS)
    for url in (str(tmp_path / "team.ics"), f"file://{tmp_path / 'team.ics'}", "team.ics"):
        events = fetch_once(ical_backend(url, tmp_path))
        assert [e.uid for e in events] == ["ics-1@test"], url
    with pytest.raises(CalendarError, match="cannot read .*missing.ics"):
        fetch_once(ical_backend(str(tmp_path / "missing.ics"), tmp_path))
    b = ical_backend(str(tmp_path / "team.ics"), tmp_path)
    with pytest.raises(CalendarError, match="read-only"):
        run(b.write(CalendarEvent(uid="x", start=NOW, end=NOW)))


def test_ical_garbage_with_200_and_oversize_answers_are_errors(scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda req: (200, {"Content-Type": "text/html"}, b"<html>Please log in</html>"))
    with pytest.raises(CalendarError, match="calendar 'feed': not iCalendar data"):
        fetch_once(ical_backend(srv.url("/x.ics")))
    big = scripted(lambda req: (200, {}, b"BEGIN:VCALENDAR\r\n" + b"X-PAD:" + b"x" * 300_000 + b"\r\n"))
    with pytest.raises(CalendarError, match="exceeds max_size"):
        fetch_once(ical_backend(big.url("/big.ics"), max_size="100K"))


def _digest_answer(user: str, password: str, body: bytes) -> Callable[[Seen], tuple[int, dict[str, str], bytes]]:
    realm, nonce = "hookflash-test", "dcd98b7102dd2f0e8b11d0f600bfb0c093"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Digest "):
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[7:]))
            ha1 = md5(f"{user}:{realm}:{password}")
            ha2 = md5(f"{req.method}:{fields.get('uri')}")
            expected = md5(f"{ha1}:{nonce}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
            if fields.get("username") == user and fields.get("response") == expected:
                return 200, {"Content-Type": "text/calendar"}, body
        return 401, {"WWW-Authenticate": f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm=MD5'}, b""

    return answer


def test_ical_digest_auth(scripted: Callable[..., Scripted]) -> None:
    srv = scripted(_digest_answer("carol", "s3cret", ICS))
    assert [e.uid for e in fetch_once(ical_backend(srv.url("/d.ics"), user="carol", secret="s3cret"))] == ["ics-1@test"]
    assert srv.seen[0].headers.get("authorization") is None  # credentials only after the challenge
    with pytest.raises(CalendarError, match="HTTP 401"):
        fetch_once(ical_backend(srv.url("/d.ics"), user="carol", secret="nope"))


def test_bearer_token_from_file_is_reread_after_401(scripted: Callable[..., Scripted], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token\n")

    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("authorization") == "Bearer new-token":
            return 200, {}, ICS
        token_file.write_text("new-token\n")  # as a token refresher would
        return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b""

    srv = scripted(answer)
    events = fetch_once(ical_backend(srv.url("/g.ics"), oauth_token_file=str(token_file)))
    assert [e.uid for e in events] == ["ics-1@test"]
    assert [r.headers.get("authorization") for r in srv.seen] == ["Bearer old-token", "Bearer new-token"]
    srv2 = scripted(lambda req: (200 if req.headers.get("authorization") == "Bearer abc.def" else 401, {}, ICS))
    assert len(fetch_once(ical_backend(srv2.url("/s.ics"), oauth_token="abc.def"))) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_tls_certificates_are_verified_unless_configured(scripted: Callable[..., Scripted],
                                                         certificate: tuple[Path, Path]) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*map(str, certificate))
    srv = scripted(lambda req: (200, {}, ICS), tls=ctx)
    with pytest.raises(CalendarError, match="TLS certificate verification failed"):
        fetch_once(ical_backend(srv.url("/t.ics")))
    assert len(fetch_once(ical_backend(srv.url("/t.ics"), ca_file=str(certificate[0])))) == 1
    assert len(fetch_once(ical_backend(srv.url("/t.ics"), verify_tls="no"))) == 1


def test_slow_server_times_out_without_blocking_the_loop(scripted: Callable[..., Scripted]) -> None:
    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        time.sleep(3)
        return 200, {}, ICS

    srv = scripted(answer)

    async def go() -> tuple[float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        began = time.monotonic()
        b = ical_backend(srv.url("/slow.ics"), timeout="0.5")
        try:
            with pytest.raises(CalendarError, match="0.5 s"):
                await b.fetch(NOW, NOW + timedelta(hours=1))
        finally:
            await b.close()
            task.cancel()
        return time.monotonic() - began, ticks

    elapsed, ticks = run(go())
    assert elapsed < 2.5 and ticks >= 5


def test_bad_options_name_file_line_and_option() -> None:
    for options, words in (({"verify_tls": "maybe"}, "verify_tls = maybe: expected yes or no"),
                           ({"timeout": "-1"}, "timeout = -1"),
                           ({"max_size": "lots"}, "max_size = lots"),
                           ({"timezone": "Mars/Olympus"}, "timezone = Mars/Olympus"),
                           ({"auth": "ntlm"}, "auth = ntlm")):
        with pytest.raises(CalendarError) as info:
            caldav.CalDavBackend(BackendSettings("work", "http://127.0.0.1/x/", options=options,
                                                 filename="/etc/asterisk/calendar.conf", lineno=7))
        assert "/etc/asterisk/calendar.conf line 7: [work]" in str(info.value) and words in str(info.value)


# =========================================================================== hostile CalDAV answers
def test_caldav_garbage_and_xml_bomb_are_errors(scripted: Callable[..., Scripted]) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
            b'<!ENTITY e "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
            b'<d:multistatus xmlns:d="DAV:"><d:response><d:href>&f;</d:href></d:response></d:multistatus>')
    for body, words in ((b"<html>maintenance</html>", "expected a DAV:multistatus"),
                        (b"\x00\x01garbage", "malformed XML"),
                        (bomb, "DTDs and entities are not accepted")):
        srv = scripted(lambda req, body=body: (207, {"Content-Type": "application/xml"}, body))
        began = time.monotonic()
        with pytest.raises(CalendarError, match=words):
            fetch_once(backend(srv.url("/cal/")))
        assert time.monotonic() - began < 5


def test_caldav_ignores_hrefs_on_other_servers_and_bad_resources(scripted: Callable[..., Scripted]) -> None:
    good = vevent("good@test", NOW + timedelta(hours=1), "good")
    body = f"""<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
      <d:response><d:href>/cal/good.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag>
        <c:calendar-data>{good}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
      <d:response><d:href>http://evil.example/cal/evil.ics</d:href><d:propstat><d:prop><d:getetag>"2"</d:getetag>
        <c:calendar-data>{vevent("evil@test", NOW + timedelta(hours=1), "evil")}</c:calendar-data></d:prop>
        <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
      <d:response><d:href>/cal/broken.ics</d:href><d:propstat><d:prop><d:getetag>"3"</d:getetag>
        <c:calendar-data>not a calendar</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
    </d:multistatus>""".encode()

    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.method == "PROPFIND":
            return 207, {}, b'<d:multistatus xmlns:d="DAV:"/>'  # no sync-token: no RFC 6578
        return 207, {"Content-Type": "application/xml"}, body

    srv = scripted(answer)
    b = backend(srv.url("/cal/"))
    assert [e.uid for e in fetch_once(b)] == ["good@test"]
    assert b.sync_supported is False


# =========================================================================== EWS (recorded)
def _ews_answer(create: str = "createitem.xml") -> Callable[[Seen], tuple[int, dict[str, str], bytes]]:
    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        action = req.headers.get("soapaction", "").strip('"').rsplit("/", 1)[-1]
        name = {"FindItem": "finditem.xml", "GetItem": "getitem.xml", "CreateItem": create}[action]
        status = 500 if name == "fault.xml" else 200
        return status, {"Content-Type": "text/xml; charset=utf-8"}, (DATA / "ews" / name).read_bytes()
    return answer


def ews_backend(url: str, **options: str) -> ews.EwsBackend:
    return ews.EwsBackend(BackendSettings("exch", url, "alice", "pw", options))


def test_ews_fetch_maps_calendar_items(scripted: Callable[..., Scripted]) -> None:
    srv = scripted(_ews_answer())
    events = fetch_once(ews_backend(srv.url("/EWS/Exchange.asmx")),
                        datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))
    find, get = srv.seen
    assert b"<m:CalendarView" in find.body and b'StartDate="2030-01-07T00:00:00Z"' in find.body
    assert get.body.count(b"<t:ItemId ") == 4 and b"AllProperties" in get.body
    assert find.headers["soapaction"].endswith('/FindItem"') and get.headers["soapaction"].endswith('/GetItem"')
    by_summary = {e.summary: e for e in events}
    assert list(by_summary) == ["Standup", "Budget review", "Lunch"]  # sorted; cancelled Offsite dropped
    budget = by_summary["Budget review"]
    assert budget.uid == "040000008200E00074C5B7101A82E00800000000A1B2C3D4E5F6"
    assert (budget.start, budget.end) == (datetime(2030, 1, 7, 9, tzinfo=UTC), datetime(2030, 1, 7, 10, tzinfo=UTC))
    assert budget.busy_state == BusyState.BUSY and budget.priority == 1
    assert budget.alarm == datetime(2030, 1, 7, 8, 45, tzinfo=UTC)
    assert budget.description == "Bring the Q3 numbers.\nRoom changed."
    assert budget.categories == "Finance,Red category" and budget.location == "SIP/9001"
    assert budget.organizer == "mailto:alice@example.com"
    assert budget.attendees == ["mailto:bob@example.com", "mailto:carol@example.com"]
    standup = by_summary["Standup"]
    assert standup.busy_state == BusyState.TENTATIVE and standup.priority == 5 and standup.alarm is None
    assert standup.recurrence_id == "20300107T083000Z"
    assert by_summary["Lunch"].busy_state == BusyState.FREE and by_summary["Lunch"].priority == 9
    events = fetch_once(ews_backend(srv.url("/EWS/Exchange.asmx"), reminders="no"),
                        datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))
    assert all(e.alarm is None for e in events)


def test_ews_write_sends_createitem_and_reports_refusals(scripted: Callable[..., Scripted]) -> None:
    event = CalendarEvent(uid="", start=datetime(2030, 1, 7, 9, tzinfo=UTC), end=datetime(2030, 1, 7, 9, 5, tzinfo=UTC),
                          summary="Call <from> 1001 & co", description="billsec: 42", categories="calls,pbx",
                          priority=7, busy_state=BusyState.TENTATIVE, location="Desk")
    async def write(b: ews.EwsBackend) -> None:
        try:
            await b.write(event)
        finally:
            await b.close()

    srv = scripted(_ews_answer())
    run(write(ews_backend(srv.url("/EWS/Exchange.asmx"))))
    body = srv.seen[-1].body.decode()
    assert 'SendMeetingInvitations="SendToNone"' in body
    for fragment in ("<t:Subject>Call &lt;from&gt; 1001 &amp; co</t:Subject>", '<t:Body BodyType="Text">billsec: 42</t:Body>',
                     "<t:String>calls</t:String><t:String>pbx</t:String>", "<t:Importance>Low</t:Importance>",
                     "<t:ReminderIsSet>false</t:ReminderIsSet>", "<t:Start>2030-01-07T09:00:00Z</t:Start>",
                     "<t:End>2030-01-07T09:05:00Z</t:End>", "<t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus>",
                     "<t:Location>Desk</t:Location>"):
        assert fragment in body, fragment
    for refusal, words in (("createitem-error.xml", "ErrorAccessDenied"), ("fault.xml", "SOAP fault")):
        srv = scripted(_ews_answer(refusal))
        with pytest.raises(CalendarError, match=words):
            run(write(ews_backend(srv.url("/EWS/Exchange.asmx"))))


def test_ews_and_exchange_answers_are_parsed_off_the_event_loop(scripted: Callable[..., Scripted],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers of up to max_size (32 MB) are parsed in worker threads, not on the loop
    that carries the calls."""
    on_loop: list[tuple[str, bool]] = []

    def spy(module: Any, name: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            on_loop.append((name, threading.current_thread() is threading.main_thread()))
            return original(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    for module, name in ((ews, "parse_find_item"), (ews, "parse_get_item"), (exchange, "parse_search")):
        spy(module, name)
    srv = scripted(_ews_answer())
    assert fetch_once(ews_backend(srv.url("/EWS/Exchange.asmx")),
                      datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))
    srv = scripted(lambda req: (207, {"Content-Type": "text/xml"}, (DATA / "exchange" / "search.xml").read_bytes()))
    assert fetch_once(exchange.ExchangeBackend(BackendSettings("owa", srv.url("/exchange/alice"), "alice", "pw")),
                      datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 9, tzinfo=UTC))
    assert on_loop == [("parse_find_item", False), ("parse_get_item", False), ("parse_search", False)]


# =========================================================================== Exchange 2003 (recorded)
def test_exchange_fetch_maps_search_results(scripted: Callable[..., Scripted], caplog: pytest.LogCaptureFixture) -> None:
    srv = scripted(lambda req: (207, {"Content-Type": "text/xml"}, (DATA / "exchange" / "search.xml").read_bytes()))
    b = exchange.ExchangeBackend(BackendSettings("owa", srv.url("/exchange/alice"), "alice", "pw"))
    events = fetch_once(b, datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 9, tzinfo=UTC))
    [req] = srv.seen
    assert req.method == "SEARCH" and req.path == "/exchange/alice"
    assert b'SHALLOW TRAVERSAL OF "' + srv.url("/exchange/alice/Calendar").encode() in req.body
    assert b"'2030/01/07 00:00:00'" in req.body and b'NOT "urn:schemas:calendar:instancetype" = 1' in req.body
    assert [(e.summary, e.busy_state) for e in events] == [
        ("Budget review", BusyState.BUSY), ("Lunch", BusyState.FREE), ("Standup", BusyState.TENTATIVE)]
    budget = events[0]
    assert budget.alarm == datetime(2030, 1, 7, 8, 45, tzinfo=UTC) and budget.priority == 1
    assert budget.location == "Room 4" and budget.organizer == '"Alice Boss" <alice@example.com>'
    assert events[2].recurrence_id == "20300108T083000Z" and budget.recurrence_id == ""
    assert "event 'broken-1' skipped" in caplog.text


def test_exchange_write_proppatch_success_only_when_every_property_was_set(scripted: Callable[..., Scripted]) -> None:
    event = CalendarEvent(uid="", start=datetime(2030, 1, 7, 9, tzinfo=UTC), end=datetime(2030, 1, 7, 10, tzinfo=UTC),
                          summary="Call & co", busy_state=BusyState.TENTATIVE)
    ok = scripted(lambda req: (207, {}, (DATA / "exchange" / "proppatch.xml").read_bytes()))
    async def write(b: exchange.ExchangeBackend) -> None:
        try:
            await b.write(event)
        finally:
            await b.close()

    run(write(exchange.ExchangeBackend(BackendSettings("owa", ok.url("/exchange/alice"), "alice", "pw"))))
    [req] = ok.seen
    assert req.method == "PROPPATCH" and re.fullmatch(r"/exchange/alice/Calendar/[0-9a-f-]{36}\.eml", req.path)
    assert re.search(rb'<(\w+):subject>Call &amp; co</\1:subject>', req.body)
    assert b'xmlns:' in req.body and b"urn:schemas:httpmail:" in req.body
    assert b">TENTATIVE<" in req.body and b">2030-01-07T09:00:00.000Z<" in req.body
    refused = scripted(lambda req: (207, {}, (DATA / "exchange" / "proppatch-refused.xml").read_bytes()))
    with pytest.raises(CalendarError, match="refused some properties"):
        run(write(exchange.ExchangeBackend(BackendSettings("owa", refused.url("/exchange/alice"), "alice", "pw"))))
    denied = scripted(lambda req: (403, {}, b""))
    with pytest.raises(CalendarError, match="HTTP 403"):
        run(write(exchange.ExchangeBackend(BackendSettings("owa", denied.url("/exchange/alice"), "alice", "pw"))))


# =========================================================================== modules
@pytest.mark.parametrize("module_cls, type_name, description", [
    (ical.ICalModule, "ical", "iCalendar .ics calendars"),
    (caldav.CalDavModule, "caldav", "CalDAV calendars"),
    (exchange.ExchangeModule, "exchange", "MS Exchange calendars"),
    (ews.EwsModule, "ews", "MS Exchange Web Service calendars"),
])
def test_each_module_registers_its_type_while_loaded(module_cls: Any, type_name: str, description: str) -> None:
    pbx = SimpleNamespace()
    module = module_cls(pbx)
    run(module.start())
    desc, factory = calendar_types(pbx)[type_name]
    assert desc == description and factory.type_name == type_name
    run(module.stop())
    assert type_name not in calendar_types(pbx)
