"""Calendars: iCalendar events, the backends (ical, caldav, ews, exchange) and res_calendar."""
