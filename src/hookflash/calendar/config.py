"""calendar.conf: one ``[name]`` section per calendar (``[general]`` is ignored, as in Asterisk).

Options (every one Asterisk's res_calendar and its backends read):

=========================  =========  ====================================================
option                     default    meaning
=========================  =========  ====================================================
type                       required   ical, caldav, exchange, ews
url                        required   the calendar's address (backend-specific)
user, secret               ""         HTTP credentials (the backend uses them)
refresh                    15         minutes between fetches (Asterisk's code: 3600 — see below)
timeframe                  60         minutes of future events fetched at each refresh
autoreminder               0          minutes before start to call; overrides the event's alarm
channel                    ""         ``Tech/Dest`` dialled for reminders
context, extension         ""         where the answered reminder call goes (priority 1)
app, appdata               ""         application run on the answered call instead
waittime                   30         seconds to wait for the answer (values <= 0 ignored)
setvar                     repeatable ``NAME=value`` set on the reminder's caller channel
fetch_again_at_reload      no         ``module reload`` throws the cache away and fetches anew
=========================  =========  ====================================================

``refresh``: Asterisk's code defaults to 3600 *minutes* (60 hours) while its sample file
and the chapter say 15; with the default ``timeframe`` of 60 minutes that code default
loses every event after the first hour. hookflash defaults to 15 and warns when
``timeframe`` is shorter than ``refresh`` (events would fall between two fetches).

Errors are :class:`ConfigError` with the file, the line and the expected form; a bad
section is reported and skipped, the other calendars run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hookflash.calendar.event import BackendSettings
from hookflash.conf import ConfigError
from hookflash.conf.parser import ConfigFile, ConfigSection, ConfigVariable

KNOWN_TYPES = ("ical", "caldav", "exchange", "ews")
DEFAULT_REFRESH = 15
DEFAULT_TIMEFRAME = 60
DEFAULT_WAITTIME = 30
OPTIONS = ("type", "url", "user", "secret", "refresh", "timeframe", "autoreminder", "channel",
           "context", "extension", "app", "appdata", "waittime", "setvar", "fetch_again_at_reload")


@dataclass(frozen=True)
class CalendarConfig:
    name: str
    type: str
    url: str
    user: str = ""
    secret: str = ""
    refresh: int = DEFAULT_REFRESH  # minutes
    timeframe: int = DEFAULT_TIMEFRAME  # minutes
    autoreminder: int = 0  # minutes
    channel: str = ""
    context: str = ""
    extension: str = ""
    app: str = ""
    appdata: str = ""
    waittime: int = DEFAULT_WAITTIME  # seconds
    setvars: tuple[tuple[str, str], ...] = ()
    fetch_again_at_reload: bool = False
    options: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    filename: str = "calendar.conf"
    lineno: int = 0

    def backend_settings(self) -> BackendSettings:
        return BackendSettings(self.name, self.url, self.user, self.secret, dict(self.options),
                               self.filename, self.lineno)

    def backend_key(self) -> tuple[str, ...]:
        """What a backend is built from: a change means a new backend object."""
        return (self.type, self.url, self.user, self.secret,
                repr(sorted((k, v) for k, v in self.options.items() if k not in OPTIONS)))


def _last(section: ConfigSection, name: str) -> ConfigVariable | None:
    for var in reversed(section.variables):
        if var.name.lower() == name:
            return var
    return None


def _minutes(var: ConfigVariable | None, default: int, *, minimum: int) -> int:
    if var is None:
        return default
    text = var.value.strip()
    try:
        value = int(text)
    except ValueError:
        raise var.error(f"{var.name} value '{var.value}' is not a whole number",
                        f"'{var.name} = N' with N a whole number >= {minimum}") from None
    if value < minimum:
        raise var.error(f"{var.name} value {value} is too small",
                        f"'{var.name} = N' with N a whole number >= {minimum}")
    return value


def parse_section(section: ConfigSection) -> CalendarConfig:
    """One calendar; raises ConfigError at the offending line."""
    type_var = _last(section, "type")
    if type_var is None or not type_var.value.strip():
        raise ConfigError(section.filename, section.lineno, f"calendar '{section.name}' has no type",
                          f"'type = ' one of {', '.join(KNOWN_TYPES)} in [{section.name}]")
    kind = type_var.value.strip().lower()
    if kind not in KNOWN_TYPES:
        raise type_var.error(f"unknown calendar type '{type_var.value.strip()}'",
                             f"'type = ' one of {', '.join(KNOWN_TYPES)}")
    url_var = _last(section, "url")
    if url_var is None or not url_var.value.strip():
        raise ConfigError(section.filename, section.lineno, f"calendar '{section.name}' has no url",
                          f"'url = <address of the {kind} calendar>' in [{section.name}]")
    url = url_var.value.strip()
    if any(ch.isspace() for ch in url):
        raise url_var.error(f"url '{url}' contains white space", "'url = http(s)://host/path' or a file path")
    channel_var = _last(section, "channel")
    channel = channel_var.value.strip() if channel_var else ""
    if channel and ("/" not in channel or channel.startswith("/") or channel.endswith("/")):
        raise channel_var.error(f"channel '{channel}' is not Tech/Dest",  # type: ignore[union-attr]
                                "'channel = Tech/Dest', e.g. 'channel = SIP/0000FFFF0001'")
    setvars = []
    for var in section.variables:
        if var.name.lower() != "setvar":
            continue
        name, eq, value = var.value.partition("=")
        if not eq or not name.strip():
            raise var.error(f"setvar '{var.value}' has no variable name",
                            "'setvar = NAME=value' (NAME may be a function, e.g. CALLERID(name))")
        setvars.append((name.strip(), value))
    waittime_var = _last(section, "waittime")
    waittime = DEFAULT_WAITTIME
    if waittime_var is not None:
        try:
            seconds = int(waittime_var.value.strip())
        except ValueError:
            raise waittime_var.error(f"waittime value '{waittime_var.value}' is not a whole number",
                                     "'waittime = N' seconds") from None
        waittime = seconds if seconds > 0 else DEFAULT_WAITTIME  # Asterisk ignores values <= 0
    fetch_var = _last(section, "fetch_again_at_reload")
    options = {v.name.lower(): v.value for v in section.variables if v.name.lower() != "setvar"}

    def text(name: str) -> str:
        var = _last(section, name)
        return var.value.strip() if var is not None else ""

    return CalendarConfig(
        name=section.name, type=kind, url=url, user=text("user"),
        secret=(_last(section, "secret").value if _last(section, "secret") else ""),  # type: ignore[union-attr]
        refresh=_minutes(_last(section, "refresh"), DEFAULT_REFRESH, minimum=1),
        timeframe=_minutes(_last(section, "timeframe"), DEFAULT_TIMEFRAME, minimum=1),
        autoreminder=_minutes(_last(section, "autoreminder"), 0, minimum=0),
        channel=channel, context=text("context"), extension=text("extension"), app=text("app"),
        appdata=(_last(section, "appdata").value.strip() if _last(section, "appdata") else ""),  # type: ignore[union-attr]
        waittime=waittime, setvars=tuple(setvars),
        fetch_again_at_reload=fetch_var.as_bool() if fetch_var is not None else False,
        options=options, filename=section.filename, lineno=section.lineno)


def parse_calendar_conf(conf: ConfigFile | None) -> tuple[list[CalendarConfig], list[ConfigError]]:
    """Every calendar of the file, and the errors of the sections that were skipped."""
    calendars: list[CalendarConfig] = []
    errors: list[ConfigError] = []
    if conf is None:
        return calendars, errors
    seen: dict[str, CalendarConfig] = {}
    for section in conf.sections:
        if section.is_template or section.name.lower() == "general":
            continue
        try:
            cal = parse_section(section)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if cal.name.lower() in seen:
            errors.append(ConfigError(section.filename, section.lineno,
                                      f"calendar '{cal.name}' is defined twice (first at line "
                                      f"{seen[cal.name.lower()].lineno})",
                                      "one [section] per calendar name"))
            continue
        seen[cal.name.lower()] = cal
        calendars.append(cal)
    return calendars, errors


def timeframe_warning(cal: CalendarConfig) -> str | None:
    if cal.timeframe < cal.refresh:
        return (f"{cal.filename}:{cal.lineno}: calendar '{cal.name}': timeframe ({cal.timeframe} min) "
                f"is shorter than refresh ({cal.refresh} min); events starting between two fetches "
                f"will be missed. Use timeframe >= refresh.")
    return None
