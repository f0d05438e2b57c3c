"""SIP messages: parsing and serialisation (RFC 3261 §7, §19, §20, §25), sans-IO.

Bytes in, :class:`SipRequest` / :class:`SipResponse` out, and back with ``bytes(msg)``.
Nothing here opens a socket or reads a clock.

Parsing is split in two so that the common path stays cheap:

1. :func:`parse_message` (one datagram) and :class:`StreamParser` (TCP/TLS framing,
   §18.3) split the start line and the header lines once, unfold continuation lines and
   check what a response to the message depends on: start line, SIP version, the
   mandatory headers (§8.1.1), the Via list, To, From, CSeq (number and method),
   Max-Forwards, Content-Length and the Request-URI.
2. Everything else is parsed on demand: :class:`Headers` keeps the raw values, and the
   typed views (``msg.vias``, ``msg.from_addr``, ...) are cached in the headers until
   they change.

The usual forms take shortcuts, each giving what the general code gives: header lines
whose name was seen before, parameters without LWS or quotes, name-addr of the common
shapes; the views the checks parse go straight into the cache.  Measured with CPython
3.11 (thread CPU time, a shared 2-core box): ``parse_message`` on an 800-byte INVITE with
SDP (13 headers) takes about 17 µs, the eager Via/From/To/CSeq/Request-URI checks
included (35 µs before issue 14); ``bytes(msg)`` about 1.6 µs.  See ``test_parse_timing``
in the unit tests and bench/sip_message.py.

Exceptions::

    SipError               base of the SIP layer; .status is the response to answer
      SipParseError        a message that cannot be parsed; .status is the response
                           to send (400, 413, 505, ...) or 0 = drop silently; .message
                           is what could be parsed (to build that response from);
                           .fatal means a stream is out of sync and must be closed
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import IntEnum
from functools import lru_cache
from typing import Any, Self, TypeAlias
from urllib.parse import quote, unquote

__all__ = [
    "MAGIC_COOKIE", "MAX_MESSAGE_SIZE", "Address", "Headers", "SipError", "SipMessage",
    "SipParseError", "SipRequest", "SipResponse", "SipUri", "Status", "StreamParser", "Via",
    "make_branch", "make_tag", "parse_cseq", "parse_message", "split_list",
    "unsupported_extensions", "validate_request",
]

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7
MAX_MESSAGE_SIZE = 65536  # larger messages are answered 413 (requests) or dropped
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})

# --------------------------------------------------------------------------- errors


class SipError(Exception):
    """Base of the SIP layer; ``status`` is the response to answer (0: none)."""

    def __init__(self, status: int = 500, reason: str = "") -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class SipParseError(SipError):
    """A message that cannot be parsed.

    ``status`` is the response to send (400, 413, 505, ...) or 0 to drop the message
    silently (a response, or a request nobody could route a response for); ``message``
    holds whatever was parsed so the response can copy Via/From/To/Call-ID/CSeq;
    ``fatal`` is set when a stream lost its framing and must be closed.
    """

    def __init__(
        self, status: int, reason: str, message: SipMessage | None = None, *, fatal: bool = False
    ) -> None:
        super().__init__(status, reason)
        self.message = message
        self.fatal = fatal


def _bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


# --------------------------------------------------------------------------- status codes


class Status(IntEnum):
    """Response codes of RFC 3261 §21 and common extensions, each with its phrase.

    ``Status(code)`` also accepts an unlisted code in 100-699 and gives it the
    generic phrase of its class (§8.1.3.2: treat unknown x00-x99 as x00).
    """

    phrase: str

    def __new__(cls, value: int, phrase: str = "") -> Self:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.phrase = phrase
        return obj

    @classmethod
    def _missing_(cls, value: object) -> Status | None:
        if isinstance(value, int) and 100 <= value <= 699:
            obj = int.__new__(cls, value)
            obj._value_ = value
            obj._name_ = f"CODE_{value}"
            obj.phrase = _CLASS_PHRASES[value // 100]
            return obj
        return None

    TRYING = 100, "Trying"
    RINGING = 180, "Ringing"
    CALL_IS_BEING_FORWARDED = 181, "Call Is Being Forwarded"
    QUEUED = 182, "Queued"
    SESSION_PROGRESS = 183, "Session Progress"
    EARLY_DIALOG_TERMINATED = 199, "Early Dialog Terminated"
    OK = 200, "OK"
    ACCEPTED = 202, "Accepted"
    NO_NOTIFICATION = 204, "No Notification"
    MULTIPLE_CHOICES = 300, "Multiple Choices"
    MOVED_PERMANENTLY = 301, "Moved Permanently"
    MOVED_TEMPORARILY = 302, "Moved Temporarily"
    USE_PROXY = 305, "Use Proxy"
    ALTERNATIVE_SERVICE = 380, "Alternative Service"
    BAD_REQUEST = 400, "Bad Request"
    UNAUTHORIZED = 401, "Unauthorized"
    PAYMENT_REQUIRED = 402, "Payment Required"
    FORBIDDEN = 403, "Forbidden"
    NOT_FOUND = 404, "Not Found"
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed"
    NOT_ACCEPTABLE = 406, "Not Acceptable"
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required"
    REQUEST_TIMEOUT = 408, "Request Timeout"
    GONE = 410, "Gone"
    CONDITIONAL_REQUEST_FAILED = 412, "Conditional Request Failed"
    REQUEST_ENTITY_TOO_LARGE = 413, "Request Entity Too Large"
    REQUEST_URI_TOO_LONG = 414, "Request-URI Too Long"
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type"
    UNSUPPORTED_URI_SCHEME = 416, "Unsupported URI Scheme"
    UNKNOWN_RESOURCE_PRIORITY = 417, "Unknown Resource-Priority"
    BAD_EXTENSION = 420, "Bad Extension"
    EXTENSION_REQUIRED = 421, "Extension Required"
    SESSION_INTERVAL_TOO_SMALL = 422, "Session Interval Too Small"
    INTERVAL_TOO_BRIEF = 423, "Interval Too Brief"
    BAD_LOCATION_INFORMATION = 424, "Bad Location Information"
    USE_IDENTITY_HEADER = 428, "Use Identity Header"
    PROVIDE_REFERRER_IDENTITY = 429, "Provide Referrer Identity"
    FLOW_FAILED = 430, "Flow Failed"
    ANONYMITY_DISALLOWED = 433, "Anonymity Disallowed"
    BAD_IDENTITY_INFO = 436, "Bad Identity-Info"
    UNSUPPORTED_CERTIFICATE = 437, "Unsupported Certificate"
    INVALID_IDENTITY_HEADER = 438, "Invalid Identity Header"
    FIRST_HOP_LACKS_OUTBOUND_SUPPORT = 439, "First Hop Lacks Outbound Support"
    MAX_BREADTH_EXCEEDED = 440, "Max-Breadth Exceeded"
    BAD_INFO_PACKAGE = 469, "Bad Info Package"
    CONSENT_NEEDED = 470, "Consent Needed"
    TEMPORARILY_UNAVAILABLE = 480, "Temporarily Unavailable"
    CALL_TRANSACTION_DOES_NOT_EXIST = 481, "Call/Transaction Does Not Exist"
    LOOP_DETECTED = 482, "Loop Detected"
    TOO_MANY_HOPS = 483, "Too Many Hops"
    ADDRESS_INCOMPLETE = 484, "Address Incomplete"
    AMBIGUOUS = 485, "Ambiguous"
    BUSY_HERE = 486, "Busy Here"
    REQUEST_TERMINATED = 487, "Request Terminated"
    NOT_ACCEPTABLE_HERE = 488, "Not Acceptable Here"
    BAD_EVENT = 489, "Bad Event"
    REQUEST_PENDING = 491, "Request Pending"
    UNDECIPHERABLE = 493, "Undecipherable"
    SECURITY_AGREEMENT_REQUIRED = 494, "Security Agreement Required"
    SERVER_INTERNAL_ERROR = 500, "Server Internal Error"
    NOT_IMPLEMENTED = 501, "Not Implemented"
    BAD_GATEWAY = 502, "Bad Gateway"
    SERVICE_UNAVAILABLE = 503, "Service Unavailable"
    SERVER_TIMEOUT = 504, "Server Time-out"
    VERSION_NOT_SUPPORTED = 505, "Version Not Supported"
    MESSAGE_TOO_LARGE = 513, "Message Too Large"
    PRECONDITION_FAILURE = 580, "Precondition Failure"
    BUSY_EVERYWHERE = 600, "Busy Everywhere"
    DECLINE = 603, "Decline"
    DOES_NOT_EXIST_ANYWHERE = 604, "Does Not Exist Anywhere"
    GLOBAL_NOT_ACCEPTABLE = 606, "Not Acceptable"
    UNWANTED = 607, "Unwanted"


_CLASS_PHRASES = {
    1: "Trying", 2: "OK", 3: "Multiple Choices", 4: "Bad Request",
    5: "Server Internal Error", 6: "Busy Everywhere",
}


# --------------------------------------------------------------------------- lexical helpers

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOST_RE = re.compile(r"[A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\]")
_GEN_VALUE_RE = re.compile(r'[^\s";,]+|"(?:[^"\\]|\\[\s\S])*"')
# generic-params without LWS or quoted values: token[=value] *(;token[=value])
_SIMPLE_PARAM = r"""[A-Za-z0-9\-.!%*_+`'~]+(?:=[^\s";,]+)?"""
_SIMPLE_PARAMS_RE = re.compile(rf"{_SIMPLE_PARAM}(?:;{_SIMPLE_PARAM})*")
_COLON_LWS_RE = re.compile(r"[ \t]*:[ \t]*")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_WS = " \t"

# §7.3.3 and the IANA registry of compact forms
_COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact",
    "k": "supported", "l": "content-length", "m": "contact", "n": "identity-info",
    "o": "event", "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events",
    "v": "via", "x": "session-expires", "y": "identity",
}
# headers whose values are comma-separated lists (§7.3.1)
_LIST_HEADERS = frozenset({
    "via", "route", "record-route", "contact", "allow", "supported", "require",
    "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
    "allow-events", "content-encoding", "in-reply-to", "alert-info", "call-info", "error-info",
    "path", "service-route", "p-asserted-identity", "p-preferred-identity", "history-info",
    "security-client", "security-server", "security-verify", "accept-contact",
    "reject-contact", "request-disposition", "reason",
})
_SINGLE_HEADERS = (
    ("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq"),
    ("max-forwards", "Max-Forwards"), ("content-type", "Content-Type"),
)
_MANDATORY = (("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq"), ("via", "Via"))
_MANDATORY_KEYS = frozenset(key for key, _ in _MANDATORY)


def _key(name: str) -> str:
    """The key a header name is stored and looked up under: lowercase, long form.
    (Hot paths write ``_KEYS.get(name) or _key(name)``: one dict look-up when known.)"""
    k = _KEYS.get(name)
    if k is None:
        k = name.lower()
        k = _COMPACT.get(k, k) if len(k) == 1 else k
        if len(_KEYS) < 512:  # the names this code and its peers use: a few dozen
            _KEYS[name] = k
    return k


def _seed_keys() -> dict[str, str]:
    """The usual spellings of the usual names (as written, lowercase, compact)."""
    canonical = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
                 "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq"}
    names = {*_COMPACT.values(), *_LIST_HEADERS, "to", "from", "call-id", "cseq", "max-forwards",
             "content-length", "content-type", "expires", "min-expires", "user-agent", "server",
             "subject", "date", "timestamp", "authorization", "proxy-authorization",
             "www-authenticate", "proxy-authenticate", "authentication-info", "organization",
             "priority", "retry-after", "warning", "content-disposition", "content-language",
             "mime-version", "rack", "rseq", "event", "subscription-state", "refer-to",
             "referred-by", "replaces", "p-asserted-identity", "privacy", "min-se"}
    keys: dict[str, str] = {}
    for key in names:
        title = canonical.get(key) or "-".join(w.capitalize() for w in key.split("-"))
        keys[key] = keys[title] = keys[title.lower()] = key
    for letter, key in _COMPACT.items():
        keys[letter] = keys[letter.upper()] = key
    return keys


_KEYS: dict[str, str] = _seed_keys()  # header name as spelt -> lowercase long form


def _is_digits(text: str, max_len: int = 10) -> bool:
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


def _unescape(text: str) -> str:
    return unquote(text, errors="surrogateescape") if "%" in text else text


_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"
_HEADER_SAFE = "-_.!~*'()[]/?:+$"


def _escape(text: str, safe: str) -> str:
    unchanged = _UNESCAPED.get(safe)
    if unchanged is not None and unchanged.fullmatch(text):  # the usual case: nothing to escape
        return text
    return quote(text, safe=safe, errors="surrogateescape")


# the texts quote() leaves as they are: its always-safe characters and ``safe``
_UNESCAPED = {
    safe: re.compile(f"[A-Za-z0-9_.~{re.escape(safe)}-]*")
    for safe in (_USER_SAFE, _PASSWORD_SAFE, _PARAM_SAFE, _HEADER_SAFE)
}


def split_list(value: str, keep_empty: bool = False) -> list[str]:
    """Split a header value on commas outside quoted strings and ``<...>`` (§7.3.1)."""
    if "," not in value:
        v = value.strip(_WS)
        return [v] if v or keep_empty else []
    if '"' not in value and "<" not in value:
        parts = [p.strip(_WS) for p in value.split(",")]
    else:
        parts = []
        start = i = 0
        n = len(value)
        in_quote = in_angle = False
        while i < n:
            c = value[i]
            if in_quote:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_quote = False
            elif in_angle:
                in_angle = c != ">"
            elif c == '"':
                in_quote = True
            elif c == "<":
                in_angle = True
            elif c == ",":
                parts.append(value[start:i].strip(_WS))
                start = i + 1
            i += 1
        parts.append(value[start:].strip(_WS))
    return parts if keep_empty else [p for p in parts if p]


def _split_semis(text: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = i = 0
    in_quote = False
    while i < len(text):
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _parse_params(text: str, strict: bool = True) -> dict[str, str | None]:
    """``name[=value]`` pairs separated by ``;`` (generic-param, §25.1), LWS allowed
    around ``;`` and ``=``; names lowercased, values kept as written (quotes included)."""
    params: dict[str, str | None] = {}
    if _SIMPLE_PARAMS_RE.fullmatch(text):  # the usual ";tag=x", ";branch=y;rport": all valid
        if ";" not in text:
            name, eq, value = text.partition("=")
            return {name.lower(): value if eq else None}
        for part in text.split(";"):
            name, eq, value = part.partition("=")
            params[name.lower()] = value if eq else None
        return params
    for part in _split_semis(text):
        p = part.strip(_WS)
        if not p:
            if strict:
                raise _bad("Empty parameter")
            continue
        eq = p.find("=")
        value: str | None
        if eq < 0:
            name, value = p, None
        else:
            name, value = p[:eq].rstrip(_WS), p[eq + 1 :].lstrip(_WS)
            if strict and not _GEN_VALUE_RE.fullmatch(value):
                raise _bad(f"Invalid value of parameter {name!r}")
        if not _TOKEN_RE.fullmatch(name):
            if strict:
                raise _bad(f"Invalid parameter name {name!r}")
            continue
        params[name.lower()] = value
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params.items()])


def _parse_quoted(text: str, start: int) -> tuple[int, str]:
    """Unescape the quoted string at ``text[start] == '"'``; return (end, content)."""
    out: list[str] = []
    i = start + 1
    while True:
        q = text.find('"', i)
        if q < 0:
            raise _bad("Unterminated quoted string")
        b = text.find("\\", i, q)
        if b < 0:
            out.append(text[i:q])
            return q + 1, "".join(out)
        out.append(text[i:b])
        out.append(text[b + 1])
        i = b + 2


# name-addr with a display name of tokens or a quoted string without escapes, a URI
# without LWS, quotes or angle brackets, and maybe ";" and parameters (checked apart)
_NAME_ADDR_RE = re.compile(
    r"""(?:"([^"\\]*)"[ \t]*|([A-Za-z0-9\-.!%*_+`'~ \t]*))<([^<>" \t]*)>[ \t]*(?:;(.*))?""", re.DOTALL
)
_NEEDS_QUOTING_RE = re.compile(r'["\\\x00-\x1f\x7f]')


def _quote_display(display: str) -> str:
    if _NEEDS_QUOTING_RE.search(display):
        display = "".join(
            "" if c in "\r\n" else "\\" + c if c in '"\\' or c < " " or c == "\x7f" else c
            for c in display
        )
    return f'"{display}"'


def _split_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]``, IPv6 references kept with their brackets."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad("Unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and rest[0] != ":":
            raise _bad(f"Invalid host {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not _HOST_RE.fullmatch(host):
        raise _bad(f"Invalid host {host!r}")
    if port_text is None:
        return host, None
    if not _is_digits(port_text, 5) or int(port_text) > 65535:
        raise _bad(f"Invalid port {port_text!r}")
    return host, int(port_text)


# --------------------------------------------------------------------------- URIs


@dataclass
class SipUri:
    """A SIP/SIPS URI (§19.1), a tel URI (RFC 3966) or any other URI kept opaque.

    ``user``/``password`` and parameter names/values are unescaped; ``__str__``
    escapes them again (so ``%6C`` comes back as ``l``, an equivalent URI, §19.1.4).
    IPv6 hosts keep their brackets. For other schemes everything after ``scheme:``
    is in ``opaque``.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse ``text``. The same text gives the same (shared) object: the From, To,
        Contact and Request-URI of one peer repeat on every call, so they are parsed
        once (a bounded cache). Parsed URIs are never changed in place; ``with_params``,
        ``without_params`` and ``dataclasses.replace`` make new ones."""
        if cls is SipUri:
            return _parse_uri_cached(text)
        return cls._parse_uncached(text)

    @classmethod
    def _parse_uncached(cls, text: str) -> SipUri:
        colon = text.find(":")
        scheme = text[:colon].lower()
        if colon <= 0 or not _SCHEME_RE.fullmatch(scheme):
            raise _bad(f"Invalid URI {text!r}")
        rest = text[colon + 1 :]
        if not rest or any(c in rest for c in ' \t<>"'):
            raise _bad(f"Invalid URI {text!r}")
        if scheme in ("sip", "sips"):
            return cls._parse_sip(scheme, rest)
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return cls("tel", _unescape(number), params=cls._uri_params(params) if params else {})
        return cls(scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> SipUri:
        user = password = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            u, sep, pw = userinfo.partition(":")
            if not u:
                raise _bad("Empty user part in URI")
            user = _unescape(u)
            password = _unescape(pw) if sep else None
        headers: dict[str, str] = {}
        q = rest.find("?")
        if q >= 0:
            for item in rest[q + 1 :].split("&"):
                name, sep, value = item.partition("=")
                if not name or not sep:
                    raise _bad("Invalid URI header")
                headers[_unescape(name)] = _unescape(value)
            rest = rest[:q]
        hostport, _, ptext = rest.partition(";")
        host, port = _split_hostport(hostport)
        params = cls._uri_params(ptext) if ptext or rest.endswith(";") else {}
        return cls(scheme, user, password, host, port, params, headers)

    @staticmethod
    def _uri_params(text: str) -> dict[str, str | None]:
        params: dict[str, str | None] = {}
        for item in text.split(";"):
            name, sep, value = item.partition("=")
            if not name or (sep and not value):
                raise _bad("Empty URI parameter")
            params[_unescape(name).lower()] = _unescape(value) if sep else None
        return params

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE if self.scheme != "tel" else _PARAM_SAFE))
            if self.password is not None:
                parts += [":", _escape(self.password, _PASSWORD_SAFE)]
            if self.scheme != "tel":
                parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for k, v in self.params.items():
            parts.append(f";{_escape(k, _PARAM_SAFE)}")
            if v is not None:
                parts.append(f"={_escape(v, _PARAM_SAFE)}")
        if self.headers:
            parts.append("?" + "&".join(
                f"{_escape(k, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}" for k, v in self.headers.items()
            ))
        return "".join(parts)

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with ``params`` added/replaced (a value of None gives ``;name``)."""
        return replace(self, params={**self.params, **params}, headers=dict(self.headers))

    def without_params(self, *names: str) -> SipUri:
        return replace(
            self, params={k: v for k, v in self.params.items() if k not in names},
            headers=dict(self.headers),
        )


@dataclass
class Address:
    """name-addr or addr-spec with header parameters (§20.10, §25.1): From, To, Contact,
    Route, Record-Route, Refer-To...  ``display`` is unquoted; ``params`` keep their
    values as written (a quoted value keeps its quotes). Contact ``*`` is not an
    Address: check for it first."""

    display: str
    uri: SipUri
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        s = text.strip(_WS)
        m = _NAME_ADDR_RE.fullmatch(s)
        if m is not None:  # the usual forms, valid up to the URI and the parameters
            quoted, words, uri_text, params = m.groups()
            display = quoted if quoted is not None else " ".join(words.split()) if words else ""
            uri = SipUri.parse(uri_text)
            return cls(display, uri) if params is None else cls(display, uri, _parse_params(params))
        if not s:
            raise _bad("Empty address")
        display = ""
        if s[0] == '"':
            end, display = _parse_quoted(s, 0)
            lt = end
            while lt < len(s) and s[lt] in _WS:
                lt += 1
            if lt >= len(s) or s[lt] != "<":
                raise _bad("Display name without <URI>")
        else:
            lt = s.find("<")
            if lt < 0:
                return cls._parse_addr_spec(s)
            if lt:
                words = s[:lt]
                if not _DISPLAY_TOKENS_RE.fullmatch(words):
                    raise _bad(f"Invalid display name {words.strip(_WS)!r}")
                display = " ".join(words.split())
        gt = s.find(">", lt + 1)
        if gt < 0:
            raise _bad("Unterminated <URI>")
        uri_text = s[lt + 1 : gt]
        if " " in uri_text or "\t" in uri_text:
            raise _bad("Whitespace inside <URI>")
        uri = SipUri.parse(uri_text)
        rest = s[gt + 1 :].lstrip(_WS)
        if not rest:
            return cls(display, uri)
        if rest[0] != ";":
            raise _bad("Garbage after <URI>")
        return cls(display, uri, _parse_params(rest[1:]))

    @classmethod
    def _parse_addr_spec(cls, s: str) -> Address:
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi].rstrip(_WS)
        if any(c in uri_text for c in ",?"):
            raise _bad("URI with ',' or '?' must be enclosed in <>")
        uri = SipUri.parse(uri_text)
        return cls("", uri, _parse_params(s[semi + 1 :]) if semi >= 0 else {})

    def __str__(self) -> str:
        head = f"{_quote_display(self.display)} <{self.uri}>" if self.display else f"<{self.uri}>"
        return head + _format_params(self.params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> Address:
        return replace(self, params={**self.params, "tag": tag})


# --------------------------------------------------------------------------- Via


@dataclass
class Via:
    """One Via value (§20.42): ``SIP/2.0/UDP host:port;branch=...;received=...;rport``.

    ``transport`` is upper-cased and may be any token (SCTP, WS, UNKNOWN...);
    ``params`` names are lowercased; ``rport`` present without value is None."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str, strict: bool = True) -> Via:
        semi = text.find(";")
        head = text if semi < 0 else text[:semi]
        transport, host, port, protocol = _parse_via_head(head)
        params = _parse_params(text[semi + 1 :], strict) if semi >= 0 else {}
        return cls(transport, host, port, params, protocol)

    @staticmethod
    def _parse_head(head: str) -> tuple[str, str, int | None, str]:
        """``SIP/2.0/UDP host:port`` -> (transport, host, port, protocol)."""
        text = head
        parts = head.split("/")
        if len(parts) != 3:
            raise _bad(f"Invalid Via {text!r}")
        name, version = parts[0].strip(_WS), parts[1].strip(_WS)
        tail = parts[2].split(None, 1)
        if len(tail) != 2 or not _TOKEN_RE.fullmatch(name) or not _TOKEN_RE.fullmatch(version):
            raise _bad(f"Invalid Via {text!r}")
        transport, sent_by = tail
        if not _TOKEN_RE.fullmatch(transport):
            raise _bad(f"Invalid Via transport {transport!r}")
        sent_by = sent_by.rstrip(_WS)
        if " " in sent_by or "\t" in sent_by:  # LWS is allowed around the colon only
            sent_by = _COLON_LWS_RE.sub(":", sent_by)
        host, port = _split_hostport(sent_by)
        return transport.upper(), host, port, f"{name}/{version}"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        """Branch starts with the magic cookie and carries an id after it (§8.1.1.7)."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port


# A peer's URIs and Via sent-by repeat on every message: parse each text once.
# Bounded; malformed texts raise every time (exceptions are not cached).
_parse_uri_cached = lru_cache(maxsize=4096)(SipUri._parse_uncached)
_parse_via_head = lru_cache(maxsize=1024)(Via._parse_head)


def parse_cseq(value: str | None) -> tuple[int, str]:
    """``CSeq: 4711 INVITE`` -> (4711, "INVITE"); the number must fit 32 bits (§8.1.1.5)."""
    parts = (value or "").split()
    if len(parts) != 2 or not _is_digits(parts[0], 30) or not _TOKEN_RE.fullmatch(parts[1]):
        raise _bad("Invalid CSeq")
    number = int(parts[0])
    if number > 0xFFFFFFFF:
        raise _bad("CSeq number out of range")
    return number, parts[1]


class _RandomPool:
    """Bytes of os.urandom read 4 KiB at a time: tags and branches stay cryptographically
    random (§19.3) without a getrandom(2) per message. Refilled anew in a forked child."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf, self._pos = b"", 0

    def take(self, n: int) -> bytes:
        pos = self._pos
        if pos + n > len(self._buf):
            self._buf, pos = os.urandom(4096), 0
        self._pos = pos + n
        return self._buf[pos : pos + n]

    def reset(self) -> None:
        self._buf, self._pos = b"", 0


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.reset)


def make_branch() -> str:
    return MAGIC_COOKIE + _random.take(10).hex()


def make_tag() -> str:
    return _random.take(6).hex()


# --------------------------------------------------------------------------- headers


class Headers:
    """Ordered multimap of header fields.

    Names compare case-insensitively and compact forms (``v``, ``i``, ``m``...) match
    their full names; the spelling a header was added with is what is written back.
    Typed views parsed from values are cached here, per header name, and dropped when
    a header of that name changes; they are never modified in place.  So is an index of
    the first value of each header (built when asked for, dropped on any change).
    """

    __slots__ = ("_cache", "_first", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = Headers._keyed(items)
        self._cache: dict[str, Any] = {}
        self._first: dict[str, str] | None = None

    @staticmethod
    def _keyed(items: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """(name, value) pairs as the (key, name, value) items headers keep."""
        keys = _KEYS
        return [(keys.get(n) or _key(n), n, v) for n, v in items]

    @classmethod
    def _of(cls, items: list[tuple[str, str, str]], cache: dict[str, Any] | None = None) -> Headers:
        """Headers holding ``items`` (key, name as spelt, value) as they are (not copied)."""
        new = cls.__new__(cls)
        new._items = items
        new._cache = {} if cache is None else cache
        new._first = None
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        k = _KEYS.get(name) or _key(name)
        first = self._first
        if first is not None:
            return first.get(k, default)
        for key, _, value in self._items:
            if key == k:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value; list headers (Via, Contact, Route...) split on top-level commas."""
        k = _KEYS.get(name) or _key(name)
        values = [v for key, _, v in self._items if key == k]
        if k not in _LIST_HEADERS:
            return values
        return [part for v in values for part in split_list(v)]

    def _raw(self, key: str) -> list[str]:
        return [v for k, _, v in self._items if k == key]

    def _first_values(self) -> dict[str, str]:
        """key -> the first value of each header (read it, never change it)."""
        first = self._first
        if first is None:
            first = self._first = {k: v for k, _, v in reversed(self._items)}
        return first

    def add(self, name: str, value: str) -> None:
        k = _KEYS.get(name) or _key(name)
        self._items.append((k, name, value))
        self._first = None
        if self._cache:
            self._cache.pop(k, None)  # the views of other headers stay valid

    def set(self, name: str, value: str) -> None:
        k = _key(name)
        out: list[tuple[str, str, str]] = []
        done = False
        for item in self._items:
            if item[0] != k:
                out.append(item)
            elif not done:
                out.append((k, name, value))
                done = True
        if not done:
            out.append((k, name, value))
        self._items = out
        self._first = None
        self._cache.pop(k, None)

    def remove(self, name: str) -> None:
        k = _key(name)
        self._items = [item for item in self._items if item[0] != k]
        self._first = None
        self._cache.pop(k, None)

    def insert_first(self, name: str, value: str) -> None:
        """Insert before the first header of that name (at the top if there is none)."""
        k = _key(name)
        index = next((i for i, item in enumerate(self._items) if item[0] == k), 0)
        self._items.insert(index, (k, name, value))
        self._first = None
        self._cache.pop(k, None)

    def items(self) -> list[tuple[str, str]]:
        """(name as spelt, value) pairs in order."""
        return [(n, v) for _, n, v in self._items]

    def copy(self) -> Headers:
        # parsed views (and the index of first values) are never changed in place: share them
        new = Headers._of(list(self._items), dict(self._cache))
        new._first = self._first
        return new

    def share_view(self, other: Headers, key: str) -> None:
        """Reuse ``other``'s parsed view of header ``key`` (a copied header needs no second parse)."""
        if key in other._cache:
            self._cache[key] = other._cache[key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        k = _KEYS.get(name) or _key(name)
        for item in self._items:
            if item[0] == k:
                return True
        return False

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


# --------------------------------------------------------------------------- messages


class _MessageViews:
    """Typed views shared by requests and responses, cached in the headers.

    Each view reads the cache dict of the headers directly (no cached view is None)
    and parses only on a miss: a view is read a dozen times per message."""

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        cache = self.headers._cache
        value = cache.get("call-id")
        if value is None:
            value = cache["call-id"] = self.headers.get("call-id") or ""
        return value  # type: ignore[no-any-return]

    @property
    def cseq(self) -> tuple[int, str]:
        cache = self.headers._cache
        value = cache.get("cseq")
        if value is None:
            value = cache["cseq"] = parse_cseq(self.headers.get("cseq"))
        return value  # type: ignore[no-any-return]

    @property
    def from_addr(self) -> Address:
        cache = self.headers._cache
        value = cache.get("from")
        if value is None:
            value = cache["from"] = Address.parse(self.headers.get("from") or "")
        return value  # type: ignore[no-any-return]

    @property
    def to_addr(self) -> Address:
        cache = self.headers._cache
        value = cache.get("to")
        if value is None:
            value = cache["to"] = Address.parse(self.headers.get("to") or "")
        return value  # type: ignore[no-any-return]

    def _vias(self) -> list[Via]:
        cache = self.headers._cache
        vias = cache.get("via")
        if vias is None:
            vias = cache["via"] = _parse_vias(self.headers._raw("via"))
        return vias  # type: ignore[no-any-return]

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first (a fresh list; edit the headers to change them)."""
        return list(self._vias())

    @property
    def top_via(self) -> Via:
        vias = self.headers._cache.get("via")
        if vias is None:
            vias = self._vias()
        if not vias:
            raise _bad("Missing Via")
        return vias[0]  # type: ignore[no-any-return]

    @property
    def branch(self) -> str:
        vias = self.headers._cache.get("via")
        if vias is None:
            vias = self._vias()
        return (vias[0].branch or "") if vias else ""

    @property
    def contacts(self) -> list[Address]:
        """Contact values as addresses (empty for ``Contact: *``)."""
        cache = self.headers._cache
        value = cache.get("contact")
        if value is None:
            value = cache["contact"] = [
                Address.parse(v) for v in self.headers.get_all("contact") if v != "*"
            ]
        return list(value)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip(_WS).lower() if value else None

    def _serialise(self, start_line: str) -> bytes:
        """Start line, headers as spelt, one Content-Length (at the place and with the
        spelling of the first one, else last) with the length of the body, the body.
        (A plain loop: measured faster here than comprehensions with a fix-up after.)"""
        body = self.body
        lines = [start_line]
        length_written = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if length_written:
                    continue
                value = str(len(body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
        return data + body if body else data


def _parse_vias(values: list[str]) -> list[Via]:
    vias = []
    for value in values:
        parts = split_list(value, keep_empty=True) if "," in value else [value.strip(_WS)]
        for part in parts:
            if not part:
                raise _bad("Empty Via value")
            vias.append(Via.parse(part))
    return vias


@dataclass(eq=False)
class SipRequest(_MessageViews):
    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {self.version}")

    @property
    def request_uri(self) -> SipUri:
        cached = self.__dict__.get("_ruri")
        if cached is None or cached[0] != self.uri:
            cached = self.__dict__["_ruri"] = (self.uri, SipUri.parse(self.uri))
        return cached[1]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("max-forwards")
        return int(value) if value is not None and _is_digits(value, 5) else None


@dataclass(eq=False)
class SipResponse(_MessageViews):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.version} {self.status} {self.reason}")


SipMessage: TypeAlias = SipRequest | SipResponse


# --------------------------------------------------------------------------- parsing

_Problem = tuple[int, str] | None


# header name as spelt on the wire (a valid token) -> its key; seeded with the usual ones
_HEADER_KEYS: dict[str, str] = {n: k for n, k in _KEYS.items() if _TOKEN_RE.fullmatch(n)}


def _header_items(lines: list[str]) -> list[tuple[str, str, str]] | None:
    """The common case: every line is ``Name: value`` with a name already seen (so a
    valid token) right before the colon; None for anything else (an empty or
    continuation line, LWS before the colon, a new name...)."""
    known = _HEADER_KEYS
    items: list[tuple[str, str, str]] = []
    append = items.append
    for line in lines:
        name, colon, value = line.partition(":")
        key = known.get(name)
        if key is None or not colon:
            return None
        append((key, name, value.strip(" \t\r")))
    return items


def _header_items_slow(lines: list[str]) -> tuple[list[tuple[str, str, str]], _Problem]:
    """Any header lines: continuation lines unfolded, empty lines skipped, malformed
    lines reported (the first problem) and left out."""
    known = _HEADER_KEYS
    problem: _Problem = None
    names: list[str] = []
    values: list[str] = []
    for line in lines:
        if line and line[-1] == "\r":
            line = line[:-1]
        if not line:
            continue
        c = line[0]
        if c == " " or c == "\t":
            if not values:
                problem = problem or (400, "Continuation line before the first header")
                continue
            v = line.strip(" \t\r")
            if v:
                values[-1] = f"{values[-1]} {v}" if values[-1] else v
            continue
        colon = line.find(":")
        name = line[:colon].rstrip(_WS)
        if colon <= 0 or (name not in known and not _TOKEN_RE.fullmatch(name)):
            problem = problem or (400, "Malformed header line")
            continue
        names.append(name)
        values.append(line[colon + 1 :].strip(" \t\r"))
    items: list[tuple[str, str, str]] = []
    for n, v in zip(names, values):
        k = known.get(n)
        if k is None:
            k = _key(n)
            if len(known) < 512:  # names seen on the wire, as spelt: a few dozen
                known[n] = k
        items.append((k, n, v))
    return items, problem


def _parse_head(raw: bytes) -> tuple[SipMessage, _Problem]:
    """Start line and header fields (unfolded); problems are reported, not raised, so
    that a 400/505 can still be built from the headers."""
    text = raw.decode("utf-8", "surrogateescape")
    first, _, rest = text.partition("\n")
    first = first.removesuffix("\r")
    lines = rest.split("\n")
    items = _header_items(lines)
    problem: _Problem = None
    if items is None:
        items, problem = _header_items_slow(lines)
    headers = Headers._of(items)
    if first[:4].upper() == "SIP/":
        parts = first.split(" ", 2)
        code = parts[1] if len(parts) > 1 else ""
        if not _is_digits(code, 3) or len(code) != 3 or code[0] not in "123456":
            return SipResponse(0, "", headers), (0, "Invalid status line")
        if parts[0].upper() != "SIP/2.0":
            problem = (0, "Unsupported SIP version in response")
        return SipResponse(int(code), parts[2] if len(parts) > 2 else "", headers), problem
    parts = first.split(" ")
    if len(parts) != 3 or not all(parts):
        return SipRequest("", "", headers), (400, "Malformed Request-Line")
    method, uri, version = parts
    if not _TOKEN_RE.fullmatch(method):
        return SipRequest("", uri, headers), (400, "Invalid method")
    if version.upper() != "SIP/2.0":
        bad_version = (505, "Version Not Supported") if _VERSION_RE.fullmatch(version) else None
        problem = bad_version or (400, "Invalid SIP-Version")
    return SipRequest(method, uri, headers, b"", version), problem


def _content_length(headers: Headers) -> int | None:
    values = [v for k, _, v in headers._items if k == "content-length"]
    if not values:
        return None
    value = values[0]
    if len(values) > 1 and values.count(value) != len(values):
        raise _bad("Conflicting Content-Length values")
    if not _is_digits(value):
        raise _bad("Invalid Content-Length")
    return int(value)


@lru_cache(maxsize=1024)  # a peer sends the same Request-URI on every call; errors are not cached
def _check_request_uri(uri: str) -> None:
    colon = uri.find(":")
    if colon <= 0 or not _SCHEME_RE.fullmatch(uri[:colon]) or "<" in uri or ">" in uri or '"' in uri:
        raise _bad("Invalid Request-URI")
    if uri[:colon].lower() in ("sip", "sips"):
        parsed = SipUri.parse(uri)
        if parsed.headers:
            raise _bad("Request-URI must not contain headers")  # §19.1.1 table


def _validate(msg: SipMessage, compat_2543: bool) -> None:
    """What every element needs before answering or matching a message (§8.1.1, §8.2)."""
    h = msg.headers
    keys = [item[0] for item in h._items]
    present = set(keys)
    is_request = isinstance(msg, SipRequest)
    if not present.issuperset(_MANDATORY_KEYS) or (
        is_request and not compat_2543 and "max-forwards" not in present
    ):
        missing = [label for key, label in _MANDATORY if key not in present]
        if is_request and not compat_2543 and "max-forwards" not in present:
            missing.append("Max-Forwards")
        raise _bad(f"Missing header: {', '.join(missing)}")
    if len(present) != len(keys):  # some name repeats (several Vias...): not a single one?
        for key, label in _SINGLE_HEADERS:
            if keys.count(key) > 1:
                raise _bad(f"Multiple {label} headers")
    # the views everyone reads, parsed now (as the properties would: into the cache)
    first = h._first_values()
    views = h._cache
    call_id = views["call-id"] = first["call-id"]
    if not call_id:
        raise _bad("Empty Call-ID")
    views["via"] = _parse_vias([v for k, _, v in h._items if k == "via"])
    views["from"] = Address.parse(first["from"])
    views["to"] = Address.parse(first["to"])
    cseq = views["cseq"] = parse_cseq(first["cseq"])
    if isinstance(msg, SipRequest):
        if cseq[1] != msg.method:
            # RFC 4475 §3.1.2.18: 501 for an unknown method is the more future-proof answer
            raise SipParseError(400 if msg.method in KNOWN_METHODS else 501, "CSeq method mismatch")
        mf = first.get("max-forwards")
        if mf is not None and (not _is_digits(mf, 5) or int(mf) > 255):
            raise _bad("Invalid Max-Forwards")
        _check_request_uri(msg.uri)


def _routable(exc: SipParseError, msg: SipMessage) -> SipParseError:
    """Keep the status only if a response can be sent: a request with a usable top Via."""
    exc.message = msg
    if isinstance(msg, SipResponse) or exc.status == 0:
        exc.status = 0
        return exc
    vias = msg.headers._raw("via")
    try:
        Via.parse(split_list(vias[0], keep_empty=True)[0], strict=False)
    except (SipParseError, IndexError):
        exc.status = 0
    return exc


def _finish(msg: SipMessage, problem: _Problem, compat_2543: bool) -> SipMessage:
    try:
        if problem is not None:
            raise SipParseError(*problem)
        _validate(msg, compat_2543)
    except SipParseError as exc:
        raise _routable(exc, msg) from None
    return msg


def parse_message(data: bytes, *, compat_2543: bool = False) -> SipMessage:
    """Parse one datagram (§7, §18.3); raise :class:`SipParseError` if it is unusable.

    Leading CRLFs are skipped; bytes beyond Content-Length are ignored; without
    Content-Length the body is the rest of the datagram.  ``compat_2543`` accepts
    requests without Max-Forwards (RFC 4475 §3.4: RFC 2543 peers).
    """
    start = 0
    n = len(data)
    while start < n and data[start] in (10, 13):
        start += 1
    if start == n:
        raise SipParseError(0, "Empty message")
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        body_at = end + 4
    else:
        end = data.find(b"\n\n", start)
        body_at = end + 2 if end >= 0 else n
        end = end if end >= 0 else n
    if end - start > MAX_MESSAGE_SIZE:
        raise SipParseError(0, "Header section too large")
    msg, problem = _parse_head(data[start:end])
    if problem is None:
        try:
            if n > MAX_MESSAGE_SIZE:
                raise SipParseError(413, "Message too large")
            length = _content_length(msg.headers)
            rest = data[body_at:]
            if length is not None and length > len(rest):
                raise _bad("Content-Length mismatch")
            msg.body = rest if length is None else rest[:length]
        except SipParseError as exc:
            raise _routable(exc, msg) from None
    return _finish(msg, problem, compat_2543)


class StreamParser:
    """Frames messages on a TCP/TLS byte stream (§18.3: Content-Length mandatory).

    ``feed`` returns the complete messages received so far.  It raises
    :class:`SipParseError` for a message that cannot be used: with ``fatal`` unset
    the framing is intact (answer ``status`` if non-zero and go on feeding); with
    ``fatal`` set the stream is out of sync and the connection must be closed.
    Messages completed before an error are returned first; the error is raised by
    the next call (``feed(b"")`` will do).
    """

    def __init__(self, *, max_size: int = MAX_MESSAGE_SIZE, compat_2543: bool = False) -> None:
        self.max_size = max_size
        self.compat_2543 = compat_2543
        self._buf = bytearray()
        self._pending: tuple[SipMessage, _Problem, int] | None = None
        self._deferred: SipParseError | None = None
        self._broken = False

    def feed(self, data: bytes) -> list[SipMessage]:
        if self._broken:
            raise SipParseError(0, "Stream is out of sync", fatal=True)
        self._buf += data
        if self._deferred is not None:
            exc, self._deferred = self._deferred, None
            raise exc
        out: list[SipMessage] = []
        while True:
            try:
                msg = self._next()
            except SipParseError as exc:
                self._broken = exc.fatal
                if out:
                    self._deferred = exc
                    return out
                raise
            if msg is None:
                return out
            out.append(msg)

    def _next(self) -> SipMessage | None:
        buf = self._buf
        if self._pending is None:
            skip = 0
            while skip < len(buf) and buf[skip] in (10, 13):  # keep-alive CRLFs (RFC 5626)
                skip += 1
            if skip:
                del buf[:skip]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise SipParseError(0, "Header section too large", fatal=True)
                return None
            msg, problem = _parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            try:
                length = _content_length(msg.headers)
                if length is None:
                    raise _bad("Missing Content-Length")
                if length + end > self.max_size:
                    raise SipParseError(413, "Message too large")
            except SipParseError as exc:
                exc.fatal = True
                raise _routable(exc, msg) from None
            self._pending = (msg, problem, length)
        msg, problem, length = self._pending
        if len(buf) < length:
            return None
        msg.body = bytes(buf[:length])
        del buf[:length]
        self._pending = None
        return _finish(msg, problem, self.compat_2543)


# --------------------------------------------------------------------------- semantic checks


def unsupported_extensions(
    req: SipRequest, supported: Collection[str], header: str = "Require"
) -> list[str]:
    """Option tags of ``header`` (Require or Proxy-Require) not in ``supported`` (§8.2.2.3)."""
    known = {s.lower() for s in supported}
    return [tag for tag in req.headers.get_all(header) if tag.lower() not in known]


def _accepts(req: SipRequest, media_types: Collection[str]) -> bool:
    accept = [v.split(";", 1)[0].strip(_WS).lower() for v in req.headers.get_all("accept")]
    if "accept" not in req.headers:
        return True
    for mt in media_types:
        top = mt.split("/", 1)[0]
        if mt in accept or "*/*" in accept or f"{top}/*" in accept:
            return True
    return False


def validate_request(
    req: SipRequest,
    *,
    schemes: Collection[str] = ("sip", "sips", "tel"),
    supported: Collection[str] = (),
    proxy: bool = False,
    accepted_types: Collection[str] | None = None,
    answer_types: Collection[str] | None = None,
) -> int | None:
    """The status a UAS (or, with ``proxy``, a proxy) answers a well-formed request
    with before processing it, or None to go on (§8.2.1-§8.2.3, §16.3, RFC 4475 §3.2-3.4).

    - 416 for a Request-URI scheme outside ``schemes`` (§8.2.2.1);
    - 400 for a branch that is only the magic cookie (RFC 4475 §3.2.1) or a Contact
      that does not parse (e.g. a URI with headers outside ``<>``, §20.10);
    - 483 at a proxy for Max-Forwards 0 (except OPTIONS, §16.3 step 3);
    - 420 for a Require (UAS) / Proxy-Require (proxy) tag not in ``supported``;
      use :func:`unsupported_extensions` for the Unsupported header;
    - 415 for a body whose Content-Type is not in ``accepted_types`` (§8.2.3);
    - 406 for an INVITE whose Accept admits none of ``answer_types`` (§21.4.7).
    """
    if req.request_uri.scheme not in schemes:
        return Status.UNSUPPORTED_URI_SCHEME
    top = req.top_via
    if top.branch is not None and top.branch.startswith(MAGIC_COOKIE) and not top.has_rfc3261_branch:
        return Status.BAD_REQUEST
    try:
        _ = req.contacts
    except SipParseError:
        return Status.BAD_REQUEST
    if proxy and req.max_forwards == 0 and req.method != "OPTIONS":
        return Status.TOO_MANY_HOPS
    if req.method not in ("ACK", "CANCEL"):
        header = "Proxy-Require" if proxy else "Require"
        if unsupported_extensions(req, supported, header):
            return Status.BAD_EXTENSION
    if proxy:
        return None
    if accepted_types is not None and req.body:
        ctype = req.content_type
        if ctype is None or ctype not in {t.lower() for t in accepted_types}:
            return Status.UNSUPPORTED_MEDIA_TYPE
    if answer_types is not None and req.method == "INVITE" and not _accepts(req, answer_types):
        return Status.NOT_ACCEPTABLE
    return None
