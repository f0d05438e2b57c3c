"""One XMPP client connection (an ``xmpp.conf`` section) over slixmpp, on the PBX's
own event loop.

- **Connection**: STARTTLS (verified against ``cafile`` or the system store) unless
  ``usetls=no``; SASL; ``serverhost``/``port`` used as given (no SRV lookup, as
  Asterisk). A connection that does not reach a session within ``CONNECT_TIMEOUT`` (a
  frozen server accepts TCP and then says nothing) is aborted. Lost connections come
  back by themselves, with backoff from 1 to 60 s. XEP-0199 pings every 50 s detect a
  dead server while idle (``keepalive``).
- **Presence and roster**: our presence from ``status``/``statusmessage``/``priority``;
  buddies' presence per resource; ``autoregister`` subscribes to the configured
  buddies, ``autoprune`` removes roster entries that are not configured,
  ``auth_policy`` accepts or refuses subscription requests. Every presence change
  updates the device state ``XMPP/<client>/<bare-jid>``.
- **Messages in**: kept for ``JABBER_RECEIVE`` (a message older than ``timeout`` seconds
  is dropped, as Asterisk does) and, with ``sendtodialplan``, handed to the message
  core. Waiting in JABBER_RECEIVE is a future: no polling, no cost.
- **Messages out**: never wait for the server: a message is queued on the stream (or
  refused at once when not connected). Delivery receipts (XEP-0184) are requested and
  recorded when the peer supports them.
- **Hostile input**: bodies longer than ``MAX_BODY`` are cut, control characters
  removed before anything reaches the dialplan; slixmpp's parser refuses XML that is not
  well-formed (the stream is closed and reconnected).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hookflash.message.core import clean
from hookflash.xmpp.config import XmppClientConfig, XmppGeneral

log = logging.getLogger("hookflash.xmpp")
stanza_log = logging.getLogger("hookflash.xmpp.stanzas")

CONNECT_TIMEOUT = 15.0
MAX_BODY = 64 * 1024
KEPT_MESSAGES = 1000

# JABBER_STATUS values
ONLINE, CHATTY, AWAY, XAWAY, DND, OFFLINE, NOT_IN_ROSTER = 1, 2, 3, 4, 5, 6, 7
_SHOW = {"": ONLINE, "available": ONLINE, "chat": CHATTY, "away": AWAY, "xa": XAWAY, "dnd": DND}


@dataclass
class Resource:
    name: str
    status: int
    priority: int
    description: str = ""
    caps_node: str = ""


@dataclass
class Buddy:
    jid: str
    resources: dict[str, Resource] = field(default_factory=dict)
    subscription: str = "none"


@dataclass
class Received:
    sender: str  # full JID
    body: str
    at: float


class XmppClient:
    """See the module docstring."""

    def __init__(self, config: XmppClientConfig, general: XmppGeneral,
                 on_message: Callable[[XmppClient, Received, Any], None] | None = None,
                 on_presence: Callable[[XmppClient, str], None] | None = None) -> None:
        self.config = config
        self.general = general
        self.on_message = on_message
        self.on_presence = on_presence
        self.state = "Disconnected"
        self.xmpp: Any = None
        self.buddies: dict[str, Buddy] = {}
        self.received: deque[Received] = deque(maxlen=KEPT_MESSAGES)
        self.waiters: list[tuple[str, asyncio.Future[Received]]] = []
        self.rooms: dict[str, str] = {}  # room JID -> nickname
        self.receipts: dict[str, float] = {}  # message id -> when acknowledged
        self.sent = 0
        self.failures = 0
        self.debug = config.debug
        # called with every new slixmpp client (one per connection attempt), before it
        # connects: chan_motif adds its Jingle handler and disco features this way
        self.extensions: list[Callable[[Any], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._session = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = False

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        self._drop()
        self.state = "Disconnected"
        for _, fut in self.waiters:
            if not fut.done():
                fut.cancel()

    def _drop(self) -> None:
        if self.xmpp is not None:
            try:
                self.xmpp.abort()
            except Exception:
                pass
            self.xmpp = None

    @property
    def connected(self) -> bool:
        return self.state == "Connected"

    async def _run(self) -> None:
        delay = 1.0
        while not self._stopping:
            self._session.clear()
            self._lost.clear()
            try:
                self.state = "Connecting"
                self.xmpp = self._make()
                self.xmpp.connect(self.config.serverhost, self.config.port)
                lost = asyncio.ensure_future(self._lost.wait())
                session = asyncio.ensure_future(self._session.wait())
                done, _ = await asyncio.wait({lost, session}, timeout=CONNECT_TIMEOUT,
                                             return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                session.cancel()
                if self._session.is_set():
                    delay = 1.0
                    self.state = "Connected"
                    log.info("XMPP client %s connected as %s", self.config.name, self.xmpp.boundjid.full)
                    await self._lost.wait()
                    log.warning("XMPP client %s lost its connection; reconnecting", self.config.name)
                else:
                    log.warning("XMPP client %s could not connect to %s:%d within %g s", self.config.name,
                                self.config.serverhost, self.config.port, CONNECT_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("XMPP client %s failed", self.config.name)
            self.state = "Disconnected"
            self._drop()
            for buddy in self.buddies.values():  # nobody is known online while we are away
                if buddy.resources:
                    buddy.resources.clear()
                    self._presence_changed(buddy.jid)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _make(self) -> Any:
        import slixmpp  # noqa: PLC0415  (imported when a client is configured)
        cfg = self.config
        xmpp = slixmpp.ClientXMPP(cfg.username, cfg.secret)
        ctx = ssl.create_default_context(cafile=cfg.cafile or None)
        xmpp.ssl_context = ctx
        xmpp.enable_direct_tls = cfg.forceoldssl
        xmpp.enable_starttls = cfg.usetls and not cfg.forceoldssl
        xmpp.enable_plaintext = not cfg.usetls and not cfg.forceoldssl
        xmpp.auto_authorize = cfg.auth_policy == "accept"
        xmpp.auto_subscribe = cfg.auth_policy == "accept"
        for plugin in ("xep_0030", "xep_0045", "xep_0199", "xep_0184", "xep_0115"):
            try:
                xmpp.register_plugin(plugin)
            except Exception:
                log.debug("slixmpp plugin %s not available", plugin)
        if cfg.receipts:
            xmpp.plugin["xep_0184"].auto_ack = True
            xmpp.plugin["xep_0184"].auto_request = True
        if cfg.keepalive:
            xmpp.plugin["xep_0199"].enable_keepalive(interval=50, timeout=10)
        xmpp.add_event_handler("session_start", self._on_session)
        xmpp.add_event_handler("disconnected", lambda _e: self._lost.set())
        xmpp.add_event_handler("connection_failed", lambda _e: self._lost.set())
        xmpp.add_event_handler("failed_auth", self._on_failed_auth)
        xmpp.add_event_handler("message", self._on_message)
        xmpp.add_event_handler("presence", self._on_presence)
        xmpp.add_event_handler("presence_subscribe", self._on_subscribe)
        xmpp.add_event_handler("receipt_received", self._on_receipt)
        xmpp.add_filter("in", self._log_in)
        xmpp.add_filter("out", self._log_out)
        for extend in self.extensions:
            try:
                extend(xmpp)
            except Exception:
                log.exception("XMPP client %s: an extension failed", self.config.name)
        return xmpp

    def _log_in(self, stanza: Any) -> Any:
        if self.debug or stanza_log.isEnabledFor(logging.DEBUG):
            stanza_log.debug("[%s] <- %s", self.config.name, str(stanza)[:4000])
        return stanza

    def _log_out(self, stanza: Any) -> Any:
        if self.debug or stanza_log.isEnabledFor(logging.DEBUG):
            text = str(stanza)
            if "urn:ietf:params:xml:ns:xmpp-sasl" in text:
                text = "<auth …(credentials not logged)/>"
            stanza_log.debug("[%s] -> %s", self.config.name, text[:4000])
        return stanza

    def _on_failed_auth(self, _event: Any) -> None:
        log.error("XMPP client %s: the server refused the login of %s", self.config.name, self.config.username)
        self._lost.set()

    async def _on_session(self, _event: Any) -> None:
        xmpp = self.xmpp
        cfg = self.config
        try:
            await asyncio.wait_for(xmpp.get_roster(), 10)
        except Exception as exc:
            log.warning("XMPP client %s: roster not received (%s)", cfg.name, exc)
        roster = xmpp.client_roster
        for jid in roster:
            bare = str(jid)
            self.buddies.setdefault(bare.lower(), Buddy(bare, subscription=roster[jid]["subscription"]))
        if cfg.autoregister:
            for buddy in cfg.buddies:
                bare = buddy.split("/", 1)[0]
                self.buddies.setdefault(bare.lower(), Buddy(bare))
                if bare not in roster or roster[bare]["subscription"] in ("none", "from"):
                    xmpp.send_presence_subscription(pto=bare, ptype="subscribe")
        if cfg.autoprune:
            wanted = {b.split("/", 1)[0].lower() for b in cfg.buddies}
            for jid in list(roster):
                if str(jid).lower() not in wanted:
                    roster.remove(jid)
                    self.buddies.pop(str(jid).lower(), None)
        self._send_presence()
        for room, nick in self.rooms.items():
            self._join(room, nick)
        self._session.set()

    def _send_presence(self) -> None:
        cfg = self.config
        show = cfg.show
        if show == "unavailable":
            self.xmpp.send_presence(ptype="unavailable")
            return
        self.xmpp.send_presence(pshow=show or None, pstatus=cfg.statusmessage, ppriority=cfg.priority)

    # ------------------------------------------------------------------ presence
    def _on_presence(self, pres: Any) -> None:
        ptype = pres["type"]
        sender = pres["from"]
        bare = sender.bare.lower()
        if bare == self.xmpp.boundjid.bare.lower() and sender.resource == self.xmpp.boundjid.resource:
            return
        if ptype in ("subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"):
            return
        buddy = self.buddies.get(bare)
        if buddy is None:
            if bare.split("@")[-1].startswith("conference.") or "@" not in bare:
                return  # MUC presence, components
            buddy = self.buddies[bare] = Buddy(sender.bare)
        resource = sender.resource or ""
        if ptype == "unavailable":
            buddy.resources.pop(resource, None)
        else:
            show = pres["show"] or ""
            try:
                priority = int(pres["priority"] or 0)
            except (TypeError, ValueError):
                priority = 0
            node = ""
            try:
                node = pres["caps"]["node"] or ""
            except Exception:
                node = ""
            buddy.resources[resource] = Resource(resource, _SHOW.get(show, ONLINE), priority,
                                                 clean(str(pres["status"] or ""), 512), node)
        self._presence_changed(buddy.jid)

    def _presence_changed(self, jid: str) -> None:
        if self.on_presence is not None:
            try:
                self.on_presence(self, jid)
            except Exception:
                log.exception("Presence handler failed for %s", jid)

    def _on_subscribe(self, pres: Any) -> None:
        if self.config.auth_policy == "deny":
            self.xmpp.send_presence(pto=pres["from"].bare, ptype="unsubscribed")
            log.info("XMPP client %s refused the subscription request of %s (auth_policy=deny)",
                     self.config.name, pres["from"].bare)

    def status(self, jid: str) -> int:
        """JABBER_STATUS: 1 online .. 6 offline (in roster, no resource), 7 not in roster.
        Without a resource: the resource with the highest priority (the documented
        behaviour; Asterisk's code takes an arbitrary one)."""
        bare, _, resource = jid.partition("/")
        buddy = self.buddies.get(bare.lower())
        if buddy is None:
            return NOT_IN_ROSTER
        if resource:
            found = buddy.resources.get(resource)
            return found.status if found is not None else OFFLINE
        if not buddy.resources:
            return OFFLINE
        best = max(buddy.resources.values(), key=lambda r: r.priority)
        return best.status

    def device_available(self, jid: str) -> bool:
        """Device state: NOT_INUSE when some resource is plainly available."""
        buddy = self.buddies.get(jid.split("/", 1)[0].lower())
        return buddy is not None and any(r.status in (ONLINE, CHATTY) for r in buddy.resources.values())

    # ------------------------------------------------------------------ messages
    def _on_message(self, msg: Any) -> None:
        if msg["type"] not in ("chat", "normal", ""):
            if msg["type"] == "error":
                log.warning("XMPP client %s: error from %s: %s", self.config.name, msg["from"],
                            clean(str(msg["error"]["text"] or msg["error"]["condition"]), 200))
            return
        body = msg["body"]
        if not body:
            return
        if len(body) > MAX_BODY:
            log.warning("XMPP client %s: message from %s of %d characters cut to %d", self.config.name,
                        msg["from"], len(body), MAX_BODY)
        received = Received(str(msg["from"]), clean(body, MAX_BODY), time.monotonic())
        for i, (pattern, fut) in enumerate(self.waiters):
            if not fut.done() and _matches(received.sender, pattern):
                fut.set_result(received)
                del self.waiters[i]
                break
        else:
            self.received.append(received)
        if self.on_message is not None:
            try:
                self.on_message(self, received, msg)
            except Exception:
                log.exception("XMPP message handler failed")

    def _on_receipt(self, msg: Any) -> None:
        self.receipts[str(msg["receipt"])] = time.time()
        if len(self.receipts) > 10_000:
            for key in list(self.receipts)[:5000]:
                del self.receipts[key]

    async def receive(self, jid: str, timeout: float) -> Received | None:
        """JABBER_RECEIVE: the first message from ``jid`` (bare: any resource) that
        arrived less than ``timeout`` (the client's) seconds ago, or the next one within
        ``timeout`` seconds."""
        now = time.monotonic()
        keep = float(self.config.timeout)
        for item in list(self.received):
            if now - item.at > keep:
                self.received.remove(item)
                continue
            if _matches(item.sender, jid):
                self.received.remove(item)
                return item
        fut: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        entry = (jid, fut)
        self.waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed over just as we were cancelled: keep it
                self.received.appendleft(fut.result())
            raise
        finally:
            if entry in self.waiters:
                self.waiters.remove(entry)

    def send(self, jid: str, body: str, mtype: str = "chat") -> str | None:
        """Queue a message; its id, or None when not connected (nothing waits)."""
        if not self.connected or self.xmpp is None:
            self.failures += 1
            return None
        msg = self.xmpp.make_message(mto=jid, mbody=body, mtype=mtype)
        if self.config.receipts and mtype == "chat":
            msg["request_receipt"] = True
        msg.send()
        self.sent += 1
        return str(msg["id"])

    # ------------------------------------------------------------------ rooms
    def _join(self, room: str, nick: str) -> None:
        try:
            self.xmpp.plugin["xep_0045"].join_muc(room, nick)
        except Exception as exc:
            log.warning("XMPP client %s: joining %s failed: %s", self.config.name, room, exc)

    def join(self, room: str, nick: str) -> bool:
        self.rooms[room] = nick
        if not self.connected:
            return False
        self._join(room, nick)
        return True

    def leave(self, room: str, nick: str) -> bool:
        self.rooms.pop(room, None)
        if not self.connected:
            return False
        try:
            self.xmpp.plugin["xep_0045"].leave_muc(room, nick)
        except Exception as exc:
            log.warning("XMPP client %s: leaving %s failed: %s", self.config.name, room, exc)
            return False
        return True

    def send_group(self, room: str, body: str) -> bool:
        return self.send(room, body, mtype="groupchat") is not None


def _matches(sender: str, wanted: str) -> bool:
    """A sender matches a bare JID on any resource, a full JID exactly (case-insensitive
    on the bare part; Asterisk's prefix match is a bug: ``bob@x`` would match ``bob@xy``)."""
    s_bare, _, s_res = sender.partition("/")
    w_bare, _, w_res = wanted.partition("/")
    if s_bare.lower() != w_bare.lower():
        return False
    return not w_res or s_res == w_res
