"""res_calendar_ews: ``type = ews``, Exchange Web Services (Exchange 2007 and later).

``url`` is the EWS endpoint, e.g. ``https://mail.example.com/EWS/Exchange.asmx``.
Plain SOAP 1.1 through :mod:`hookflash.calendar.http` (async; ``exchangelib`` is
synchronous and would need a thread per calendar):

* fetch: ``FindItem`` with a ``CalendarView`` over the window (Exchange expands
  recurrences into occurrences), ``IdOnly``; then ``GetItem`` in batches for the
  properties. Mapping (as Asterisk): ``LegacyFreeBusyStatus`` Busy/OOF -> busy,
  Tentative -> tentative, anything else free; ``Importance`` High -> 1, Normal -> 5,
  Low -> 9. Differences, documented in docs/calendar-backends.md: ``IsCancelled``
  occurrences are dropped; the event's UID is Exchange's ``UID`` (the iCalendar UID,
  stable across edits; ``ItemId`` only when it is missing) and occurrences carry their
  ``RecurrenceId``; the item's reminder (``ReminderIsSet``,
  ``ReminderMinutesBeforeStart``) is the alarm unless ``reminders = no``
  (Asterisk ignores reminders).
* write: ``CreateItem`` with ``SendMeetingInvitations="SendToNone"`` and
  ``ReminderIsSet=false``; success only if the answer says ``Success``.

The SOAP bodies are built and parsed by pure functions below; no Exchange server can
run in tests, which use a local HTTP server answering with recorded EWS responses.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hookflash.calendar import ics
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

log = logging.getLogger("hookflash.calendar.ews")

TYPE = "ews"
DESCRIPTION = "MS Exchange Web Service calendars"

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
ET.register_namespace("soap", SOAP)
ET.register_namespace("t", T)
ET.register_namespace("m", M)

SERVER_VERSION = "Exchange2010_SP2"  # the oldest schema with everything used here
GETITEM_BATCH = 100
MAX_VIEW = 2000

_BUSY = {"busy": BusyState.BUSY, "oof": BusyState.BUSY, "tentative": BusyState.TENTATIVE}
_IMPORTANCE_READ = {"low": 9, "normal": 5, "high": 1}


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


def _m(name: str) -> str:
    return f"{{{M}}}{name}"


def ews_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(body_child: ET.Element) -> bytes:
    env = ET.Element(f"{{{SOAP}}}Envelope")
    header = ET.SubElement(env, f"{{{SOAP}}}Header")
    ET.SubElement(header, _t("RequestServerVersion"), Version=SERVER_VERSION)
    ET.SubElement(env, f"{{{SOAP}}}Body").append(body_child)
    return xml_bytes(env)


# --------------------------------------------------------------------------- requests
def find_item(start: datetime, end: datetime, max_entries: int = MAX_VIEW) -> bytes:
    req = ET.Element(_m("FindItem"), Traversal="Shallow")
    shape = ET.SubElement(req, _m("ItemShape"))
    ET.SubElement(shape, _t("BaseShape")).text = "IdOnly"
    ET.SubElement(req, _m("CalendarView"), MaxEntriesReturned=str(max_entries),
                  StartDate=ews_time(start), EndDate=ews_time(end))
    parents = ET.SubElement(req, _m("ParentFolderIds"))
    ET.SubElement(parents, _t("DistinguishedFolderId"), Id="calendar")
    return _envelope(req)


def get_item(item_ids: Iterable[str]) -> bytes:
    req = ET.Element(_m("GetItem"))
    shape = ET.SubElement(req, _m("ItemShape"))
    ET.SubElement(shape, _t("BaseShape")).text = "AllProperties"
    ET.SubElement(shape, _t("BodyType")).text = "Text"
    ids = ET.SubElement(req, _m("ItemIds"))
    for item_id in item_ids:
        ET.SubElement(ids, _t("ItemId"), Id=item_id)
    return _envelope(req)


def create_item(event: CalendarEvent) -> bytes:
    """CreateItem for CALENDAR_WRITE; element order follows the EWS schema sequence."""
    req = ET.Element(_m("CreateItem"), SendMeetingInvitations="SendToNone")
    folder = ET.SubElement(req, _m("SavedItemFolderId"))
    ET.SubElement(folder, _t("DistinguishedFolderId"), Id="calendar")
    item = ET.SubElement(ET.SubElement(req, _m("Items")), _t("CalendarItem"))
    if event.summary:
        ET.SubElement(item, _t("Subject")).text = event.summary
    if event.description:
        ET.SubElement(item, _t("Body"), BodyType="Text").text = event.description
    cats = [c.strip() for c in event.categories.split(",") if c.strip()]
    if cats:
        parent = ET.SubElement(item, _t("Categories"))
        for cat in cats:
            ET.SubElement(parent, _t("String")).text = cat
    if event.priority > 0:
        ET.SubElement(item, _t("Importance")).text = (
            "High" if event.priority <= 4 else "Normal" if event.priority == 5 else "Low")
    ET.SubElement(item, _t("ReminderIsSet")).text = "false"
    if event.uid:
        ET.SubElement(item, _t("UID")).text = event.uid
    ET.SubElement(item, _t("Start")).text = ews_time(event.start)
    ET.SubElement(item, _t("End")).text = ews_time(max(event.end, event.start))
    ET.SubElement(item, _t("LegacyFreeBusyStatus")).text = {
        BusyState.BUSY: "Busy", BusyState.TENTATIVE: "Tentative"}.get(event.busy_state, "Free")
    if event.location:
        ET.SubElement(item, _t("Location")).text = event.location
    return _envelope(req)


# --------------------------------------------------------------------------- answers
class EwsError(Exception):
    """The server answered with a SOAP fault or an Error response message."""


def _body(data: bytes) -> ET.Element:
    root = parse_xml(data)
    body = root.find(f"{{{SOAP}}}Body")
    if root.tag != f"{{{SOAP}}}Envelope" or body is None:
        raise XmlError("not a SOAP envelope")
    fault = body.find(f"{{{SOAP}}}Fault")
    if fault is not None:
        raise EwsError(f"SOAP fault: {(fault.findtext('faultstring') or '').strip()[:200]}")
    return body


def _messages(body: ET.Element, name: str) -> list[ET.Element]:
    messages = body.findall(f".//{_m(name)}")
    for msg in messages:
        if msg.get("ResponseClass") == "Error":
            code = (msg.findtext(_m("ResponseCode")) or "").strip()
            text = (msg.findtext(_m("MessageText")) or "").strip()
            raise EwsError(f"{code}: {text}"[:300])
    return messages


@dataclass(frozen=True)
class FoundItems:
    ids: list[str]
    complete: bool  # IncludesLastItemInRange


def parse_find_item(data: bytes) -> FoundItems:
    body = _body(data)
    msgs = _messages(body, "FindItemResponseMessage")
    if not msgs:
        raise XmlError("no FindItemResponseMessage")
    ids: list[str] = []
    complete = True
    for msg in msgs:
        folder = msg.find(_m("RootFolder"))
        if folder is None:
            continue
        complete = complete and folder.get("IncludesLastItemInRange", "true").lower() != "false"
        for item_id in folder.iter(_t("ItemId")):
            if item_id.get("Id"):
                ids.append(item_id.get("Id", ""))
    return FoundItems(ids, complete)


def parse_get_item(data: bytes, *, reminders: bool = True,
                   limits: ics.Limits = ics.DEFAULT_LIMITS) -> list[CalendarEvent]:
    body = _body(data)
    events = []
    for msg in _messages(body, "GetItemResponseMessage"):
        for item in msg.iter(_t("CalendarItem")):
            ev = _calendar_item(item, reminders, limits)
            if ev is not None:
                events.append(ev)
    return events


def _text(item: ET.Element, name: str, limit: int) -> str:
    return ics._clean((item.findtext(_t(name)) or "").strip(), limit)


def _time(text: str | None) -> datetime:
    value = datetime.fromisoformat((text or "").strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _calendar_item(item: ET.Element, reminders: bool, limits: ics.Limits) -> CalendarEvent | None:
    item_id_el = item.find(_t("ItemId"))
    item_id = item_id_el.get("Id", "") if item_id_el is not None else ""
    uid = _text(item, "UID", limits.max_text) or ics._clean(item_id, limits.max_text)
    if (item.findtext(_t("IsCancelled")) or "").strip().lower() == "true":
        return None
    try:
        start = _time(item.findtext(_t("Start")))
        end = _time(item.findtext(_t("End")))
    except ValueError:
        log.warning("EWS item '%s' skipped: bad Start/End", ics._short(uid))
        return None
    rid = ""
    kind = (item.findtext(_t("CalendarItemType")) or "").strip()
    if item.find(_t("RecurrenceId")) is not None or kind in ("Occurrence", "Exception"):
        try:
            rid = _time(item.findtext(_t("RecurrenceId")) or item.findtext(_t("OriginalStart"))
                        or item.findtext(_t("Start"))).strftime("%Y%m%dT%H%M%SZ")
        except ValueError:
            rid = start.strftime("%Y%m%dT%H%M%SZ")
    alarm = None
    if reminders and (item.findtext(_t("ReminderIsSet")) or "").strip().lower() == "true":
        try:
            alarm = start - timedelta(minutes=int(item.findtext(_t("ReminderMinutesBeforeStart")) or "0"))
        except ValueError:
            alarm = None
    body = item.find(_t("Body"))
    organizer = ""
    org = item.find(f"{_t('Organizer')}/{_t('Mailbox')}")
    if org is not None:
        organizer = _mailto(org, limits.max_text)
    attendees = []
    for group in ("RequiredAttendees", "OptionalAttendees"):
        for mailbox in item.iterfind(f"{_t(group)}/{_t('Attendee')}/{_t('Mailbox')}"):
            address = _mailto(mailbox, limits.max_text)
            if address:
                attendees.append(address)
    categories = [ics._clean((s.text or "").strip(), limits.max_text)
                  for s in item.iterfind(f"{_t('Categories')}/{_t('String')}")]
    return CalendarEvent(
        uid=uid, start=start, end=max(end, start),
        summary=_text(item, "Subject", limits.max_text),
        description=ics._clean((body.text or "") if body is not None else "", limits.max_description),
        organizer=organizer,
        location=_text(item, "Location", limits.max_text),
        categories=",".join(c for c in categories if c)[:limits.max_text],
        priority=_IMPORTANCE_READ.get(_text(item, "Importance", 20).lower(), 0),
        busy_state=_BUSY.get(_text(item, "LegacyFreeBusyStatus", 40).lower(), BusyState.FREE),
        alarm=alarm, attendees=attendees[:1000], recurrence_id=rid,
        all_day=(item.findtext(_t("IsAllDayEvent")) or "").strip().lower() == "true",
    )


def _mailto(mailbox: ET.Element, limit: int) -> str:
    address = (mailbox.findtext(_t("EmailAddress")) or "").strip()
    return ics._clean(f"mailto:{address}", limit) if address else ""


def parse_create_item(data: bytes) -> None:
    """Raises EwsError unless the item was created."""
    body = _body(data)
    msgs = _messages(body, "CreateItemResponseMessage")
    if not msgs or any(m.get("ResponseClass") != "Success" for m in msgs):
        raise EwsError("CreateItem did not answer Success")


# --------------------------------------------------------------------------- backend
class EwsBackend:
    type_name = TYPE
    description = DESCRIPTION
    can_write = True

    def __init__(self, settings: BackendSettings) -> None:
        self.name = settings.name
        if not settings.url.strip():
            raise CalendarError(f"{settings.filename}: [{settings.name}] url: required")
        self.url = with_scheme(settings.url.strip())
        self.http = HttpClient(settings_from(settings))
        self.limits = ics.Limits(max_bytes=self.http.s.max_size)
        value = settings.options.get("reminders", "yes").strip().lower()
        if value not in ("yes", "no", "true", "false", "on", "off", "1", "0"):
            raise CalendarError(f"{settings.filename}: [{settings.name}] reminders = {value}: "
                                "expected yes or no")
        self.reminders = value in ("yes", "true", "on", "1")

    async def _call(self, action: str, body: bytes) -> bytes:
        resp = await self.http.request("POST", self.url, content=body, headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"http://schemas.microsoft.com/exchange/services/2006/messages/{action}"'})
        if not resp.ok and resp.status != 500:  # a SOAP fault comes with 500
            raise self.http.status_error(f"POST {action}", self.url, resp.status)
        return resp.body

    def _fail(self, action: str, exc: Exception) -> CalendarError:
        return CalendarError(f"calendar '{self.name}': {action} {safe_url(self.url)}: {exc}")

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        try:
            # parsing answers of up to max_size bytes: in a worker thread, off the event loop
            found = await asyncio.to_thread(parse_find_item, await self._call("FindItem", find_item(start, end)))
            if not found.complete:
                log.warning("calendar '%s': more than %d items in the window; the rest are ignored",
                            self.name, MAX_VIEW)
            events: list[CalendarEvent] = []
            for i in range(0, len(found.ids), GETITEM_BATCH):
                data = await self._call("GetItem", get_item(found.ids[i:i + GETITEM_BATCH]))
                events.extend(await asyncio.to_thread(parse_get_item, data, reminders=self.reminders,
                                                      limits=self.limits))
        except (XmlError, EwsError) as exc:
            raise self._fail("FindItem/GetItem", exc) from None
        events = [e for e in events if not (e.end < start or e.start > end)]
        events.sort(key=lambda e: (e.start, e.uid))
        return events

    async def write(self, event: CalendarEvent) -> None:
        try:
            parse_create_item(await self._call("CreateItem", create_item(event)))
        except (XmlError, EwsError) as exc:
            raise self._fail("CreateItem", exc) from None

    async def close(self) -> None:
        await self.http.close()


class EwsModule(Module):
    description = "hookflash MS Exchange Web Service calendar support"

    async def start(self) -> None:
        calendar_types(self.pbx)[TYPE] = (DESCRIPTION, EwsBackend)

    async def stop(self) -> None:
        calendar_types(self.pbx).pop(TYPE, None)
