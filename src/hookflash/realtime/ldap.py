"""res_config_ldap: realtime from an LDAP directory (``res_ldap.conf``), with ldap3.

``res_ldap.conf``::

    [_general]
    url = ldap://127.0.0.1:389        ; or ldaps://; without url: host (+ port, default 389)
    protocol = 3                      ; also "version"; ldap3 speaks 3 (2 is accepted)
    basedn = dc=example,dc=org        ; used when extconfig.conf gives an empty database
    user = cn=admin,dc=example,dc=org ; bind DN; absent: anonymous bind
    pass = secret                     ; default "asterisk" when user is set (as Asterisk)
    ; hookflash:
    cafile = /etc/ssl/ldap-ca.pem     ; CA for ldaps:// and StartTLS (default: system CAs)
    starttls = no                     ; yes: StartTLS on an ldap:// url (certificate verified)
    pool = 4                          ; connections (each in its own worker thread)
    timeout = 2                       ; seconds for connect and for every answer
    additionalFilter = (objectClass=AsteriskSIPUser)   ; ANDed into every query
    ; any other key: a mapping "column = LdapAttribute" inherited by every table

    [sip]                             ; a table: 3rd field of the extconfig.conf line
    name = cn
    md5secret = userPassword
    fullcontact = AstAccountFullContact
    fullcontact = gecos               ; repeatable: several attributes read as one column
    additionalFilter = (objectClass=AsteriskSIPUser)
    storeObjectClass = inetOrgPerson  ; hookflash, repeatable: object classes of entries
    storeObjectClass = AsteriskSIPUser ; that "realtime store" adds (see below)

Query semantics (Asterisk's, ASTERISK-REFERENCE 6.3). The filter is
``(&<table additionalFilter><general additionalFilter>(attr=value)...)``, searched SUBTREE from
the base DN the layer gives (extconfig.conf's database). A column maps to the first attribute
configured for it (table first, then ``[_general]``; case-insensitive); an unmapped column is
used as the attribute name itself, after checking it *is* an attribute name. Every value is
escaped per RFC 4515 (``*``, ``(``, ``)``, ``\\`` and NUL), so a caller's value can never add
filter syntax: ``name = "*)(uid=*"`` looks for that literal name. Non-ASCII values are sent
as UTF-8. **A NUL character in a lookup or written value is refused** (RealtimeError and a
warning): Asterisk's C strings would silently cut the value there, so a name with a NUL can
only be a probe, never a user. Operators (``split_op``): ``LIKE`` turns ``%`` into ``*``
(``\\%``, ``\\_`` and ``\\\\`` are literal; a bare ``_`` stays a literal ``_`` as in Asterisk:
LDAP has no one-character wildcard), ``NOT LIKE``/``!=``/``<>`` become ``(!...)``, ``>=`` and
``<=`` are LDAP's ordering matches, ``>``/``<`` add ``(!(attr=value))`` (attributes without
an ORDERING rule in the schema never match those).

Results: attribute names are mapped back to columns (unmapped names pass through as the
server spells them); each value of a multi-valued attribute is one ``(column, value)`` pair;
a value containing ``;`` is split into several pairs (Asterisk's rule; empty pieces are
dropped; not done for ``md5secret``, nor, unlike Asterisk, for ``fullcontact``, ``path`` and
``useragent``, whose SIP values contain ``;`` and which hookflash writes back itself).
``md5secret`` loses a ``{md5}`` prefix (any case); what is then not 32 hex digits (a plain
text password, an RFC 2307 ``{MD5}`` base64 hash of the bare password, ...) is dropped with a
warning, since chan_sip would use it as the digest of ``user:realm:secret``. ``load`` returns
all matching entries concatenated (Asterisk's ``realtime_ldap``), ``load_multi`` one record
per entry. At most 1,000 entries are read (a warning says when there were more), values over
64 KiB and values that are not UTF-8 are dropped with a warning, and at most 10,000 pairs
are kept per entry. The ``accountBaseDN`` defaults of Asterisk are not implemented.

Writes. ``update``/``update2`` search like a lookup and modify every entry found: each column
is a REPLACE of its (first) attribute with all the values given for it (repeated columns give
a multi-valued attribute where Asterisk would join them with ``;``); an empty value deletes
the attribute (REPLACE with no value, so deleting an absent attribute is not an error).
Beyond Asterisk: ``store`` adds one entry whose DN is ``<attr>=<value>,<base DN>`` where
``attr``/``value`` are the attribute and value of the **first** field given (so list the
naming column first, e.g. ``name`` mapped to ``cn``); its object classes are the table's
``storeObjectClass`` lines (else ``[_general]``'s, else the ``(objectClass=X)`` terms of the
additionalFilters; the directory refuses entries without a structural class). ``destroy``
deletes every entry a lookup on its fields finds (leaf entries only). ``require`` is not
checked (True), as LDAP has no table definition to compare with.

Connections: ``pool`` ldap3 connections, each owned by one thread of the driver's own
ThreadPoolExecutor (ldap3 is synchronous; nothing here blocks the event loop). Every socket
has ``timeout`` as connect and receive timeout, so a frozen server frees its thread after
that time; referrals are never followed. A connection that fails is dropped and, if it had
worked before (a stale one), the operation is retried once on a fresh connection. Refused,
timed-out or dropped connections, TLS failures and the server answering busy/unavailable
raise DriverUnavailable (the layer fails over); a refused bind (wrong password) and any
other LDAP error raise RealtimeError. Requests beyond 16 per pooled connection waiting at
once are refused with DriverUnavailable rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hookflash.conf.parser import ConfigError, ConfigFile, ConfigVariable
from hookflash.realtime.driver import (
    DriverUnavailable,
    Fields,
    RealtimeDriver,
    RealtimeError,
    Record,
    format_duration,
    split_op,
)

log = logging.getLogger("hookflash.realtime.ldap")



__all__ = [
    "LdapDriver",
    "LdapSettings",
    "TableMap",
    "build_filter",
    "entry_to_record",
    "filter_term",
    "format_duration",
    "like_pattern",
    "parse_settings",
]

MAX_ENTRIES = 1000
MAX_VALUE_BYTES = 64 * 1024
MAX_PAIRS = 10_000
WAITING_PER_CONNECTION = 16

_ATTR = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_CONNECTION_KEYS = frozenset({"url", "host", "port", "protocol", "version", "basedn", "user", "pass",
                              "cafile", "starttls", "pool", "timeout"})
_NO_SPLIT = frozenset({"md5secret", "fullcontact", "path", "useragent"})
_UNAVAILABLE_CODES = frozenset({3, 51, 52, 81, 91})  # timeLimit, busy, unavailable, serverDown, connectError


# ----------------------------------------------------------------------------- configuration

@dataclass(slots=True)
class TableMap:
    """One res_ldap.conf section: ``column = attribute`` pairs in file order."""

    name: str
    mappings: list[tuple[str, str]] = field(default_factory=list)
    additional_filter: str = ""
    store_classes: list[str] = field(default_factory=list)
    url: str = ""  # hookflash: this table lives on another directory server (failover)


@dataclass(slots=True)
class LdapSettings:
    url: str = ""
    scheme: str = "ldap"
    host: str = ""
    port: int = 389
    version: int = 3
    basedn: str = ""
    user: str = ""
    password: str = ""
    cafile: str = ""
    starttls: bool = False
    pool: int = 4
    timeout: float = 2.0
    general: TableMap = field(default_factory=lambda: TableMap("_general"))
    tables: dict[str, TableMap] = field(default_factory=dict)  # lower-case name -> table

    def table(self, name: str) -> TableMap:
        found = self.tables.get(name.lower())
        if found is None:
            raise RealtimeError(f"no table [{name}] in res_ldap.conf")
        return found


def _check_filter(var: ConfigVariable) -> str:
    text = var.value.strip()
    depth = 0
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                break
    if text and (not text.startswith("(") or not text.endswith(")") or depth != 0):
        raise var.error(f"additionalFilter '{var.value}' is not a parenthesised LDAP filter",
                        "'additionalFilter = (objectClass=AsteriskSIPUser)'")
    return text


def _check_attr(var: ConfigVariable) -> str:
    attr = var.value.strip()
    if not _ATTR.match(attr):
        raise var.error(f"'{attr}' is not an LDAP attribute name",
                        f"'{var.name} = AttributeName' (letters, digits and '-')")
    return attr


def parse_settings(conf: ConfigFile | None) -> LdapSettings:
    """res_ldap.conf -> settings; ConfigError (located) for what Asterisk would only log."""
    s = LdapSettings()
    if conf is None:
        return s
    host = ""
    user_pass: str | None = None
    for section in conf.sections:
        if section.is_template:
            continue
        general = section.name.lower() == "_general"
        table = s.general if general else s.tables.setdefault(section.name.lower(), TableMap(section.name))
        for var in section.variables:
            key = var.name.strip().lower()
            value = var.value.strip()
            if general and key in _CONNECTION_KEYS:
                if key == "url":
                    parts = urlsplit(value)
                    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
                        raise var.error(f"url '{value}' is not an ldap:// or ldaps:// URL",
                                        "'url = ldap://host:389' or 'url = ldaps://host:636'")
                    try:
                        port = parts.port
                    except ValueError:
                        raise var.error(f"url '{value}' has a bad port", "'url = ldap://host:389'") from None
                    s.url, s.scheme, s.host = value, parts.scheme.lower(), parts.hostname
                    s.port = port or (636 if s.scheme == "ldaps" else 389)
                elif key == "host":
                    host = value
                elif key == "port":
                    if not value.isdigit() or not 0 < int(value) < 65536:
                        raise var.error(f"port '{value}' is not a TCP port", "'port = 389'")
                    s.port = int(value)
                elif key in ("protocol", "version"):
                    if value not in ("2", "3"):
                        raise var.error(f"{key} '{value}' is not an LDAP version hookflash speaks",
                                        f"'{key} = 3'")
                    s.version = int(value)
                elif key == "basedn":
                    s.basedn = value
                elif key == "user":
                    s.user = value
                elif key == "pass":
                    user_pass = var.value  # passwords keep their spaces
                elif key == "cafile":
                    s.cafile = value
                elif key == "starttls":
                    s.starttls = var.as_bool()
                elif key == "pool":
                    if not value.isdigit() or not 1 <= int(value) <= 64:
                        raise var.error(f"pool '{value}' is not a number of connections from 1 to 64",
                                        "'pool = 4'")
                    s.pool = int(value)
                elif key == "timeout":
                    try:
                        s.timeout = float(value)
                    except ValueError:
                        s.timeout = -1
                    if not 0 < s.timeout <= 300:
                        raise var.error(f"timeout '{value}' is not a number of seconds", "'timeout = 2'")
            elif key == "url" and table is not s.general:
                parts = urlsplit(value)
                if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
                    raise var.error(f"url '{value}' is not an ldap:// or ldaps:// URL", "'url = ldap://host:389'")
                table.url = value
            elif key == "additionalfilter":
                table.additional_filter = _check_filter(var)
            elif key == "storeobjectclass":
                table.store_classes.append(_check_attr(var))
            else:
                column = var.name.strip()
                table.mappings.append((column, _check_attr(var)))
    if not s.url:
        if host:
            s.host = host
            s.url = f"ldap://{host}:{s.port}"
        elif conf.sections_named("_general"):
            sec = conf.sections_named("_general")[0]
            raise ConfigError(sec.filename, sec.lineno, "[_general] has neither url nor host",
                              "'url = ldap://host:389' (or 'host = name')")
    if s.user:
        if user_pass is None:
            log.warning("res_ldap.conf: no directory password found, using 'asterisk' as default")
            user_pass = "asterisk"
        s.password = user_pass
    if not s.basedn and conf.sections_named("_general"):
        log.error("res_ldap.conf: no basedn in [_general]; using 'asterisk' when a lookup gives none")
        s.basedn = "asterisk"
    return s


# ----------------------------------------------------------------------------- pure helpers

# The Asterisk schema's account attributes and the chan_sip columns they hold, used after
# the table's and [_general]'s own mappings: with them the chapter's short [sip] section
# (name, amaflags, callgroup, callerid, lastms, useragent) gives RussellBryant his context,
# mailbox, codecs and password, and his registration can be written back. ``userPassword``
# holding ``{md5}<hex>`` is his md5secret, as the chapter stores it.
DEFAULT_MAPPINGS = TableMap("(built in)", [
    ("name", "AstAccountName"), ("accountcode", "AstAccountAccountCode"), ("allow", "AstAccountAllowedCodec"),
    ("disallow", "AstAccountDisallowedCodec"), ("amaflags", "AstAccountAMAFlags"),
    ("callgroup", "AstAccountCallGroup"), ("pickupgroup", "AstAccountPickupGroup"),
    ("call-limit", "AstAccountCallLimit"), ("callerid", "AstAccountCallerID"),
    ("canreinvite", "AstAccountCanReinvite"), ("context", "AstAccountContext"),
    ("dtmfmode", "AstAccountDTMFMode"), ("defaultuser", "AstAccountDefaultUser"),
    ("fromdomain", "AstAccountFromDomain"), ("fromuser", "AstAccountFromUser"),
    ("fullcontact", "AstAccountFullContact"), ("host", "AstAccountHost"), ("ipaddr", "AstAccountIPAddress"),
    ("insecure", "AstAccountInsecure"), ("language", "AstAccountLanguage"),
    ("lastms", "AstAccountLastQualifyMilliseconds"), ("mailbox", "AstAccountMailbox"),
    ("musiconhold", "AstAccountMusicOnHold"), ("nat", "AstAccountNAT"), ("port", "AstAccountPort"),
    ("qualify", "AstAccountQualify"), ("md5secret", "AstAccountRealmedPassword"), ("md5secret", "userPassword"),
    ("regseconds", "AstAccountExpirationTimestamp"), ("regserver", "AstAccountRegistrationServer"),
    ("regexten", "AstAccountRegistrationExten"), ("secret", "AstAccountSecret"), ("setvar", "AstAccountSetVar"),
    ("subscribecontext", "AstAccountSubscribeContext"), ("transport", "AstAccountTransport"),
    ("type", "AstAccountType"), ("useragent", "AstAccountUserAgent"), ("permit", "AstAccountPermit"),
    ("deny", "AstAccountDeny"), ("rtptimeout", "AstAccountRTPTimeout"),
    ("rtpholdtimeout", "AstAccountRTPHoldTimeout"),
])


def column_to_attribute(settings: LdapSettings, table: TableMap, column: str) -> str:
    """The attribute a column is looked up and written as (first mapping: table, then
    general, then the Asterisk schema's defaults)."""
    for source in (table, settings.general, DEFAULT_MAPPINGS):
        for col, attr in source.mappings:
            if col.lower() == column.lower():
                return attr
    if not _ATTR.match(column):
        raise RealtimeError(f"invalid column name {column!r}")
    return column


def attribute_to_column(settings: LdapSettings, table: TableMap, attribute: str) -> str:
    for source in (table, settings.general):
        for col, attr in source.mappings:
            if attr.lower() == attribute.lower():
                return col
    for col, attr in DEFAULT_MAPPINGS.mappings:
        if attr.lower() == attribute.lower():
            explicit = any(c.lower() == col.lower() for src in (table, settings.general) for c, _ in src.mappings)
            return attribute if explicit else col  # a column the file maps elsewhere keeps its own source
    return attribute


def _check_value(value: str, what: str) -> str:
    if "\x00" in value:
        log.warning("LDAP realtime: refused %s containing a NUL character: %r", what, value[:80])
        raise RealtimeError(f"{what} contains a NUL character")
    if len(value) > MAX_VALUE_BYTES:
        raise RealtimeError(f"{what} is longer than {MAX_VALUE_BYTES} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RealtimeError(f"{what} is not valid Unicode text") from None
    return value


def _escape(text: str) -> str:
    from ldap3.utils.conv import escape_filter_chars
    return str(escape_filter_chars(text))


def like_pattern(value: str) -> str:
    """A SQL LIKE pattern as an escaped LDAP substring assertion: ``%`` -> ``*``."""
    pieces: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in "%_\\":
            literal.append(value[i + 1])
            i += 2
            continue
        if ch == "%":
            pieces.append(_escape("".join(literal)))
            literal = []
            if not pieces or pieces[-1] != "*":
                pieces.append("*")
        else:
            literal.append(ch)
        i += 1
    pieces.append(_escape("".join(literal)))
    out = "".join(pieces)
    while "**" in out:
        out = out.replace("**", "*")
    return out


def filter_term(attribute: str, op: str, value: str) -> str:
    """One filter term for ``attribute <op> value`` (value escaped here)."""
    _check_value(value, f"value for {attribute}")
    if op in ("LIKE", "NOT LIKE"):
        term = f"({attribute}={like_pattern(value)})"
        return f"(!{term})" if op == "NOT LIKE" else term
    v = _escape(value)
    if op == "=":
        return f"({attribute}={v})"
    if op in ("!=", "<>"):
        return f"(!({attribute}={v}))"
    if op in (">=", "<="):
        return f"({attribute}{op}{v})"
    if op == ">":
        return f"(&({attribute}>={v})(!({attribute}={v})))"
    if op == "<":
        return f"(&({attribute}<={v})(!({attribute}={v})))"
    raise RealtimeError(f"operator {op!r} is not supported by LDAP realtime")


def build_filter(settings: LdapSettings, table_name: str, fields: Fields) -> str:
    """``(&<table additionalFilter><general additionalFilter>(attr=value)...)``."""
    table = settings.table(table_name)
    parts = [table.additional_filter, settings.general.additional_filter]
    for name, value in fields:
        column, op = split_op(name)
        parts.append(filter_term(column_to_attribute(settings, table, column), op, value))
    parts = [p for p in parts if p]
    if not parts:
        return "(objectClass=*)"
    return "(&" + "".join(parts) + ")"


def _md5secret(value: str, dn: str) -> str | None:
    bare = value[5:] if value[:5].lower() == "{md5}" else value
    if _HEX32.match(bare):
        return bare
    log.warning("LDAP realtime: %s: md5secret value is not a {md5} hex digest of user:realm:secret "
                "(plain text or another hash); ignored", dn or "entry")
    return None


def entry_to_record(settings: LdapSettings, table_name: str,
                    attributes: Mapping[str, Sequence[bytes | str]], dn: str = "") -> Record:
    """An entry's attributes as (column, value) pairs, mapped back to Asterisk's names."""
    table = settings.table(table_name)
    out: Record = []
    for attribute, values in attributes.items():
        column = attribute_to_column(settings, table, attribute)
        low = column.lower()
        for raw in values:
            if len(raw) > MAX_VALUE_BYTES:
                log.warning("LDAP realtime: %s: value of %s is %d bytes (limit %d); ignored",
                            dn or "entry", attribute, len(raw), MAX_VALUE_BYTES)
                continue
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    log.warning("LDAP realtime: %s: value of %s is not UTF-8 text; ignored", dn or "entry", attribute)
                    continue
            else:
                text = str(raw)
            if "\x00" in text:
                log.warning("LDAP realtime: %s: value of %s contains NUL; ignored", dn or "entry", attribute)
                continue
            if low == "md5secret":
                secret = _md5secret(text, dn)
                pieces = [] if secret is None else [secret]
            elif ";" in text and low not in _NO_SPLIT:
                pieces = [p for p in text.split(";") if p]
            else:
                pieces = [text]
            for piece in pieces:
                if len(out) >= MAX_PAIRS:
                    log.warning("LDAP realtime: %s: more than %d values; the rest ignored", dn or "entry", MAX_PAIRS)
                    return out
                out.append((column, piece))
    return out




def modifications(settings: LdapSettings, table_name: str, fields: Fields) -> dict[str, list[tuple[Any, list[str]]]]:
    """update fields -> ldap3 ``changes``: REPLACE with every value given per attribute;
    an empty value (alone) deletes."""
    from ldap3 import MODIFY_REPLACE
    table = settings.table(table_name)
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in fields:
        column, _ = split_op(name)
        attr = column_to_attribute(settings, table, column)
        _check_value(value, f"value for {column}")
        key = attr.lower()
        names.setdefault(key, attr)
        values.setdefault(key, [])
        if value != "" and value not in values[key]:
            values[key].append(value)
    return {names[k]: [(MODIFY_REPLACE, v)] for k, v in values.items()}


def store_entry(settings: LdapSettings, table_name: str, basedn: str,
                fields: Fields) -> tuple[str, list[str], dict[str, list[str]]]:
    """(dn, object classes, attributes) of the entry ``store`` adds (see the module doc)."""
    from ldap3.utils.dn import escape_rdn
    table = settings.table(table_name)
    if not fields:
        raise RealtimeError("store needs at least one field")
    attrs: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in fields:
        column, _ = split_op(name)
        attr = column_to_attribute(settings, table, column)
        _check_value(value, f"value for {column}")
        if value == "":
            continue
        key = attr.lower()
        names.setdefault(key, attr)
        if value not in attrs.setdefault(key, []):
            attrs[key].append(value)
    first_column = split_op(fields[0][0])[0]
    rdn_attr = column_to_attribute(settings, table, first_column)
    rdn_value = fields[0][1]
    if rdn_value == "":
        raise RealtimeError(f"store: the first field ({first_column}) names the entry and cannot be empty")
    classes = list(table.store_classes or settings.general.store_classes)
    if not classes:
        for flt in (table.additional_filter, settings.general.additional_filter):
            classes += re.findall(r"\(objectClass=([A-Za-z][A-Za-z0-9-]*)\)", flt, flags=re.I)
    for value in attrs.pop("objectclass", []):
        if value not in classes:
            classes.append(value)
    if not classes:
        raise RealtimeError(f"store into [{table.name}]: no object class (set storeObjectClass in res_ldap.conf)")
    dn = f"{rdn_attr}={escape_rdn(rdn_value)},{basedn}"
    return dn, classes, {names[k]: v for k, v in attrs.items()}


# ----------------------------------------------------------------------------- the driver

def _is_timeout(exc: BaseException) -> bool:
    return "timed out" in str(exc).lower() or isinstance(exc, TimeoutError)


class LdapDriver(RealtimeDriver):
    name = "ldap"
    config_file = "res_ldap.conf"

    def __init__(self, pbx: Any, settings: LdapSettings | None = None) -> None:
        super().__init__(pbx)
        self.settings = settings or LdapSettings()
        self._fixed = settings is not None
        self.children: dict[str, LdapDriver] = {}  # table url -> a driver for that server
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: set[Any] = set()
        self._generation = 0
        self._waiting = 0
        self.connected_since: float | None = None  # wall clock of the first bind still standing
        self.stats = {"connects": 0, "reconnects": 0, "errors": 0}

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._fixed:
            self.settings = parse_settings(self.pbx.read_config(self.config_file))
        await self.stop()
        if not self._fixed:
            # a table with its own url (hookflash) is served by a driver of its own, so that
            # extconfig.conf priorities can fail over from one directory to another
            import copy
            for table in self.settings.tables.values():
                if table.url and table.url != self.settings.url and table.url not in self.children:
                    other = copy.deepcopy(self.settings)
                    parts = urlsplit(table.url)
                    other.url, other.scheme, other.host = table.url, parts.scheme.lower(), parts.hostname or ""
                    other.port = parts.port or (636 if other.scheme == "ldaps" else 389)
                    child = LdapDriver(self.pbx, other)
                    await child.start()
                    self.children[table.url] = child
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=self.settings.pool,
                                                               thread_name_prefix="rt-ldap")
        if self.settings.url:
            self._executor.submit(self._warm_up)  # Asterisk connects at load; failures only log

    def _for(self, table: str) -> LdapDriver:
        found = self.settings.tables.get(table.lower())
        if found is not None and found.url and not self._fixed:
            child = self.children.get(found.url)
            if child is not None:
                return child
        return self

    async def stop(self) -> None:
        children, self.children = list(self.children.values()), {}
        for child in children:
            await child.stop()
        executor, self._executor = self._executor, None
        with self._lock:
            self._generation += 1
            conns, self._conns = list(self._conns), set()
        self.connected_since = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if conns:
            await asyncio.get_running_loop().run_in_executor(None, self._unbind_all, conns)

    @staticmethod
    def _unbind_all(conns: Iterable[Any]) -> None:
        for conn in conns:
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    def _warm_up(self) -> None:
        try:
            self._connection()
        except RealtimeError as exc:
            log.warning("Couldn't establish connection to LDAP directory %s: %s", self.settings.url, exc)

    # -- connections (worker threads only) ------------------------------------------------------

    def _connect(self) -> Any:
        import ldap3
        from ldap3.core import exceptions as lx
        s = self.settings
        tls = None
        if s.scheme == "ldaps" or s.starttls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.cafile or None)
        server = ldap3.Server(s.host, port=s.port, use_ssl=s.scheme == "ldaps", tls=tls,
                              get_info=ldap3.NONE, connect_timeout=s.timeout)
        conn = ldap3.Connection(server, user=s.user or None, password=s.password if s.user else None,
                                authentication=ldap3.SIMPLE if s.user else ldap3.ANONYMOUS,
                                version=s.version, client_strategy=ldap3.SYNC, auto_bind=ldap3.AUTO_BIND_NONE,
                                raise_exceptions=False, auto_referrals=False, check_names=False,
                                receive_timeout=math.ceil(s.timeout),  # ldap3 packs it as an integer
                                return_empty_attributes=False)
        try:
            conn.open(read_server_info=False)
            if s.starttls and s.scheme == "ldap" and not conn.start_tls(read_server_info=False):
                raise DriverUnavailable(f"StartTLS with {s.url} failed: {conn.result}")
            if not conn.bind(read_server_info=False):
                code = (conn.result or {}).get("result")
                text = (conn.result or {}).get("description") or (conn.result or {}).get("message")
                conn.unbind()
                if code in _UNAVAILABLE_CODES:
                    raise DriverUnavailable(f"LDAP {s.url} refused the bind: {text}")
                raise RealtimeError(f"LDAP bind to {s.url} as {s.user or 'anonymous'} failed: {text}")
        except (lx.LDAPCommunicationError, lx.LDAPStartTLSError, lx.LDAPResponseTimeoutError,
                lx.LDAPSSLConfigurationError, lx.LDAPMaximumRetriesError, ssl.SSLError, OSError) as exc:
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001
                pass
            self.connected_since = None
            raise DriverUnavailable(f"LDAP {s.url} unreachable: {exc}") from None
        with self._lock:
            self._conns.add(conn)
        self.stats["connects"] += 1
        if self.connected_since is None:
            self.connected_since = time.time()
        return conn

    def _drop(self, conn: Any) -> None:
        with self._lock:
            self._conns.discard(conn)
        self._local.conn = None
        try:
            conn.unbind()
        except Exception:  # noqa: BLE001
            pass

    def _connection(self) -> tuple[Any, bool]:
        """This thread's connection and whether it was just opened."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and (getattr(self._local, "generation", -1) != self._generation or conn.closed):
            self._drop(conn)
            conn = None
        if conn is not None:
            return conn, False
        conn = self._connect()
        self._local.conn, self._local.generation = conn, self._generation
        return conn, True

    def _in_thread(self, op: Callable[[Any], Any]) -> Any:
        from ldap3.core import exceptions as lx
        comm = (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError, lx.LDAPMaximumRetriesError, OSError)
        conn, fresh = self._connection()
        try:
            return op(conn)
        except comm as exc:
            self._drop(conn)
            if fresh or _is_timeout(exc):
                self.connected_since = None
                raise DriverUnavailable(f"LDAP {self.settings.url}: {exc}") from None
        # a stale connection (server restarted, idle timeout): one retry on a fresh one
        self.stats["reconnects"] += 1
        conn, _ = self._connection()
        try:
            return op(conn)
        except comm as exc:
            self._drop(conn)
            self.connected_since = None
            raise DriverUnavailable(f"LDAP {self.settings.url}: {exc}") from None

    async def _run(self, op: Callable[[Any], Any]) -> Any:
        executor = self._executor
        if executor is None:
            raise DriverUnavailable("the LDAP realtime driver is not started")
        if not self.settings.url:
            raise RealtimeError("res_ldap.conf has no [_general] url or host")
        if self._waiting >= self.settings.pool * WAITING_PER_CONNECTION:
            raise DriverUnavailable(f"LDAP {self.settings.url}: {self._waiting} requests already waiting")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, self._in_thread, op)
        except RuntimeError as exc:  # executor shut down under us (stop/reload)
            if isinstance(exc, RealtimeError):
                raise
            raise DriverUnavailable(f"LDAP driver stopping: {exc}") from None
        finally:
            self._waiting -= 1

    # -- operations (worker threads) ----------------------------------------------------------------

    def _check(self, conn: Any, what: str, ok_codes: Iterable[int] = (0,)) -> int:
        result = conn.result or {}
        code = int(result.get("result", 0) or 0)
        if code in ok_codes:
            return code
        text = result.get("description", "") or ""
        message = result.get("message", "") or ""
        detail = f"{text}{': ' + message if message else ''}"
        if code in _UNAVAILABLE_CODES:
            raise DriverUnavailable(f"LDAP {self.settings.url}: {what}: {detail}")
        self.stats["errors"] += 1
        raise RealtimeError(f"LDAP {what}: {detail}")

    def _search(self, conn: Any, base: str, flt: str) -> list[tuple[str, dict[str, list[bytes]]]]:
        import ldap3
        conn.search(base, flt, search_scope=ldap3.SUBTREE, attributes=[ldap3.ALL_ATTRIBUTES],
                    size_limit=MAX_ENTRIES, time_limit=max(1, int(self.settings.timeout + 0.999)))
        code = self._check(conn, f"search {flt} in {base}", ok_codes=(0, 4, 32))
        if code == 32:
            log.warning("LDAP realtime: base DN '%s' does not exist", base)
            return []
        entries = [(item.get("dn", ""), item.get("raw_attributes") or {})
                   for item in (conn.response or []) if item.get("type") == "searchResEntry"]
        if code == 4 or len(entries) > MAX_ENTRIES:
            log.warning("LDAP realtime: search %s in %s matched more than %d entries; the rest ignored",
                        flt, base, MAX_ENTRIES)
            entries = entries[:MAX_ENTRIES]
        return entries

    def _base(self, database: str) -> str:
        from ldap3.core.exceptions import LDAPInvalidDnError
        from ldap3.utils.dn import parse_dn
        base = database.strip().strip('"').replace("|", ",") or self.settings.basedn
        try:
            parse_dn(base)
        except LDAPInvalidDnError:
            raise RealtimeError(f"'{base}' is not a valid base DN") from None
        return base

    async def load(self, database: str, table: str, fields: Fields) -> Record:
        out: Record = []
        for record in await self.load_multi(database, table, fields):
            out.extend(record)
        return out

    async def load_multi(self, database: str, table: str, fields: Fields) -> list[Record]:
        target = self._for(table)
        if target is not self:
            return await target.load_multi(database, table, fields)
        base = self._base(database)
        flt = build_filter(self.settings, table, fields)
        entries = await self._run(lambda conn: self._search(conn, base, flt))
        return [rec for dn, attrs in entries if (rec := entry_to_record(self.settings, table, attrs, dn))]

    async def update2(self, database: str, table: str, lookup: Fields, fields: Fields) -> int:
        target = self._for(table)
        if target is not self:
            return await target.update2(database, table, lookup, fields)
        base = self._base(database)
        flt = build_filter(self.settings, table, lookup)
        changes = modifications(self.settings, table, fields)
        if not changes:
            return 0

        def op(conn: Any) -> int:
            done, failed = 0, []
            for dn, _ in self._search(conn, base, flt):
                conn.modify(dn, changes)
                try:
                    self._check(conn, f"modify {dn}")
                    done += 1
                except DriverUnavailable:
                    raise
                except RealtimeError as exc:
                    log.error("Couldn't modify dn:%s because %s", dn, exc)
                    failed.append(str(exc))
            if failed and not done:
                raise RealtimeError(failed[0])
            return done

        return await self._run(op)  # type: ignore[no-any-return]

    async def store(self, database: str, table: str, fields: Fields) -> int:
        target = self._for(table)
        if target is not self:
            return await target.store(database, table, fields)
        dn, classes, attrs = store_entry(self.settings, table, self._base(database), fields)

        def op(conn: Any) -> int:
            conn.add(dn, classes, attrs)
            self._check(conn, f"add {dn}")
            return 1

        return await self._run(op)  # type: ignore[no-any-return]

    async def destroy(self, database: str, table: str, keyfield: str, entity: str, fields: Fields) -> int:
        target = self._for(table)
        if target is not self:
            return await target.destroy(database, table, keyfield, entity, fields)
        base = self._base(database)
        flt = build_filter(self.settings, table, [(keyfield, entity), *fields])

        def op(conn: Any) -> int:
            done = 0
            for dn, _ in self._search(conn, base, flt):
                conn.delete(dn)
                try:
                    self._check(conn, f"delete {dn}")
                    done += 1
                except DriverUnavailable:
                    raise
                except RealtimeError as exc:
                    log.error("Couldn't delete dn:%s because %s", dn, exc)
            return done

        return await self._run(op)  # type: ignore[no-any-return]

    def status(self) -> str:
        s = self.settings
        who = f" with username {s.user}" if s.user else ""
        if self.connected_since is None or self._executor is None:
            return f"Not connected to '{s.url}', baseDN {s.basedn}{who}\n"
        return (f"Connected to '{s.url}', baseDN {s.basedn}{who} for "
                f"{format_duration(int(time.time() - self.connected_since))}\n")
