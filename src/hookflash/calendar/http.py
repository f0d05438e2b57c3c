"""The HTTP client every calendar backend uses (``httpx``, async: never blocks the loop).

What a calendar.conf section controls (Asterisk's ``url``, ``user``, ``secret``, plus
hookflash extensions):

* ``user``/``secret``: HTTP Basic or Digest, whichever the server's 401 challenge asks
  for (Digest preferred); ``auth = basic|digest|auto`` pins one (``basic`` then sends
  credentials without waiting for a challenge). Asterisk (neon) negotiates the same way.
* ``oauth_token = TOKEN`` / ``oauth_token_file = PATH`` / ``oauth_token_command = CMD``:
  an OAuth2 bearer token (RFC 6750), as Google and Microsoft 365 calendars need. A token
  file is re-read when it changes (let a token refresher such as ``oauth2l`` write it);
  a command prints the token on stdout and is run again after ``oauth_token_ttl``
  seconds (default 300) or after a 401.
* ``verify_tls = yes|no`` (default yes) and ``ca_file = PATH``: certificate checks.
* ``timeout = SECONDS`` (default 30): connect, read and whole-request bound.
* ``max_size = BYTES`` (``K``/``M`` suffixes, default 32M): a larger answer is an error.

Every failure is a :class:`CalendarError` naming the calendar, the method, the URL
(without credentials) and what went wrong.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml import ElementTree as SafeET

from hookflash.calendar.event import BackendSettings, CalendarError

log = logging.getLogger("hookflash.calendar.http")
# httpx logs every request at INFO; calendar refreshes would flood the console.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "hookflash-calendar"


@dataclass(frozen=True)
class HttpSettings:
    calendar: str
    user: str = ""
    secret: str = ""
    auth: str = "auto"  # auto | basic | digest
    oauth_token: str = ""
    oauth_token_file: str = ""
    oauth_token_command: str = ""
    oauth_token_ttl: float = 300.0
    verify_tls: bool = True
    ca_file: str = ""
    timeout: float = 30.0
    max_size: int = 32 * 1024 * 1024
    headers: dict[str, str] = field(default_factory=dict)


def settings_from(conf: BackendSettings) -> HttpSettings:
    """Read the HTTP options of one calendar.conf section; CalendarError names the bad one."""
    opts = conf.options

    def where(option: str) -> str:
        line = f" line {conf.lineno}" if conf.lineno else ""
        return f"{conf.filename}{line}: [{conf.name}] {option}"

    auth = opts.get("auth", "auto").strip().lower() or "auto"
    if auth not in ("auto", "basic", "digest"):
        raise CalendarError(f"{where('auth')} = {auth}: expected auto, basic or digest")
    verify = opts.get("verify_tls", "yes").strip().lower()
    if verify not in _BOOLS:
        raise CalendarError(f"{where('verify_tls')} = {verify}: expected yes or no")
    try:
        timeout = float(opts.get("timeout", "30"))
        if not 0 < timeout <= 3600:
            raise ValueError
    except ValueError:
        raise CalendarError(f"{where('timeout')} = {opts.get('timeout')}: expected seconds, "
                            "a number above 0 and at most 3600") from None
    try:
        max_size = parse_size(opts.get("max_size", "32M"))
    except ValueError:
        raise CalendarError(f"{where('max_size')} = {opts.get('max_size')}: expected bytes, "
                            "e.g. 500000, 512K or 32M") from None
    try:
        ttl = float(opts.get("oauth_token_ttl", "300"))
    except ValueError:
        raise CalendarError(f"{where('oauth_token_ttl')}: expected seconds") from None
    ca_file = opts.get("ca_file", "").strip()
    if ca_file and not Path(ca_file).is_file():
        raise CalendarError(f"{where('ca_file')} = {ca_file}: no such file")
    return HttpSettings(
        calendar=conf.name, user=conf.user, secret=conf.secret, auth=auth,
        oauth_token=opts.get("oauth_token", "").strip(),
        oauth_token_file=opts.get("oauth_token_file", "").strip(),
        oauth_token_command=opts.get("oauth_token_command", "").strip(),
        oauth_token_ttl=ttl, verify_tls=_BOOLS[verify], ca_file=ca_file,
        timeout=timeout, max_size=max_size,
    )


_BOOLS = {"yes": True, "true": True, "on": True, "1": True, "no": False, "false": False,
          "off": False, "0": False}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    scale = 1
    if text[-1:] in ("K", "M", "G"):
        scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[text[-1]]
        text = text[:-1]
    value = int(text) * scale
    if value <= 0:
        raise ValueError(text)
    return value


def safe_url(url: str) -> str:
    """The URL without user:password@, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<bad url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class ChallengeAuth(httpx.Auth):
    """Basic or Digest, chosen by the server's challenge (Digest wins if both are offered)."""

    def __init__(self, user: str, secret: str, mode: str = "auto") -> None:
        self._basic = httpx.BasicAuth(user, secret)
        self._digest = httpx.DigestAuth(user, secret)
        self._scheme = mode if mode in ("basic", "digest") else ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._scheme == "basic":
            yield from self._basic.auth_flow(request)
            return
        if self._scheme == "digest":
            yield from self._digest.auth_flow(request)
            return
        response = yield request
        if response.status_code != 401:
            return
        offered = [v.split(None, 1)[0].lower() for v in response.headers.get_list("www-authenticate")
                   if v.strip()]
        if "digest" in offered:
            self._scheme = "digest"
            yield from self._digest.auth_flow(request)
        elif "basic" in offered:
            self._scheme = "basic"
            yield from self._basic.auth_flow(request)


class BearerAuth(httpx.Auth):
    """OAuth2 bearer token (RFC 6750) from the config, a file or a command."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._token.get()}"
        response = yield request
        if response.status_code == 401 and self._token.refreshable:
            self._token.expire()
            request.headers["Authorization"] = f"Bearer {await self._token.get()}"
            yield request


class TokenSource:
    def __init__(self, settings: HttpSettings) -> None:
        self.s = settings
        self._value = settings.oauth_token
        self._stamp: tuple[float, int] | None = None
        self._fetched = 0.0
        self.refreshable = bool(settings.oauth_token_file or settings.oauth_token_command)

    def expire(self) -> None:
        self._stamp = None
        self._fetched = 0.0

    async def get(self) -> str:
        if self.s.oauth_token_file:
            return await asyncio.to_thread(self._from_file)
        stale = not self._value or time.monotonic() - self._fetched > self.s.oauth_token_ttl
        if self.s.oauth_token_command and stale:
            self._value = await self._from_command()
            self._fetched = time.monotonic()
        return self._value

    def _from_file(self) -> str:
        path = Path(self.s.oauth_token_file)
        try:
            st = path.stat()
            stamp = (st.st_mtime, st.st_size)
            if stamp != self._stamp:
                if st.st_size > 64 * 1024:
                    raise CalendarError(f"calendar '{self.s.calendar}': oauth_token_file {path} is too large")
                self._value = _token_text(path.read_text(errors="replace"))
                self._stamp = stamp
        except OSError as exc:
            raise CalendarError(f"calendar '{self.s.calendar}': cannot read oauth_token_file {path}: "
                                f"{exc.strerror}") from None
        return self._value

    async def _from_command(self) -> str:
        argv = shlex.split(self.s.oauth_token_command)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise CalendarError(f"calendar '{self.s.calendar}': oauth_token_command {argv[0]!r} "
                                f"cannot run: {exc.strerror}") from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.s.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CalendarError(f"calendar '{self.s.calendar}': oauth_token_command timed out") from None
        if proc.returncode != 0:
            raise CalendarError(f"calendar '{self.s.calendar}': oauth_token_command exited "
                                f"with status {proc.returncode}")
        return _token_text(out[:64 * 1024].decode("utf-8", errors="replace"))


def _token_text(text: str) -> str:
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    # A token is visible ASCII (RFC 6750 2.1 b64token); anything else would break the header.
    if not token or not all(33 <= ord(c) < 127 for c in token):
        raise CalendarError("OAuth2 token is empty or has characters a bearer token cannot have")
    return token


class HttpClient:
    """One per calendar: a connection pool, its auth, its limits."""

    def __init__(self, settings: HttpSettings) -> None:
        self.s = settings
        auth: httpx.Auth | None = None
        if settings.oauth_token or settings.oauth_token_file or settings.oauth_token_command:
            auth = BearerAuth(TokenSource(settings))
        elif settings.user or settings.secret:
            auth = ChallengeAuth(settings.user, settings.secret, settings.auth)
        verify: ssl.SSLContext | bool = settings.verify_tls
        if settings.verify_tls and settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        self._client = httpx.AsyncClient(
            auth=auth, verify=verify, follow_redirects=True, max_redirects=5,
            timeout=httpx.Timeout(settings.timeout),
            headers={"User-Agent": USER_AGENT, **settings.headers},
            trust_env=False,
        )

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      content: bytes | None = None) -> Response:
        """Send one request; the whole exchange is bounded by ``timeout`` and the body by
        ``max_size``. Any HTTP status is returned; transport failures raise CalendarError."""
        try:
            return await asyncio.wait_for(self._request(method, url, headers, content), self.s.timeout)
        except TimeoutError:
            raise self.error(method, url, f"no complete answer within {self.s.timeout:g} s") from None
        except httpx.TooManyRedirects:
            raise self.error(method, url, "too many redirects") from None
        except httpx.ConnectError as exc:
            raise self.error(method, url, _connect_reason(exc)) from None
        except httpx.TimeoutException:
            raise self.error(method, url, f"timed out after {self.s.timeout:g} s") from None
        except httpx.UnsupportedProtocol:
            raise self.error(method, url, "not an http:// or https:// URL") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise self.error(method, url, f"{type(exc).__name__}: {exc}") from None

    async def _request(self, method: str, url: str, headers: dict[str, str] | None,
                       content: bytes | None) -> Response:
        async with self._client.stream(method, url, headers=headers, content=content) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.s.max_size:
                raise self.error(method, url, f"answer of {declared} bytes exceeds max_size "
                                              f"({self.s.max_size} bytes)")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.s.max_size:
                    raise self.error(method, url, f"answer exceeds max_size ({self.s.max_size} bytes)")
                chunks.append(chunk)
            return Response(resp.status_code, resp.headers, b"".join(chunks), str(resp.url))

    def error(self, method: str, url: str, what: str) -> CalendarError:
        return CalendarError(f"calendar '{self.s.calendar}': {method} {safe_url(url)}: {what}")

    def status_error(self, method: str, url: str, status: int) -> CalendarError:
        reason = httpx.codes.get_reason_phrase(status) or "unknown status"
        hint = ""
        if status == 401:
            hint = " (invalid username, password or token)"
        elif status == 403:
            hint = " (refused: no permission)"
        return self.error(method, url, f"HTTP {status} {reason}{hint}")

    async def close(self) -> None:
        await self._client.aclose()


def _connect_reason(exc: httpx.ConnectError) -> str:
    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(c) for c in causes)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return ("TLS certificate verification failed (set ca_file, or verify_tls = no to "
                f"accept any certificate): {exc}")
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text.lower():
        return "connection refused"
    return f"cannot connect: {exc or type(exc).__name__}"


class XmlError(ValueError):
    """A server's XML could not be used (malformed, or with a DTD/entities)."""


def parse_xml(body: bytes) -> ET.Element:
    """Parse an XML answer with no DTD, no entity expansion and no external references
    (``defusedxml``): a "billion laughs" bomb is refused, not expanded."""
    if not body.strip():
        raise XmlError("empty body where XML was expected")
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
        return root
    except DefusedXmlException as exc:
        raise XmlError(f"XML refused ({type(exc).__name__}: DTDs and entities are not accepted)") from None
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from None


def xml_bytes(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + data


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def with_scheme(url: str) -> str:
    """Asterisk's rule: a URL without a scheme is http://."""
    return url if "://" in url else f"http://{url}"


__all__ = [
    "HttpClient",
    "HttpSettings",
    "Response",
    "XmlError",
    "is_http_url",
    "parse_size",
    "parse_xml",
    "safe_url",
    "settings_from",
    "with_scheme",
    "xml_bytes",
]
