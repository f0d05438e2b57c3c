"""The realtime layer's own rules, with two in-memory backends standing in for servers
(the drivers themselves are tested against slapd, PostgreSQL and SQLite): extconfig.conf
parsing with located errors, failover only when a backend is away (never on "not
found"), the per-backend timeout, and the cache lifetimes."""

from __future__ import annotations

import asyncio

import pytest

from hookflash.conf import ConfigError
from hookflash.conf.parser import parse_text
from hookflash.realtime.core import Realtime, parse_extconfig
from hookflash.realtime.driver import DriverUnavailable, RealtimeDriver, split_op


class Backend(RealtimeDriver):
    def __init__(self, name: str, behaviour: str) -> None:
        super().__init__(None)
        self.name = name
        self.behaviour = behaviour
        self.calls = 0

    async def load(self, database, table, fields):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.behaviour == "down":
            raise DriverUnavailable("refused")
        if self.behaviour == "hung":
            await asyncio.sleep(60)
        if self.behaviour == "empty":
            return []
        return [("name", fields[0][1]), ("from", self.name)]

    async def load_multi(self, database, table, fields):  # type: ignore[no-untyped-def]
        return [await self.load(database, table, fields)]


def layer(first: str, second: str, extra: str = "") -> tuple[Realtime, Backend, Backend]:
    cfg = parse_extconfig(parse_text("[settings]\nsippeers => one,db,sip,1\nsippeers => two,db,sip,2\n"
                                     "[hookflash]\ntimeout=0.2\n" + extra, "extconfig.conf"))
    rt = Realtime(None)  # type: ignore[arg-type]
    rt.configure(cfg)
    a, b = Backend("one", first), Backend("two", second)
    rt.register(a)
    rt.register(b)
    return rt, a, b


def test_failover_only_when_a_backend_is_away() -> None:
    async def main() -> None:
        rt, a, b = layer("down", "ok")
        assert dict(await rt.load("sippeers", [("name", "x")]))["from"] == "two"
        rt, a, b = layer("empty", "ok")
        assert await rt.load("sippeers", [("name", "x")]) == [] and b.calls == 0  # not found is an answer
        rt, a, b = layer("hung", "ok")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert dict(await rt.load("sippeers", [("name", "x")]))["from"] == "two"
        assert loop.time() - started < 0.5
        rt, a, b = layer("down", "down")
        with pytest.raises(DriverUnavailable):
            await rt.load("sippeers", [("name", "x")])
    asyncio.run(main())


def test_cache_lifetimes() -> None:
    async def main() -> None:
        rt, a, b = layer("ok", "ok", "cache=30\n")
        await rt.load("sippeers", [("name", "x")])
        await rt.load("sippeers", [("name", "x")])
        assert a.calls == 1 and rt.stats["cache_hits"] == 1
        rt, a, b = layer("empty", "ok")  # negative_cache defaults to 0: asked again
        await rt.load("sippeers", [("name", "x")])
        await rt.load("sippeers", [("name", "x")])
        assert a.calls == 2
    asyncio.run(main())


def test_extconfig_errors_and_operators() -> None:
    with pytest.raises(ConfigError, match="extconfig.conf:2"):
        parse_extconfig(parse_text("[settings]\nsippeers => ldap\n", "extconfig.conf"))
    with pytest.raises(ConfigError, match="priority"):
        parse_extconfig(parse_text('[settings]\nsippeers => ldap,"ou=x|dc=y",sip,zero\n', "extconfig.conf"))
    cfg = parse_extconfig(parse_text('[settings]\nsippeers => ldap,"ou=people|dc=example,dc=org",sip\n', "x"))
    m = cfg.mappings["sippeers"][0]
    assert (m.driver, m.database, m.table, m.priority) == ("ldap", "ou=people,dc=example,dc=org", "sip", 1)
    assert split_op("name NOT LIKE") == ("name", "NOT LIKE")
    assert split_op("regseconds >") == ("regseconds", ">")
    assert split_op("name") == ("name", "=")
