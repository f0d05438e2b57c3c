"""core_message: ``MESSAGE()``, ``MESSAGE_DATA()``, ``MessageSend()``, the message queue
that runs inbound messages through the dialplan, and the ``sip`` message technology
(chan_sip's MESSAGE in and out, with store and forward). The ``xmpp`` technology is
registered by res_xmpp. See :mod:`hookflash.message.core`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookflash.engine.modules import Module
from hookflash.engine.registry import Application, CliArgs, CliCommand, Function
from hookflash.message.core import (
    app_message_send,
    core,
    func_message_data_read,
    func_message_data_write,
    func_message_read,
    func_message_write,
)
from hookflash.message.sip import SipMessageTech, inbound

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx


class MessageModule(Module):
    description = "Out-of-call text message support"
    support = "core"

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(pbx)
        self.sip = SipMessageTech(pbx)

    async def start(self) -> None:
        message_core = core(self.pbx)
        message_core.register(self.sip)
        message_core.start()
        self.pbx.on_sip_message = self._on_sip_message  # type: ignore[attr-defined]
        self.pbx.on_sip_registered = self._on_sip_registered  # type: ignore[attr-defined]

    async def stop(self) -> None:
        message_core = core(self.pbx)
        message_core.unregister("sip")
        message_core.stop()
        for name in ("on_sip_message", "on_sip_registered"):
            if hasattr(self.pbx, name):
                delattr(self.pbx, name)

    def _on_sip_message(self, request: Any, peer: Any, source: Any = None) -> None:
        inbound(self.pbx, request, peer, source)

    def _on_sip_registered(self, peer: Any) -> None:
        if self.sip.waiting(peer.name):
            self.pbx.spawn(self.sip.flush(peer.name))

    def applications(self) -> list[Application]:
        return [Application(
            "MessageSend", app_message_send, "Send a text message.",
            "MessageSend(destination[,from[,to]])",
            "Sends MESSAGE(body) through the technology named by the destination's prefix "
            "(sip:peer, sip:user@host, xmpp:jid). Sets MESSAGE_SEND_STATUS: SUCCESS, FAILURE, "
            "INVALID_PROTOCOL, INVALID_URI; for sip also MESSAGE_DELIVERY_STATUS: DELIVERED, "
            "QUEUED (peer not registered: kept and sent when it registers), PENDING, FAILED.")]

    def functions(self) -> list[Function]:
        return [
            Function("MESSAGE", func_message_read, func_message_write, "Create a message or read fields "
                     "from a message.", "MESSAGE(argument)", "to, from, body, custom_data"),
            Function("MESSAGE_DATA", func_message_data_read, func_message_data_write,
                     "Read or write custom data attached to a message.", "MESSAGE_DATA(argument)"),
        ]

    def commands(self) -> list[CliCommand]:
        return [CliCommand(("message", "show", "queue"), self._show_queue,
                           "Messages waiting for SIP peers that are not registered",
                           "Usage: message show queue")]

    def _show_queue(self, args: CliArgs) -> str:
        spool = self.sip.spool
        rows = []
        if spool.is_dir():
            for directory in sorted(spool.iterdir()):
                count = len(list(directory.glob("*.json")))
                if count:
                    rows.append(f"{directory.name:<20} {count:>6}\n")
        message_core = core(self.pbx)
        head = f"Inbound: {message_core.received} routed, {message_core.dropped} dropped (queue full)\n"
        if not rows:
            return head + "No messages waiting for unregistered peers\n"
        return head + f"{'Peer':<20} {'Queued':>6}\n" + "".join(rows)
