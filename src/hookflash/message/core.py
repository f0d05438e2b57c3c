"""Out-of-call text messages (Asterisk's ``main/message.c``): the message, the
technologies that carry it (``sip``, ``xmpp``), the dialplan that routes it, and
``MESSAGE()``, ``MESSAGE_DATA()`` and ``MessageSend()``.

Inbound: a channel driver hands a :class:`Message` to :meth:`MessageCore.receive`; it
runs on a channel named ``Message/ast_msg_queue`` at the message's context, extension
``exten`` (or ``s``) priority 1, with the message readable and settable through
``MESSAGE()`` and ``MESSAGE_DATA()``. Messages are run one after another in arrival
order, as Asterisk's single queue does; the queue is bounded (``MAX_QUEUE``): a flood
beyond it is dropped with a warning instead of growing memory, and call handling is
never delayed by it (each message is its own short task on the loop).

Everything a message carries is hostile: bodies are capped (``MAX_BODY``), and control
characters other than tab and newline are removed from what the dialplan sees.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hookflash.dialplan.args import split_args

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.message")

MAX_BODY = 64 * 1024
MAX_QUEUE = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str, limit: int = MAX_BODY) -> str:
    """A value safe to hand to the dialplan: no control characters but tab and newline."""
    return _CONTROL.sub("", text[:limit])


class MessageError(Exception):
    """A technology could not send a message (MESSAGE_SEND_STATUS=FAILURE)."""


@dataclass
class Message:
    to: str = ""
    from_: str = ""
    body: str = ""
    data: dict[str, str] = field(default_factory=dict)  # MESSAGE_DATA, keys as given
    outbound: set[str] = field(default_factory=set)  # MESSAGE_DATA keys to send as headers
    context: str = "default"
    exten: str = "s"
    tech: str = ""
    endpoint: str = ""
    delivery: str = ""  # set by a technology that knows more than "handed over" (sip)

    def get_data(self, key: str) -> str | None:
        if key in self.data:
            return self.data[key]
        lowered = key.lower()
        for name, value in self.data.items():
            if name.lower() == lowered:
                return value
        return None


class MessageTech(Protocol):
    name: str

    async def send(self, msg: Message, to: str, from_: str) -> None:
        """Send (raise MessageError when it cannot be handed over)."""


class MessageCore:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.techs: dict[str, MessageTech] = {}
        self.queue: asyncio.Queue[Message] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.received = 0
        self.dropped = 0
        self.routed_hooks: list[Callable[[Message], Awaitable[None] | None]] = []

    def register(self, tech: MessageTech) -> None:
        self.techs[tech.name.lower()] = tech

    def unregister(self, name: str) -> None:
        self.techs.pop(name.lower(), None)

    def start(self) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue(MAX_QUEUE)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None

    # ------------------------------------------------------------------ inbound
    def receive(self, msg: Message) -> bool:
        """Queue an inbound message for the dialplan; False if the queue is full."""
        self.start()
        assert self.queue is not None
        msg.body = clean(msg.body)
        msg.from_ = clean(msg.from_, 1024)
        msg.to = clean(msg.to, 1024)
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("Message queue full (%d waiting): dropped a message from %s (%d dropped so far)",
                            MAX_QUEUE, msg.from_, self.dropped)
            return False
        self.received += 1
        return True

    async def _run(self) -> None:
        assert self.queue is not None
        while True:
            msg = await self.queue.get()
            try:
                await self.route(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Routing the message from %s to %s failed", msg.from_, msg.to)
            await asyncio.sleep(0)  # one message at a time, and calls get their turn between them

    async def route(self, msg: Message) -> None:
        """Run the dialplan for one message (Asterisk's msg_q_cb)."""
        from hookflash.dialplan.executor import run_pbx
        dialplan = self.pbx.dialplan
        exten = msg.exten or "s"
        if dialplan is None or not dialplan.exists(msg.context, exten, 1, ""):
            if dialplan is not None and exten != "s" and dialplan.exists(msg.context, "s", 1, ""):
                exten = "s"
            else:
                log.warning("No dialplan for the message from %s to %s: %s@%s does not exist",
                            msg.from_, msg.to, exten, msg.context)
                return
        chan = self.pbx.new_channel("Message/ast_msg_queue")
        chan.cdr = None  # no CDR for messages, as in Asterisk
        chan.context, chan.exten, chan.priority = msg.context, exten, 1
        chan.message = msg  # type: ignore[attr-defined]
        await run_pbx(chan)  # hangup takes the channel out of the channel list

    # ------------------------------------------------------------------ outbound
    async def send(self, destination: str, msg: Message, from_: str = "", to: str = "") -> str:
        """MessageSend: the status (SUCCESS, FAILURE, INVALID_PROTOCOL, INVALID_URI)."""
        if not destination.strip():
            return "INVALID_URI"
        tech_name, colon, rest = destination.partition(":")
        if not colon:
            return "INVALID_PROTOCOL"
        tech = self.techs.get(tech_name.strip().lower())
        if tech is None:
            log.warning("MessageSend: no message technology '%s' (destination '%s')", tech_name, destination)
            return "INVALID_PROTOCOL"
        try:
            await tech.send(msg, destination, from_)
        except MessageError as exc:
            log.warning("MessageSend to %s failed: %s", destination, exc)
            return "FAILURE"
        except Exception:
            log.exception("MessageSend to %s failed", destination)
            return "FAILURE"
        return "SUCCESS"


def core(pbx: Any) -> MessageCore:
    found = getattr(pbx, "message_core", None)
    if found is None:
        found = pbx.message_core = MessageCore(pbx)
    return found  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- dialplan
def _message(chan: Channel | None, create: bool = False) -> Message | None:
    if chan is None:
        return None
    msg = getattr(chan, "message", None)
    if msg is None and create:
        msg = Message()
        chan.message = msg  # type: ignore[attr-defined]
    return msg


def func_message_read(chan: Channel | None, args: str) -> str:
    what = args.strip().lower()
    msg = _message(chan)
    if msg is None:
        log.warning("MESSAGE(%s): no message on %s", args, chan.name if chan else "(no channel)")
        return ""
    if what == "to":
        return msg.to
    if what == "from":
        return msg.from_
    if what == "body":
        return msg.body
    log.warning("MESSAGE(): unknown field '%s' (to, from, body, custom_data)", args)
    return ""


def func_message_write(chan: Channel | None, args: str, value: str) -> None:
    what = args.strip().lower()
    msg = _message(chan, create=True)
    if msg is None:
        return
    if what == "to":
        msg.to = value
    elif what == "from":
        msg.from_ = value
    elif what == "body":
        msg.body = value
    elif what == "custom_data":
        if value == "mark_all_outbound":
            msg.outbound = set(msg.data)
        elif value == "clear_all_outbound":
            msg.outbound = set()
    else:
        log.warning("MESSAGE(): unknown field '%s' (to, from, body, custom_data)", args)


def func_message_data_read(chan: Channel | None, args: str) -> str:
    msg = _message(chan)
    if msg is None:
        log.warning("MESSAGE_DATA(%s): no message on %s", args, chan.name if chan else "(no channel)")
        return ""
    return msg.get_data(args.strip()) or ""


def func_message_data_write(chan: Channel | None, args: str, value: str) -> None:
    msg = _message(chan, create=True)
    if msg is None:
        return
    key = args.strip()
    if not value:
        msg.data.pop(key, None)
        msg.outbound.discard(key)
        return
    msg.data[key] = value
    msg.outbound.add(key)


async def app_message_send(chan: Channel, data: str) -> int | None:
    """MessageSend(destination[,from[,to]]): sets MESSAGE_SEND_STATUS, always goes on."""
    parts = split_args(data)
    destination = parts[0].strip() if parts else ""
    from_ = parts[1].strip() if len(parts) > 1 else ""
    to = parts[2].strip() if len(parts) > 2 else ""
    msg = _message(chan)
    if msg is None:
        log.warning("MessageSend: no message on %s (set MESSAGE(body) first)", chan.name)
        chan.set_var("MESSAGE_SEND_STATUS", "FAILURE")
        return None
    if to:
        msg_to_send = Message(to=to, from_=msg.from_, body=msg.body, data=dict(msg.data),
                              outbound=set(msg.outbound))
    else:
        msg_to_send = msg
    msg_to_send.delivery = ""
    status = await core(chan.pbx).send(destination, msg_to_send, from_, to)
    chan.set_var("MESSAGE_SEND_STATUS", status)
    if msg_to_send.delivery:
        chan.set_var("MESSAGE_DELIVERY_STATUS", msg_to_send.delivery)
    return None
