"""res_xmpp: xmpp.conf, one connection per client section, the Jabber* applications,
JABBER_STATUS() and JABBER_RECEIVE(), the ``xmpp`` message technology, device state
``XMPP/<client>/<bare-jid>`` and the ``xmpp`` console commands.

Argument forms are Asterisk's (``../shared/ASTERISK-REFERENCE.md`` 3.2). Choices:

- ``JabberSend`` never waits for the server: the message is queued on the stream, or,
  when the client is not connected, dropped with a warning. ``JABBER_SEND_STATUS``
  (hookflash's) says which: ``SUCCESS`` or ``FAILURE``. An unknown account ends the
  call with -1 as Asterisk does; a JID without ``@`` is refused with a warning.
- ``JABBER_RECEIVE(account,jid[,timeout])`` (timeout default 20 s) waits on a future:
  no thread, no polling. A bare JID matches any resource of exactly that JID (Asterisk
  matches a *prefix*, so ``bob@x`` also took ``bob@xy``'s replies: fixed). A message
  that arrived before the wait began is returned if it is younger than the client's
  ``timeout`` (as Asterisk), and each message is returned once.
- ``JABBER_STATUS`` without a resource takes the resource with the highest priority, as
  documented (Asterisk's code takes an arbitrary one).
- ``JabberStatus(account,jid,var)``, removed in Asterisk 17, is kept for old dialplans
  and sets the variable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from hookflash.conf import ConfigError
from hookflash.dialplan.args import split_args
from hookflash.engine.devstate import DeviceState, device_states
from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand, Function
from hookflash.message.core import Message, MessageError, core
from hookflash.xmpp.client import NOT_IN_ROSTER, Received, XmppClient
from hookflash.xmpp.config import XmppConfig, parse_xmpp_conf

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.xmpp")

RECEIVE_DEFAULT = 20.0


class XmppMessageTech:
    """``MessageSend(xmpp:<jid>,xmpp:<account>)``: from must name the account."""

    name = "xmpp"

    def __init__(self, module: XmppModule) -> None:
        self.module = module

    async def send(self, msg: Message, to: str, from_: str) -> None:
        jid = to.split(":", 1)[1].strip() if ":" in to else to
        account = from_.split(":", 1)[1].strip() if from_.lower().startswith("xmpp:") else from_.strip()
        if not account:
            raise MessageError("an xmpp message needs from=xmpp:<account>")
        client = self.module.client(account)
        if client is None:
            raise MessageError(f"no XMPP client '{account}'")
        if "@" not in jid:
            raise MessageError(f"'{jid}' is not a JID")
        if client.send(jid, msg.body) is None:
            raise MessageError(f"XMPP client '{account}' is not connected")


class XmppModule(Module):
    description = "Asterisk XMPP Interface"
    support = "core"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.cfg = XmppConfig()
        self.clients: dict[str, XmppClient] = {}
        self.tech = XmppMessageTech(self)

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        self.cfg = parse_xmpp_conf(self.pbx.read_config("xmpp.conf"))
        self._apply()
        device_states(self.pbx).add_provider("XMPP/", self._device_state)
        core(self.pbx).register(self.tech)
        self.pbx.verbose(2, f"XMPP: {len(self.clients)} client(s)")

    def _apply(self) -> None:
        for key in list(self.clients):
            new = self.cfg.clients.get(key)
            old = self.clients[key]
            if new is None or new != old.config:
                self.pbx.spawn(old.stop())
                del self.clients[key]
        for key, conf in self.cfg.clients.items():
            if key not in self.clients:
                client = XmppClient(conf, self.cfg.general, self._on_message, self._on_presence)
                self.clients[key] = client
                client.start()

    async def stop(self) -> None:
        for client in list(self.clients.values()):
            await client.stop()
        self.clients.clear()
        device_states(self.pbx).remove_provider("XMPP/")
        core(self.pbx).unregister("xmpp")

    async def reload(self) -> str | None:
        try:
            cfg = parse_xmpp_conf(self.pbx.read_config("xmpp.conf"))
        except ConfigError as exc:
            log.error("xmpp.conf not reloaded, the running configuration is kept: %s", exc)
            return str(exc)
        self.cfg = cfg
        self._apply()
        return None

    def client(self, name: str) -> XmppClient | None:
        return self.clients.get(name.strip().lower())

    # ------------------------------------------------------------------ events
    def _on_message(self, client: XmppClient, received: Received, stanza: Any) -> None:
        conf = client.config
        if not conf.sendtodialplan:
            return
        bare = received.sender.split("/", 1)[0]
        msg = Message(to=f"xmpp:{conf.username}", from_=f"xmpp:{received.sender}", body=received.body,
                      context=conf.context or "default", exten="s", tech="XMPP", endpoint=conf.name)
        if bare.lower() in client.buddies:
            msg.data["XMPP_BUDDY"] = bare
        core(self.pbx).receive(msg)

    def _on_presence(self, client: XmppClient, jid: str) -> None:
        device = f"XMPP/{client.config.name}/{jid}"
        state = DeviceState.NOT_INUSE if client.device_available(jid) else DeviceState.UNAVAILABLE
        device_states(self.pbx).changed(device, state)

    def _device_state(self, device: str) -> DeviceState:
        parts = device.split("/", 2)
        if len(parts) < 3:
            return DeviceState.INVALID
        client = self.client(parts[1])
        if client is None:
            return DeviceState.INVALID
        return DeviceState.NOT_INUSE if client.device_available(parts[2]) else DeviceState.UNAVAILABLE

    # ------------------------------------------------------------------ applications
    def _account(self, chan: Channel, app: str, name: str) -> XmppClient | None:
        client = self.client(name)
        if client is None:
            log.warning("%s: could not find XMPP client '%s' (%s)", app, name, chan.name)
        return client

    def app_send(self, chan: Channel, data: str) -> int | None:
        parts = split_args(data)
        if len(parts) < 3:
            log.warning("JabberSend requires 3 arguments: account,jid,message (%s)", chan.name)
            return -1
        account, jid = parts[0].strip(), parts[1].strip()
        message = data.split(",", 2)[2] if data.count(",") >= 2 else parts[2]  # the message keeps its commas
        client = self._account(chan, "JabberSend", account)
        if client is None:
            return -1
        if "@" not in jid:
            log.warning("JabberSend: '%s' is not a JID (%s)", jid, chan.name)
            chan.set_var("JABBER_SEND_STATUS", "FAILURE")
            return None
        sent_id = client.send(jid, message)
        if sent_id is None:
            log.warning("JabberSend: XMPP client '%s' is not connected; message to %s dropped (%s)",
                        account, jid, chan.name)
            chan.set_var("JABBER_SEND_STATUS", "FAILURE")
        else:
            chan.set_var("JABBER_SEND_STATUS", "SUCCESS")
            chan.set_var("JABBER_SEND_ID", sent_id)
        return None

    def app_send_group(self, chan: Channel, data: str) -> int | None:
        parts = split_args(data)
        if len(parts) < 3:
            log.warning("JabberSendGroup requires account,roomjid,message[,nickname] (%s)", chan.name)
            return -1
        client = self._account(chan, "JabberSendGroup", parts[0])
        if client is None:
            return -1
        room = parts[1].strip()
        if room not in client.rooms:
            log.warning("JabberSendGroup: not in room %s (JabberJoin first) (%s)", room, chan.name)
            return None
        if not client.send_group(room, parts[2]):
            log.warning("JabberSendGroup: XMPP client '%s' is not connected (%s)", parts[0], chan.name)
        return None

    def _room_args(self, chan: Channel, app: str, data: str) -> tuple[XmppClient, str, str] | None:
        parts = split_args(data)
        if len(parts) < 2 or not parts[1].strip():
            log.warning("%s requires account,roomjid[,nickname] (%s)", app, chan.name)
            return None
        client = self._account(chan, app, parts[0])
        if client is None:
            return None
        room = parts[1].strip()
        if "/" in room:
            log.warning("%s: room JID '%s' must not carry a resource (%s)", app, room, chan.name)
            return None
        nick = parts[2].strip() if len(parts) > 2 and parts[2].strip() else \
            client.config.bare_jid.split("@", 1)[0]
        return client, room, nick

    def app_join(self, chan: Channel, data: str) -> int | None:
        found = self._room_args(chan, "JabberJoin", data)
        if found is not None:
            client, room, nick = found
            if not client.join(room, nick):
                log.warning("JabberJoin: XMPP client '%s' is not connected; will join %s when it is",
                            client.config.name, room)
        return None

    def app_leave(self, chan: Channel, data: str) -> int | None:
        found = self._room_args(chan, "JabberLeave", data)
        if found is not None:
            client, room, nick = found
            client.leave(room, nick)
        return None

    def app_status(self, chan: Channel, data: str) -> int | None:
        parts = split_args(data)
        if len(parts) < 3:
            log.warning("JabberStatus requires account,jid,variable (%s)", chan.name)
            return None
        client = self._account(chan, "JabberStatus", parts[0])
        status = client.status(parts[1].strip()) if client is not None else NOT_IN_ROSTER
        chan.set_var(parts[2].strip(), str(status))
        return None

    # ------------------------------------------------------------------ functions
    def func_status(self, chan: Channel | None, args: str) -> str:
        parts = split_args(args)
        if len(parts) < 2:
            log.warning("JABBER_STATUS requires account,jid")
            return ""
        client = self.client(parts[0])
        if client is None:
            log.warning("JABBER_STATUS: could not find XMPP client '%s'", parts[0])
            return ""
        return str(client.status(parts[1].strip()))

    def func_receipt(self, chan: Channel | None, args: str) -> str:
        """JABBER_RECEIPT(account,id) (hookflash): 1 once the recipient's client confirmed
        the message JabberSend sent with that JABBER_SEND_ID (XEP-0184), else 0."""
        parts = split_args(args)
        client = self.client(parts[0]) if parts else None
        if client is None or len(parts) < 2:
            log.warning("JABBER_RECEIPT requires a known account and a message id")
            return ""
        return "1" if parts[1].strip() in client.receipts else "0"

    async def func_receive(self, chan: Channel | None, args: str) -> str:
        parts = split_args(args)
        if len(parts) < 2:
            log.warning("JABBER_RECEIVE requires account,jid[,timeout]")
            return ""
        client = self.client(parts[0])
        if client is None:
            log.warning("JABBER_RECEIVE: could not find XMPP client '%s'", parts[0])
            return ""
        timeout = RECEIVE_DEFAULT
        if len(parts) > 2 and parts[2].strip():
            try:
                timeout = float(parts[2])
            except ValueError:
                timeout = -1
            if timeout <= 0:
                log.warning("JABBER_RECEIVE: invalid timeout '%s'", parts[2])
                return ""
        jid = parts[1].strip()
        if chan is not None:
            # a caller who hangs up stops waiting at once (Asterisk keeps waiting, and a
            # dead call could take the reply meant for a live one)
            receiving = asyncio.ensure_future(client.receive(jid, timeout))
            hangup = asyncio.ensure_future(chan.hangup_event.wait())
            try:
                await asyncio.wait({receiving, hangup}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                hangup.cancel()
            if not receiving.done():
                receiving.cancel()
                try:
                    await receiving
                except asyncio.CancelledError:
                    pass
                return ""
            received = receiving.result()
        else:
            received = await client.receive(jid, timeout)
        if received is None:
            log.info("JABBER_RECEIVE: no message from %s within %g s%s", jid, timeout,
                     f" ({chan.name})" if chan is not None else "")
            return ""
        return received.body

    def applications(self) -> list[Application]:
        return [
            Application("JabberSend", self.app_send, "Sends an XMPP message to a buddy.",
                        "JabberSend(account,jid,message)",
                        "Sets JABBER_SEND_STATUS (hookflash): SUCCESS (queued) or FAILURE (not connected)."),
            Application("JabberSendGroup", self.app_send_group, "Send a Jabber message to a specified chat room",
                        "JabberSendGroup(account,roomjid,message[,nickname])"),
            Application("JabberJoin", self.app_join, "Join a chat room", "JabberJoin(account,roomjid[,nickname])"),
            Application("JabberLeave", self.app_leave, "Leave a chat room",
                        "JabberLeave(account,roomjid[,nickname])"),
            Application("JabberStatus", self.app_status, "Retrieve the status of a Jabber list member "
                        "(deprecated: use JABBER_STATUS())", "JabberStatus(account,jid,variable)"),
        ]

    def functions(self) -> list[Function]:
        return [
            Function("JABBER_STATUS", self.func_status, None, "Retrieves a buddy's status.",
                     "JABBER_STATUS(account,jid)",
                     "1 Online, 2 Chatty, 3 Away, 4 Extended Away, 5 Do Not Disturb, 6 Offline, 7 Not in roster"),
            Function("JABBER_RECEIPT", self.func_receipt, None, "Whether a sent message was received "
                     "(XEP-0184 delivery receipt; hookflash).", "JABBER_RECEIPT(account,id)",
                     "id is the JABBER_SEND_ID JabberSend set; 1 once the recipient's client confirmed it."),
            Function("JABBER_RECEIVE", lambda chan, args: "", None, "Reads XMPP messages.",
                     "JABBER_RECEIVE(account,jid[,timeout])",
                     "Waits up to timeout seconds (default 20) for a message from jid and returns its body.",
                     aread=self.func_receive),
        ]

    # ------------------------------------------------------------------ console
    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("xmpp", "show", "connections"), self._show_connections, "Show state of clients",
                       "Usage: xmpp show connections"),
            CliCommand(("xmpp", "show", "buddies"), self._show_buddies, "Show buddy lists of our clients",
                       "Usage: xmpp show buddies"),
            CliCommand(("xmpp", "set", "debug"), self._set_debug, "Enable/Disable XMPP debugging",
                       "Usage: xmpp set debug {on|off}"),
            CliCommand(("xmpp", "purge", "nodes"), self._purge, "Purges PubSub nodes",
                       "Usage: xmpp purge nodes <connection> <node>"),
        ]

    def _show_connections(self, args: CliArgs) -> str:
        out = ["Jabber Users and their status:\n"]
        for client in self.clients.values():
            out.append(f"       [{client.config.name}] {client.config.username}     - {client.state}\n")
        out.append("----\n")
        out.append(f"   Number of clients: {len(self.clients)}\n")
        return "".join(out)

    def _show_buddies(self, args: CliArgs) -> str:
        out = ["XMPP buddy lists\n"]
        for client in self.clients.values():
            out.append(f"Client: {client.config.name}\n")
            for buddy in client.buddies.values():
                out.append(f"\tBuddy:\t{buddy.jid}\n")
                for res in buddy.resources.values():
                    out.append(f"\t\tResource: {res.name}\n")
                    out.append(f"\t\t\tnode: {res.caps_node}\n")
                    out.append(f"\t\t\tstatus: {res.status}\n")
                    out.append(f"\t\t\tpriority: {res.priority}\n")
        return "".join(out)

    def _set_debug(self, args: CliArgs) -> str:
        word = args.argv[0].lower() if args.argv else ""
        if word not in ("on", "off"):
            return "Usage: xmpp set debug {on|off}\n"
        for client in self.clients.values():
            client.debug = word == "on"
        logging.getLogger("hookflash.xmpp.stanzas").setLevel(logging.DEBUG if word == "on" else logging.NOTSET)
        return "XMPP Debugging Enabled.\n" if word == "on" else "XMPP Debugging Disabled.\n"

    def _purge(self, args: CliArgs) -> str:
        if len(args.argv) != 2:
            return "Usage: xmpp purge nodes <connection> <node>\n"
        client = self.client(args.argv[0])
        if client is None:
            return f"Unable to find client '{args.argv[0]}'!\n"
        if not client.connected or not client.config.pubsub_node:
            return "PubSub is not configured for this client (pubsub_node)\n"
        try:
            client.xmpp.register_plugin("xep_0060")
            client.xmpp.plugin["xep_0060"].purge(client.config.pubsub_node, args.argv[1])
        except Exception as exc:
            return f"Purging {args.argv[1]} failed: {exc}\n"
        return f"Purged node {args.argv[1]}\n"
