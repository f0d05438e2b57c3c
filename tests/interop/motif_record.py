"""Record what Asterisk's chan_motif sends on the wire, as a minimal Jingle RTP audio peer.

Developer tooling, not a pytest test. Run from the repository root:

    .venv/bin/python tests/interop/motif_record.py initiate WORKDIR OUT.xml   # Asterisk calls us
    .venv/bin/python tests/interop/motif_record.py accept   WORKDIR OUT.xml   # we call Asterisk
    ... [--no-rtcp]            # offer an RTP (component 1) candidate only
    ... [--asterisk-hangs-up]  # end with "channel request hangup all", not the peer's terminate


Each run starts its own Prosody (loopback, users ``asterisk``/``astpw`` and ``peer``/``peerpw``,
mutual roster subscription) and its own Asterisk (tests/interop/asterisk_motif.py) under
WORKDIR, logs ``peer@localhost/jingle-peer`` in with slixmpp (presence with XEP-0115 caps, disco
features for Jingle RTP audio over ICE-UDP and RAW-UDP), and writes every stanza the peer sent
or received after its session started, in order, to OUT.xml.

* ``initiate``: ``channel originate Motif/jingle/peer@localhost/jingle-peer application Echo``;
  the peer acknowledges Asterisk's session-initiate and transport-info, sends ringing and a
  session-accept (PCMU, ICE-UDP host candidate 127.0.0.1), answers ICE checks, sends a little
  RTP, then session-terminate.
* ``accept``: the peer sends a session-initiate (PCMU + telephone-event, ICE-UDP host candidate
  127.0.0.1) to ``asterisk@localhost/asterisk``; the dialplan does Ringing, Answer, Echo.

The peer's media socket is a UDP socket on 127.0.0.1; it answers STUN binding requests (ICE
connectivity checks, short-term credentials, MESSAGE-INTEGRITY and FINGERPRINT), sends its
own checks to Asterisk's candidates when they are on 127.0.0.1 (never anywhere else), sends 20
PCMU packets and counts what comes back. A summary of the UDP side is written into OUT.xml as
an XML comment at the end.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import logging
import os
import random
import socket
import string
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asterisk_motif
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

JINGLE = "urn:xmpp:jingle:1"
RTP = "urn:xmpp:jingle:apps:rtp:1"
ICE = "urn:xmpp:jingle:transports:ice-udp:1"
FEATURES = [JINGLE, RTP, "urn:xmpp:jingle:apps:rtp:audio", ICE, "urn:xmpp:jingle:transports:raw-udp:1"]
PEER_RESOURCE = "jingle-peer"
AST_JID = "asterisk@localhost/asterisk"
HANGUP_BY_ASTERISK = "--asterisk-hangs-up" in sys.argv  # "channel request hangup all" instead of our terminate

DIALPLAN = """\
[incoming-motif]
exten => jingle,1,NoOp(Jingle call from ${CALLERID(all)} on ${CHANNEL})
 same => n,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Echo()
 same => n,Hangup()
exten => s,1,Goto(jingle,1)
"""


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


# -- a minimal ICE (RFC 8445 / 5389) responder and checker ---------------------------------------

MAGIC = 0x2112A442


def _attr(t: int, v: bytes) -> bytes:
    return struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)


def stun_message(mtype: int, txid: bytes, attrs: bytes, key: bytes) -> bytes:
    """A STUN message with MESSAGE-INTEGRITY (HMAC-SHA1 with ``key``) and FINGERPRINT."""
    head = struct.pack("!HHI", mtype, len(attrs) + 24, MAGIC) + txid
    mi = hmac.new(key, head + attrs, hashlib.sha1).digest()
    body = attrs + _attr(0x0008, mi)
    head = struct.pack("!HHI", mtype, len(body) + 8, MAGIC) + txid
    crc = (binascii.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    return head + body + _attr(0x8028, struct.pack("!I", crc))


def stun_attrs(data: bytes) -> dict[int, bytes]:
    out, i = {}, 20
    while i + 4 <= len(data):
        t, n = struct.unpack("!HH", data[i:i + 4])
        out[t] = data[i + 4:i + 4 + n]
        i += 4 + n + (-n % 4)
    return out


def xor_address(addr: tuple[str, int]) -> bytes:
    port = addr[1] ^ (MAGIC >> 16)
    ip = struct.unpack("!I", socket.inet_aton(addr[0]))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port, ip)


class Media:
    """The peer's RTP socket on 127.0.0.1, with ICE answering and a few checks of its own."""

    def __init__(self, controlling: bool, rtcp: bool = True) -> None:
        self.socks = []
        for _ in range(2 if rtcp else 1):   # component 1 (RTP) and 2 (RTCP)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.2)
            self.socks.append(sock)
        self.sock = self.socks[0]
        self.port = self.sock.getsockname()[1]
        self.ufrag, self.pwd = rand(8), rand(24)
        self.controlling = controlling
        self.remote_ufrag = self.remote_pwd = None
        self.remote_candidates: list[tuple[str, int]] = []
        self.remote_rtcp: list[tuple[str, int]] = []
        self.events: list[str] = []
        self.rtp_in = 0
        self.rtp_sources: set[tuple[str, int]] = set()
        self.rtp_pts: set[int] = set()
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.2f}s {text}")

    def _run(self, sock: socket.socket) -> None:
        comp = self.socks.index(sock) + 1
        while not self.stop.is_set():
            try:
                data, src = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 20 and data[0] < 2 and struct.unpack("!I", data[4:8])[0] == MAGIC:
                self._stun(sock, comp, data, src)
            elif comp == 2:
                self.note(f"component 2 (RTCP) packet from {src[0]}:{src[1]}: type {data[1]} len {len(data)}")
            elif len(data) >= 12 and data[0] >> 6 == 2:
                pt = data[1] & 0x7F
                if self.rtp_in == 0 or pt not in self.rtp_pts:
                    self.note(f"RTP from {src[0]}:{src[1]} pt={pt} marker={data[1] >> 7} "
                              f"ssrc={struct.unpack('!I', data[8:12])[0]:#010x} len={len(data)}")
                self.rtp_in += 1
                self.rtp_sources.add(src)
                self.rtp_pts.add(pt)
            else:
                self.note(f"other UDP from {src}: {data[:16].hex()}")

    def _stun(self, sock: socket.socket, comp: int, data: bytes, src: tuple[str, int]) -> None:
        mtype = struct.unpack("!H", data[:2])[0]
        attrs = stun_attrs(data)
        names = {0x0006: "USERNAME", 0x0008: "MESSAGE-INTEGRITY", 0x0024: "PRIORITY", 0x0025: "USE-CANDIDATE",
                 0x8029: "ICE-CONTROLLED", 0x802A: "ICE-CONTROLLING", 0x8028: "FINGERPRINT",
                 0x0020: "XOR-MAPPED-ADDRESS", 0x8022: "SOFTWARE", 0x0009: "ERROR-CODE"}
        shown = []
        for t, v in attrs.items():
            n = names.get(t, f"{t:#06x}")
            if t == 0x0006:
                shown.append(f"USERNAME={v.decode(errors='replace')}")
            elif t == 0x0024:
                shown.append(f"PRIORITY={struct.unpack('!I', v)[0]}")
            elif t == 0x8022:
                shown.append(f"SOFTWARE={v.decode(errors='replace')!r}")
            elif t == 0x0009:
                shown.append(f"ERROR-CODE={v[2] * 100 + v[3]} {v[4:].decode(errors='replace')}")
            else:
                shown.append(n)
        kind = {0x0001: "binding request", 0x0101: "binding success", 0x0111: "binding error",
                0x0011: "binding indication"}.get(mtype, f"type {mtype:#06x}")
        self.note(f"component {comp}: STUN {kind} from {src[0]}:{src[1]}: {' '.join(shown)}")
        if mtype == 0x0001:
            resp = stun_message(0x0101, data[8:20], _attr(0x0020, xor_address(src)), self.pwd.encode())
            sock.sendto(resp, src)
            self.note(f"component {comp}: STUN binding success sent to {src[0]}:{src[1]}")

    def check(self, use_candidate: bool) -> None:
        """Send one connectivity check to each loopback candidate of the other side."""
        if not (self.remote_ufrag and self.remote_pwd):
            return
        for comp, cands in ((1, self.remote_candidates), (2, self.remote_rtcp)):
            if comp > len(self.socks):
                continue
            for cand in cands:
                if not cand[0].startswith("127."):
                    self.note(f"not checking non-loopback candidate {cand}")
                    continue
                attrs = _attr(0x0006, f"{self.remote_ufrag}:{self.ufrag}".encode())
                attrs += _attr(0x0024, struct.pack("!I", 1853824767 - comp + 1))
                attrs += _attr(0x802A if self.controlling else 0x8029, os.urandom(8))
                if use_candidate and self.controlling:
                    attrs += _attr(0x0025, b"")
                msg = stun_message(0x0001, os.urandom(12), attrs, self.remote_pwd.encode())
                self.socks[comp - 1].sendto(msg, cand)
                self.note(f"component {comp}: STUN binding request sent to {cand[0]}:{cand[1]}"
                          f"{' (USE-CANDIDATE)' if use_candidate and self.controlling else ''}")

    def send_rtp(self, dest: tuple[str, int], count: int = 20) -> None:
        ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        for i in range(count):
            pkt = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 0, (seq + i) & 0xFFFF,
                              (ts + 160 * i) & 0xFFFFFFFF, ssrc) + b"\xff" * 160
            self.sock.sendto(pkt, dest)
            time.sleep(0.02)
        self.note(f"sent {count} PCMU RTP packets to {dest[0]}:{dest[1]}")

    def close(self) -> str:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        for sock in self.socks:
            sock.close()
        total = (f"RTP packets received: {self.rtp_in} from {sorted(self.rtp_sources)} "
                 f"payload types {sorted(self.rtp_pts)}")
        return "\n".join([*self.events, total])


# -- the XMPP peer -------------------------------------------------------------------------------


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str, cafile: Path) -> None:
        super().__init__(jid, password)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.ca_certs = cafile
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0115")
        self.register_plugin("xep_0199")
        self.log: list[tuple[float, str, str]] = []
        self.recording = False
        self.t0 = time.monotonic()
        self.jingle_in: asyncio.Queue = asyncio.Queue()
        self.results: dict[str, asyncio.Future] = {}
        self.add_filter("in", self._record_in)
        self.add_filter("out", self._record_out)
        self.register_handler(Callback("jingle", MatchXPath(f"{{jabber:client}}iq/{{{JINGLE}}}jingle"),
                                       self._on_jingle))
        self.add_event_handler("session_start", self._start)
        self.started = asyncio.Event()

    def _record(self, direction: str, text: str) -> None:
        if self.recording:
            self.log.append((time.monotonic() - self.t0, direction, text))

    def _record_in(self, stanza):
        self._record("received", str(stanza))
        iq_id = stanza.xml.get("id")
        if stanza.xml.tag == "{jabber:client}iq" and stanza.xml.get("type") in ("result", "error") \
                and iq_id in self.results and not self.results[iq_id].done():
            self.results[iq_id].set_result(stanza.xml)
        return stanza

    def _record_out(self, stanza):
        self._record("sent", str(stanza))
        return stanza

    async def _start(self, _event) -> None:
        self.recording = True
        for feature in FEATURES:
            await self.plugin["xep_0030"].add_feature(feature)
        await self.plugin["xep_0115"].update_caps()
        self.send_presence(pstatus="Jingle RTP audio test peer", ppriority=1)
        self.started.set()

    def _on_jingle(self, iq) -> None:
        if iq["type"] == "set":
            self.jingle_in.put_nowait(iq.xml)
            # acknowledge every Jingle set at once, like a real peer
            self.send_xml(f"<iq xmlns='jabber:client' type='result' to='{iq['from']}' id='{iq['id']}'/>")

    def send_xml(self, text: str) -> None:
        self._record("sent", text)
        self.send_raw(text)

    async def set_and_wait(self, text: str, iq_id: str, timeout: float = 10):
        self.results[iq_id] = asyncio.get_running_loop().create_future()
        self.send_xml(text)
        return await asyncio.wait_for(self.results[iq_id], timeout)

    async def next_jingle(self, action: str | None = None, timeout: float = 15) -> ET.Element:
        while True:
            x = await asyncio.wait_for(self.jingle_in.get(), timeout)
            j = x.find(f"{{{JINGLE}}}jingle")
            if action is None or j.get("action") == action:
                return x


def candidates_of(jingle: ET.Element, media: Media) -> None:
    for t in jingle.iter(f"{{{ICE}}}transport"):
        if t.get("ufrag"):
            media.remote_ufrag, media.remote_pwd = t.get("ufrag"), t.get("pwd")
        for c in t.findall(f"{{{ICE}}}candidate"):
            cand = (c.get("ip"), int(c.get("port")))
            target = media.remote_candidates if c.get("component") == "1" else media.remote_rtcp
            if cand not in target:
                target.append(cand)


def our_transport(media: Media) -> str:
    return (f"<transport xmlns='{ICE}' ufrag='{media.ufrag}' pwd='{media.pwd}'>"
            f"<candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1' network='0' "
            f"port='{media.port}' priority='2130706431' protocol='udp' type='host'/>" +
            "".join(f"<candidate component='2' foundation='1' generation='0' id='c2' ip='127.0.0.1' network='0' "
                    f"port='{s.getsockname()[1]}' priority='2130706430' protocol='udp' type='host'/>"
                    for s in media.socks[1:]) + "</transport>")


DESCRIPTION = (f"<description xmlns='{RTP}' media='audio'>"
               "<payload-type id='0' name='PCMU' clockrate='8000' channels='1'/>"
               "<payload-type id='101' name='telephone-event' clockrate='8000' channels='1'/>"
               "</description>")


async def scenario(kind: str, peer: Peer, ast: asterisk_motif.Asterisk, rtcp: bool = True) -> str:
    me = f"peer@localhost/{PEER_RESOURCE}"
    await asyncio.wait_for(peer.started.wait(), 15)
    await asyncio.sleep(2)  # let Asterisk see our presence and disco us
    media = Media(controlling=(kind == "accept"), rtcp=rtcp)
    summary = [f"peer media socket 127.0.0.1:{media.port} ufrag={media.ufrag} pwd={media.pwd}"]
    if kind == "initiate":
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(None, ast.rx,
                                         f"channel originate Motif/jingle/{me} application Echo")
        summary.append(f"originate: {out.strip()!r}")
        init = await peer.next_jingle("session-initiate")
        j = init.find(f"{{{JINGLE}}}jingle")
        sid, them = j.get("sid"), init.get("from")
        candidates_of(j, media)
        try:
            ti = await peer.next_jingle("transport-info", timeout=5)
            candidates_of(ti, media)
        except TimeoutError:
            summary.append("no transport-info from Asterisk within 5 s")
        content = j.find(f"{{{JINGLE}}}content")
        name, creator = content.get("name"), content.get("creator")
        peer.send_xml(f"<iq xmlns='jabber:client' type='set' to='{them}' id='ring1'>"
                      f"<jingle xmlns='{JINGLE}' action='session-info' sid='{sid}'>"
                      f"<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/></jingle></iq>")
        await asyncio.sleep(0.5)
        reply = await peer.set_and_wait(
            f"<iq xmlns='jabber:client' type='set' to='{them}' id='acc1'>"
            f"<jingle xmlns='{JINGLE}' action='session-accept' sid='{sid}' responder='{me}'>"
            f"<content creator='{creator}' name='{name}'>{DESCRIPTION}{our_transport(media)}</content>"
            f"</jingle></iq>", "acc1")
        summary.append(f"session-accept answered with type={reply.get('type')}")
    else:
        sid = rand(16)
        reply = await peer.set_and_wait(
            f"<iq xmlns='jabber:client' type='set' to='{AST_JID}' id='init1'>"
            f"<jingle xmlns='{JINGLE}' action='session-initiate' sid='{sid}' initiator='{me}'>"
            f"<content creator='initiator' name='audio' senders='both'>{DESCRIPTION}{our_transport(media)}"
            f"</content></jingle></iq>", "init1")
        summary.append(f"session-initiate answered with type={reply.get('type')}")
        them = AST_JID
        try:
            ti = await peer.next_jingle("transport-info", timeout=5)
            candidates_of(ti, media)
        except TimeoutError:
            summary.append("no transport-info from Asterisk within 5 s")
        try:
            acc = await peer.next_jingle("session-accept", timeout=10)
            candidates_of(acc, media)
        except TimeoutError:
            summary.append("no session-accept from Asterisk within 10 s")
    # media: checks to loopback candidates only, then RTP to the first one
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0)
    media.check(use_candidate=True)
    await asyncio.sleep(1.0)
    summary.append("Asterisk channels: " + " | ".join(
        line for line in (await loop.run_in_executor(None, ast.rx, "core show channels concise")).splitlines()))
    await asyncio.sleep(1.0)
    summary.append("Asterisk ICE log lines:\n  " + "\n  ".join(
        line.split("] ", 1)[-1] for line in ast.log().splitlines()
        if " ICE " in line and "DEBUG" not in line or any(k in line for k in (
            "ICE no RTCP", "ICE start", "ICE add remote", "nominat", "negotiation complete", "valid pair", "ICE role"))))
    dest = next((c for c in media.remote_candidates if c[0].startswith("127.")), None)
    if dest:
        await loop.run_in_executor(None, media.send_rtp, dest)
    await asyncio.sleep(1.5)
    if HANGUP_BY_ASTERISK:
        await loop.run_in_executor(None, ast.rx, "channel request hangup all")
        try:
            await peer.next_jingle("session-terminate", timeout=5)
        except TimeoutError:
            summary.append("no session-terminate from Asterisk within 5 s")
    else:
        await peer.set_and_wait(
            f"<iq xmlns='jabber:client' type='set' to='{them}' id='term1'>"
            f"<jingle xmlns='{JINGLE}' action='session-terminate' sid='{sid}'>"
            f"<reason><success/></reason></jingle></iq>", "term1")
    await asyncio.sleep(1.5)
    summary.append(media.close())
    return "\n".join(summary)


def run(kind: str, workdir: Path, out: Path, rtcp: bool = True) -> None:
    from tests.integration.xmpp_server import Prosody
    workdir.mkdir(parents=True, exist_ok=True)
    prosody = Prosody(workdir / "prosody", users={"asterisk": "astpw", "peer": "peerpw"},
                      muc=False, pubsub=False)
    prosody.befriend("asterisk", "peer")
    prosody.start()
    ast = None
    peer = None
    try:
        conf = asterisk_motif.write_config(workdir / "asterisk", xmpp_port=prosody.port, jid=AST_JID,
                                           password="astpw", dialplan=DIALPLAN)
        ast = asterisk_motif.Asterisk(conf).start()
        ast.wait_for("xmpp show connections", "Connected")
        for cmd in ("core set debug 3 chan_motif.so", "core set debug 3 res_rtp_asterisk.so", "rtp set debug on",
                    "ice set debug on"):
            try:
                ast.rx(cmd)
            except RuntimeError:
                pass
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        peer = Peer(f"peer@localhost/{PEER_RESOURCE}", "peerpw", prosody.cafile)
        peer.connect("127.0.0.1", prosody.port)
        summary = loop.run_until_complete(scenario(kind, peer, ast, rtcp))
        buddies = ast.rx("xmpp show buddies")
        peer.disconnect()
        loop.run_until_complete(asyncio.sleep(0.5))
    finally:
        if ast:
            ast.stop()
        prosody.stop()
    header = (f"<!--\n  chan_motif (Asterisk 20.20.1) Jingle, scenario '{kind}', recorded "
              f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by tests/interop/motif_record.py.\n"
              f"  Every stanza peer@localhost/{PEER_RESOURCE} (slixmpp {slixmpp.__version__}) sent or received "
              f"after its session started,\n  in order, as slixmpp serialized it; t= is seconds since the "
              f"client was created. Server: Prosody 0.12 on 127.0.0.1.\n"
              f"  Asterisk: {AST_JID}, motif.conf endpoint [jingle] transport=ice-udp allow=ulaw; "
              f"see tests/data/jingle/asterisk20-motif-NOTES.md.\n-->\n")
    body = "".join(f"<!-- t={t:.3f} {d} -->\n{text}\n" for t, d, text in peer.log)
    trailer = ("<!-- UDP side (peer's media socket) and Asterisk state:\n" +
               summary.replace("--", "- -") + "\n\nxmpp show buddies:\n" + buddies.replace("--", "- -") + "\n-->\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "<stanzas>\n" + body + "</stanzas>\n" + trailer)
    print(f"wrote {out} ({len(peer.log)} stanzas)")
    print(summary)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    run(args[0], Path(args[1]).resolve(), Path(args[2]).resolve(), rtcp="--no-rtcp" not in sys.argv)
