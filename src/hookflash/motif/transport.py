"""Media transports of a Jingle call: ICE-UDP through ``aioice``, DTLS-SRTP through
pyOpenSSL (the handshake and RFC 5764 key export) and ``pylibsrtp`` (packet protection),
the pieces aiortc is built from; raw-UDP needs none of them.

A :class:`MediaTransport` stands where an :class:`~hookflash.media.rtpsession.RtpSession`
expects its asyncio datagram transport: the session calls ``sendto(packet, addr)`` and the
transport protects the packet (SRTP) and sends it on the ICE pair that was nominated;
packets that arrive are told apart by their first byte (RFC 7983: STUN goes to aioice,
DTLS to the handshake, RTP and RTCP are unprotected) and handed to the session's
``datagram_received`` synchronously, so the relay path stays one call per packet.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hookflash.motif.jingle import Candidate, Fingerprint

if TYPE_CHECKING:
    from hookflash.media.rtpsession import RtpSession

log = logging.getLogger("hookflash.motif")

SRTP_PROFILE = b"SRTP_AES128_CM_SHA1_80"
DTLS_TIMEOUT = 10.0  # seconds for the whole handshake


class TransportFailed(Exception):
    """ICE found no working pair, DTLS failed or the fingerprint did not match;
    ``reason`` is the Jingle reason to end the session with."""

    def __init__(self, text: str, reason: str = "failed-transport") -> None:
        super().__init__(text)
        self.reason = reason


# ---------------------------------------------------------------------------- addresses

class AddressFilter:
    """rtp.conf's ``ice_permit``/``ice_deny`` (and the old ``ice_blacklist``): which
    addresses take part in ICE. Applied to our host candidates and, a hookflash choice,
    to the remote candidates we check: a path we would not gather on is not probed."""

    def __init__(self, permit: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.permit = [ipaddress.ip_network(n, strict=False) for n in permit]
        self.deny = [ipaddress.ip_network(n, strict=False) for n in deny]

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if any(ip in n for n in self.permit if n.version == ip.version):
            return True
        return not any(ip in n for n in self.deny if n.version == ip.version)


def host_addresses(filt: AddressFilter) -> list[str]:
    """Every local address the filter allows, loopback included (aioice leaves it out)."""
    import ifaddr  # noqa: PLC0415  (aioice's own dependency)
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addr = ip.ip
            elif ip.ip[2] == 0:  # IPv6 without a scope (no link-local)
                addr = ip.ip[0]
            else:
                continue
            if addr not in found and filt.allows(addr):
                found.append(addr)
    return found


# ---------------------------------------------------------------------------- DTLS

_CERT: tuple[Any, Any, str] | None = None


def certificate() -> tuple[Any, Any, str]:
    """This process's DTLS certificate: (certificate, key, sha-256 fingerprint), as
    ``cryptography`` objects. An ECDSA P-256
    self-signed certificate made at first use, as WebRTC endpoints do; peers check it
    against the fingerprint we signal, not against a CA."""
    global _CERT
    if _CERT is None:
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import NameOID  # noqa: PLC0415
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8))])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .sign(key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        _CERT = (cert, key, fingerprint_of(der, "sha-256"))
    return _CERT


def fingerprint_of(der: bytes, hash_name: str) -> str:
    algo = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
            "sha-512": "sha512"}.get(hash_name.lower())
    if algo is None:
        raise TransportFailed(f"fingerprint hash {hash_name!r} is not supported", "security-error")
    digest = hashlib.new(algo, der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Dtls:
    """One DTLS-SRTP association over memory BIOs: ``feed`` what arrives, ``send`` is
    called with what must leave; ``ready`` completes with the SRTP sessions once the
    handshake is done and the peer's certificate matches its signalled fingerprint."""

    def __init__(self, client: bool, remote: Fingerprint, send: Callable[[bytes], None]) -> None:
        from OpenSSL import SSL  # noqa: PLC0415
        cert, key, _ = certificate()
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        ctx.set_tlsext_use_srtp(SRTP_PROFILE)
        ctx.set_cipher_list(b"HIGH:!CAMELLIA:!aNULL")
        self.conn = SSL.Connection(ctx, None)
        if client:
            self.conn.set_connect_state()
        else:
            self.conn.set_accept_state()
        self.client = client
        self.remote = remote
        self._send = send
        self.ready: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def start(self) -> None:
        self._step()

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        self.conn.bio_write(data)
        if not self.ready.done():
            self._step()
        else:
            self._drain_app()

    def _drain_app(self) -> None:
        from OpenSSL import SSL  # noqa: PLC0415
        try:
            self.conn.recv(1500)
        except SSL.ZeroReturnError:  # close_notify
            self.closed = True
        except (SSL.WantReadError, SSL.Error):
            pass
        self._flush()

    def _step(self) -> None:
        from OpenSSL import SSL  # noqa: PLC0415
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._arm()
            return
        except SSL.Error as exc:
            self._flush()
            self._fail(TransportFailed(f"DTLS handshake failed: {exc}", "security-error"))
            return
        self._flush()
        self._cancel_timer()
        try:
            self.ready.set_result(self._srtp())
        except TransportFailed as exc:
            self._fail(exc)

    def _srtp(self) -> tuple[Any, Any]:
        import pylibsrtp  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        peer = self.conn.get_peer_certificate(as_cryptography=True)
        if peer is None:
            raise TransportFailed("the peer sent no DTLS certificate", "security-error")
        der = peer.public_bytes(serialization.Encoding.DER)
        if fingerprint_of(der, self.remote.hash) != self.remote.value.upper():
            raise TransportFailed("the peer's DTLS certificate does not match its fingerprint", "security-error")
        if self.conn.get_selected_srtp_profile() != SRTP_PROFILE:
            raise TransportFailed("no common SRTP profile", "security-error")
        material = self.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (16 + 14))
        ck, sk = material[0:16], material[16:32]
        cs, ss = material[32:46], material[46:60]
        tx_key, rx_key = (ck + cs, sk + ss) if self.client else (sk + ss, ck + cs)
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        tx = pylibsrtp.Session(policy=pylibsrtp.Policy(key=tx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                                       srtp_profile=profile))
        rx = pylibsrtp.Session(policy=pylibsrtp.Policy(key=rx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                                       srtp_profile=profile))
        return tx, rx

    def _flush(self) -> None:
        from OpenSSL import SSL  # noqa: PLC0415
        while True:
            try:
                data = self.conn.bio_read(4096)
            except SSL.WantReadError:
                return
            if not data:
                return
            self._send(data)

    def _arm(self) -> None:
        self._cancel_timer()
        timeout = self.conn.DTLSv1_get_timeout()
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.01, timeout), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.ready.done() or self.closed:
            return
        self.conn.DTLSv1_handle_timeout()
        self._flush()
        self._arm()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: TransportFailed) -> None:
        self._cancel_timer()
        if not self.ready.done():
            self.ready.set_exception(exc)

    def close(self) -> None:
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            try:
                self.conn.shutdown()
                self._flush()
            except Exception:
                pass
        if not self.ready.done():
            self.ready.cancel()


# ---------------------------------------------------------------------------- ICE

def _ice_class() -> Any:
    import aioice  # noqa: PLC0415

    class IceConnection(aioice.Connection):  # type: ignore[misc, valid-type]
        """aioice's connection, gathering on the addresses we choose (aioice would take
        every interface but loopback) and handing data straight to us (aioice would
        queue it for a reader task)."""

        def __init__(self, addresses: list[str], on_data: Callable[[bytes, int], None], **kw: Any) -> None:
            super().__init__(**kw)
            self.hf_addresses = addresses
            self.hf_on_data = on_data

        async def gather_candidates(self) -> None:
            if self._local_candidates_start:
                return
            self._local_candidates_start = True
            for component in sorted(self._components):
                self._local_candidates += await self.get_component_candidates(
                    component=component, addresses=self.hf_addresses, timeout=3)
            self._local_candidates_end = True

        def data_received(self, data: bytes, component: int) -> None:
            self.hf_on_data(data, component)

    return IceConnection


def to_aioice(c: Candidate) -> Any:
    import aioice  # noqa: PLC0415
    return aioice.Candidate(foundation=c.foundation, component=c.component, transport=c.protocol,
                            priority=c.priority, host=c.ip, port=c.port, type=c.type,
                            related_address=c.rel_addr or None, related_port=c.rel_port or None,
                            generation=c.generation)


def from_aioice(c: Any, network: int = 0) -> Candidate:
    return Candidate(ip=c.host, port=c.port, component=c.component, foundation=str(c.foundation)[:32],
                     generation=c.generation or 0, id=secrets.token_hex(5), network=network,
                     priority=c.priority, protocol=c.transport.lower(), type=c.type,
                     rel_addr=c.related_address or "", rel_port=c.related_port or 0)


class MediaTransport:
    """ICE-UDP (optionally with DTLS-SRTP) under one RtpSession. rtcp-mux is used when
    the peer offers it; otherwise a second ICE component carries RTCP."""

    def __init__(self, *, controlling: bool, addresses: list[str], filt: AddressFilter,
                 stun: tuple[str, int] | None = None, rtcp_mux: bool = True, dtls: bool = True,
                 max_candidates: int = 10, turn: tuple[str, int] | None = None,
                 turn_username: str = "", turn_password: str = "") -> None:
        self.filt = filt
        self.rtcp_mux = rtcp_mux
        self.dtls_wanted = dtls
        self.max_candidates = max_candidates
        self.ice = _ice_class()(addresses, self._on_data, ice_controlling=controlling,
                                components=1 if rtcp_mux else 2, stun_server=stun, turn_server=turn,
                                turn_username=turn_username or None, turn_password=turn_password or None)
        self.session: RtpSession | None = None
        self.dtls: Dtls | None = None
        self.srtp_tx: Any = None
        self.srtp_rx: Any = None
        self.remote_addr: tuple[str, int] | None = None
        self.connected = False
        self.closed = False
        self.on_failed: Callable[[TransportFailed], None] | None = None
        self._pending_dtls: list[bytes] = []
        self._early_media: list[bytes] = []
        self._watch: asyncio.Task[None] | None = None
        self.protect_errors = 0

    # -- the local side
    async def gather(self) -> list[Candidate]:
        await self.ice.gather_candidates()
        cands = [from_aioice(c) for c in self.ice.local_candidates]
        cands.sort(key=lambda c: -c.priority)
        return cands[: self.max_candidates]

    @property
    def ufrag(self) -> str:
        return str(self.ice.local_username)

    @property
    def pwd(self) -> str:
        return str(self.ice.local_password)

    def local_fingerprint(self, setup: str) -> Fingerprint:
        return Fingerprint("sha-256", certificate()[2], setup)

    # -- the remote side
    def set_remote(self, ufrag: str, pwd: str) -> None:
        if ufrag:
            self.ice.remote_username = ufrag
        if pwd:
            self.ice.remote_password = pwd

    async def add_candidates(self, cands: list[Candidate]) -> int:
        added = 0
        for c in cands:
            if c.protocol != "udp" or not self.filt.allows(c.ip):
                continue
            if not self.rtcp_mux or c.component == 1:
                await self.ice.add_remote_candidate(to_aioice(c))
                added += 1
        return added

    async def connect(self, remote_fp: Fingerprint | None, timeout: float) -> None:
        """ICE checks, then the DTLS handshake when the peer signalled a fingerprint (our
        role: the client when the peer said passive or actpass to our active)."""
        try:
            await asyncio.wait_for(self.ice.connect(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise TransportFailed(f"ICE found no working candidate pair within {timeout:g} s") from None
        except ConnectionError as exc:
            raise TransportFailed(f"ICE failed: {exc}") from None
        pair = self.ice._nominated.get(1)
        self.remote_addr = pair.remote_addr if pair is not None else None
        self._watch = asyncio.ensure_future(self._watch_ice())
        if remote_fp is not None and self.dtls_wanted:
            client = remote_fp.setup in ("passive", "actpass")
            self.dtls = Dtls(client, remote_fp, lambda data: self._send_raw(data, 1))
            for early in self._pending_dtls:
                self.dtls.feed(early)
            self._pending_dtls.clear()
            self.dtls.start()
            try:
                self.srtp_tx, self.srtp_rx = await asyncio.wait_for(asyncio.shield(self.dtls.ready), DTLS_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError):
                raise TransportFailed(f"no DTLS handshake within {DTLS_TIMEOUT:g} s", "security-error") from None
        self.connected = True
        early, self._early_media = self._early_media, []
        for data in early:
            self._on_data(data, 1)

    async def _watch_ice(self) -> None:
        """aioice closes the connection when consent freshness (RFC 7675) fails: every
        path to the peer is gone."""
        import aioice  # noqa: PLC0415
        while not self.closed:
            event = await self.ice.get_event()
            if event is None or isinstance(event, aioice.ConnectionClosed):
                break
        if not self.closed and self.on_failed is not None:
            self.on_failed(TransportFailed("the peer stopped answering ICE consent checks", "connectivity-error"))

    # -- packets
    def _send_raw(self, data: bytes, component: int) -> None:
        pair = self.ice._nominated.get(component)
        if pair is None or pair.protocol.transport is None:
            return
        pair.protocol.transport.sendto(data, pair.remote_addr)

    def sendto(self, data: bytes, addr: Any = None) -> None:
        """What RtpSession calls: one RTP packet out (RTCP when the second byte says so)."""
        if not self.connected or self.closed:
            return
        rtcp = 192 <= data[1] <= 223
        if self.srtp_tx is not None:
            if not isinstance(data, bytes):
                data = bytes(data)  # the relay path hands a rewritten bytearray; libsrtp wants bytes
            try:
                data = self.srtp_tx.protect_rtcp(data) if rtcp else self.srtp_tx.protect(data)
            except Exception as exc:
                self.protect_errors += 1
                if self.protect_errors == 1:
                    log.warning("SRTP protect failed: %s", exc)
                return
        self._send_raw(data, 2 if (rtcp and not self.rtcp_mux) else 1)

    def _on_data(self, data: bytes, component: int) -> None:
        if not data:
            return
        first = data[0]
        if 20 <= first <= 63:  # DTLS (RFC 7983)
            if self.dtls is not None:
                self.dtls.feed(data)
            elif len(self._pending_dtls) < 8:
                self._pending_dtls.append(data)  # the peer's ClientHello before our connect() returned
            return
        if not 128 <= first <= 191 or len(data) < 12:
            return
        rtcp = 192 <= data[1] <= 223
        if self.dtls is not None or (self.dtls_wanted and self.srtp_rx is None and not self.connected):
            if self.srtp_rx is None:
                # the peer finished its side of the handshake first and already sends:
                # keep a few packets for when our keys are there (a lost first 20 ms
                # otherwise, and an echo test that starts one packet late)
                if len(self._early_media) < 16:
                    self._early_media.append(data)
                return
            try:
                data = self.srtp_rx.unprotect_rtcp(data) if rtcp else self.srtp_rx.unprotect(data)
            except Exception:
                return  # replayed, forged or garbled: dropped, as libsrtp says
        self._deliver(data, rtcp)

    def _deliver(self, data: bytes, rtcp: bool) -> None:
        session = self.session
        if session is None:
            return
        if rtcp:
            session.on_rtcp(data, self.remote_addr or ("0.0.0.0", 0))
        else:
            session.datagram_received(data, self.remote_addr or ("0.0.0.0", 0))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.connected = False
        if self.dtls is not None:
            self.dtls.close()
        if self._watch is not None:
            self._watch.cancel()
        try:
            asyncio.get_running_loop()
            asyncio.ensure_future(self.ice.close())
        except RuntimeError:
            pass
