"""res_calendar_exchange: ``type = exchange``, Exchange 2003 WebDAV (OWA).

``url`` is the mailbox's OWA URL (``http://host/exchange/user``); the calendar is its
``Calendar`` folder, as in Asterisk.

* fetch: ``SEARCH`` with an Exchange SQL query over ``urn:schemas:calendar:*`` for
  appointments overlapping the window, recurring masters excluded (Exchange returns the
  expanded instances). ``busystatus`` FREE -> free, TENTATIVE -> tentative, anything
  else busy; the alarm is ``dtstart - reminderoffset`` seconds; ``importance`` 0/1/2
  -> priority 9/5/1; instances carry their ``recurrenceid``; ``meetingstatus``
  CANCELLED drops an appointment.
* write: ``PROPPATCH`` of ``{url}/Calendar/{uid}.eml``; success only when the server
  answers 2xx and every property was set (Asterisk reports success whatever the answer).

No Exchange 2003 server can run in tests: they use a local HTTP server answering with
recorded WebDAV responses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from hookflash.calendar import ics
from hookflash.calendar.caldav import _status
from hookflash.calendar.event import (
    BackendSettings,
    BusyState,
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

log = logging.getLogger("hookflash.calendar.exchange")

TYPE = "exchange"
DESCRIPTION = "MS Exchange calendars"

DAV = "DAV:"
CAL = "urn:schemas:calendar:"
MAIL = "urn:schemas:httpmail:"
HEADER = "urn:schemas:mailheader:"
EXCH = "http://schemas.microsoft.com/exchange/"
MAPI = "http://schemas.microsoft.com/mapi/"
DT = "urn:uuid:c2f41010-65b3-11d1-a29f-00aa00c14882/"  # Exchange's data-type namespace

_FIELDS = [f"{CAL}uid", f"{CAL}recurrenceid", f"{MAIL}subject", f"{MAIL}textdescription",
           f"{CAL}location", f"{CAL}organizer", f"{CAL}dtstart", f"{CAL}dtend",
           f"{CAL}busystatus", f"{CAL}reminderoffset", f"{CAL}instancetype",
           f"{CAL}meetingstatus", f"{CAL}alldayevent", f"{MAIL}importance"]


def _sql_literal(text: str) -> str:
    return text.replace("'", "''").replace('"', '""')


def search_body(folder_url: str, start: datetime, end: datetime) -> bytes:
    """Exchange SQL (SEARCH, [MS-XWDSEARCH]) for appointments overlapping [start, end]."""
    fmt = "%Y/%m/%d %H:%M:%S"
    s = start.astimezone(UTC).strftime(fmt)
    e = end.astimezone(UTC).strftime(fmt)
    sql = (f'SELECT {", ".join(chr(34) + f + chr(34) for f in _FIELDS)} '
           f"FROM Scope('SHALLOW TRAVERSAL OF \"{_sql_literal(folder_url)}\"') "
           f'WHERE NOT "{CAL}instancetype" = 1 '
           f"AND \"DAV:contentclass\" = 'urn:content-classes:appointment' "
           f"AND NOT (\"{CAL}dtend\" < '{s}' OR \"{CAL}dtstart\" > '{e}') "
           f'ORDER BY "{CAL}dtstart" ASC')
    root = ET.Element(f"{{{DAV}}}searchrequest")
    ET.SubElement(root, f"{{{DAV}}}sql").text = sql
    return xml_bytes(root)


def exchange_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def proppatch_body(event: CalendarEvent) -> bytes:
    root = ET.Element(f"{{{DAV}}}propertyupdate")
    prop = ET.SubElement(ET.SubElement(root, f"{{{DAV}}}set"), f"{{{DAV}}}prop")

    def add(ns: str, name: str, text: str, dtype: str = "") -> None:
        el = ET.SubElement(prop, f"{{{ns}}}{name}")
        el.text = text
        if dtype:
            el.set(f"{{{DT}}}dt", dtype)

    add(DAV, "contentclass", "urn:content-classes:appointment")
    add(EXCH, "outlookmessageclass", "IPM.Appointment")
    add(CAL, "uid", event.uid)
    if event.summary:
        add(MAIL, "subject", event.summary)
    if event.description:
        add(MAIL, "textdescription", event.description)
    if event.organizer:
        add(HEADER, "to", event.organizer)
    if event.location:
        add(CAL, "location", event.location)
    add(CAL, "dtstart", exchange_time(event.start), "dateTime.tz")
    add(CAL, "dtend", exchange_time(max(event.end, event.start)), "dateTime.tz")
    add(CAL, "instancetype", "0", "int")
    add(CAL, "busystatus", {BusyState.BUSY: "BUSY", BusyState.TENTATIVE: "TENTATIVE"}.get(
        event.busy_state, "FREE"))
    add(CAL, "meetingstatus", "CONFIRMED")
    add(CAL, "alldayevent", "1" if event.all_day else "0", "boolean")
    add(CAL, "responserequested", "0", "boolean")
    if event.priority > 0:
        add(MAIL, "importance", "2" if event.priority <= 4 else "1" if event.priority == 5 else "0", "int")
    return xml_bytes(root)


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_search(data: bytes, limits: ics.Limits = ics.DEFAULT_LIMITS,
                 calendar: str = "") -> list[CalendarEvent]:
    root = parse_xml(data)
    if root.tag != f"{{{DAV}}}multistatus":
        raise XmlError("expected a DAV:multistatus")
    events = []
    for resp in root.iterfind(f"{{{DAV}}}response"):
        props: dict[str, str] = {}
        for propstat in resp.iterfind(f"{{{DAV}}}propstat"):
            if not 200 <= _status(propstat.findtext(f"{{{DAV}}}status")) < 300:
                continue
            prop = propstat.find(f"{{{DAV}}}prop")
            for el in prop if prop is not None else ():
                props[el.tag.rsplit("}", 1)[-1].lower()] = (el.text or "").strip()
        href = (resp.findtext(f"{{{DAV}}}href") or "").strip()
        ev = _event(props, href, limits, calendar)
        if ev is not None:
            events.append(ev)
    return events


def _event(props: dict[str, str], href: str, limits: ics.Limits, calendar: str) -> CalendarEvent | None:
    uid = ics._clean(props.get("uid", "") or href, limits.max_text)
    if props.get("meetingstatus", "").upper() == "CANCELLED":
        return None
    try:
        start = _time(props["dtstart"])
        end = _time(props.get("dtend") or props["dtstart"])
    except (KeyError, ValueError):
        log.warning("calendar '%s': event '%s' skipped: bad or missing dtstart/dtend",
                    calendar, ics._short(uid))
        return None
    alarm = None
    offset = props.get("reminderoffset", "")
    if re.fullmatch(r"-?\d{1,9}", offset):
        alarm = start - timedelta(seconds=int(offset))
    rid = ""
    if props.get("instancetype") in ("2", "3"):
        try:
            rid = _time(props.get("recurrenceid") or props["dtstart"]).strftime("%Y%m%dT%H%M%SZ")
        except ValueError:
            rid = start.strftime("%Y%m%dT%H%M%SZ")
    busy = {"FREE": BusyState.FREE, "TENTATIVE": BusyState.TENTATIVE}.get(
        props.get("busystatus", "").upper(), BusyState.BUSY)
    return CalendarEvent(
        uid=uid, start=start, end=max(start, end),
        summary=ics._clean(props.get("subject", ""), limits.max_text),
        description=ics._clean(props.get("textdescription", ""), limits.max_description),
        organizer=ics._clean(props.get("organizer", ""), limits.max_text),
        location=ics._clean(props.get("location", ""), limits.max_text),
        priority={"0": 9, "1": 5, "2": 1}.get(props.get("importance", ""), 0),
        busy_state=busy, alarm=alarm, recurrence_id=rid,
        all_day=props.get("alldayevent", "") in ("1", "true"),
    )


def proppatch_ok(data: bytes) -> bool:
    """True when every propstat of the answer is 2xx (RFC 4918 9.2)."""
    root = parse_xml(data)
    statuses = [_status(s.text) for s in root.iter(f"{{{DAV}}}status")]
    return bool(statuses) and all(200 <= s < 300 for s in statuses)


class ExchangeBackend:
    type_name = TYPE
    description = DESCRIPTION
    can_write = True

    def __init__(self, settings: BackendSettings) -> None:
        self.name = settings.name
        if not settings.url.strip():
            raise CalendarError(f"{settings.filename}: [{settings.name}] url: required")
        self.url = with_scheme(settings.url.strip()).rstrip("/")
        if not urlsplit(self.url).hostname:
            raise CalendarError(f"{settings.filename}: [{settings.name}] url = {safe_url(self.url)}: "
                                "expected the OWA URL, e.g. http://host/exchange/user")
        self.http = HttpClient(settings_from(settings))
        self.limits = ics.Limits(max_bytes=self.http.s.max_size)

    @property
    def folder(self) -> str:
        return f"{self.url}/Calendar"

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        resp = await self.http.request("SEARCH", self.url, content=search_body(self.folder, start, end),
                                       headers={"Content-Type": "text/xml; charset=utf-8"})
        if resp.status != 207:
            raise self.http.status_error("SEARCH", self.url, resp.status)
        try:
            events = await asyncio.to_thread(parse_search, resp.body, self.limits, self.name)  # off the loop
        except XmlError as exc:
            raise self.http.error("SEARCH", self.url, f"unusable answer: {exc}") from None
        events.sort(key=lambda e: (e.start, e.uid))
        return events

    async def write(self, event: CalendarEvent) -> None:
        if not event.uid:
            event = dataclasses.replace(event, uid=ics.new_uid())
        url = f"{self.folder}/{quote(event.uid, safe='@-_.~')}.eml"
        resp = await self.http.request("PROPPATCH", url, content=proppatch_body(event),
                                       headers={"Content-Type": "text/xml; charset=utf-8"})
        if not resp.ok:
            raise self.http.status_error("PROPPATCH", url, resp.status)
        if resp.status == 207:
            try:
                ok = proppatch_ok(resp.body)
            except XmlError as exc:
                raise self.http.error("PROPPATCH", url, f"unusable answer: {exc}") from None
            if not ok:
                raise self.http.error("PROPPATCH", url, "the server refused some properties")

    async def close(self) -> None:
        await self.http.close()


class ExchangeModule(Module):
    description = "hookflash MS Exchange calendar support"

    async def start(self) -> None:
        calendar_types(self.pbx)[TYPE] = (DESCRIPTION, ExchangeBackend)

    async def stop(self) -> None:
        calendar_types(self.pbx).pop(TYPE, None)
