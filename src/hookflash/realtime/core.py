"""The realtime layer: ``extconfig.conf`` mappings, failover between backends, a cache
with explicit lifetimes, a time limit on every lookup, and Asterisk's API (load one,
load many, update, update2, store, destroy, require).

``extconfig.conf``::

    [settings]
    sippeers => ldap,"ou=people,dc=example,dc=org",sip,1
    sippeers => ldap,"ou=people,dc=example,dc=org",sip2,2     ; tried when the first is away
    voicemail => pgsql,asterisk,voicemail
    sip.conf => sqlite3,asterisk,ast_config                     ; static realtime (config)

A family's lines are tried in priority order **only when a backend cannot be reached**
(refused, timed out, dropped): "not found" is an answer and never moves on, as in
Asterisk. For ldap the database is the base DN (quotes removed, ``|`` standing for
``,``), for pgsql and sqlite3 the section of their own .conf.

hookflash's own ``[hookflash]`` section: ``timeout`` (seconds a lookup may take on one
backend before it counts as away, default 2; the whole lookup, failover included, is
bounded by ``timeout`` times the number of backends), ``cache`` (seconds a found record
is kept, default 0 = no cache: chan_sip keeps its own with ``rtcachefriends``),
``negative_cache`` (seconds a "not found" is kept, default 0).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hookflash.conf.parser import ConfigFile
from hookflash.realtime.driver import DriverUnavailable, Fields, RealtimeDriver, RealtimeError, Record

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.realtime")

__all__ = ["Mapping", "Realtime", "parse_extconfig", "realtime", "record_dict"]


@dataclass(frozen=True, slots=True)
class Mapping:
    family: str
    driver: str
    database: str
    table: str
    priority: int
    static: bool = False


@dataclass(frozen=True, slots=True)
class ExtConfig:
    mappings: dict[str, list[Mapping]] = field(default_factory=dict)  # family (lower) -> by priority
    timeout: float = 2.0
    cache: float = 0.0
    negative_cache: float = 0.0


def parse_extconfig(conf: ConfigFile | None) -> ExtConfig:
    if conf is None:
        return ExtConfig()
    mappings: dict[str, list[Mapping]] = {}
    for section in conf.sections_named("settings"):
        for var in section.variables:
            family = var.name.strip()
            parts = [p.strip() for p in _split_csv(var.value)]
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise var.error(f"mapping for '{family}' needs a driver and a database",
                                "'family => driver,\"database\"[,table[,priority]]'")
            driver, database = parts[0].lower(), parts[1].strip('"').replace("|", ",")
            table = parts[2].strip('"') if len(parts) > 2 and parts[2] else family
            priority = 1
            if len(parts) > 3 and parts[3]:
                if not parts[3].isdigit() or int(parts[3]) < 1:
                    raise var.error(f"priority '{parts[3]}' of '{family}' is not a number from 1",
                                    "'family => driver,database,table,1'")
                priority = int(parts[3])
            static = family.endswith(".conf")
            mappings.setdefault(family.lower(), []).append(
                Mapping(family, driver, database, table, priority, static))
    for family, items in mappings.items():
        items.sort(key=lambda m: m.priority)
    values: dict[str, float] = {}
    for section in conf.sections_named("hookflash"):
        for var in section.variables:
            key = var.name.lower()
            if key in ("timeout", "cache", "negative_cache"):
                try:
                    values[key] = float(var.value)
                except ValueError:
                    raise var.error(f"{key} '{var.value}' is not a number of seconds", f"'{key}=2'") from None
    return ExtConfig(mappings, **values)


def _split_csv(text: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


class Realtime:
    """The realtime API for the rest of hookflash."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.cfg = ExtConfig()
        self.drivers: dict[str, RealtimeDriver] = {}
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, Any]] = {}
        self.stats = {"lookups": 0, "failovers": 0, "timeouts": 0, "cache_hits": 0}

    def configure(self, cfg: ExtConfig) -> None:
        self.cfg = cfg
        self._cache.clear()

    def register(self, driver: RealtimeDriver) -> None:
        self.drivers[driver.name] = driver

    def unregister(self, name: str) -> None:
        self.drivers.pop(name, None)

    def enabled(self, family: str) -> bool:
        """Whether the family is mapped to a loaded driver (ast_check_realtime)."""
        return any(m.driver in self.drivers for m in self.cfg.mappings.get(family.lower(), ()))

    def mappings(self, family: str) -> list[Mapping]:
        return list(self.cfg.mappings.get(family.lower(), ()))

    async def _call(self, family: str, op: str, *args: Any) -> Any:
        maps = self.cfg.mappings.get(family.lower())
        if not maps:
            raise RealtimeError(f"realtime family '{family}' is not mapped in extconfig.conf")
        last: Exception | None = None
        for i, mapping in enumerate(maps):
            driver = self.drivers.get(mapping.driver)
            if driver is None:
                last = RealtimeError(f"realtime driver '{mapping.driver}' is not loaded")
                continue
            try:
                return await asyncio.wait_for(getattr(driver, op)(mapping.database, mapping.table, *args),
                                              self.cfg.timeout)
            except asyncio.TimeoutError:
                self.stats["timeouts"] += 1
                last = DriverUnavailable(f"{mapping.driver} ({mapping.database}) did not answer within "
                                         f"{self.cfg.timeout:g} s")
            except DriverUnavailable as exc:
                last = exc
            if i + 1 < len(maps):
                self.stats["failovers"] += 1
                log.warning("Realtime %s for '%s': %s; trying priority %d (%s)", op, family, last,
                            maps[i + 1].priority, maps[i + 1].driver)
        assert last is not None
        raise last

    async def load(self, family: str, fields: Fields) -> Record:
        """One record, or [] when nothing matches. DriverUnavailable when no backend
        answered (callers treat it as "cannot tell", never as "not found")."""
        self.stats["lookups"] += 1
        key = (family.lower(), "load", tuple(fields))
        cached = self._from_cache(key)
        if cached is not None:
            return list(cached)
        found: Record = await self._call(family, "load", fields)
        self._to_cache(key, found)
        return found

    async def load_multi(self, family: str, fields: Fields) -> list[Record]:
        self.stats["lookups"] += 1
        return await self._call(family, "load_multi", fields)

    async def update(self, family: str, keyfield: str, entity: str, fields: Fields) -> int:
        self._cache.clear()
        return await self._call(family, "update", keyfield, entity, fields)

    async def update2(self, family: str, lookup: Fields, fields: Fields) -> int:
        self._cache.clear()
        return await self._call(family, "update2", lookup, fields)

    async def store(self, family: str, fields: Fields) -> int:
        self._cache.clear()
        return await self._call(family, "store", fields)

    async def destroy(self, family: str, keyfield: str, entity: str, fields: Fields | None = None) -> int:
        self._cache.clear()
        return await self._call(family, "destroy", keyfield, entity, fields or [])

    async def require(self, family: str, columns: list[tuple[str, str, int]]) -> bool:
        try:
            return bool(await self._call(family, "require", columns))
        except RealtimeError:
            return False

    def _from_cache(self, key: Any) -> Record | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        expires, value = hit
        if time.monotonic() > expires:
            del self._cache[key]
            return None
        self.stats["cache_hits"] += 1
        return value  # type: ignore[no-any-return]

    def _to_cache(self, key: Any, value: Record) -> None:
        ttl = self.cfg.cache if value else self.cfg.negative_cache
        if ttl > 0:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + ttl, list(value))


def realtime(pbx: Any) -> Realtime:
    found = getattr(pbx, "realtime", None)
    if found is None:
        found = pbx.realtime = Realtime(pbx)
    return found  # type: ignore[no-any-return]


def record_dict(record: Record) -> dict[str, str]:
    """A record as a dict (the first value of a repeated column wins, as chan_sip reads)."""
    out: dict[str, str] = {}
    for name, value in record:
        out.setdefault(name.lower(), value)
    return out
