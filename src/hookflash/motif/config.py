"""``motif.conf`` as chan_motif reads it, and rtp.conf's ICE options.

One section per endpoint (``[general]`` holds defaults for all of them). Every option of
``../shared/ASTERISK-REFERENCE.md`` section 4 is read; a value the option does not take is
a :class:`~hookflash.conf.ConfigError` naming file and line. ``transport=google`` and
``transport=google-v1`` are refused with the reason: Google Talk and Google Voice stopped
speaking XMPP, so nothing answers those transports any more.

hookflash's own options (documented in docs/jingle.md):

- ``dtls`` = ``yes`` (default: offer DTLS-SRTP, and use it whenever the peer offers it),
  ``no`` (plain RTP; what Asterisk does), ``require`` (refuse peers without it).
- ``icetimeout`` (seconds, default 10): how long ICE and DTLS may take once both sides
  have their candidates before the call fails with ``failed-transport``.
- ``rtptimeout`` (seconds, default 0 = off, as sip.conf's): hang up a call whose peer sent
  no media for that long while not on hold (``connectivity-error``). ICE consent
  freshness (RFC 7675) ends a call whose peer stopped answering anyway, after about 30 s.

rtp.conf (``[general]``): ``icesupport``, ``stunaddr`` (host[:port], default port 3478),
``turnaddr``/``turnusername``/``turnpassword``, ``ice_host_candidates`` (``local => advertised``
address mappings, for a PBX behind 1:1 NAT), ``ice_permit``/``ice_deny`` (and the older
``ice_blacklist``): address/mask lists of what takes part in ICE.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hookflash.conf.parser import ConfigFile, ConfigVariable, parse_bool

KNOWN_CODECS = ("opus", "g722", "ulaw", "alaw")
_ALIASES = {"g711u": "ulaw", "pcmu": "ulaw", "g711a": "alaw", "pcma": "alaw"}
ALL_CODECS = ("ulaw", "alaw", "g722", "opus", "gsm", "g729", "g726", "ilbc", "speex", "slin",
              "h264", "h263", "vp8", "vp9", "h263p", "mpeg4")


@dataclass(slots=True)
class MotifEndpoint:
    name: str
    context: str = "default"
    callgroup: str = ""
    pickupgroup: str = ""
    language: str = ""
    musicclass: str = ""
    parkinglot: str = ""
    accountcode: str = ""
    allow: list[str] = field(default_factory=lambda: ["ulaw", "alaw"])
    connection: str = ""
    transport: str = "ice-udp"
    maxicecandidates: int = 10
    maxpayloads: int = 30
    dtls: str = "yes"
    icetimeout: float = 10.0
    rtptimeout: float = 0.0
    filename: str = ""
    lineno: int = 0


@dataclass(slots=True)
class IceConfig:
    icesupport: bool = True
    stunaddr: tuple[str, int] | None = None
    turnaddr: tuple[str, int] | None = None
    turnusername: str = ""
    turnpassword: str = field(default="", repr=False)
    host_candidates: dict[str, str] = field(default_factory=dict)  # local -> advertised
    permit: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)


def _allow(var: ConfigVariable, allow: list[str], add: bool) -> list[str]:
    out = list(allow)
    for raw in var.value.replace("&", ",").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name != "all" and name not in ALL_CODECS:
            raise var.error(f"{var.name}: unknown codec '{raw.strip()}'",
                            f"'{var.name}=ulaw' (codecs: {', '.join(KNOWN_CODECS)})")
        names = KNOWN_CODECS if name == "all" else (name,)
        for n in names:
            if add and n in KNOWN_CODECS and n not in out:
                out.append(n)
            elif not add and n in out:
                out.remove(n)
        if not add and name == "all":
            out = []
    return out


def _int(var: ConfigVariable, low: int, high: int) -> int:
    text = var.value.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise var.error(f"{var.name} value '{var.value}' is not a number from {low} to {high}",
                        f"'{var.name}=<number>'")
    return int(text)


def _endpoint_option(ep: MotifEndpoint, var: ConfigVariable) -> None:
    key = var.name.strip().lower()
    value = var.value.strip()
    if key in ("context", "callgroup", "pickupgroup", "language", "musicclass", "parkinglot",
               "accountcode", "connection"):
        setattr(ep, key, value)
    elif key == "allow":
        ep.allow = _allow(var, ep.allow, True)
    elif key == "disallow":
        ep.allow = _allow(var, ep.allow, False)
    elif key == "transport":
        t = value.lower()
        if t in ("google", "google-v1"):
            raise var.error(f"transport={t}: Google Talk and Google Voice no longer speak XMPP, "
                            "so nothing answers this transport", "'transport=ice-udp' (or raw-udp)")
        if t not in ("ice-udp", "raw-udp"):
            raise var.error(f"transport '{value}' is not known", "'transport=ice-udp' or 'transport=raw-udp'")
        ep.transport = t
    elif key == "maxicecandidates":
        ep.maxicecandidates = _int(var, 1, 64)
    elif key == "maxpayloads":
        ep.maxpayloads = _int(var, 1, 64)
    elif key == "dtls":
        v = value.lower()
        if v == "require":
            ep.dtls = "require"
        else:
            try:
                ep.dtls = "yes" if parse_bool(v) else "no"
            except ValueError:
                raise var.error(f"dtls '{value}' is not known", "'dtls=yes', 'dtls=no' or 'dtls=require'") from None
    elif key == "icetimeout":
        ep.icetimeout = float(_int(var, 1, 120))
    elif key == "rtptimeout":
        ep.rtptimeout = float(_int(var, 0, 3600))
    else:
        raise var.error(f"unknown option '{var.name}'",
                        "one of context, callgroup, pickupgroup, language, musicclass, parkinglot, "
                        "accountcode, allow, disallow, connection, transport, maxicecandidates, "
                        "maxpayloads, dtls, icetimeout, rtptimeout")


def parse_motif_conf(conf: ConfigFile | None) -> dict[str, MotifEndpoint]:
    """Endpoints by lower-case name."""
    if conf is None:
        return {}
    defaults: list[ConfigVariable] = []
    for section in conf.sections_named("general"):
        defaults.extend(section.variables)
    out: dict[str, MotifEndpoint] = {}
    for section in conf.sections:
        if section.is_template or section.name.lower() == "general":
            continue
        first = section.variables[0] if section.variables else None
        ep = MotifEndpoint(section.name, filename=first.filename if first else conf.filename,
                           lineno=first.lineno if first else 0)
        for var in defaults + list(section.variables):
            _endpoint_option(ep, var)
        if not ep.connection:
            from hookflash.conf import ConfigError  # noqa: PLC0415
            raise ConfigError(ep.filename, ep.lineno, f"endpoint [{section.name}] has no connection",
                              "'connection=<a client section of xmpp.conf>'")
        if not ep.allow:
            from hookflash.conf import ConfigError  # noqa: PLC0415
            raise ConfigError(ep.filename, ep.lineno, f"endpoint [{section.name}] allows no codec",
                              "'allow=ulaw' (codecs: " + ", ".join(KNOWN_CODECS) + ")")
        out[section.name.lower()] = ep
    return out


def _hostport(var: ConfigVariable, default: int) -> tuple[str, int]:
    host, _, port = var.value.strip().rpartition(":")
    if not host:
        host, port = var.value.strip(), str(default)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise var.error(f"{var.name} '{var.value}' is not host[:port]", f"'{var.name}=stun.example.com:3478'")
    return host.strip("[]"), int(port)


def _networks(var: ConfigVariable) -> list[str]:
    out = []
    for part in var.value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise var.error(f"{var.name} '{part}' is not an address/mask",
                            f"'{var.name}=192.168.0.0/16' or '{var.name}=192.168.0.0/255.255.0.0'") from None
    return out


def parse_ice_conf(conf: ConfigFile | None) -> IceConfig:
    ice = IceConfig()
    if conf is None:
        return ice
    for section in conf.sections_named("general"):
        for var in section.variables:
            key = var.name.strip().lower()
            if key == "icesupport":
                try:
                    ice.icesupport = parse_bool(var.value)
                except ValueError:
                    raise var.error(f"icesupport '{var.value}' is not yes/no", "'icesupport=yes'") from None
            elif key == "stunaddr":
                ice.stunaddr = _hostport(var, 3478) if var.value.strip() else None
            elif key == "turnaddr":
                ice.turnaddr = _hostport(var, 3478) if var.value.strip() else None
            elif key == "turnusername":
                ice.turnusername = var.value.strip()
            elif key == "turnpassword":
                ice.turnpassword = var.value.strip()
            elif key == "ice_host_candidates":
                continue  # a category of its own, read below
            elif key in ("ice_permit",):
                ice.permit += _networks(var)
            elif key in ("ice_deny", "ice_blacklist"):
                ice.deny += _networks(var)
    for section in conf.sections_named("ice_host_candidates"):
        for var in section.variables:
            try:
                ipaddress.ip_address(var.name.strip())
                ipaddress.ip_address(var.value.strip())
            except ValueError:
                raise var.error(f"ice_host_candidates '{var.name} => {var.value}' is not two addresses",
                                "'192.168.1.10 => 203.0.113.10'") from None
            ice.host_candidates[var.name.strip()] = var.value.strip()
    return ice
