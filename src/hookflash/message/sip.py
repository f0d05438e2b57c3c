"""The ``sip`` message technology (chan_sip's): MESSAGE requests out, MESSAGE requests
in, and hookflash's store-and-forward for peers that are not registered.

Out: ``MessageSend(sip:<peer>)``, ``sip:<peer>@...`` or ``sip:user@host[:port]``; the
``from`` argument is a peer name or ``"name" <sip:uri>``. MESSAGE_DATA variables marked
outbound become headers (except those chan_sip keeps for itself). A challenge (401/407)
is answered with the peer's secret. MessageSend waits for the final answer at most
``SEND_WAIT`` seconds; the channel variable ``MESSAGE_DELIVERY_STATUS`` says what
happened: ``DELIVERED`` (2xx), ``QUEUED`` (kept for an unregistered peer), ``PENDING``
(no answer yet), ``FAILED``.

Store and forward (hookflash's): a message for a known peer that is not registered is
written durably to ``<spool>/messages/<peer>/`` (at most ``QUEUE_MAX`` per peer; older
ones are dropped first, with a warning) and sent when the peer registers, oldest first.

In: chan_sip answers 202 and hands the request here: ``to`` is the Request-URI, ``from``
``"display" <uri>``, the extension the Request-URI's user, the context the peer's
``outofcall_message_context``, else [general]'s, else the peer's or [general]'s
``context``; variables ``SIP_RECVADDR``, ``SIP_PEERNAME``, ``SIP_FULLCONTACT`` and every
request header by its full name are readable with ``MESSAGE_DATA()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookflash.message.core import Message, MessageError, clean, core

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx
    from hookflash.sip.message import SipRequest

log = logging.getLogger("hookflash.message.sip")

SEND_WAIT = 4.0
QUEUE_MAX = 100
_RESERVED = {"to", "from", "via", "route", "contact", "call-id", "cseq", "allow", "content-length",
             "request-uri", "max-forwards", "content-type"}
_NAME_ADDR = re.compile(r'^\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]+)>')


def _stack(pbx: Any) -> Any:
    module = pbx.modules.loaded.get("chan_sip")
    return getattr(module, "stack", None)


class SipMessageTech:
    name = "sip"

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx

    @property
    def spool(self) -> Path:
        return Path(self.pbx.dirs.astspooldir) / "messages"

    async def send(self, msg: Message, to: str, from_: str) -> None:
        msg.delivery = "FAILED"  # until we know better
        stack = _stack(self.pbx)
        if stack is None:
            raise MessageError("chan_sip is not loaded")
        target = to.split(":", 1)[1].strip() if ":" in to else to
        user, at, host = target.partition("@")
        # sip:peer, or sip:peer@something that is not an address (a host name or IP has '.' or ':')
        peer = stack.peers.get(user if at and not re.search(r"[.:]", host) else target)
        if peer is None and not at:
            raise MessageError(f"no SIP peer '{target}'")
        from_user, from_display = "hookflash", ""
        if from_:
            match = _NAME_ADDR.match(from_)
            if match:
                from_display = (match.group(1) or match.group(2) or "").strip()
                uri_user = match.group(3).split(":", 1)[-1].split("@")[0]
                from_user = uri_user or from_user
            else:
                from_user = from_.split(":", 1)[-1].split("@")[0].strip() or from_user
        if peer is not None:
            addr = peer.reachable_addr()
            if addr is None:
                self._enqueue(peer.name, msg, from_user, from_display)
                msg.delivery = "QUEUED"
                return
            uri = peer.contact or f"sip:{peer.name}@{addr[0]}:{addr[1]}"
            status = await self._deliver(stack, peer, uri, f"sip:{peer.name}@{addr[0]}", addr, msg,
                                         from_user, from_display)
        else:
            hostport = host
            hname, _, port_text = hostport.partition(":")
            try:
                port = int(port_text) if port_text else 5060
                infos = await asyncio.get_running_loop().getaddrinfo(hname, port, type=2)
            except (OSError, ValueError) as exc:
                raise MessageError(f"cannot resolve {hostport}: {exc}") from None
            addr = infos[0][4][:2]
            uri = f"sip:{target}"
            status = await self._deliver(stack, None, uri, uri, addr, msg, from_user, from_display)
        msg.delivery = status
        if status == "FAILED":
            raise MessageError(f"MESSAGE to {to} refused")

    async def _deliver(self, stack: Any, peer: Any, uri: str, to_uri: str, addr: tuple[str, int],
                       msg: Message, from_user: str, from_display: str) -> str:
        auth: str | None = None
        auth_header = "Authorization"
        for _ in range(2):
            request = stack.new_request("MESSAGE", uri, to_uri, from_user=from_user, from_display=from_display,
                                        transport=stack.peer_transport(peer))
            for key in msg.outbound:
                if key.lower() not in _RESERVED and key in msg.data:
                    value = clean(msg.data[key], 1024).replace("\n", " ").replace("\t", " ")
                    request.headers.add(key, value)
            request.headers.add("Content-Type", "text/plain;charset=UTF-8")
            if auth:
                request.headers.add(auth_header, auth)
            request.body = msg.body.encode("utf-8")
            task = asyncio.ensure_future(stack.endpoint.request_final(request, addr))
            done, _ = await asyncio.wait({task}, timeout=SEND_WAIT)
            if not done:
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                return "PENDING"
            response = task.result()
            if response is None:
                return "FAILED"
            if response.status in (401, 407) and auth is None and peer is not None:
                challenge = response.headers.get("WWW-Authenticate") or response.headers.get("Proxy-Authenticate")
                auth_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
                auth = stack.peer_auth(peer, challenge or "", "MESSAGE", uri) if challenge else None
                if auth:
                    continue
            return "DELIVERED" if 200 <= response.status < 300 else "FAILED"
        return "FAILED"

    # ------------------------------------------------------------------ store and forward
    def _enqueue(self, peer: str, msg: Message, from_user: str, from_display: str) -> None:
        directory = self.spool / _safe(peer)
        directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(directory.glob("*.json"))
        while len(existing) >= QUEUE_MAX:
            oldest = existing.pop(0)
            oldest.unlink(missing_ok=True)
            log.warning("Message queue for SIP peer %s is full (%d): dropped the oldest", peer, QUEUE_MAX)
        record = {"body": msg.body, "from_user": from_user, "from_display": from_display,
                  "headers": {k: msg.data[k] for k in msg.outbound if k in msg.data}, "queued": time.time()}
        name = f"{time.time_ns():020d}.json"
        tmp = directory / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
        log.info("SIP peer %s is not registered: message kept for it (%d waiting)", peer, len(existing) + 1)

    def waiting(self, peer: str) -> int:
        return len(list((self.spool / _safe(peer)).glob("*.json")))

    async def flush(self, peer_name: str) -> int:
        """Send what waits for a peer that just registered; how many were delivered."""
        stack = _stack(self.pbx)
        directory = self.spool / _safe(peer_name)
        if stack is None or not directory.is_dir():
            return 0
        peer = stack.peers.get(peer_name)
        delivered = 0
        await asyncio.sleep(0.3)  # let the phone take in its 200 OK first
        for path in sorted(directory.glob("*.json")):
            if peer is None or peer.reachable_addr() is None:
                break
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("Dropping unreadable queued message %s: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            msg = Message(body=str(record.get("body", "")), data=dict(record.get("headers", {})),
                          outbound=set(record.get("headers", {})))
            addr = peer.reachable_addr()
            assert addr is not None
            uri = peer.contact or f"sip:{peer.name}@{addr[0]}:{addr[1]}"
            status = await self._deliver(stack, peer, uri, f"sip:{peer.name}@{addr[0]}", addr, msg,
                                         str(record.get("from_user", "hookflash")),
                                         str(record.get("from_display", "")))
            if status == "DELIVERED":
                path.unlink(missing_ok=True)
                delivered += 1
            else:
                break
        if delivered:
            log.info("Delivered %d queued message(s) to SIP peer %s", delivered, peer_name)
        return delivered


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:80] or "_"


def inbound(pbx: Any, request: SipRequest, peer: Any, source: tuple[str, int] | None = None) -> None:
    """A MESSAGE chan_sip accepted (202): into the message core."""
    stack = _stack(pbx)
    general = stack.config.general if stack is not None else None
    context = ""
    if peer is not None:
        context = getattr(peer.config, "outofcall_message_context", "") or ""
    if not context and general is not None:
        context = general.outofcall_message_context or ""
    if not context:
        context = (getattr(peer.config, "context", "") if peer is not None else "") or \
            (general.context if general is not None else "") or "default"
    from_header = request.headers.get("From") or ""
    match = _NAME_ADDR.match(from_header)
    if match:
        display = (match.group(1) or match.group(2) or "").strip()
        uri = match.group(3)
        from_ = f'"{display}" <{uri}>' if display else f"<{uri}>"
    else:
        from_ = from_header.split(";")[0].strip()
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        body = request.body.decode("latin-1")
    msg = Message(to=request.uri, from_=from_, body=body, context=context,
                  exten=request.request_uri.user or "s", tech="SIP", endpoint=peer.name if peer else "")
    for name, value in request.headers.items():
        if name not in msg.data:
            msg.data[name] = clean(value, 2048)
    if source is not None:
        msg.data["SIP_RECVADDR"] = f"{source[0]}:{source[1]}"
    if peer is not None:
        msg.data["SIP_PEERNAME"] = peer.name
        msg.data["SIP_FULLCONTACT"] = peer.contact or ""
    core(pbx).receive(msg)
