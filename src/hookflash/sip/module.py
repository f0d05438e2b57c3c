"""chan_sip: the SIP channel driver module, its ``SIP/...`` dial strings and console.

Dial strings: ``SIP/peer``, ``SIP/peer/exten`` (exten becomes the Request-URI user),
``SIP/exten@peer``, ``SIP/host[:port]`` and ``SIP/exten@host[:port]`` for a host that
is not a peer. A dynamic peer that is not registered is unavailable (CHANUNAVAIL), as is
a peer at its call-limit.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from hookflash.channels.channel import Channel
from hookflash.engine.modules import Module, ModuleDeclined
from hookflash.engine.registry import CliArgs, CliCommand
from hookflash.media.rtpsession import PortAllocator
from hookflash.sip.call import SipCall
from hookflash.sip.config import parse_rtp_conf, parse_sip_conf
from hookflash.sip.peers import PeerState
from hookflash.sip.stack import SipStack

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.sip")


class SipDriver:
    name = "SIP"
    description = "Session Initiation Protocol (SIP)"
    module = "chan_sip"

    def __init__(self, owner: "SipModule") -> None:
        self.owner = owner

    async def request(self, pbx: "Pbx", data: str, requestor: Channel | None) -> Channel:
        stack = self.owner.stack
        if stack is None:
            raise LookupError("SIP is not running")
        target, _, exten = data.partition("/")
        user = exten
        host_part = target
        if "@" in target:
            user, host_part = target.split("@", 1)
        peer = stack.peers.get(host_part)
        if (peer is None or stack.rt.expired(host_part)) and stack.rt.enabled() and "." not in host_part:
            peer = await stack.rt.lookup(host_part) or peer  # a realtime peer (sippeers)
        if peer is not None:
            addr = peer.reachable_addr()
            if addr is None:
                raise LookupError(f"SIP peer '{peer.name}' is not registered")
            limit = peer.config.call_limit
            if limit and peer.calls >= limit:
                raise LookupError(f"SIP peer '{peer.name}' is at its call-limit of {limit}")
            if peer.contact and not user:
                uri = peer.contact
            else:
                uri = f"sip:{user or peer.name}@{addr[0]}:{addr[1]}"
            name = f"SIP/{peer.name}-{pbx.next_id()}"
        else:
            host, _, port_s = host_part.partition(":")
            if not _looks_like_host(host):
                raise LookupError(f"No such SIP peer '{host_part}'")
            port = int(port_s) if port_s.isdigit() else 5060
            addr = (host, port)
            uri = f"sip:{user}@{host}:{port}" if user else f"sip:{host}:{port}"
            name = f"SIP/{host_part}-{pbx.next_id()}"
        call = SipCall.outgoing_call(stack, peer, uri, addr, name)
        assert call.chan is not None
        return call.chan


def _looks_like_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." in host and all(part.replace("-", "").isalnum() for part in host.split("."))


class SipModule(Module):
    description = "Session Initiation Protocol (SIP)"
    support = "extended"

    def __init__(self, pbx: "Pbx") -> None:
        super().__init__(pbx)
        self.stack: SipStack | None = None

    def drivers(self) -> list[object]:
        return [SipDriver(self)]

    async def start(self) -> None:
        conf = self.pbx.read_config("sip.conf")
        if conf is None:
            raise ModuleDeclined("no sip.conf in the configuration directory")
        config = parse_sip_conf(conf)
        rtp = parse_rtp_conf(self.pbx.read_config("rtp.conf"))
        g = config.general
        local_ip = g.bindaddr if g.bindaddr not in ("0.0.0.0", "::") else "127.0.0.1"
        stack = SipStack(self.pbx, config, local_ip)
        stack.ports = PortAllocator(rtp.rtpstart, rtp.rtpend)
        await stack.start()
        self.stack = stack
        self.pbx.verbose(2, f"SIP listening on {g.bindaddr}:{stack.port} (udp), "
                            f"{len(stack.peers)} peers")

    async def stop(self) -> None:
        if self.stack is not None:
            for chan in list(self.pbx.channels):
                if chan.name.startswith("SIP/"):
                    await chan.hangup()
            await self.stack.stop()
            self.stack = None

    async def reload(self) -> str | None:
        from hookflash.conf import ConfigError
        try:
            config = parse_sip_conf(self.pbx.read_config("sip.conf"))
        except ConfigError as exc:
            log.error("sip.conf not reloaded, the running configuration is kept: %s", exc)
            return str(exc)
        stack = self.stack
        if stack is None:
            return "chan_sip is not running"
        g_old, g_new = stack.config.general, config.general
        if (g_old.bindaddr, g_old.bindport) != (g_new.bindaddr, g_new.bindport):
            log.warning("sip reload: bindaddr/bindport changes need a restart of chan_sip")
        old = stack.peers
        stack.config = config
        stack.peers = {}
        for name, cfg in config.peers.items():
            state = PeerState(cfg)
            previous = old.get(name)
            if previous is not None and cfg.is_dynamic:  # keep live registrations
                state.addr, state.contact = previous.addr, previous.contact
                state.expires_at, state.useragent = previous.expires_at, previous.useragent
                state.registered_user, state.lastms, state.calls = (previous.registered_user,
                                                                    previous.lastms, previous.calls)
            stack.peers[name] = state
        return None

    def commands(self) -> list[CliCommand]:
        C = CliCommand
        peers = (lambda pbx, words, word: sorted(p for p in (self.stack.peers if self.stack else {})
                                                 if p.startswith(word)))
        return [
            C(("sip", "show", "peers"), self._peers, "List defined SIP peers", "Usage: sip show peers [like <pattern>]"),
            C(("sip", "show", "peer"), self._peer, "Show details on specific SIP peer",
              "Usage: sip show peer <name>", peers),
            C(("sip", "show", "registry"), self._registry, "List SIP registration status",
              "Usage: sip show registry"),
            C(("sip", "show", "channels"), self._channels, "List active SIP channels",
              "Usage: sip show channels"),
            C(("sip", "show", "channelstats"), self._channelstats, "List statistics for active SIP channels",
              "Usage: sip show channelstats"),
            C(("sip", "reload"), self._reload, "Reload SIP configuration", "Usage: sip reload"),
            C(("sip", "set", "debug"), self._debug, "Enable/Disable SIP debugging",
              "Usage: sip set debug {on|off|ip <addr>|peer <peer>}"),
            C(("sip", "qualify", "peer"), self._qualify, "Send an OPTIONS packet to a peer",
              "Usage: sip qualify peer <name>", peers),
            C(("sip", "prune", "realtime"), self._prune, "Prune cached Realtime users/peers",
              "Usage: sip prune realtime [peer [<name>|all|like <pattern>]|all]"),
            C(("sip", "show", "settings"), self._settings, "Show SIP global settings",
              "Usage: sip show settings"),
        ]

    def _prune(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None:
            return "chan_sip is not running\n"
        a = [w for w in args.argv]
        if a and a[0].lower() in ("peer", "user"):
            a = a[1:]
        if not a or a[0].lower() == "all":
            n = stack.rt.prune()
            return f"Cached RT peers pruned ({n}).\n"
        if a[0].lower() == "like" and len(a) > 1:
            import re as _re
            try:
                n = stack.rt.prune(like=a[1])
            except _re.error:
                return f"Invalid regular expression '{a[1]}'\n"
            return f"{n} peers pruned.\n"
        n = stack.rt.prune(a[0])
        return f"Peer '{a[0]}' pruned.\n" if n else f"Peer '{a[0]}' not found.\n"

    def _settings(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None:
            return "chan_sip is not running\n"
        g = stack.config.general
        from hookflash.realtime.core import realtime as _rt
        rt = _rt(self.pbx)
        yn = lambda b: "Yes" if b else "No"  # noqa: E731
        lines = [
            "", "Global Settings:", "----------------",
            f"  UDP Bindaddress:        {g.bindaddr}:{g.bindport}",
            f"  Allow guest calls:      {yn(g.allowguest)}",
            f"  Always auth rejects:    {yn(g.alwaysauthreject)}",
            f"  Realm. auth:            {g.realm}",
            f"  User Agent:             {g.useragent}",
            f"  Accept out of call msg: {yn(g.accept_outofcall_message)}",
            f"  Auth. MESSAGE requests: {yn(g.auth_message_requests)}",
            "", "Realtime SIP Settings:", "----------------------",
            f"  Realtime Peers:         {yn(rt.enabled('sippeers'))}",
            f"  Realtime Regs:          {yn(rt.enabled('sipregs'))}",
            f"  Cache Friends:          {yn(g.rtcachefriends)}",
            f"  Update:                 {yn(g.rtupdate)}",
            f"  Ignore Reg. Expire:     {yn(g.ignoreregexpire)}",
            f"  Save sys. name:         {yn(g.rtsavesysname)}",
            "  Save path header:       No",
            f"  Auto Clear:             {g.rtautoclear} ({'Enabled' if g.rtautoclear else 'Disabled'})",
            "",
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ console
    def _peers(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None:
            return "chan_sip is not running\n"
        fmt = "{:<25.25s} {:<39.39s} {:<3.3s} {:<10.10s} {:<10.10s} {:<3.3s} {:<8s} {:<11s} {:<32.32s} {}"
        lines = [fmt.format("Name/username", "Host", "Dyn", "Forcerport", "Comedia", "ACL", "Port",
                            "Status", "Description", "").rstrip()]
        mon_on = mon_off = un_on = un_off = 0
        like = args.argv[1] if len(args.argv) > 1 and args.argv[0] == "like" else None
        for name in sorted(stack.peers):
            if like and like.lower() not in name.lower():
                continue
            peer = stack.peers[name]
            cfg = peer.config
            addr = peer.reachable_addr()
            user = peer.registered_user or cfg.defaultuser
            label = f"{name}/{user}" if user else name
            host = addr[0] if addr else "(Unspecified)"
            port = str(addr[1]) if addr else "0"
            nat = cfg.nat
            forcerport = "Yes" if "force_rport" in nat or nat == "yes" else "No"
            comedia = "Yes" if "comedia" in nat or nat == "yes" else "No"
            lines.append(fmt.format(label, host, "D" if cfg.is_dynamic else "", forcerport, comedia,
                                    "", port, peer.status(), "", "").rstrip())
            online = addr is not None and peer.lastms != 0
            if cfg.qualify:
                mon_on, mon_off = mon_on + online, mon_off + (not online)
            else:
                un_on, un_off = un_on + online, un_off + (not online)
        total = mon_on + mon_off + un_on + un_off
        lines.append(f"{total} sip peers [Monitored: {mon_on} online, {mon_off} offline "
                     f"Unmonitored: {un_on} online, {un_off} offline]")
        return "\n".join(lines) + "\n"

    async def _peer(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None or not args.argv:
            return "Usage: sip show peer <name> [load]\n"
        peer = stack.peers.get(args.argv[0])
        if len(args.argv) > 1 and args.argv[1].lower() == "load" and (peer is None or stack.rt.is_realtime(peer.name)):
            stack.rt.prune(args.argv[0])
            peer = await stack.rt.lookup(args.argv[0])
        if peer is None:
            return f"Peer {args.argv[0]} not found.\n"
        cfg = peer.config
        addr = peer.reachable_addr()
        callerid = f'"{cfg.callerid_name}" <{cfg.callerid_num}>' if (cfg.callerid_name or cfg.callerid_num) else ""
        rows = [
            ("* Name", cfg.name), ("Secret", "<Set>" if cfg.secret else "<Not set>"),
            ("MD5Secret", "<Set>" if cfg.md5secret else "<Not set>"),
            ("Context", cfg.context), ("Language", cfg.language), ("Callerid", callerid),
            ("Mailbox", ",".join(cfg.mailbox)), ("Call limit", str(cfg.call_limit)),
            ("Dynamic", "Yes" if cfg.is_dynamic else "No"),
            ("Expire", str(int(peer.expires_at - time.time())) if peer.registered else "-1"),
            ("Insecure", ",".join(sorted(cfg.insecure)) or "no"), ("Force rport", "Yes" if "force_rport" in cfg.nat or cfg.nat == "yes" else "No"),
            ("DirectMedia", "Yes" if cfg.directmedia else "No"),
            ("Addr->IP", f"{addr[0]}:{addr[1]}" if addr else "(null)"),
            ("Defaddr->IP", "(null)" if cfg.is_dynamic else f"{cfg.host}:{cfg.port}"),
            ("Transport", cfg.transport.upper()), ("Def. Username", cfg.defaultuser),
            ("Useragent", peer.useragent), ("Reg. Contact", peer.contact),
            ("Qualify Freq", f"{stack.config.general.qualifyfreq * 1000} ms"),
            ("Status", peer.status()), ("Codecs", "(" + "|".join(cfg.codecs) + ")"),
            ("DTMFmode", cfg.dtmfmode), ("Calls in use", str(peer.calls)),
            ("Realtime", "Yes (sippeers)" if stack.rt.is_realtime(peer.name) else "No"),
        ]
        body = "\n".join(f"  {k:<13s}: {v}" for k, v in rows)
        return f"\n\n{body}\n\n"

    def _registry(self, args: CliArgs) -> str:
        stack = self.stack
        regs = stack.registrations if stack else []
        fmt = "{:<39.39s} {:<6.6s} {:<12.12s}  {:>8.8s} {:<20.20s} {:<25.25s}"
        lines = [fmt.format("Host", "dnsmgr", "Username", "Refresh", "State", "Reg.Time")]
        for reg in regs:
            r = reg.reg
            when = time.strftime("%a, %d %b %Y %H:%M:%S", time.localtime(reg.registered_at)) if reg.registered_at else ""
            lines.append(fmt.format(f"{r.host}:{r.port}", "N", r.user, str(reg.refresh), reg.state, when))
        lines.append(f"{len(regs)} SIP registrations.")
        return "\n".join(lines) + "\n"

    def _channels(self, args: CliArgs) -> str:
        stack = self.stack
        fmt = "{:<15.15s}  {:<15.15s}  {:<15.15s}  {:<15.15s}  {:<7.7s}  {:<15.15s}  {:<10.10s}  {:<10.10s}"
        lines = [fmt.format("Peer", "User/ANR", "Call ID", "Format", "Hold", "Last Message", "Expiry", "Peer")]
        count = 0
        calls = list(stack.calls.values()) + list(stack.pending.values()) if stack else []
        for call in {id(c): c for c in calls}.values():
            count += 1
            addr = call.source or call.dest or ("", 0)
            user = call.chan.caller.num if call.chan else ""
            call_id = call.invite.call_id if call.invite else ""
            lines.append(fmt.format(addr[0], user, call_id, getattr(call, "format", "(nothing)"),
                                    "Yes" if call.hold else "No", call.last_message, "",
                                    call.peer.name if call.peer else "(None)"))
        lines.append(f"{count} active SIP dialog{'' if count == 1 else 's'}")
        return "\n".join(lines) + "\n"

    def _channelstats(self, args: CliArgs) -> str:
        """RTP counters per call, in chan_sip's columns (a call with direct media shows
        the few packets relayed before the phones switched to each other)."""
        stack = self.stack
        head = "{:<15.15s}  {:<11.11s}  {:<8.8s} {:<10.10s}  {:<10.10s} (     %) {:<6.6s} {:<10.10s}  {:<10.10s} (     %) {:<6.6s}"
        lines = [head.format("Peer", "Call ID", "Duration", "Recv: Pack", "Lost", "Jitter",
                             "Send: Pack", "Lost", "Jitter")]
        count = 0
        now = time.time()
        for call in list(stack.calls.values()) if stack else []:
            if call.rtp is None:
                continue
            count += 1
            st = call.rtp.stats
            addr = call.source or call.dest or ("", 0)
            secs = int(now - call.created)
            duration = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
            got = st.packets_in
            lost = max(st.lost, 0)
            lost_pct = 100.0 * lost / (got + lost) if got + lost else 0.0
            report = st.remote_report
            their_lost = max(report.packets_lost, 0) if report is not None else 0
            sent_pct = 100.0 * their_lost / st.packets_out if st.packets_out else 0.0
            their_jitter = report.jitter / 8000.0 if report is not None else 0.0
            call_id = call.invite.call_id if call.invite else ""
            lines.append(f"{addr[0]:<15.15s}  {call_id:<11.11s}  {duration:<8.8s} {got:010d}{'':1s} "
                         f"{lost:010d} ({lost_pct:5.2f}%) {st.jitter / 8000.0:<6.4f} "
                         f"{st.packets_out:010d}{'':1s} {their_lost:010d} ({sent_pct:5.2f}%) "
                         f"{their_jitter:<6.4f}")
        lines.append(f"{count} active SIP channel{'' if count == 1 else 's'}")
        return "\n".join(lines) + "\n"

    async def _reload(self, args: CliArgs) -> str:
        error = await self.reload()
        return f"sip.conf not reloaded: {error}\n" if error else "Reloading SIP\n"

    def _debug(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None:
            return "chan_sip is not running\n"
        argv = [a.lower() for a in args.argv]
        wire = logging.getLogger("hookflash.sip.wire")
        if argv == ["on"]:
            stack.endpoint.debug_peers = set()
            wire.setLevel(logging.INFO)
            self.pbx.verbosity.level = max(self.pbx.verbosity.level, 1)
            return "SIP Debugging enabled\n"
        if argv == ["off"]:
            stack.endpoint.debug_peers = None
            return "SIP Debugging Disabled\n"
        if len(argv) == 2 and argv[0] in ("ip", "peer"):
            target = args.argv[1]
            if argv[0] == "peer":
                peer = stack.peers.get(target)
                addr = peer.reachable_addr() if peer else None
                if addr is None:
                    return f"Unable to get IP address of peer '{target}'\n"
                target = addr[0]
            stack.endpoint.debug_peers = {target}
            wire.setLevel(logging.INFO)
            self.pbx.verbosity.level = max(self.pbx.verbosity.level, 1)
            return f"SIP Debugging Enabled for IP: {target}\n"
        return "Usage: sip set debug {on|off|ip <addr>|peer <peer>}\n"

    async def _qualify(self, args: CliArgs) -> str:
        stack = self.stack
        if stack is None or not args.argv or args.argv[0] not in stack.peers:
            return "Usage: sip qualify peer <name>\n"
        ms = await stack.qualify(stack.peers[args.argv[0]])
        return f"Peer {args.argv[0]}: {stack.peers[args.argv[0]].status()} ({ms} ms)\n"
