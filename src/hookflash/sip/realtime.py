"""chan_sip realtime: peers from the ``sippeers`` family (LDAP, PostgreSQL, SQLite),
looked up when a REGISTER, INVITE, MESSAGE or SUBSCRIBE names a user sip.conf does not
have, and when Dial() names one.

- The record's columns are read as the sip.conf options of that name (``secret``,
  ``md5secret``, ``context``, ``callerid``, ``mailbox``, ``host``, ``allow``...);
  registration columns (``ipaddr``, ``port`` of a dynamic peer, ``regseconds``,
  ``fullcontact``, ``useragent``, ``lastms``, ``regserver``, ``name``) are the peer's
  last registration, used while ``regseconds`` is in the future (or always with
  ``ignoreregexpire=yes``). A record with a bad value is refused with a log line naming
  the peer and the column; columns chan_sip does not know are ignored.
- ``md5secret`` is the hex HA1 (a ``{md5}`` prefix is removed by the LDAP driver);
  something that is not 32 hex digits is refused, so a plain-text password stored as
  ``userPassword`` never becomes a usable secret (as Asterisk documents).
- A peer found in realtime is kept in memory (so it gets qualify, MWI and device state
  like a static one) for ``rtautoclear`` seconds when set, else for ``RT_KEEP`` seconds
  without ``rtcachefriends`` and until ``sip prune realtime`` with it. A lookup that fails
  because every backend is away is answered like an unknown user (nothing is cached);
  it never delays calls that do not need it.
- ``rtupdate=yes`` writes ``ipaddr``, ``port``, ``regseconds``, ``useragent``,
  ``fullcontact``, ``defaultuser`` and ``lastms`` back at each registration (and
  ``regserver`` with ``rtsavesysname=yes``); on unregistration they are cleared.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hookflash.conf.parser import ConfigError, ConfigSection, ConfigVariable
from hookflash.realtime.core import realtime
from hookflash.realtime.driver import RealtimeError
from hookflash.sip.config import SipPeerConfig, _peer
from hookflash.sip.peers import PeerState

if TYPE_CHECKING:
    from hookflash.sip.stack import SipStack

log = logging.getLogger("hookflash.sip.realtime")

RT_KEEP = 60.0
REG_COLUMNS = {"ipaddr", "regseconds", "fullcontact", "useragent", "lastms", "regserver", "name", "id",
               "uniqueid", "path", "supportpath", "regexten"}
PEER_COLUMNS = {
    "type", "host", "port", "secret", "md5secret", "remotesecret", "defaultuser", "username", "fromuser",
    "fromdomain", "context", "language", "accountcode", "outofcall_message_context", "callerid", "mailbox",
    "qualify", "nat", "directmedia", "canreinvite", "allow", "disallow", "dtmfmode", "insecure", "transport",
    "call-limit", "setvar", "amaflags", "callgroup", "pickupgroup", "mohsuggest", "musiconhold",
    "subscribecontext", "trustrpid", "sendrpid", "progressinband",
}
_NAME = re.compile(r"^[A-Za-z0-9_.+\-]{1,80}$")


def safe_name(name: str) -> bool:
    """Peer names worth asking the directory about (no NUL, no control characters, no
    '*', '(', ')', '\\': those are refused before any query; the drivers escape anyway)."""
    return bool(_NAME.match(name))


class SipRealtime:
    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        self.loaded_at: dict[str, float] = {}  # realtime peer name -> when it was loaded
        self.lookups = 0
        self.failures = 0
        self._writes: dict[str, PeerState] = {}  # registrations waiting to be written back
        self._writer: Any = None

    @property
    def general(self) -> Any:
        return self.stack.config.general

    def enabled(self) -> bool:
        return realtime(self.stack.pbx).enabled("sippeers")

    def is_realtime(self, name: str) -> bool:
        return name in self.loaded_at

    def expired(self, name: str, now: float | None = None) -> bool:
        at = self.loaded_at.get(name)
        if at is None:
            return False
        keep = self._keep()
        return keep > 0 and (now or time.monotonic()) - at > keep

    def _keep(self) -> float:
        g = self.general
        autoclear = getattr(g, "rtautoclear", 0)
        if autoclear:
            return float(autoclear)
        return 0.0 if g.rtcachefriends else RT_KEEP

    async def lookup(self, name: str, raise_unavailable: bool = False) -> PeerState | None:
        """The realtime peer ``name`` (cached in the stack's peers), or None. When no
        backend can answer: None, or RealtimeError with ``raise_unavailable``."""
        if not safe_name(name) or not self.enabled():
            if name and not safe_name(name):
                log.info("Not looking up SIP peer %r in realtime: not a valid peer name", name[:80])
            return None
        existing = self.stack.peers.get(name)
        if existing is not None and not self.expired(name):
            return existing
        self.lookups += 1
        try:
            record = await realtime(self.stack.pbx).load("sippeers", [("name", name)])
        except RealtimeError as exc:
            self.failures += 1
            log.warning("Realtime lookup of SIP peer '%s' failed: %s", name, exc)
            if raise_unavailable:
                raise
            return None
        if not record:
            if existing is not None and self.is_realtime(name):
                self.prune(name)  # gone from the directory
            return None
        state = self.peer_from_record(name, record)
        if state is None:
            return None
        if existing is not None and existing.registered and not state.registered:
            state.addr, state.contact, state.expires_at = existing.addr, existing.contact, existing.expires_at
        self.stack.peers[name] = state
        self.loaded_at[name] = time.monotonic()
        return state

    def peer_from_record(self, name: str, record: list[tuple[str, str]]) -> PeerState | None:
        columns: dict[str, str] = {}
        variables: list[ConfigVariable] = []
        for column, value in record:
            key = column.lower()
            columns.setdefault(key, value)
        dynamic = columns.get("host", "dynamic").lower() == "dynamic"
        for column, value in record:
            key = column.lower()
            if key in REG_COLUMNS or (key == "port" and dynamic) or value == "":
                continue
            if key not in PEER_COLUMNS:
                continue
            if key == "md5secret":
                value = value.strip()
                if value.lower().startswith("{md5}"):
                    value = value[5:]
                if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
                    log.warning("Realtime SIP peer '%s': md5secret is not an MD5 hash (a plain-text "
                                "password?); ignored", name)
                    continue
            variables.append(ConfigVariable(column, value, "realtime:sippeers", 0))
        section = ConfigSection(name, f"realtime:sippeers/{name}", 0, variables=variables)
        try:
            cfg: SipPeerConfig = _peer(section, self.general)
        except ConfigError as exc:
            log.warning("Realtime SIP peer '%s' refused: %s", name, exc)
            return None
        if cfg.type == "peer" and cfg.is_dynamic:
            cfg = replace(cfg, type="friend")
        state = PeerState(cfg)
        state.extra["realtime"] = "yes"
        regseconds = _int(columns.get("regseconds", ""))
        ipaddr, port = columns.get("ipaddr", ""), _int(columns.get("port", ""))
        if cfg.is_dynamic and ipaddr and port and (regseconds > time.time() or getattr(
                self.general, "ignoreregexpire", False)):
            state.addr = (ipaddr, port)
            state.expires_at = float(regseconds) if regseconds > time.time() else time.time() + 60
            state.contact = columns.get("fullcontact", "")
            state.useragent = columns.get("useragent", "")
            state.registered_user = columns.get("defaultuser", "")
        return state

    async def registered(self, peer: PeerState) -> None:
        """rtupdate: write the registration back. A write that fails (backend away or
        overloaded) is kept, the latest one per peer, and retried until it is stored."""
        if not self.is_realtime(peer.name) or not self.general.rtupdate:
            return
        self._writes[peer.name] = peer
        if self._writer is None or self._writer.done():
            import asyncio
            self._writer = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        import asyncio
        delay = 0.5
        while self._writes:
            batch = list(self._writes.items())[:8]  # a few at a time: the backend's pool size
            for name, _ in batch:
                del self._writes[name]
            results = await asyncio.gather(*(self._write(peer) for _, peer in batch))
            failed = [(n, p) for (n, p), ok in zip(batch, results) if not ok]
            for name, peer in failed:
                self._writes.setdefault(name, peer)  # a newer registration wins
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                delay = 0.5

    async def _write(self, peer: PeerState) -> bool:
        fields = [("ipaddr", peer.addr[0] if peer.addr else ""), ("port", str(peer.addr[1]) if peer.addr else "0"),
                  ("regseconds", str(int(peer.expires_at))), ("useragent", peer.useragent[:200]),
                  ("fullcontact", peer.contact[:500]), ("defaultuser", peer.registered_user),
                  ("lastms", str(max(peer.lastms, 0)))]
        if getattr(self.general, "rtsavesysname", False):
            fields.append(("regserver", socket.gethostname()))
        try:
            await realtime(self.stack.pbx).update("sippeers", "name", peer.name, fields)
        except RealtimeError as exc:
            log.warning("Writing the registration of SIP peer '%s' to realtime failed (will retry): %s",
                        peer.name, exc)
            return False
        return True

    async def unregistered(self, peer: PeerState) -> None:
        if not self.is_realtime(peer.name) or not self.general.rtupdate:
            return
        fields = [("ipaddr", ""), ("port", "0"), ("regseconds", "0"), ("useragent", ""), ("fullcontact", "")]
        try:
            await realtime(self.stack.pbx).update("sippeers", "name", peer.name, fields)
        except RealtimeError as exc:
            log.warning("Clearing the registration of SIP peer '%s' in realtime failed: %s", peer.name, exc)

    def prune(self, name: str | None = None, like: str | None = None) -> int:
        """``sip prune realtime``: forget cached realtime peers (all, one, or matching)."""
        names = [n for n in self.loaded_at if (name is None or n == name) and
                 (like is None or re.search(like, n))]
        for n in names:
            self.loaded_at.pop(n, None)
            self.stack.peers.pop(n, None)
        return len(names)


def _int(text: str) -> int:
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() else 0
