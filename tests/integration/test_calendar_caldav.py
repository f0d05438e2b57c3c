"""res_calendar with the real CalDAV backend against a real Radicale server (CHAPTER.md
1.4 busy routing and 1.5 writing calls into a calendar), in-process PBX so the test
reads channel variables; the chapter's listings are used unmodified."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.client
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import call, running_pbx

LISTINGS = Path(__file__).parent.parent / "chapter" / "listings"
FMT = "%Y%m%dT%H%M%SZ"


def aio(fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


class Radicale:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (directory / "users").write_text("alice:alicepw\n")
        (directory / "config").write_text(textwrap.dedent(f"""\
            [server]
            hosts = 127.0.0.1:{self.port}
            [auth]
            type = htpasswd
            htpasswd_filename = {directory / 'users'}
            htpasswd_encryption = plain
            [rights]
            type = owner_only
            [storage]
            filesystem_folder = {directory / 'collections'}
            [logging]
            level = warning
            """))
        self.log = directory / "radicale.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(directory / "config")],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(self.log.read_text())
                time.sleep(0.05)

    def request(self, method: str, path: str, body: str = "", password: str = "alicepw",
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        auth = base64.b64encode(f"alice:{password}".encode()).decode()
        conn.request(method, path, body.encode(), {"Authorization": f"Basic {auth}", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read().decode(errors="replace")
        conn.close()
        return resp.status, data

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    try:
        import radicale  # noqa: F401
    except ImportError:
        pytest.skip("radicale is not installed (pip install radicale)")
    server = Radicale(tmp_path / "radicale")
    for cal in ("work", "calls"):
        status, text = server.request("MKCALENDAR", f"/alice/{cal}/")
        assert status == 201, text
    yield server
    server.stop()


def vevent(uid: str, start: datetime, end: datetime, summary: str, transp: str = "OPAQUE") -> str:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
            f"DTSTAMP:{start.strftime(FMT)}\r\nDTSTART:{start.strftime(FMT)}\r\nDTEND:{end.strftime(FMT)}\r\n"
            f"SUMMARY:{summary}\r\nTRANSP:{transp}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def calendar_conf(radicale: Radicale, secret: str = "alicepw") -> str:
    return f"""
        [myGoogleCal]
        type=caldav
        url={radicale.url('/alice/work/')}
        user=alice
        secret=alicepw
        refresh=15
        timeframe=60

        [phone_call_calendar]
        type=caldav
        url={radicale.url('/alice/calls/')}
        user=alice
        secret={secret}
        """


async def wait_loaded(pbx, name: str) -> None:  # type: ignore[no-untyped-def]
    service = pbx.modules.loaded["res_calendar"].service
    for _ in range(200):
        cal = service.get(name)
        if cal is not None and cal.fetches:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"calendar {name} never refreshed: {cal.last_error if cal else 'not loaded'}")


@aio
async def test_1_4_busy_while_a_caldav_event_covers_now(tmp_path: Path, radicale: Radicale) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    status, _ = radicale.request("PUT", "/alice/work/meeting.ics",
                                 vevent("meeting@test", now - timedelta(minutes=5), now + timedelta(minutes=25),
                                        "Awesome Call With Russell"), headers={"Content-Type": "text/calendar"})
    assert status == 201
    extensions = (LISTINGS / "listing04.conf").read_text()
    async with running_pbx(tmp_path, extensions, calendar_conf=calendar_conf(radicale)) as (pbx, lines):
        await wait_loaded(pbx, "myGoogleCal")
        chan = await call(pbx, "3000@LocalSets")
        assert chan.vars["CalendarBusy"] == "1"
        assert any("Caller sent to voicemail" in line for line in lines)
        # the meeting is cancelled on the server; a reload refreshes at once: free again
        status, _ = radicale.request("DELETE", "/alice/work/meeting.ics")
        assert status in (200, 204)
        await pbx.modules.reload("res_calendar")
        for _ in range(100):
            if not pbx.modules.loaded["res_calendar"].service.get("myGoogleCal").busy:
                break
            await asyncio.sleep(0.05)
        chan = await call(pbx, "3000@LocalSets")
        assert chan.vars["CalendarBusy"] == "0"


@aio
async def test_1_5_a_finished_call_is_written_to_the_phone_calls_calendar(tmp_path: Path, radicale: Radicale) -> None:
    extensions = (LISTINGS / "listing06.conf").read_text()
    async with running_pbx(tmp_path, extensions, calendar_conf=calendar_conf(radicale)) as (pbx, lines):
        before = int(time.time())
        chan = await call(pbx, "5551234567@LocalSets")  # no _NXXNXXXXXX match: only h runs (the SIP call is in test_chapter_calendar.py)
        assert chan.vars.get("CALENDAR_SUCCESS") == "1", lines[-20:]
        status, listing = radicale.request("PROPFIND", "/alice/calls/", headers={"Depth": "1"})
        hrefs = [h for h in listing.split("<") if h.startswith("href>") and h.endswith(".ics")]
        assert len(hrefs) == 1, listing
        status, text = radicale.request("GET", hrefs[0][len("href>"):])
        assert status == 200
        assert "SUMMARY:Call to " in text and "DESCRIPTION:Call lasted 0 seconds" in text
        start = datetime.strptime(text.split("DTSTART:")[1][:16], FMT).replace(tzinfo=UTC)
        assert abs(start.timestamp() - before) < 5
        assert "SUMMARY:\r\n" not in text and "LOCATION:\r\n" not in text  # no empty properties


@aio
async def test_1_5_calendar_success_is_0_when_the_server_refuses(tmp_path: Path, radicale: Radicale) -> None:
    extensions = (LISTINGS / "listing06.conf").read_text()
    conf = calendar_conf(radicale, secret="wrong")
    async with running_pbx(tmp_path, extensions, calendar_conf=conf) as (pbx, lines):
        chan = await call(pbx, "5551234567@LocalSets")  # no _NXXNXXXXXX match: only h runs (the SIP call is in test_chapter_calendar.py)
        assert chan.vars.get("CALENDAR_SUCCESS") == "0"
        status, listing = radicale.request("PROPFIND", "/alice/calls/", headers={"Depth": "1"})
        assert ".ics<" not in listing
