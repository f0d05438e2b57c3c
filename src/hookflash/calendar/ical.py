"""res_calendar_icalendar: ``type = ical``, an ``.ics`` over HTTP(S) or a local file.

``url`` is ``http(s)://...``, ``file:///path`` or a plain path (relative to the
directory of calendar.conf). Read-only, as in Asterisk. Over HTTP the last ETag and
Last-Modified are sent back (``If-None-Match``/``If-Modified-Since``), so an unchanged
calendar costs a 304 and no parsing; a local file is re-parsed only when its size or
mtime changes. Parsing and expansion run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
    is_http_url,
    safe_url,
    settings_from,
    with_scheme,
)
from hookflash.engine.modules import Module

log = logging.getLogger("hookflash.calendar.ical")

TYPE = "ical"
DESCRIPTION = "iCalendar .ics calendars"


class ICalBackend:
    type_name = TYPE
    description = DESCRIPTION
    can_write = False

    def __init__(self, settings: BackendSettings) -> None:
        self.name = settings.name
        self.zone = ics.zone_from(settings)
        self.http_settings = settings_from(settings)
        self.limits = ics.Limits(max_bytes=self.http_settings.max_size)
        url = settings.url.strip()
        if not url:
            raise CalendarError(f"{settings.filename}: [{settings.name}] url: required")
        self.path: Path | None = None
        self.url = ""
        self.http: HttpClient | None = None
        lower = url.lower()
        if lower.startswith(("webcal://", "webcals://")):  # subscription links: HTTPS
            url = "https://" + url.split("://", 1)[1]
            lower = url.lower()
        if lower.startswith("file:"):
            self.path = Path(unquote(urlsplit(url).path))
        elif "://" in url and not is_http_url(url):
            raise CalendarError(f"{settings.filename}: [{settings.name}] url = {safe_url(url)}: "
                                "expected http://, https://, webcal://, file:// or a file path")
        elif is_http_url(url):
            self.url = url
        else:
            # A path: absolute, ./relative, or an existing file beside calendar.conf;
            # anything else is a host without scheme, which Asterisk reads as http://.
            path = Path(url)
            if not path.is_absolute():
                path = Path(settings.filename).parent / path
            if url.startswith(("/", "./", "../")) or path.exists():
                self.path = path
            else:
                self.url = with_scheme(url)
        if self.url:
            self.http = HttpClient(self.http_settings)
        self._validators: dict[str, str] = {}
        self._stamp: tuple[float, int] | None = None
        self._parsed: list[icalendar.Component] = []
        self.bytes_fetched = 0  # for the bench and "calendar show"

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else safe_url(self.url)

    async def fetch(self, start: datetime, end: datetime) -> list[CalendarEvent]:
        if self.path is not None:
            await asyncio.to_thread(self._load_file)
        else:
            await self._load_http()
        return await asyncio.to_thread(ics.expand, self._parsed, start, end,
                                       calendar=self.name, zone=self.zone, limits=self.limits)

    def _load_file(self) -> None:
        assert self.path is not None
        try:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
            if stamp == self._stamp:
                return
            if st.st_size > self.limits.max_bytes:
                raise CalendarError(f"calendar '{self.name}': {self.path} is {st.st_size} bytes, "
                                    f"over max_size ({self.limits.max_bytes} bytes)")
            with self.path.open("rb") as f:
                data = f.read(self.limits.max_bytes + 1)
        except OSError as exc:
            raise CalendarError(f"calendar '{self.name}': cannot read {self.path}: "
                                f"{exc.strerror or exc}") from None
        self.bytes_fetched += len(data)
        self._parsed = ics.parse(data, self.name, self.limits)
        self._stamp = stamp

    async def _load_http(self) -> None:
        assert self.http is not None
        headers = {"Accept": "text/calendar, */*;q=0.5"}
        if self._parsed and "etag" in self._validators:
            headers["If-None-Match"] = self._validators["etag"]
        if self._parsed and "last-modified" in self._validators:
            headers["If-Modified-Since"] = self._validators["last-modified"]
        resp = await self.http.request("GET", self.url, headers=headers)
        if resp.status == 304 and self._parsed:
            return
        if not resp.ok:
            raise self.http.status_error("GET", self.url, resp.status)
        self.bytes_fetched += len(resp.body)
        parsed = await asyncio.to_thread(ics.parse, resp.body, self.name, self.limits)
        self._parsed = parsed
        self._validators = {k: resp.headers[k] for k in ("etag", "last-modified") if k in resp.headers}

    async def write(self, event: CalendarEvent) -> None:
        raise CalendarError(f"calendar '{self.name}': ical calendars are read-only")

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()


class _Factory:
    """Builds ical backends; a relative path in ``url`` names a file beside
    calendar.conf (the config directory), wherever hookflash was started from."""

    type_name = TYPE

    def __init__(self, conf_dir: Path | None) -> None:
        self.conf_dir = conf_dir

    def __call__(self, settings: BackendSettings) -> ICalBackend:
        if self.conf_dir is not None and not Path(settings.filename).is_absolute():
            settings = replace(settings, filename=str(self.conf_dir / Path(settings.filename).name))
        return ICalBackend(settings)


class ICalModule(Module):
    description = "hookflash iCalendar .ics file support"

    async def start(self) -> None:
        config_path = getattr(self.pbx, "config_path", None)
        conf_dir = config_path("calendar.conf").parent if config_path is not None else None
        calendar_types(self.pbx)[TYPE] = (DESCRIPTION, _Factory(conf_dir))

    async def stop(self) -> None:
        calendar_types(self.pbx).pop(TYPE, None)
