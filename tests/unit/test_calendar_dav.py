"""The CalDAV / RFC 6578 protocol core of hookflash.calendar.caldav: bodies and multistatus parsing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from hookflash.calendar import caldav
from hookflash.calendar.http import XmlError, parse_size, safe_url

SYNC_ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<multistatus xmlns="DAV:">
  <response><href>/alice/cal/new.ics</href>
    <propstat><prop><getetag>"e1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
  <response><href>/alice/cal/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
  <response><href>/alice/cal/</href><status>HTTP/1.1 507 Insufficient Storage</status></response>
  <sync-token>http://radicale.org/ns/sync/abc</sync-token>
</multistatus>"""


def test_sync_collection_answer() -> None:
    ms = caldav.parse_multistatus(SYNC_ANSWER)
    assert ms.sync_token == "http://radicale.org/ns/sync/abc"
    assert [(r.href, r.status, r.etag) for r in ms.responses] == [
        ("/alice/cal/new.ics", 200, '"e1"'), ("/alice/cal/gone.ics", 404, ""), ("/alice/cal/", 507, "")]


def test_calendar_data_and_failed_propstat() -> None:
    body = b"""<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
      <d:response><d:href>/c/a.ics</d:href>
        <d:propstat><d:prop><d:getetag>"1"</d:getetag><c:calendar-data>BEGIN:VCALENDAR</c:calendar-data></d:prop>
          <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
        <d:propstat><d:prop><d:sync-token/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
      </d:response></d:multistatus>"""
    [resp] = caldav.parse_multistatus(body).responses
    assert (resp.status, resp.etag, resp.calendar_data, resp.sync_token) == (200, '"1"', "BEGIN:VCALENDAR", "")


@pytest.mark.parametrize("body", [b"", b"<html/>", b"<a><b></a>",
                                  b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'])
def test_unusable_answers_raise_xml_error(body: bytes) -> None:
    with pytest.raises(XmlError):
        caldav.parse_multistatus(body)


def test_request_bodies() -> None:
    q = ET.fromstring(caldav.calendar_query(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, 12, tzinfo=UTC)))
    tr = q.find(".//{urn:ietf:params:xml:ns:caldav}time-range")
    assert tr is not None and (tr.get("start"), tr.get("end")) == ("20300101T000000Z", "20300102T120000Z")
    s = ET.fromstring(caldav.sync_collection("tok<&>"))
    assert s.findtext("{DAV:}sync-token") == "tok<&>" and s.findtext("{DAV:}sync-level") == "1"
    m = ET.fromstring(caldav.calendar_multiget(["/a/1.ics", "/a/2.ics"]))
    assert [h.text for h in m.findall("{DAV:}href")] == ["/a/1.ics", "/a/2.ics"]


def test_resource_url_quotes_hostile_uids() -> None:
    from hookflash.calendar.event import BackendSettings
    b = caldav.CalDavBackend(BackendSettings("c", "http://127.0.0.1:1/alice/cal/"))
    assert b.resource_url("a b/../../x?y#z@pbx") == "http://127.0.0.1:1/alice/cal/a%20b%2F..%2F..%2Fx%3Fy%23z@pbx.ics"


def test_helpers() -> None:
    assert parse_size("512K") == 524288 and parse_size("32M") == 32 * 1024 * 1024 and parse_size("100") == 100
    assert safe_url("https://bob:secret@host:8443/cal/?x=1") == "https://host:8443/cal/?x=1"
