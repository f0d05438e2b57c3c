"""res_calendar_caldav: ``type = caldav`` (RFC 4791), with sync-collection (RFC 6578).

``url`` is the calendar collection (e.g. ``http://host:5232/alice/calendar/``).

Fetch. A full refresh asks the collection's ``DAV:sync-token`` (PROPFIND, RFC 6578
section 4) and then sends a ``calendar-query`` REPORT (RFC 4791 7.8) with a
``time-range`` over the window *and one more window's length* (at least a day), keeping
each resource's ETag and VCALENDAR. Recurrences are expanded here, from the returned
VCALENDARs (:mod:`hookflash.calendar.ics`), not by the server's ``<C:expand>``, which
servers implement unevenly (overrides, time zones, all-day).
While the window stays inside what the full refresh covered, later refreshes send a
``sync-collection`` REPORT with the token: only changed resources come back (their
ETags), deleted ones as 404; changed ones are fetched with ``calendar-multiget``
(RFC 4791 7.9). A token the server refuses (403/409/...) means one full refresh; a
server without sync tokens is always refreshed in full.

Write. ``PUT {url}/{uid}.ics`` of one VCALENDAR (:func:`ics.to_ical`); success only
on a 2xx answer.

The protocol part (request bodies, multistatus parsing) is pure; :class:`CalDavBackend`
does the I/O through :class:`hookflash.calendar.http.HttpClient`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urljoin, urlsplit

import icalendar

from hookflash.calendar import ics
from hookflash.calendar.event import (
    BackendSettings,
    CalendarError,
    CalendarEvent,
    calendar_types,
)
from hookflash.calendar.http import (
    HttpClient,
    XmlError,
    parse_xml,
    safe_url,
    settings_from,
    with_scheme,
    xml_bytes,
)
from hookflash.engine.modules import Module

log = logging.getLogger("hookflash.calendar.caldav")

TYPE = "caldav"
DESCRIPTION = "CalDAV calendars"

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
ET.register_namespace("D", DAV)
ET.register_namespace("C", CALDAV)

MULTIGET_BATCH = 200
MAX_SYNC_ROUNDS = 20


# --------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class DavResponse:
    """One ``DAV:response`` of a multistatus (RFC 4918 14.24)."""

    href: str
    status: int  # of the resource (404 = deleted in a sync report), or of its props
    etag: str = ""
    calendar_data: str | None = None
    sync_token: str = ""  # a DAV:sync-token property (PROPFIND)


@dataclass(frozen=True)
class Multistatus:
    responses: list[DavResponse]
    sync_token: str = ""  # the report's new token (sync-collection)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def utc_stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def propfind_sync_token() -> bytes:
    root = ET.Element(_q(DAV, "propfind"))
    prop = ET.SubElement(root, _q(DAV, "prop"))
    ET.SubElement(prop, _q(DAV, "sync-token"))
    return xml_bytes(root)


def calendar_query(start: datetime, end: datetime) -> bytes:
    """RFC 4791 7.8: VEVENTs overlapping [start, end], with ETag and data."""
    root = ET.Element(_q(CALDAV, "calendar-query"))
    prop = ET.SubElement(root, _q(DAV, "prop"))
    ET.SubElement(prop, _q(DAV, "getetag"))
    ET.SubElement(prop, _q(CALDAV, "calendar-data"))
    filt = ET.SubElement(root, _q(CALDAV, "filter"))
    vcal = ET.SubElement(filt, _q(CALDAV, "comp-filter"), name="VCALENDAR")
    vevent = ET.SubElement(vcal, _q(CALDAV, "comp-filter"), name="VEVENT")
    ET.SubElement(vevent, _q(CALDAV, "time-range"), start=utc_stamp(start), end=utc_stamp(end))
    return xml_bytes(root)


def sync_collection(token: str) -> bytes:
    """RFC 6578 3.2: what changed since ``token`` (ETags only)."""
    root = ET.Element(_q(DAV, "sync-collection"))
    ET.SubElement(root, _q(DAV, "sync-token")).text = token
    ET.SubElement(root, _q(DAV, "sync-level")).text = "1"
    prop = ET.SubElement(root, _q(DAV, "prop"))
    ET.SubElement(prop, _q(DAV, "getetag"))
    return xml_bytes(root)


def calendar_multiget(hrefs: Iterable[str]) -> bytes:
    """RFC 4791 7.9: these resources' ETags and data."""
    root = ET.Element(_q(CALDAV, "calendar-multiget"))
    prop = ET.SubElement(root, _q(DAV, "prop"))
    ET.SubElement(prop, _q(DAV, "getetag"))
    ET.SubElement(prop, _q(CALDAV, "calendar-data"))
    for href in hrefs:
        ET.SubElement(root, _q(DAV, "href")).text = href
    return xml_bytes(root)


def _status(text: str | None) -> int:
    """``HTTP/1.1 404 Not Found`` -> 404 (0 when unreadable)."""
    parts = (text or "").split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def parse_multistatus(body: bytes) -> Multistatus:
    """A 207 body (RFC 4918 13): raises XmlError if it is not a DAV:multistatus."""
    root = parse_xml(body)
    if root.tag != _q(DAV, "multistatus"):
        raise XmlError(f"expected a DAV:multistatus, got <{_local(root.tag)}>")
    responses = []
    for resp in root.findall(_q(DAV, "response")):
        href = (resp.findtext(_q(DAV, "href")) or "").strip()
        if not href:
            continue
        status = _status(resp.findtext(_q(DAV, "status")))
        etag, data, token = "", None, ""
        for propstat in resp.findall(_q(DAV, "propstat")):
            ps_status = _status(propstat.findtext(_q(DAV, "status")))
            prop = propstat.find(_q(DAV, "prop"))
            if prop is None or not 200 <= ps_status < 300:
                continue
            status = status or ps_status
            etag = (prop.findtext(_q(DAV, "getetag")) or etag).strip()
            found = prop.find(_q(CALDAV, "calendar-data"))
            if found is not None and found.text:
                data = found.text
            token = (prop.findtext(_q(DAV, "sync-token")) or token).strip()
        if not status:
            status = 404 if data is None and not etag and not token else 200
        responses.append(DavResponse(href, status, etag, data, token))
    return Multistatus(responses, (root.findtext(_q(DAV, "sync-token")) or "").strip())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1][:40]


# --------------------------------------------------------------------------- backend
@dataclass
class _Item:
    href: str  # as the server spells it, for multiget
    etag: str
    calendars: list[icalendar.Component]


class CalDavBackend:
    type_name = TYPE
    description = DESCRIPTION
    can_write = True

    def __init__(self, settings: BackendSettings) -> None:
        self.name = settings.name
        if not settings.url.strip():
            raise CalendarError(f"{settings.filename}: [{settings.name}] url: required")
        self.url = with_scheme(settings.url.strip())
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise CalendarError(f"{settings.filename}: [{settings.name}] url = {safe_url(self.url)}: "
                                "expected an http:// or https:// calendar collection URL")
        self.zone = ics.zone_from(settings)
        self.http_settings = settings_from(settings)
        self.limits = ics.Limits(max_bytes=self.http_settings.max_size)
        self.http = HttpClient(self.http_settings)
        self._origin = (parts.scheme.lower(), parts.hostname, parts.port)
        self._collection = unquote(parts.path.rstrip("/"))
        self._items: dict[str, _Item] = {}
        self._token = ""
        self._covered_end: datetime | None = None
        self.sync_supported: bool | None = None  # unknown until the first full refresh
        self.bytes_fetched = 0
        self.last_refresh = ""  # "full" or "sync", for tests and the bench

    # ---- fetch
    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        if self._token and self._covered_end is not None and end <= self._covered_end:
            try:
                await self._sync()
                self.last_refresh = "sync"
            except _TokenRefused as exc:
                log.info("calendar '%s': sync token not accepted (%s); full refresh", self.name, exc)
                await self._full(start, end)
        else:
            await self._full(start, end)
        calendars = [c for item in self._items.values() for c in item.calendars]
        return await asyncio.to_thread(ics.expand, calendars, start, end, calendar=self.name,
                                       zone=self.zone, limits=self.limits)

    async def _report(self, body: bytes, depth: str, method: str = "REPORT") -> tuple[int, bytes]:
        resp = await self.http.request(method, self.url, content=body, headers={
            "Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
        self.bytes_fetched += len(resp.body)
        return resp.status, resp.body

    def _multistatus(self, method: str, body: bytes) -> Multistatus:
        try:
            return parse_multistatus(body)
        except XmlError as exc:
            raise self.http.error(method, self.url, f"unusable answer: {exc}") from None

    async def _full(self, start: datetime, end: datetime) -> None:
        token = ""
        if self.sync_supported is not False:
            token = await self._sync_token()
        horizon = max(end - start, timedelta(days=1))
        status, body = await self._report(calendar_query(start, end + horizon), "1")
        if status != 207:
            raise self._status_error("REPORT calendar-query", status)
        self._items = await asyncio.to_thread(self._parse_items, body)
        self._token = token
        self._covered_end = end + horizon
        self.last_refresh = "full"

    async def _sync_token(self) -> str:
        status, body = await self._report(propfind_sync_token(), "0", method="PROPFIND")
        if status != 207:
            if status in (401, 404):
                raise self._status_error("PROPFIND", status)
            self.sync_supported = False
            return ""
        ms = await asyncio.to_thread(self._multistatus, "PROPFIND", body)  # up to max_size: off the loop
        token = next((r.sync_token for r in ms.responses if r.sync_token), "")
        self.sync_supported = bool(token)
        return token

    async def _sync(self) -> None:
        changed: dict[str, str] = {}  # key -> href as sent by the server
        token = self._token
        for _ in range(MAX_SYNC_ROUNDS):
            status, body = await self._report(sync_collection(token), "0")
            if status in (400, 403, 409, 412, 500) or (status == 207 and not body.strip()):
                raise _TokenRefused(f"HTTP {status}")
            if status in (404, 405, 501):
                self.sync_supported = False
                raise _TokenRefused(f"HTTP {status}: sync-collection not supported")
            if status != 207:
                raise self._status_error("REPORT sync-collection", status)
            ms = await asyncio.to_thread(self._multistatus, "REPORT", body)
            truncated = False
            for resp in ms.responses:
                key = self._key(resp.href)
                if key is None:
                    continue
                if key == self._collection:
                    truncated = truncated or resp.status == 507  # RFC 6578 3.6
                    continue
                if resp.status == 404:
                    self._items.pop(key, None)
                    changed.pop(key, None)
                elif 200 <= resp.status < 300:
                    old = self._items.get(key)
                    if old is None or not resp.etag or old.etag != resp.etag:
                        changed[key] = resp.href
            if not ms.sync_token:
                raise _TokenRefused("answer without a new sync-token")
            token = ms.sync_token
            if not truncated:
                break
        hrefs = list(changed.values())
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            await self._multiget(hrefs[i:i + MULTIGET_BATCH])
        self._token = token

    async def _multiget(self, hrefs: list[str]) -> None:
        status, body = await self._report(calendar_multiget(hrefs), "1")
        if status != 207:
            raise self._status_error("REPORT calendar-multiget", status)
        ms = await asyncio.to_thread(self._multistatus, "REPORT", body)
        for resp in ms.responses:
            key = self._key(resp.href)
            if key is not None and resp.status == 404:
                self._items.pop(key, None)
        self._items.update(await asyncio.to_thread(self._parse_items, body))

    def _parse_items(self, body: bytes) -> dict[str, _Item]:
        """A calendar-query answer as resources (worker thread: XML and iCalendar parsing)."""
        items: dict[str, _Item] = {}
        for resp in self._multistatus("REPORT", body).responses:
            key = self._key(resp.href)
            if key is None or resp.calendar_data is None or resp.status != 200:
                continue
            item = self._item(resp)
            if item is not None:
                items[key] = item
        return items

    def _item(self, resp: DavResponse) -> _Item | None:
        try:
            calendars = ics.parse(resp.calendar_data or "", self.name, self.limits)
        except CalendarError as exc:
            log.warning("calendar '%s': resource %s skipped: %s", self.name, ics._short(resp.href), exc)
            return None
        return _Item(resp.href, resp.etag, calendars)

    def _key(self, href: str) -> str | None:
        """The resource's path, or None (with a warning) for an href on another server."""
        absolute = urlsplit(urljoin(self.url, href))
        if (absolute.scheme.lower(), absolute.hostname, absolute.port) != self._origin:
            log.warning("calendar '%s': ignoring href on another server: %s", self.name,
                        ics._short(safe_url(href)))
            return None
        return unquote(absolute.path).rstrip("/")

    def _status_error(self, what: str, status: int) -> CalendarError:
        return self.http.status_error(what, self.url, status)

    # ---- write
    def resource_url(self, uid: str) -> str:
        return self.url.rstrip("/") + "/" + quote(uid, safe="@-_.~") + ".ics"

    async def write(self, event: CalendarEvent, now: datetime | None = None) -> None:
        uid = event.uid or ics.new_uid()
        event = dataclasses.replace(event, uid=uid)
        text = ics.to_ical(event, now or datetime.now(UTC))
        url = self.resource_url(uid)
        resp = await self.http.request("PUT", url, content=text.encode("utf-8"), headers={
            "Content-Type": "text/calendar; charset=utf-8"})
        if not resp.ok:
            raise self.http.status_error("PUT", url, resp.status)

    async def close(self) -> None:
        await self.http.close()


class _TokenRefused(Exception):
    pass


class CalDavModule(Module):
    description = "hookflash CalDAV calendar support"

    async def start(self) -> None:
        calendar_types(self.pbx)[TYPE] = (DESCRIPTION, CalDavBackend)

    async def stop(self) -> None:
        calendar_types(self.pbx).pop(TYPE, None)
