"""chan_motif: Jingle calls over res_xmpp's connections (motif.conf, ``Dial(Motif/...)``).

Each endpoint of motif.conf names an xmpp.conf client in ``connection``; that client
advertises Jingle RTP audio in service discovery (and so in its XEP-0115 caps) and
takes every ``<jingle/>`` IQ addressed to it. See channel.py for the session life cycle
and docs/jingle.md for the whole surface.

``Dial(Motif/<endpoint>/<jid>)``: a bare JID in the roster is resolved to the first
available resource (highest priority) whose service discovery says it takes Jingle RTP
audio (XEP-0030, answers cached per resource for a minute); a full JID, a JID not in the
roster or one with no Jingle resource is called as given, as Asterisk does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from hookflash.channels.channel import Control
from hookflash.conf import ConfigError
from hookflash.engine.modules import Module, ModuleDeclined
from hookflash.engine.registry import CliArgs, CliCommand
from hookflash.media.rtpsession import PortAllocator
from hookflash.motif.channel import JingleCall, MotifTech
from hookflash.motif.config import IceConfig, MotifEndpoint, parse_ice_conf, parse_motif_conf
from hookflash.motif.channel import JmiRejected
from hookflash.motif.jingle import FEATURES, NS_ERRORS, NS_JINGLE, NS_JMI, NS_RTP, NS_RTP_AUDIO, JingleError, parse_jingle
from hookflash.motif.transport import AddressFilter, host_addresses

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx
    from hookflash.xmpp.client import XmppClient

log = logging.getLogger("hookflash.motif")

DISCO_TIMEOUT = 3.0
DISCO_CACHE = 60.0
MAX_SESSIONS_PER_PEER = 16  # a flood of session-initiates from one JID is refused beyond this


def _takes_audio(features: set[str]) -> bool:
    return NS_JINGLE in features and (NS_RTP_AUDIO in features or NS_RTP in features)


class MotifDriver:
    name = "Motif"
    description = "Motif Jingle Channel Driver"

    def __init__(self, owner: "MotifModule") -> None:
        self.owner = owner  # (the registry keeps the module's name in .module)

    async def request(self, pbx: "Pbx", data: str, requestor: "Channel | None") -> "Channel":
        endpoint_name, _, target = data.partition("/")
        mod = self.owner
        ep = mod.endpoints.get(endpoint_name.strip().lower())
        if ep is None:
            raise LookupError(f"No Motif endpoint '{endpoint_name}'")
        target = target.strip()
        if "@" not in target:
            raise LookupError(f"Motif target '{target}' is not a JID (Motif/{ep.name}/user@example.com)")
        client = mod.client_for(ep)
        if client is None or not client.connected:
            raise LookupError(f"Motif endpoint '{ep.name}': XMPP connection '{ep.connection}' is not connected")
        call = JingleCall(mod, ep, client, target, outgoing=True)
        chan = pbx.new_channel(f"Motif/{ep.name}-{pbx.next_id()}", MotifTech(call),
                               language=ep.language or "en", accountcode=ep.accountcode)
        call.chan = chan
        return chan


class MotifModule(Module):
    description = "Motif Jingle Channel Driver"
    support = "core"

    def __init__(self, pbx: "Pbx") -> None:
        super().__init__(pbx)
        self.endpoints: dict[str, MotifEndpoint] = {}
        self.ice = IceConfig()
        self.filter = AddressFilter()
        self.addresses: list[str] = []
        self.ports = PortAllocator()
        self.calls: dict[str, JingleCall] = {}
        self._disco: dict[str, tuple[float, set[str]]] = {}
        self.proposed: dict[str, tuple[str, float]] = {}  # JMI ids we said proceed to -> (peer, when)
        self._hooked: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def drivers(self) -> list[object]:
        return [MotifDriver(self)]

    def commands(self) -> list[CliCommand]:
        return [CliCommand(("motif", "show", "sessions"), self._show_sessions, "List Jingle sessions",
                           "Usage: motif show sessions\n       Lists the Jingle sessions in progress "
                           "(hookflash's; Asterisk's chan_motif has no console commands).")]

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        conf = self.pbx.read_config("motif.conf")
        if conf is None:
            raise ModuleDeclined("no motif.conf in the configuration directory")
        self.endpoints = parse_motif_conf(conf)
        self._ice_setup()
        xmpp = self._xmpp()
        if xmpp is None:
            raise ModuleDeclined("chan_motif needs res_xmpp, which is not loaded")
        for ep in self.endpoints.values():
            client = xmpp.client(ep.connection)
            if client is None:
                raise ConfigError(ep.filename, ep.lineno,
                                  f"endpoint [{ep.name}]: connection '{ep.connection}' is not a client in xmpp.conf",
                                  "'connection=<a client section of xmpp.conf>'")
            self._hook(client)
        self.pbx.verbose(2, f"Motif: {len(self.endpoints)} endpoint(s); ICE on {', '.join(self.addresses) or 'no address'}")

    def _ice_setup(self) -> None:
        from hookflash.sip.config import parse_rtp_conf  # noqa: PLC0415
        rtp_conf = self.pbx.read_config("rtp.conf")
        self.ice = parse_ice_conf(rtp_conf)
        rtp = parse_rtp_conf(rtp_conf)
        self.ports = PortAllocator(rtp.rtpstart, rtp.rtpend)
        self.filter = AddressFilter(self.ice.permit, self.ice.deny)
        self.addresses = host_addresses(self.filter)
        if not self.addresses:
            log.warning("Motif: ice_permit/ice_deny in rtp.conf leave no local address for media")

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            await call.terminate("success", "the PBX is shutting down")
            if call.chan is not None:
                call.chan.request_hangup()
        self.calls.clear()
        for task in list(self._tasks):
            task.cancel()

    async def reload(self) -> str | None:
        try:
            endpoints = parse_motif_conf(self.pbx.read_config("motif.conf"))
        except ConfigError as exc:
            log.error("motif.conf not reloaded, the running configuration is kept: %s", exc)
            return str(exc)
        self.endpoints = endpoints
        self._ice_setup()
        xmpp = self._xmpp()
        for ep in endpoints.values():
            client = xmpp.client(ep.connection) if xmpp else None
            if client is not None:
                self._hook(client)
        return None

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def advertise(self, ip: str) -> str:
        return self.ice.host_candidates.get(ip, ip)

    # ------------------------------------------------------------------ XMPP
    def _xmpp(self) -> Any:
        return self.pbx.modules.loaded.get("res_xmpp")

    def client_for(self, ep: MotifEndpoint) -> "XmppClient | None":
        xmpp = self._xmpp()
        return xmpp.client(ep.connection) if xmpp is not None else None

    def _endpoint_of(self, client: "XmppClient") -> MotifEndpoint | None:
        for ep in self.endpoints.values():
            if ep.connection.lower() == client.config.name.lower():
                return ep
        return None

    def _hook(self, client: "XmppClient") -> None:
        if id(client) in self._hooked:
            return
        self._hooked.add(id(client))

        def extend(xmpp: Any) -> None:
            from slixmpp.xmlstream.handler import Callback  # noqa: PLC0415
            from slixmpp.xmlstream.matcher import MatchXPath  # noqa: PLC0415
            xmpp.register_handler(Callback(
                "hookflash jingle", MatchXPath(f"{{{xmpp.default_ns}}}iq/{{{NS_JINGLE}}}jingle"),
                lambda iq: self._on_iq(client, iq)))
            # slixmpp's "message" event only fires for messages with a body; JMI has none
            for what in ("propose", "proceed", "reject", "retract", "ringing", "accept"):
                xmpp.register_handler(Callback(
                    f"hookflash jmi {what}", MatchXPath(f"{{{xmpp.default_ns}}}message/{{{NS_JMI}}}{what}"),
                    lambda msg: self._on_message(client, msg)))
            for feature in FEATURES:
                try:
                    xmpp.plugin["xep_0030"].add_feature(feature)
                except Exception:
                    log.debug("disco feature %s not added", feature)

        client.extensions.append(extend)
        if client.xmpp is not None:  # already made (and maybe connected): hook it now
            extend(client.xmpp)
            if client.connected:
                try:
                    self.spawn(client.xmpp.plugin["xep_0115"].update_caps())
                except Exception:
                    pass

    def _on_iq(self, client: "XmppClient", iq: Any) -> None:
        if iq["type"] != "set":
            return
        el = iq.xml.find(f"{{{NS_JINGLE}}}jingle")
        sender = str(iq["from"])
        try:
            j = parse_jingle(el)
        except JingleError as exc:
            log.warning("Malformed Jingle from %s: %s", sender, exc)
            self._error(iq, exc.condition, exc.jingle, str(exc))
            return
        except Exception as exc:  # never let one stanza take the connection down
            log.warning("Unusable Jingle from %s: %s", sender, exc)
            self._error(iq, "bad-request", "", "unusable Jingle element")
            return
        call = self.calls.get(j.sid)
        if j.action == "session-initiate":
            if call is not None:
                self._error(iq, "bad-request", "out-of-order", "session id already in use")
                return
            self._on_initiate(client, iq, j, sender)
            return
        if call is None or call.peer.lower() != sender.lower() and call.peer.split("/")[0].lower() != sender.split("/")[0].lower():
            self._error(iq, "item-not-found", "unknown-session", "no such session")
            return
        if call.outgoing and "/" not in call.peer:
            call.peer = sender  # the resource that answered
        iq.reply().send()
        try:
            call.on_jingle(j)
        except Exception:
            log.exception("Jingle %s on %s failed", j.action, call.chan.name if call.chan else j.sid)

    def _on_initiate(self, client: "XmppClient", iq: Any, j: Any, sender: str) -> None:
        ep = self._endpoint_of(client)
        if ep is None:
            self._error(iq, "service-unavailable", "", "no Motif endpoint on this connection")
            return
        if sum(1 for c in self.calls.values() if c.peer.lower() == sender.lower()) >= MAX_SESSIONS_PER_PEER:
            self._error(iq, "resource-constraint", "", "too many sessions")
            return
        iq.reply().send()
        call = JingleCall(self, ep, client, sender, outgoing=False, sid=j.sid)
        self.calls[j.sid] = call
        self.spawn(self._incoming(call, j))

    async def _incoming(self, call: JingleCall, j: Any) -> None:
        try:
            await call.start_incoming(j)
        except Exception:
            log.exception("Incoming Jingle session %s from %s failed", j.sid, call.peer)
            await call.terminate("general-error")

    def _error(self, iq: Any, condition: str, jingle_condition: str, text: str) -> None:
        import xml.etree.ElementTree as ET  # noqa: PLC0415
        try:
            reply = iq.reply(clear=True)
            reply["type"] = "error"
            reply["error"]["type"] = "cancel" if condition != "bad-request" else "modify"
            reply["error"]["condition"] = condition
            reply["error"]["text"] = text[:200]
            if jingle_condition:
                reply["error"].xml.append(ET.Element(f"{{{NS_ERRORS}}}{jingle_condition}"))
            reply.send()
        except Exception as exc:
            log.debug("Jingle error reply failed: %s", exc)

    async def resolve(self, client: "XmppClient", target: str) -> tuple[str, bool]:
        """(the JID to call, whether to ring it with Jingle Message Initiation first).

        A full JID is called as given (JMI only if that resource advertises it). For a bare
        JID in the roster: when a resource that takes Jingle audio advertises XEP-0353
        (Conversations, Dino, Movim), every device of the bare JID is rung with a
        ``propose``; otherwise the first Jingle resource by priority gets the session."""
        if "/" in target:
            features = await self._features(client, target)
            return target, NS_JMI in features and _takes_audio(features)
        buddy = client.buddies.get(target.lower())
        if buddy is None or not buddy.resources:
            return target, False
        first = None
        for res in sorted(buddy.resources.values(), key=lambda r: -r.priority):
            full = f"{buddy.jid}/{res.name}"
            features = await self._features(client, full)
            if _takes_audio(features):
                if NS_JMI in features:
                    return buddy.jid, True
                first = first or full
        return (first or target), False

    async def _features(self, client: "XmppClient", full: str) -> set[str]:
        now = time.monotonic()
        cached = self._disco.get(full)
        if cached is not None and now - cached[0] < DISCO_CACHE:
            return cached[1]
        features: set[str] = set()
        try:
            info = await client.xmpp.plugin["xep_0030"].get_info(jid=full, timeout=DISCO_TIMEOUT)
            features = set(info["disco_info"]["features"])
        except Exception as exc:
            log.debug("disco#info of %s failed: %s", full, exc)
        self._disco[full] = (now, features)
        return features

    # ------------------------------------------------------------------ XEP-0353
    def jmi_send(self, client: "XmppClient", to: str, what: str, sid: str, media: bool = False,
                 reason: str = "") -> None:
        import xml.etree.ElementTree as ET  # noqa: PLC0415
        xmpp = client.xmpp
        if xmpp is None:
            return
        msg = xmpp.make_message(mto=to, mtype="chat")
        el = ET.SubElement(msg.xml, f"{{{NS_JMI}}}{what}", {"id": sid})
        if media:
            ET.SubElement(el, f"{{{NS_RTP}}}description", {"media": "audio"})
        if reason:
            r = ET.SubElement(el, f"{{{NS_JINGLE}}}reason")
            ET.SubElement(r, f"{{{NS_JINGLE}}}{reason}")
        ET.SubElement(msg.xml, "{urn:xmpp:hints}store")
        msg.send()

    def _on_message(self, client: "XmppClient", msg: Any) -> None:
        el = None
        for child in msg.xml:
            if child.tag.startswith(f"{{{NS_JMI}}}"):
                el = child
                break
        if el is None or msg["type"] == "error":
            return
        what = el.tag.split("}", 1)[1]
        sid = (el.get("id") or "")[:256]
        sender = str(msg["from"])
        if not sid or not sid.isprintable():
            return
        if what == "propose":
            self._on_propose(client, el, sid, sender)
            return
        call = self.calls.get(sid)
        if call is None or not call.jmi or call.proceeded is None or call.proceeded.done():
            if what == "retract" and sid in self.proposed:
                self.proposed.pop(sid, None)
            return
        if sender.split("/", 1)[0].lower() != call.peer.split("/", 1)[0].lower():
            return  # only the callee's devices speak for the callee
        if what == "ringing" and call.chan is not None:
            call.chan.queue_control(Control.RINGING)
        elif what == "proceed":
            call.proceeded.set_result(sender)
        elif what == "reject":
            reason = el.find(f"{{{NS_JINGLE}}}reason")
            busy = reason is not None and reason.find(f"{{{NS_JINGLE}}}busy") is not None
            call.proceeded.set_exception(JmiRejected("busy" if busy else "decline"))

    def _on_propose(self, client: "XmppClient", el: Any, sid: str, sender: str) -> None:
        """Someone proposes a call (XEP-0353): a PBX takes every call to the dialplan, so we
        proceed at once and the session-initiate that follows rings the endpoint."""
        ep = self._endpoint_of(client)
        if ep is None or "/" not in sender:
            return
        desc = [d.get("media") for d in el if d.tag.endswith("}description")]
        if desc and "audio" not in desc:
            self.jmi_send(client, sender, "reject", sid, reason="unsupported-applications")
            return
        now = time.monotonic()
        for old, (_, when) in list(self.proposed.items()):
            if now - when > 120:
                del self.proposed[old]
        if len(self.proposed) > 1000:
            self.jmi_send(client, sender, "reject", sid, reason="busy")
            return
        self.proposed[sid] = (sender, now)
        self.jmi_send(client, sender, "ringing", sid)
        self.jmi_send(client, sender, "proceed", sid)

    # ------------------------------------------------------------------ console
    def _show_sessions(self, args: CliArgs) -> str:
        rows = [f"{'Channel':<28} {'Peer':<40} {'Dir':<4} {'Transport':<10} {'Codec':<6} {'SRTP':<5} "
                f"{'Pkts in':>8} {'Pkts out':>8} State"]
        for call in self.calls.values():
            codec = call.chosen[1] if call.chosen else "-"
            state = "up" if call.media_up else ("accepted" if call.accepted else "pending")
            rows.append(f"{(call.chan.name if call.chan else '-'):<28} {call.peer[:40]:<40} "
                        f"{'out' if call.outgoing else 'in':<4} {call.kind:<10} {codec:<6} "
                        f"{'yes' if call.remote_fp else 'no':<5} "
                        f"{call.rtp.stats.packets_in if call.rtp else 0:>8} {call.rtp.stats.packets_out if call.rtp else 0:>8} {state}")
        rows.append(f"{len(self.calls)} Jingle session(s)")
        return "\n".join(rows) + "\n"
