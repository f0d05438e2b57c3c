"""The SIP transaction user: registrar, authentication, OPTIONS, MESSAGE, call routing.

Calls themselves live in :mod:`hookflash.sip.call`. No extension enumeration: with
``alwaysauthreject=yes`` (the default) a known and an unknown user get the same answers
to REGISTER and INVITE (a 401 challenge, then 403 for bad credentials), and OPTIONS is
answered 200 without looking at users or extensions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from hookflash.sip.auth import AuthStatus, DigestChallenger, answer_challenge, ha1
from hookflash.sip.config import Registration, SipConfig
from hookflash.sip.dialog import build_response
from hookflash.sip.endpoint import Addr, SipEndpoint
from hookflash.sip.message import Headers, SipRequest, SipResponse, make_branch, make_tag
from hookflash.sip.peers import PeerState

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx
    from hookflash.sip.call import SipCall

log = logging.getLogger("hookflash.sip")

ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, MESSAGE"


class OutboundRegistration:
    def __init__(self, reg: Registration) -> None:
        self.reg = reg
        self.state = "Unregistered"
        self.registered_at = 0.0
        self.refresh = reg.expiry
        self.call_id = f"{os.urandom(8).hex()}@hookflash"
        self.cseq = 1
        self.task: asyncio.Task[None] | None = None


class SipStack:
    def __init__(self, pbx: "Pbx", config: SipConfig, local_ip: str) -> None:
        self.pbx = pbx
        self.config = config
        self.local_ip = local_ip
        self.endpoint = SipEndpoint(self)
        self.peers: dict[str, PeerState] = {name: PeerState(p) for name, p in config.peers.items()}
        self.challenger = DigestChallenger(config.general.realm, os.urandom(32))
        self.calls: dict[tuple[str, str, str], "SipCall"] = {}  # dialog id -> call
        self.pending: dict[str, "SipCall"] = {}  # Call-ID -> call before the dialog is confirmed
        self.registrations: list[OutboundRegistration] = [OutboundRegistration(r) for r in config.general.registrations]
        self.tasks: list[asyncio.Task[Any]] = []
        self.ports: Any = None
        self.subscriptions: dict[str, tuple[Any, Addr, float]] = {}  # peer -> (dialog, addr, until)
        from hookflash.sip.realtime import SipRealtime
        self.rt = SipRealtime(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        g = self.config.general
        await self.endpoint.start(g.bindaddr, g.bindport)
        if "tcp" in g.transports or g.tcpenable:
            await self.endpoint.start_stream("tcp", g.bindaddr, g.bindport)
        if "tls" in g.transports or g.tlsenable:
            await self.endpoint.start_stream("tls", g.bindaddr, g.tlsport, self._tls_server())
            self.endpoint.ssl_client = self._tls_client()
        if self.local_ip in ("0.0.0.0", ""):
            self.local_ip = "127.0.0.1"
        self._restore_registrations()
        for reg in self.registrations:
            reg.task = asyncio.ensure_future(self._register_loop(reg))
        self.tasks.append(asyncio.ensure_future(self._qualify_loop()))

    def _tls_server(self):  # type: ignore[no-untyped-def]
        import ssl
        g = self.config.general
        if not g.tlscertfile:
            raise ValueError("sip.conf: tlsenable needs tlscertfile (and tlsprivatekey)")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(g.tlscertfile, g.tlsprivatekey or None)
        return ctx

    def _tls_client(self):  # type: ignore[no-untyped-def]
        import ssl
        g = self.config.general
        ctx = ssl.create_default_context(cafile=g.tlscafile or None)
        return ctx

    async def stop(self) -> None:
        for task in self.tasks + [r.task for r in self.registrations if r.task]:
            task.cancel()
        self.endpoint.close()

    @property
    def port(self) -> int:
        return self.endpoint.local_addr[1]

    def advertised_ip(self, remote_host: str | None) -> str:
        """The address to put in SDP and Contact for a far end at ``remote_host``:
        ``externip`` unless that host is in a ``localnet`` (chan_sip's NAT rule)."""
        g = self.config.general
        if not g.externip or not remote_host:
            return self.local_ip
        if any(net.contains(remote_host) for net in g.localnets):
            return self.local_ip
        return g.externip

    def contact_uri(self, user: str = "s", transport: str = "udp", host: str | None = None) -> str:
        host = host or self.local_ip
        if transport in ("tcp", "tls"):
            port = self.endpoint.stream_ports.get(transport, self.port)
            return f"sip:{user}@{host}:{port};transport={transport}"
        return f"sip:{user}@{host}:{self.port}"

    def new_via(self, branch: str | None = None, transport: str = "udp") -> str:
        port = self.endpoint.stream_ports.get(transport, self.port) if transport != "udp" else self.port
        return f"SIP/2.0/{transport.upper()} {self.local_ip}:{port};branch={branch or make_branch()};rport"

    def useragent(self) -> str:
        return self.config.general.useragent

    # ------------------------------------------------------------------ peers
    def find_peer(self, user: str | None, source: Addr | None = None) -> PeerState | None:
        if user:
            peer = self.peers.get(user)
            if peer is not None and peer.config.type != "peer":
                return peer
            for state in self._configured():
                if state.config.defaultuser == user and state.config.type != "peer":
                    return state
        if source is not None:  # type=peer (and friends with a fixed host) match by address
            for state in self._configured():
                cfg = state.config
                if cfg.is_dynamic or cfg.type == "user":
                    continue
                if cfg.host == source[0] and ("port" in cfg.insecure or cfg.port == source[1]):
                    return state
        return None

    def _configured(self) -> list[PeerState]:
        """The sip.conf peers (realtime peers are found by name only): the scans above
        must not grow with thousands of cached realtime peers."""
        return [p for name in self.config.peers if (p := self.peers.get(name)) is not None]

    def _ha1_lookup(self, peer: PeerState | None):  # type: ignore[no-untyped-def]
        realm = self.config.general.realm

        def lookup(username: str) -> str | None:
            if peer is None or username != peer.config.auth_user:
                return None
            if peer.config.md5secret:
                return peer.config.md5secret.lower()
            if peer.config.secret:
                return ha1(username, realm, peer.config.secret)
            return None
        return lookup

    def authenticate(self, request: SipRequest, txn: Any, peer: PeerState | None) -> bool:
        """Digest check for a request; answers the challenge/refusal itself when not ok."""
        header = request.headers.get("Authorization") or request.headers.get("Proxy-Authorization")
        now = time.time()
        if header is None:
            if peer is None and not self.config.general.alwaysauthreject:
                self.reply(request, 404, "Not found")
                return False
            self.reply(request, 401, headers=[("WWW-Authenticate", self.challenger.challenge(now))])
            return False
        result = self.challenger.verify(request.method, header, self._ha1_lookup(peer), now,
                                        request_uri=request.uri)
        if result.status is AuthStatus.OK:
            return True
        if result.status is AuthStatus.STALE:
            self.reply(request, 401, headers=[("WWW-Authenticate", self.challenger.challenge(now, stale=True))])
        else:
            log.info("Registration/call from '%s' failed for '%s' - Wrong password or unknown user",
                     request.headers.get("From", ""), (txn and getattr(txn, "source", None)) or "")
            self.reply(request, 403, "Forbidden")
        return False

    def needs_auth(self, peer: PeerState | None, method: str) -> bool:
        if peer is None:
            return True
        cfg = peer.config
        if not (cfg.secret or cfg.md5secret):
            return False
        if method == "INVITE" and "invite" in cfg.insecure:
            return False
        return True

    # ------------------------------------------------------------------ replies
    def reply(self, request: SipRequest, status: int, reason: str | None = None,
              headers: list[tuple[str, str]] | None = None, body: bytes = b"",
              to_tag: str | None = None) -> SipResponse:
        extra = [("Server", self.useragent()), *(headers or [])]
        if status == 405 or (request.method == "OPTIONS" and status == 200):
            extra.append(("Allow", ALLOW))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        if status >= 200 and to_tag is None and request.method != "ACK":
            to_tag = make_tag()
        response = build_response(request, status, reason, to_tag=to_tag, headers=extra, body=body)
        self.endpoint.respond(request, response)
        return response

    # ------------------------------------------------------------------ dispatch
    def on_request(self, request: SipRequest, txn: Any, source: Addr) -> None:
        method = request.method
        to_tag = request.to_addr.tag
        if to_tag:
            call = self.calls.get((request.call_id, to_tag, request.from_addr.tag or ""))
            if call is not None:
                call.on_request(request, txn, source)
                return
            if method not in ("OPTIONS", "NOTIFY", "MESSAGE"):
                self.reply(request, 481, "Call/Transaction Does Not Exist")
                return
        if method in ("REGISTER", "INVITE", "MESSAGE", "SUBSCRIBE") and not request.__dict__.get("_rt_done") \
                and self.rt.enabled():  # checked first: without realtime nothing is added per request
            user = (request.to_addr.uri.user if method == "REGISTER" else request.from_addr.uri.user) or ""
            known = self.find_peer(user, source) if user else None
            if user and (known is None or self.rt.expired(known.name)):
                # not in sip.conf: ask realtime (sippeers) without holding anything else up
                request.__dict__["_rt_done"] = True
                self.pbx.spawn(self._realtime_then(user, request, txn, source))
                return
        handler = getattr(self, f"_on_{method.lower()}", None)
        if handler is None:
            self.reply(request, 501 if method not in ("PRACK", "UPDATE", "PUBLISH", "REFER") else 405,
                       "Not Implemented" if method not in ("PRACK", "UPDATE", "PUBLISH", "REFER") else None)
            return
        handler(request, txn, source)

    async def _realtime_then(self, user: str, request: SipRequest, txn: Any, source: Addr) -> None:
        from hookflash.realtime.driver import RealtimeError
        try:
            await self.rt.lookup(user, raise_unavailable=True)
        except RealtimeError:
            # the directory cannot answer now: "try again", for every user alike (a 403
            # would tell a phone its password is wrong, and it might stop trying)
            self.reply(request, 503, "Service Unavailable", headers=[("Retry-After", "5")])
            return
        except Exception:  # a broken directory answer ends this request only
            log.exception("Realtime lookup of SIP peer '%s' failed", user[:80])
        try:
            self.on_request(request, txn, source)
        except Exception:
            log.exception("Handling %s from %s failed", request.method, source)

    def on_stray(self, message: SipRequest | SipResponse, source: Addr) -> None:
        """ACKs for our 2xx, retransmitted 2xx for our INVITEs."""
        if isinstance(message, SipRequest):
            if message.method == "ACK":
                call = self.calls.get((message.call_id, message.to_addr.tag or "", message.from_addr.tag or ""))
                if call is not None:
                    call.on_ack(message)
            return
        call = self.pending.get(message.call_id) or self._call_for_response(message)
        if call is not None:
            call.on_stray_response(message, source)

    def _call_for_response(self, response: SipResponse) -> "SipCall | None":
        return self.calls.get((response.call_id, response.from_addr.tag or "", response.to_addr.tag or ""))

    # ------------------------------------------------------------------ OPTIONS, MESSAGE, SUBSCRIBE
    def _on_options(self, request: SipRequest, txn: Any, source: Addr) -> None:
        self.reply(request, 200, headers=[("Accept", "application/sdp"), ("Supported", "replaces")])

    def _on_message(self, request: SipRequest, txn: Any, source: Addr) -> None:
        g = self.config.general
        if not g.accept_outofcall_message:
            self.reply(request, 405, "Method Not Allowed")
            return
        peer = self.find_peer(request.from_addr.uri.user, source)
        guest = peer is None and g.allowguest and "Authorization" not in request.headers
        if g.auth_message_requests and not guest and self.needs_auth(peer, "MESSAGE") \
                and not self.authenticate(request, txn, peer):
            return
        ctype = (request.headers.get("Content-Type") or "text/plain").split(";")[0].strip().lower()
        if ctype != "text/plain":
            self.reply(request, 415, "Unsupported Media Type", headers=[("Accept", "text/plain")])
            return
        hook = getattr(self.pbx, "on_sip_message", None)
        if hook is None:
            self.reply(request, 404, "Not Found")
            return
        self.reply(request, 202, "Accepted")
        try:
            hook(request, peer, source)
        except Exception:
            log.exception("Handling the MESSAGE from %s failed", source)

    def _on_subscribe(self, request: SipRequest, txn: Any, source: Addr) -> None:
        """RFC 3842 message-summary subscriptions (other packages: 489)."""
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "message-summary":
            self.reply(request, 489, "Bad Event")
            return
        peer = self.find_peer(request.from_addr.uri.user, source)
        if self.needs_auth(peer, "SUBSCRIBE") and not self.authenticate(request, txn, peer):
            return
        if peer is None or not peer.config.mailbox:
            self.reply(request, 404, "Not found")
            return
        from hookflash.sip.dialog import Dialog
        expires_text = request.headers.get("Expires", "3600") or "3600"
        expires = min(int(expires_text) if expires_text.strip().isdigit() else 3600, 3600)
        tag = make_tag()
        self.reply(request, 200, headers=[("Expires", str(expires)),
                                          ("Contact", f"<{self.contact_uri()}>")], to_tag=tag)
        dialog = Dialog.from_uas(request, tag, f"<{self.contact_uri()}>")
        if expires:
            self.subscriptions[peer.name] = (dialog, source, time.time() + expires)
        else:
            self.subscriptions.pop(peer.name, None)
        self.notify_mwi(peer.name, state="active" if expires else "terminated", dialog=dialog, dest=source)

    def mwi_counts(self, peer: PeerState) -> tuple[int, int]:
        """New and old messages over the peer's mailboxes (the voicemail module answers)."""
        provider = getattr(self.pbx, "mailbox_counts", None)
        new = old = 0
        for box in peer.config.mailbox:
            if provider is not None:
                n, o = provider(box)
                new, old = new + n, old + o
        return new, old

    def notify_mwi(self, peer_name: str, state: str = "active", dialog: Any = None,
                   dest: Addr | None = None) -> bool:
        """Send a message-summary NOTIFY: in the peer's subscription if it has one,
        else unsolicited to where it registered. True if something was sent."""
        peer = self.peers.get(peer_name)
        if peer is None:
            return False
        if dialog is None and peer_name in self.subscriptions:
            dialog, dest, until = self.subscriptions[peer_name]
            if until < time.time():
                del self.subscriptions[peer_name]
                dialog = None
        new, old = self.mwi_counts(peer)
        account = peer.config.mailbox[0] if peer.config.mailbox else peer_name
        body = (f"Messages-Waiting: {'yes' if new else 'no'}\r\n"
                f"Message-Account: sip:{account.split('@')[0]}@{self.local_ip}\r\n"
                f"Voice-Message: {new}/{old} (0/0)\r\n").encode()
        headers = [("Event", "message-summary"), ("Content-Type", "application/simple-message-summary"),
                   ("Subscription-State", state if dialog is not None else "active")]
        if dialog is not None:
            request = dialog.create_request("NOTIFY", via=self.new_via(), headers=headers, body=body)
        else:
            dest = peer.reachable_addr()
            if dest is None:
                return False
            uri = peer.contact or f"sip:{peer.name}@{dest[0]}:{dest[1]}"
            request = self.new_request("NOTIFY", uri, uri, transport=self.peer_transport(peer))
            for name, value in headers:
                request.headers.add(name, value)
            request.body = body
        request.headers.add("User-Agent", self.useragent())
        if dest is None:
            return False
        self.endpoint.request(request, dest, lambda response: None)
        return True

    def _on_notify(self, request: SipRequest, txn: Any, source: Addr) -> None:
        self.reply(request, 200)

    def _on_info(self, request: SipRequest, txn: Any, source: Addr) -> None:
        self.reply(request, 481, "Call/Transaction Does Not Exist")

    def _on_bye(self, request: SipRequest, txn: Any, source: Addr) -> None:
        self.reply(request, 481, "Call Leg/Transaction Does Not Exist")

    def _on_cancel(self, request: SipRequest, txn: Any, source: Addr) -> None:
        invite_txn = self.endpoint.layer.find_cancelled(request)
        call = self.pending.get(request.call_id)
        if invite_txn is None or call is None:
            self.reply(request, 481, "Call Leg/Transaction Does Not Exist")
            return
        self.reply(request, 200)
        call.on_cancel(request)

    def _on_invite(self, request: SipRequest, txn: Any, source: Addr) -> None:
        from hookflash.sip.call import SipCall
        peer = self.find_peer(request.from_addr.uri.user, source)
        self.reply(request, 100, "Trying")
        if peer is None and self.config.general.allowguest and "Authorization" not in request.headers:
            pass  # a guest call into [general] context
        elif self.needs_auth(peer, "INVITE") and not self.authenticate(request, txn, peer):
            return
        if peer is not None and peer.config.call_limit and peer.calls >= peer.config.call_limit:
            self.reply(request, 486, "Busy Here")
            return
        call = SipCall.incoming(self, request, source, peer)
        self.pending[request.call_id] = call
        self.pbx.spawn(call.start_incoming())

    # ------------------------------------------------------------------ registrar
    def _on_register(self, request: SipRequest, txn: Any, source: Addr) -> None:
        user = request.to_addr.uri.user or ""
        peer = self.find_peer(user)
        if peer is not None and not peer.config.is_dynamic:
            peer = None  # only dynamic peers register; answer like an unknown user
        if not self.authenticate(request, txn, peer):
            return
        assert peer is not None
        g = self.config.general
        contacts = request.headers.get_all("Contact")
        expires_header = request.headers.get("Expires")
        if not contacts:
            self._register_ok(request, peer)
            return
        contact = contacts[0].strip()
        if contact == "*":
            self._unregister(peer)
            self._register_ok(request, peer)
            return
        uri, expires = _contact_expiry(contact, expires_header, g.defaultexpiry)
        if expires == 0:
            self._unregister(peer)
            self._register_ok(request, peer)
            return
        if expires < g.minexpiry:
            self.reply(request, 423, "Interval Too Brief", headers=[("Min-Expires", str(g.minexpiry))])
            return
        expires = min(expires, g.maxexpiry)
        refresh = peer.registered and peer.contact == uri
        previous_addr = peer.addr
        peer.contact = uri
        peer.addr = source if peer.config.nat != "no" else _uri_addr(uri, source)
        peer.expires_at = time.time() + expires
        peer.useragent = request.headers.get("User-Agent", "")
        peer.registered_user = user
        conn = self.endpoint.connections.get(source)
        peer.transport = conn[1] if conn is not None else "udp"
        if self.pbx.astdb is not None and not (refresh and peer.addr == previous_addr):
            # a refresh from the same place changes only the expiry: no disk write
            self.pbx.astdb.put("SIP/Registry", peer.name, peer.registry_value())
        self._register_ok(request, peer, expires)
        if self.rt.is_realtime(peer.name):
            self.pbx.spawn(self.rt.registered(peer))
        if refresh and peer.addr == previous_addr:
            return
        self.pbx.verbose(3, f"Registered SIP '{peer.name}' at {peer.addr[0]}:{peer.addr[1]}")
        if peer.config.qualify:
            self.pbx.spawn(self._qualify_soon(peer))

    def _register_ok(self, request: SipRequest, peer: PeerState, expires: int | None = None) -> None:
        headers = [("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))]
        if expires is not None and peer.contact:
            headers.append(("Contact", f"<{peer.contact}>;expires={expires}"))
            headers.append(("Expires", str(expires)))
        self.reply(request, 200, headers=headers)
        hook = getattr(self.pbx, "on_sip_registered", None)
        if hook is not None and expires:
            hook(peer)

    def _unregister(self, peer: PeerState) -> None:
        if self.rt.is_realtime(peer.name):
            self.pbx.spawn(self.rt.unregistered(peer))
        peer.expires_at = 0
        peer.contact = ""
        if peer.config.is_dynamic:
            peer.addr = None
        if self.pbx.astdb is not None:
            self.pbx.astdb.delete("SIP/Registry", peer.name)
        self.pbx.verbose(3, f"Unregistered SIP '{peer.name}'")

    def _restore_registrations(self) -> None:
        db = self.pbx.astdb
        if db is None:
            return
        for key, value in db.show("SIP", "Registry"):
            name = key.rsplit("/", 1)[-1]
            peer = self.peers.get(name)
            if peer is not None and peer.config.is_dynamic and peer.restore(value, time.time()):
                log.info("Restored registration of %s at %s:%d", name, *peer.addr)  # type: ignore[misc]

    # ------------------------------------------------------------------ qualify
    async def _qualify_loop(self) -> None:
        freq = self.config.general.qualifyfreq
        while True:
            for peer in list(self.peers.values()):
                if peer.config.qualify and peer.reachable_addr() is not None:
                    self.pbx.spawn(self.qualify(peer))
            await asyncio.sleep(freq)

    async def _qualify_soon(self, peer: PeerState) -> None:
        await asyncio.sleep(0.2)  # let the phone take in our 200 first
        await self.qualify(peer)

    async def qualify(self, peer: PeerState) -> int:
        addr = peer.reachable_addr()
        if addr is None:
            return -1
        uri = peer.contact or f"sip:{peer.name}@{addr[0]}:{addr[1]}"
        request = self.new_request("OPTIONS", uri, f"sip:{peer.name}@{addr[0]}",
                                   transport=self.peer_transport(peer))
        start = time.monotonic()
        response = await self.endpoint.request_final(request, addr)
        peer.lastms = max(1, int((time.monotonic() - start) * 1000)) if response is not None else 0
        return peer.lastms

    def new_request(self, method: str, uri: str, to: str, from_user: str = "hookflash",
                    from_display: str = "", call_id: str | None = None, cseq: int = 1,
                    transport: str = "udp") -> SipRequest:
        h = Headers()
        h.add("Via", self.new_via(transport=transport))
        h.add("Max-Forwards", "70")
        display = f'"{from_display}" ' if from_display else ""
        h.add("From", f"{display}<sip:{from_user}@{self.local_ip}:{self.port}>;tag={make_tag()}")
        h.add("To", f"<{to}>")
        h.add("Call-ID", call_id or f"{os.urandom(12).hex()}@{self.local_ip}")
        h.add("CSeq", f"{cseq} {method}")
        h.add("User-Agent", self.useragent())
        return SipRequest(method, uri, h)

    # ------------------------------------------------------------------ outbound registration
    async def _register_loop(self, reg: OutboundRegistration) -> None:
        while True:
            ok = await self.register_once(reg)
            await asyncio.sleep(max(10, int(reg.refresh * 0.9)) if ok else 20)

    async def register_once(self, reg: OutboundRegistration) -> bool:
        r = reg.reg
        try:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(r.host, r.port, type=2)
            dest = infos[0][4][:2]
        except OSError:
            reg.state = "Unregistered"
            return False
        uri = f"sip:{r.domain}"
        auth: str | None = None
        for _ in range(2):
            reg.cseq += 1
            request = self.new_request("REGISTER", uri, f"sip:{r.user}@{r.domain}", from_user=r.user,
                                       call_id=reg.call_id, cseq=reg.cseq)
            request.headers.set("From", f"<sip:{r.user}@{r.domain}>;tag={make_tag()}")
            request.headers.add("Contact", f"<{self.contact_uri(r.extension)}>")
            request.headers.add("Expires", str(r.expiry))
            if auth:
                request.headers.add("Authorization", auth)
            reg.state = "Request Sent"
            response = await self.endpoint.request_final(request, dest)
            if response is None:
                reg.state = "Timeout"
                return False
            if response.status in (401, 407) and auth is None:
                challenge = response.headers.get("WWW-Authenticate") or response.headers.get("Proxy-Authenticate")
                if not challenge or not r.secret:
                    reg.state = "No Authentication"
                    return False
                auth = answer_challenge(challenge, "REGISTER", uri, r.authuser, r.secret)
                continue
            if 200 <= response.status < 300:
                reg.state = "Registered"
                reg.registered_at = time.time()
                expires = response.headers.get("Expires")
                reg.refresh = int(expires) if expires and expires.isdigit() else r.expiry
                return True
            reg.state = "Rejected"
            return False
        reg.state = "Rejected"
        return False

    def peer_transport(self, peer: PeerState | None) -> str:
        if peer is None:
            return "udp"
        kind = peer.transport or peer.config.transport
        return kind if kind in ("udp", "tcp", "tls") else "udp"

    def peer_auth(self, peer: PeerState | None, challenge: str, method: str, uri: str) -> str | None:
        """Our Authorization for a provider's challenge, from the peer's secret."""
        if peer is None:
            return None
        secret = peer.config.remotesecret or peer.config.secret
        if not secret:
            return None
        user = peer.config.defaultuser or peer.config.fromuser or peer.name
        return answer_challenge(challenge, method, uri, user, secret)


def _contact_expiry(contact: str, expires_header: str | None, default: int) -> tuple[str, int]:
    uri = contact
    params = ""
    if "<" in contact and ">" in contact:
        uri = contact[contact.index("<") + 1:contact.index(">")]
        params = contact[contact.index(">") + 1:]
    else:
        uri, _, params = contact.partition(";")
        params = ";" + params
    expires = default
    if expires_header is not None and expires_header.strip().isdigit():
        expires = int(expires_header.strip())
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "expires" and value.strip().isdigit():
            expires = int(value)
    return uri, expires


def _uri_addr(uri: str, fallback: Addr) -> Addr:
    try:
        from hookflash.sip.message import SipUri
        parsed = SipUri.parse(uri)
        return parsed.host, parsed.port or 5060
    except Exception:
        return fallback
