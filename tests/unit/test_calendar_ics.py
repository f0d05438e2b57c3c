"""iCalendar to occurrences (hookflash.calendar.ics) and the CALENDAR_WRITE writer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from hookflash.calendar import ics
from hookflash.calendar.event import BusyState, CalendarError, CalendarEvent

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def cal(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\nDTSTAMP:20300101T000000Z\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{extra}{body}END:VCALENDAR\r\n"
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def occ(text: str, start: datetime, end: datetime, zone: ZoneInfo = BERLIN, **kw):  # type: ignore[no-untyped-def]
    return ics.occurrences(text, start, end, calendar="work", zone=zone, **kw)


# --------------------------------------------------------------------------- recurrence
WEEKLY = """
UID:weekly@test
SUMMARY:Team meeting
DTSTART;TZID=Europe/Berlin:20300107T100000
DTEND;TZID=Europe/Berlin:20300107T110000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20300121T100000
RDATE;TZID=Europe/Berlin:20300109T150000
"""
MOVED = """
UID:weekly@test
RECURRENCE-ID;TZID=Europe/Berlin:20300128T100000
SUMMARY:Team meeting (moved)
DTSTART;TZID=Europe/Berlin:20300129T140000
DTEND;TZID=Europe/Berlin:20300129T153000
"""
CANCELLED_INSTANCE = """
UID:weekly@test
RECURRENCE-ID;TZID=Europe/Berlin:20300204T100000
STATUS:CANCELLED
SUMMARY:Team meeting
DTSTART;TZID=Europe/Berlin:20300204T100000
DTEND;TZID=Europe/Berlin:20300204T110000
"""


def test_rrule_exdate_rdate_moved_and_cancelled_instances() -> None:
    events = occ(cal(WEEKLY, MOVED, CANCELLED_INSTANCE), utc(2030, 1, 1), utc(2030, 3, 1))
    got = [(e.start, e.end, e.summary) for e in events]
    assert got == [
        (utc(2030, 1, 7, 9), utc(2030, 1, 7, 10), "Team meeting"),
        (utc(2030, 1, 9, 14), utc(2030, 1, 9, 15), "Team meeting"),  # RDATE
        (utc(2030, 1, 14, 9), utc(2030, 1, 14, 10), "Team meeting"),
        # 21st: EXDATE; 28th moved to the 29th, 14:00-15:30 Berlin; 4 Feb cancelled
        (utc(2030, 1, 29, 13), utc(2030, 1, 29, 14, 30), "Team meeting (moved)"),
        (utc(2030, 2, 11, 9), utc(2030, 2, 11, 10), "Team meeting"),
    ]
    assert {e.uid for e in events} == {"weekly@test"}
    moved = events[3]
    assert moved.recurrence_id == "20300128T090000Z"  # the slot it replaces, in UTC
    assert [e.recurrence_id for e in events][:3] == ["20300107T090000Z", "20300109T140000Z",
                                                    "20300114T090000Z"]
    assert len({e.key for e in events}) == len(events)


def test_window_keeps_only_overlapping_occurrences() -> None:
    events = occ(cal(WEEKLY), utc(2030, 1, 14, 9, 30), utc(2030, 1, 14, 9, 45))
    assert [e.start for e in events] == [utc(2030, 1, 14, 9)]  # started before, still running


def test_single_event_has_no_recurrence_id() -> None:
    [ev] = occ(cal("UID:one\nDTSTART:20300101T120000Z\nDTEND:20300101T130000Z"),
               utc(2030, 1, 1), utc(2030, 1, 2))
    assert ev.recurrence_id == "" and ev.key == ("one", "20300101T120000Z")


# --------------------------------------------------------------------------- time zones
def test_daily_meeting_across_dst_change_keeps_local_time() -> None:
    # Europe/Berlin moves to summer time on Sunday 2030-03-31: 09:00 local is 08:00Z then 07:00Z.
    text = cal("UID:dst\nDTSTART;TZID=Europe/Berlin:20300329T090000\n"
               "DTEND;TZID=Europe/Berlin:20300329T093000\nRRULE:FREQ=DAILY;COUNT=4")
    events = occ(text, utc(2030, 3, 28), utc(2030, 4, 5))
    assert [e.start for e in events] == [utc(2030, 3, 29, 8), utc(2030, 3, 30, 8),
                                         utc(2030, 3, 31, 7), utc(2030, 4, 1, 7)]
    assert all(e.end - e.start == timedelta(minutes=30) for e in events)


CUSTOM_TZ = """BEGIN:VTIMEZONE
TZID:W. Europe Custom
BEGIN:STANDARD
DTSTART:16011028T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
"""


def test_vtimezone_definition_with_its_own_dst_rules() -> None:
    text = cal("UID:vtz\nDTSTART;TZID=W. Europe Custom:20300330T090000\n"
               "DTEND;TZID=W. Europe Custom:20300330T100000\nRRULE:FREQ=DAILY;COUNT=2",
               extra=CUSTOM_TZ.replace("\n", "\r\n"))
    events = occ(text, utc(2030, 3, 29), utc(2030, 4, 2), zone=NEW_YORK)
    assert [e.start for e in events] == [utc(2030, 3, 30, 8), utc(2030, 3, 31, 7)]


def test_utc_and_floating_times() -> None:
    text = cal("UID:z\nDTSTART:20300115T120000Z\nDTEND:20300115T130000Z",
               "UID:floating\nDTSTART:20300115T120000\nDTEND:20300115T130000")
    by_uid = {e.uid: e for e in occ(text, utc(2030, 1, 15), utc(2030, 1, 16), zone=NEW_YORK)}
    assert by_uid["z"].start == utc(2030, 1, 15, 12)
    assert by_uid["floating"].start == utc(2030, 1, 15, 17)  # noon in New York (EST)
    by_uid = {e.uid: e for e in occ(text, utc(2030, 1, 15), utc(2030, 1, 16), zone=BERLIN)}
    assert by_uid["floating"].start == utc(2030, 1, 15, 11)


def test_all_day_event_is_midnight_to_midnight_in_the_server_zone() -> None:
    text = cal("UID:holiday\nDTSTART;VALUE=DATE:20300704\nDTEND;VALUE=DATE:20300705\nSUMMARY:Holiday",
               "UID:oneday\nDTSTART;VALUE=DATE:20300706")
    events = occ(text, utc(2030, 7, 1), utc(2030, 7, 10), zone=NEW_YORK)
    holiday, oneday = events
    assert holiday.all_day and oneday.all_day
    assert (holiday.start, holiday.end) == (utc(2030, 7, 4, 4), utc(2030, 7, 5, 4))  # EDT
    assert (oneday.start, oneday.end) == (utc(2030, 7, 6, 4), utc(2030, 7, 7, 4))  # one day by default


def test_recurring_all_day_event() -> None:
    text = cal("UID:bday\nDTSTART;VALUE=DATE:20000302\nRRULE:FREQ=YEARLY\nSUMMARY:Birthday")
    [ev] = occ(text, utc(2030, 1, 1), utc(2030, 12, 31), zone=BERLIN)
    assert ev.start == utc(2030, 3, 1, 23) and ev.all_day and ev.recurrence_id == "20300301T230000Z"


# --------------------------------------------------------------------------- status, transp
def test_status_and_transparency_decide_busy_state() -> None:
    base = "DTSTART:20300101T100000Z\nDTEND:20300101T110000Z\n"
    text = cal(f"UID:busy\n{base}",
               f"UID:confirmed\n{base}STATUS:CONFIRMED",
               f"UID:tentative\n{base}STATUS:TENTATIVE",
               f"UID:free\n{base}TRANSP:TRANSPARENT",
               f"UID:free-tentative\n{base}TRANSP:TRANSPARENT\nSTATUS:TENTATIVE",
               f"UID:cancelled\n{base}STATUS:CANCELLED\nBEGIN:VALARM\nTRIGGER:-PT5M\nACTION:DISPLAY\nEND:VALARM")
    states = {e.uid: e.busy_state for e in occ(text, utc(2030, 1, 1), utc(2030, 1, 2))}
    assert states == {"busy": BusyState.BUSY, "confirmed": BusyState.BUSY,
                      "tentative": BusyState.TENTATIVE, "free": BusyState.FREE,
                      "free-tentative": BusyState.FREE}  # cancelled: not there at all


# --------------------------------------------------------------------------- alarms
def _alarm(trigger: str) -> str:
    return f"BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:x\nTRIGGER{trigger}\nEND:VALARM"


def test_alarm_relative_to_start_end_and_absolute_earliest_wins() -> None:
    base = "DTSTART:20300101T100000Z\nDTEND:20300101T110000Z\n"
    text = cal(f"UID:start\n{base}{_alarm(':-PT15M')}",
               f"UID:end\n{base}{_alarm(';RELATED=END:-PT5M')}",
               f"UID:abs\n{base}{_alarm(';VALUE=DATE-TIME:20300101T093000Z')}",
               f"UID:two\n{base}{_alarm(':-PT5M')}\n{_alarm(':-PT1H')}",
               f"UID:none\n{base}")
    alarms = {e.uid: e.alarm for e in occ(text, utc(2030, 1, 1), utc(2030, 1, 2))}
    assert alarms == {"start": utc(2030, 1, 1, 9, 45), "end": utc(2030, 1, 1, 10, 55),
                      "abs": utc(2030, 1, 1, 9, 30), "two": utc(2030, 1, 1, 9), "none": None}


def test_each_occurrence_has_its_own_alarm_and_an_absolute_one_rings_once() -> None:
    text = cal("UID:daily\nDTSTART;TZID=Europe/Berlin:20300110T090000\nDURATION:PT1H\n"
               f"RRULE:FREQ=DAILY\n{_alarm(':-PT10M')}",
               "UID:abs-daily\nDTSTART:20300110T120000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY\n"
               f"{_alarm(';VALUE=DATE-TIME:20300111T110000Z')}")
    events = occ(text, utc(2030, 1, 10), utc(2030, 1, 13))
    daily = [e for e in events if e.uid == "daily"]
    assert [e.alarm for e in daily] == [e.start - timedelta(minutes=10) for e in daily] and len(daily) == 3
    absolute = [(e.start, e.alarm) for e in events if e.uid == "abs-daily"]
    assert absolute == [(utc(2030, 1, 10, 12), None), (utc(2030, 1, 11, 12), utc(2030, 1, 11, 11)),
                        (utc(2030, 1, 12, 12), None)]


# --------------------------------------------------------------------------- fields
def test_fields_attendees_categories_priority_organizer() -> None:
    text = cal("UID:f\nDTSTART:20300101T100000Z\nDTEND:20300101T110000Z\nSUMMARY:Review\n"
               "DESCRIPTION:Line one\\nLine two\\, with comma\nLOCATION:SIP/9001\n"
               "ORGANIZER;CN=Boss:mailto:boss@example.com\n"
               "ATTENDEE;CN=A:mailto:a@example.com\nATTENDEE:mailto:b@example.com\n"
               "CATEGORIES:Work,Calls\nCATEGORIES:Urgent\nPRIORITY:3")
    [ev] = occ(text, utc(2030, 1, 1), utc(2030, 1, 2))
    assert ev.summary == "Review"
    assert ev.description == "Line one\nLine two, with comma"
    assert ev.location == "SIP/9001"
    assert ev.organizer == "mailto:boss@example.com"
    assert ev.attendees == ["mailto:a@example.com", "mailto:b@example.com"]
    assert ev.categories == "Work,Calls,Urgent"
    assert ev.priority == 3


def test_hostile_text_loses_control_characters() -> None:
    text = cal("UID:h\nDTSTART:20300101T100000Z\nSUMMARY:bad\x07bell\x1b[2J\nPRIORITY:99")
    [ev] = occ(text, utc(2030, 1, 1), utc(2030, 1, 2))
    assert ev.summary == "badbell[2J" and ev.priority == 0


# --------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("data, words", [
    ("hello world", "not iCalendar"),
    ("", "not iCalendar"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    ("<html><body>Login</body></html>", "not iCalendar"),
])
def test_malformed_file_raises_a_clear_error(data: str | bytes, words: str) -> None:
    with pytest.raises(CalendarError) as info:
        ics.occurrences(data, utc(2030, 1, 1), utc(2030, 1, 2), calendar="work")
    assert "calendar 'work'" in str(info.value) and words in str(info.value)


def test_size_limit() -> None:
    text = cal("UID:x\nDTSTART:20300101T100000Z\nDESCRIPTION:" + "x" * 5000)
    with pytest.raises(CalendarError, match="exceeds the limit"):
        ics.parse(text, "work", ics.Limits(max_bytes=4096))


def test_bad_event_is_skipped_with_a_warning_naming_calendar_and_uid(caplog: pytest.LogCaptureFixture) -> None:
    text = cal("UID:good\nDTSTART:20300101T100000Z",
               "UID:bad-date\nDTSTART:20301301T999999",
               "UID:no-start\nSUMMARY:nothing",
               "UID:bad-rule\nDTSTART:20300101T100000Z\nRRULE:FREQ=FORTNIGHTLY",
               "UID:endless\nDTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY")
    with caplog.at_level(logging.WARNING, "hookflash.calendar.ics"):
        events = occ(text, utc(2030, 1, 1), utc(2030, 1, 2))
    assert [e.uid for e in events] == ["good"]
    messages = [r.getMessage() for r in caplog.records]
    for uid in ("bad-date", "no-start", "bad-rule", "endless"):
        assert any(f"calendar 'work': event '{uid}' skipped" in m for m in messages), (uid, messages)
    assert any("RRULE too costly" in m for m in messages)


def test_too_many_occurrences_of_one_series_are_cut(caplog: pytest.LogCaptureFixture) -> None:
    text = cal("UID:minutely\nDTSTART:20300101T000000Z\nRRULE:FREQ=MINUTELY")
    with caplog.at_level(logging.WARNING):
        events = occ(text, utc(2030, 1, 1), utc(2030, 1, 2), limits=ics.Limits(max_per_series=100))
    assert len(events) == 100
    assert "more than 100 occurrences" in caplog.text


# --------------------------------------------------------------------------- writer
NOW = utc(2030, 5, 1, 12)


def test_writer_round_trip() -> None:
    event = CalendarEvent(uid="call-1@pbx", start=utc(2030, 5, 1, 9), end=utc(2030, 5, 1, 9, 5),
                          summary="Call from 1001", description="billsec: 42\nsecond line",
                          organizer="pbx@example.com", location="SIP/1001", categories="calls, inbound",
                          priority=2, busy_state=BusyState.TENTATIVE)
    text = ics.to_ical(event, NOW)
    [back] = ics.occurrences(text, utc(2030, 5, 1), utc(2030, 5, 2), calendar="c", zone=BERLIN)
    assert (back.uid, back.start, back.end, back.summary, back.description, back.location) == (
        "call-1@pbx", event.start, event.end, "Call from 1001", "billsec: 42\nsecond line", "SIP/1001")
    assert back.organizer == "mailto:pbx@example.com"
    assert back.categories == "calls,inbound" and back.priority == 2
    assert back.busy_state == BusyState.TENTATIVE
    assert "DTSTAMP:20300501T120000Z" in text and "DTSTART:20300501T090000Z" in text
    assert "DTEND:20300501T090500Z" in text and "STATUS:TENTATIVE" in text


def test_writer_has_no_empty_properties_and_defaults() -> None:
    event = CalendarEvent(uid="", start=utc(2030, 5, 1, 9), end=utc(2030, 5, 1, 10))
    text = ics.to_ical(event, NOW)
    lines = text.splitlines()
    assert all(not line.endswith(":") for line in lines), lines
    names = [line.split(":", 1)[0].split(";", 1)[0] for line in lines]
    for absent in ("SUMMARY", "DESCRIPTION", "LOCATION", "ORGANIZER", "CATEGORIES", "PRIORITY"):
        assert absent not in names
    assert "STATUS:CONFIRMED" in lines
    parsed = icalendar.Calendar.from_ical(text)
    [vevent] = parsed.walk("VEVENT")
    assert len(str(vevent["UID"])) == 36  # a generated UUID
    for name in ("DTSTAMP", "DTSTART", "DTEND"):
        assert vevent[name].dt.tzinfo is not None and vevent[name].dt.utcoffset() == timedelta(0)


def test_writer_free_event_reads_back_free_and_hostile_text_stays_one_property() -> None:
    event = CalendarEvent(uid="u", start=utc(2030, 5, 1, 9), end=utc(2030, 5, 1, 10),
                          summary="x\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:evil", busy_state=BusyState.FREE)
    text = ics.to_ical(event, NOW)
    assert "TRANSP:TRANSPARENT" in text and "STATUS" not in text
    events = ics.occurrences(text, utc(2030, 5, 1), utc(2030, 5, 2), calendar="c")
    assert [e.uid for e in events] == ["u"] and events[0].busy_state == BusyState.FREE
    assert events[0].summary == "x\nEND:VEVENT\nBEGIN:VEVENT\nUID:evil"
