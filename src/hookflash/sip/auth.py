"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616 with MD5; RFC 3261 §22).

Server side: :class:`DigestChallenger` issues challenges whose nonce carries its own
issue time and an HMAC, so any node holding the key can verify it without shared
state; the only state kept is the highest nonce-count seen per nonce (bounded).

Client side: :func:`answer_challenge` builds the ``Authorization`` /
``Proxy-Authorization`` value for an outbound request.

Sans-IO: no clock is read, ``now`` is passed in (wall-clock seconds, so that nonces
survive a restart when the key is persistent).

Left out: SHA-256 / SHA-512-256 (RFC 7616), ``auth-int`` and ``userhash``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AuthError",
    "AuthResult",
    "AuthStatus",
    "DigestChallenger",
    "answer_challenge",
    "digest_response",
    "ha1",
    "ha1_lookup_from",
    "ha2",
    "parse_auth_header",
]


class AuthError(ValueError):
    """A challenge or credentials header that cannot be understood or answered."""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str) -> str:
    """H(A1) = MD5(username:realm:password) (RFC 2617 §3.2.2.2); Asterisk's md5secret."""
    return _md5(f"{username}:{realm}:{password}")


def ha2(method: str, uri: str) -> str:
    """H(A2) = MD5(method:digest-uri) for qop=auth or no qop (RFC 2617 §3.2.2.3)."""
    return _md5(f"{method}:{uri}")


def digest_response(
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """request-digest of RFC 2617 §3.2.2.1 (qop=auth), or RFC 2069 when ``qop`` is None."""
    h2 = ha2(method, uri)
    if qop is None:
        return _md5(f"{ha1_hex}:{nonce}:{h2}")
    return _md5(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{h2}")


# --------------------------------------------------------------------------- parsing


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme k=v, k="quoted", ...`` into the scheme and lower-cased params.

    Raises :class:`AuthError` on anything that is not a well-formed auth-param list.
    """
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme or "=" in scheme:
        raise AuthError("missing authentication scheme")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in " \t\r\n,":
            i += 1
        if i >= n:
            return scheme, params
        eq = rest.find("=", i)
        if eq < 0:
            raise AuthError("auth-param without '='")
        name = rest[i:eq].strip().lower()
        if not name or any(c in name for c in ' \t",'):
            raise AuthError("bad auth-param name")
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise AuthError("unterminated quoted string")
                c = rest[i]
                if c == "\\" and i + 1 < n:
                    chars.append(rest[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                chars.append(c)
                i += 1
            val = "".join(chars)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if name in params:
            raise AuthError(f"duplicate auth-param {name!r}")
        params[name] = val
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] != ",":
            raise AuthError("garbage after auth-param")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- server


class AuthStatus(Enum):
    OK = "ok"
    WRONG = "wrong"  # bad digest, unknown user, realm or opaque mismatch: 401/403
    STALE = "stale"  # digest right but nonce expired/replayed: re-challenge stale=true
    MALFORMED = "malformed"  # header unusable: 400 or plain re-challenge


@dataclass(frozen=True, slots=True)
class AuthResult:
    status: AuthStatus
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


_NONCE_STRUCT = struct.Struct(">Q8s")  # issue time in ms, random salt
_MAC_LEN = 16
_NONCE_RAW_LEN = _NONCE_STRUCT.size + _MAC_LEN


class DigestChallenger:
    """Issues and verifies Digest challenges for one realm (RFC 2617 §3.2.1, §3.2.2).

    ``ha1_lookup(username)`` returns the user's H(A1) hex string or None: for
    ``md5secret`` users that is the stored value, for ``secret`` users
    ``ha1(user, realm, secret)``.
    """

    def __init__(
        self,
        realm: str,
        secret_key: bytes,
        nonce_lifetime: float = 30.0,
        *,
        max_tracked_nonces: int = 65536,
        clock_skew: float = 5.0,
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self._key = secret_key
        self._max_tracked = max(1, max_tracked_nonces)
        self._skew = clock_skew
        self.opaque = hmac.new(secret_key, b"opaque:" + realm.encode(), "sha256").hexdigest()[:32]
        # nonce -> highest nc seen (0 = used without qop); oldest issue first
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._issued_ms: dict[str, int] = {}
        # nonces issued at or before this time may have been forgotten: refuse them
        self._forgotten_before_ms = -1

    # -- nonces
    def _mac(self, body: bytes) -> bytes:
        data = body + self.realm.encode("utf-8")
        return hmac.new(self._key, data, "sha256").digest()[:_MAC_LEN]

    def make_nonce(self, now: float, salt: bytes | None = None) -> str:
        body = _NONCE_STRUCT.pack(max(0, int(now * 1000)), salt or os.urandom(8))
        raw = body + self._mac(body)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def _nonce_time_ms(self, nonce: str) -> int | None:
        """Issue time if the nonce is one of ours, else None."""
        if len(nonce) != 43:  # base64 of 32 bytes without padding
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except ValueError:
            return None
        if len(raw) != _NONCE_RAW_LEN:
            return None
        body, mac = raw[: _NONCE_STRUCT.size], raw[_NONCE_STRUCT.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        issued_ms, _salt = _NONCE_STRUCT.unpack(body)
        return int(issued_ms)

    def challenge(self, now: float, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 2617 §3.2.1)."""
        parts = [
            f"realm={_quote(self.realm)}",
            f'nonce="{self.make_nonce(now)}"',
            f'opaque="{self.opaque}"',
            "algorithm=MD5",
            'qop="auth"',
        ]
        if stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    # -- verification
    def verify(
        self,
        method: str,
        authorization: str,
        ha1_lookup: Callable[[str], str | None],
        now: float,
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check an ``Authorization`` / ``Proxy-Authorization`` value. Never raises."""
        try:
            scheme, p = parse_auth_header(authorization)
        except AuthError as exc:
            return AuthResult(AuthStatus.MALFORMED, None, str(exc))
        if scheme.lower() != "digest":
            return AuthResult(AuthStatus.MALFORMED, None, f"scheme {scheme!r} not supported")
        username = p.get("username")
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
        if missing:
            return AuthResult(AuthStatus.MALFORMED, username, f"missing {', '.join(missing)}")
        assert username is not None
        if p.get("algorithm", "MD5").upper() != "MD5":
            return AuthResult(AuthStatus.MALFORMED, username, "unsupported algorithm")
        qop = p.get("qop")
        if qop is not None and qop.lower() != "auth":
            return AuthResult(AuthStatus.MALFORMED, username, f"unsupported qop {qop!r}")
        nc_value = 0
        if qop is not None:
            nc_hex, cnonce = p.get("nc"), p.get("cnonce")
            if nc_hex is None or cnonce is None:
                return AuthResult(AuthStatus.MALFORMED, username, "qop without nc/cnonce")
            if len(nc_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc_hex):
                return AuthResult(AuthStatus.MALFORMED, username, "bad nc")
            nc_value = int(nc_hex, 16)
        # RFC 3261 §22.4: realm must be ours; RFC 2617 §3.2.2: opaque echoed unchanged
        if p["realm"] != self.realm:
            return AuthResult(AuthStatus.WRONG, username, "realm mismatch")
        if "opaque" in p and not hmac.compare_digest(p["opaque"].encode(), self.opaque.encode()):
            return AuthResult(AuthStatus.WRONG, username, "opaque mismatch")
        # A digest uri that differs from the Request-URI (SIPp's default [authentication],
        # phones behind proxies that rewrite the Request-URI) is accepted as Asterisk
        # accepts it: the response is checked over the uri the client hashed. The nonce
        # is still ours and single-realm, so this gives no replay across requests.
        try:
            stored = ha1_lookup(username)
        except Exception:  # noqa: BLE001 - a broken lookup is a refusal, not a crash
            stored = None
        if stored is None:
            # compute anyway so unknown users cost the same as wrong passwords
            stored = "0" * 32
            known = False
        else:
            known = True
        expected = digest_response(
            stored.lower(),
            p["nonce"],
            method,
            p["uri"],
            qop=None if qop is None else "auth",
            nc=p.get("nc"),
            cnonce=p.get("cnonce"),
        )
        good = hmac.compare_digest(expected.encode(), p["response"].lower().encode("utf-8", "replace"))
        if not (good and known):
            return AuthResult(AuthStatus.WRONG, username, "digest mismatch")
        return self._check_nonce(p["nonce"], nc_value, username, now)

    def _check_nonce(self, nonce: str, nc: int, username: str, now: float) -> AuthResult:
        issued_ms = self._nonce_time_ms(nonce)
        now_ms = int(now * 1000)
        if issued_ms is None:
            return AuthResult(AuthStatus.STALE, username, "nonce not issued here")
        if now_ms - issued_ms > self.nonce_lifetime * 1000 or issued_ms - now_ms > self._skew * 1000:
            return AuthResult(AuthStatus.STALE, username, "nonce expired")
        last = self._seen.get(nonce)
        if last is None:
            if issued_ms <= self._forgotten_before_ms:
                return AuthResult(AuthStatus.STALE, username, "nonce forgotten")
            self._remember(nonce, issued_ms, nc, now_ms)
            return AuthResult(AuthStatus.OK, username)
        # RFC 2617 §3.2.2: nc must increase; a nonce without qop is single-use
        if nc == 0 or nc <= last:
            return AuthResult(AuthStatus.STALE, username, "nonce-count replayed")
        self._seen[nonce] = nc
        return AuthResult(AuthStatus.OK, username)

    def _remember(self, nonce: str, issued_ms: int, nc: int, now_ms: int) -> None:
        self._seen[nonce] = nc
        self._issued_ms[nonce] = issued_ms
        lifetime_ms = self.nonce_lifetime * 1000
        # drop expired nonces from the front (roughly issue order), then cap the size
        while self._seen:
            oldest = next(iter(self._seen))
            expired = now_ms - self._issued_ms[oldest] > lifetime_ms
            if not expired and len(self._seen) <= self._max_tracked:
                break
            self._seen.popitem(last=False)
            t = self._issued_ms.pop(oldest)
            if not expired:
                self._forgotten_before_ms = max(self._forgotten_before_ms, t)

    @property
    def tracked_nonces(self) -> int:
        return len(self._seen)


def ha1_lookup_from(
    realm: str,
    secrets: Mapping[str, str] | None = None,
    md5secrets: Mapping[str, str] | None = None,
) -> Callable[[str], str | None]:
    """A lookup over ``secret=`` (plain) and ``md5secret=`` (HA1) peer settings."""
    plain = dict(secrets or {})
    hashed = {k: v.lower() for k, v in (md5secrets or {}).items()}

    def lookup(username: str) -> str | None:
        if username in hashed:
            return hashed[username]
        if username in plain:
            return ha1(username, realm, plain[username])
        return None

    return lookup


# --------------------------------------------------------------------------- client


def answer_challenge(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` value answering a ``WWW-Authenticate`` challenge.

    Supports algorithm MD5 and MD5-sess, qop=auth or no qop (RFC 2069).
    Raises :class:`AuthError` for challenges it cannot answer.
    """
    scheme, p = parse_auth_header(challenge)
    if scheme.lower() != "digest":
        raise AuthError(f"scheme {scheme!r} not supported")
    if "nonce" not in p or "realm" not in p:
        raise AuthError("challenge without realm or nonce")
    realm, nonce = p["realm"], p["nonce"]
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() not in ("MD5", "MD5-SESS"):
        raise AuthError(f"algorithm {algorithm!r} not supported")
    qop_options = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
    if qop_options and "auth" not in qop_options:
        raise AuthError(f"qop {p['qop']!r} not supported")
    qop = "auth" if qop_options else None
    if qop is not None or algorithm.upper() == "MD5-SESS":
        cnonce = cnonce or os.urandom(8).hex()
    nc_hex = f"{nc:08x}"
    key = ha1(username, realm, password)
    if algorithm.upper() == "MD5-SESS":  # RFC 2617 §3.2.2.2
        key = _md5(f"{key}:{nonce}:{cnonce}")
    response = digest_response(key, nonce, method, uri, qop=qop, nc=nc_hex, cnonce=cnonce)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if cnonce is not None:
        parts.append(f"cnonce={_quote(cnonce)}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_hex}"]
    if "opaque" in p:
        parts.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(parts)
