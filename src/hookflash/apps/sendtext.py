"""SendText(text): text to the channel's far end, as the channel technology carries it
(a chat message to the Jingle peer on a Motif channel). SENDTEXTSTATUS is SUCCESS,
FAILURE (the technology could not send it) or UNSUPPORTED (it has no text), as Asterisk
sets it. The text is sent as written; nothing is evaluated.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hookflash.engine.modules import Module
from hookflash.engine.registry import Application

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel

log = logging.getLogger("hookflash.app.sendtext")


async def app_sendtext(chan: "Channel", data: str) -> None:
    send = getattr(chan.tech, "send_text", None)
    if send is None:
        chan.set_var("SENDTEXTSTATUS", "UNSUPPORTED")
        return
    try:
        ok = send(chan, data)
    except Exception as exc:
        log.warning("SendText on %s failed: %s", chan.name, exc)
        ok = False
    chan.set_var("SENDTEXTSTATUS", "SUCCESS" if ok else "FAILURE")


class SendTextModule(Module):
    description = "Send Text Applications"

    def applications(self) -> list[Application]:
        return [Application("SendText", app_sendtext, "Send a Text Message on a channel.", "SendText([text])",
                            "Sets SENDTEXTSTATUS to SUCCESS, FAILURE or UNSUPPORTED.")]
