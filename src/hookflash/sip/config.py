"""``sip.conf`` (chan_sip's dialect) and ``rtp.conf``, parsed into frozen objects.

Every bad value is a ConfigError naming file, line and the expected form. Options
hookflash reads but does not act on yet are accepted (and listed in ``IGNORED``) so an
Asterisk sip.conf loads unchanged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Iterable

from hookflash.conf import ConfigError, ConfigFile, ConfigSection, ConfigVariable

KNOWN_CODECS = ("ulaw", "alaw", "g722")
ALL_CODECS = ("ulaw", "alaw", "g722", "gsm", "g729", "g726", "ilbc", "speex", "opus", "slin",
              "h261", "h263", "h263p", "h264", "vp8", "t140", "lpc10", "adpcm", "g723", "siren7",
              "siren14", "testlaw", "g719", "speex16", "speex32", "slin16", "g726aal2")
DTMF_MODES = ("rfc2833", "info", "inband", "auto", "shortinfo")
BOOL_TRUE = ("yes", "true", "y", "t", "1", "on")
BOOL_FALSE = ("no", "false", "n", "f", "0", "off")

IGNORED = {
    "amaflags", "callgroup", "pickupgroup", "namedcallgroup", "namedpickupgroup", "busylevel",
    "allowoverlap", "allowsubscribe", "allowtransfer", "sendrpid", "trustrpid", "progressinband",
    "videosupport", "maxcallbitrate", "rtptimeout", "rtpholdtimeout", "rtpkeepalive", "session-timers",
    "session-expires", "session-minse", "session-refresher", "t38pt_udptl", "srvlookup", "tos_sip",
    "tos_audio", "tos_video", "tos_text", "cos_sip", "cos_audio", "cos_video", "cos_text",
    "language", "tonezone", "notifyringing", "notifyhold", "notifycid", "callcounter",
    "limitonpeers", "subscribecontext", "jbenable", "jbforce", "jbmaxsize", "jbresyncthreshold",
    "jbimpl", "jblog", "compactheaders", "pedantic", "match_auth_username", "send_diversion",
    "autodomain", "domain", "allowexternaldomains", "fromdomain", "fromuser", "vmexten",
    "mohinterpret", "mohsuggest", "musiconhold", "parkinglot", "preferred_codec_only",
    "rtsavesysname", "rtautoclear", "ignoreregexpire", "rtsavepath", "registertimeout",
    "registerattempts", "register_retry_403", "buggymwi", "g726nonstandard", "rfc2833compensate",
    "relaxdtmf", "usereqphone", "callerid", "description", "outboundproxy", "permit", "deny",
    "contactpermit", "contactdeny", "acl", "contactacl", "directmediapermit", "directmediadeny",
    "directrtpsetup", "icesupport", "avpf", "force_avp", "encryption", "dtlsenable", "ignoresdpversion",
    "faxdetect", "sdpsession", "sdpowner", "unsolicited_mailbox", "use_q850_reason", "keepalive",
    "storesipcause", "sipdebug", "recordhistory", "dumphistory", "logpacket", "hash_user", "hash_peer",
    "hash_dialog", "websocket_enabled", "websocket_write_timeout", "tcpauthtimeout", "tcpauthlimit",
    "tlsdontverifyserver", "tlscipher", "tlsclientmethod", "tcpbindaddr",
    "maxforwards", "regcontext", "regextenonqualify", "legacy_useroption_parsing", "send_connected_line",
    "trust_id_outbound", "qualifygap", "qualifypeers", "subscribemwi", "mailbox", "accountcode",
    "setvar", "textsupport", "allowguest", "shrinkcallerid", "timerb", "t1min", "rtcachefriends",
    "rtupdate", "defaultuser", "username", "secret", "md5secret", "remotesecret", "host", "port",
}


def as_bool(var: ConfigVariable) -> bool:
    low = var.value.strip().lower()
    if low in BOOL_TRUE:
        return True
    if low in BOOL_FALSE:
        return False
    raise var.error(f"'{var.name}' must be yes or no, not '{var.value}'", f"{var.name}=yes or {var.name}=no")


def as_int(var: ConfigVariable, low: int = 0, high: int = 1 << 31) -> int:
    try:
        value = int(var.value.strip())
    except ValueError:
        raise var.error(f"'{var.name}' must be a whole number, not '{var.value}'", f"{var.name}=<number>") from None
    if not low <= value <= high:
        raise var.error(f"'{var.name}'={value} is out of range", f"{var.name} between {low} and {high}")
    return value


def apply_codecs(current: tuple[str, ...], var: ConfigVariable) -> tuple[str, ...]:
    """allow=/disallow= lines, applied in order (``all`` allowed)."""
    names = [n.strip().lower() for n in var.value.replace("&", ",").split(",") if n.strip()]
    codecs = list(current)
    for name in names:
        base = name.split(":")[0]  # allow=ulaw:20 (framing) reads as ulaw
        if base != "all" and base not in ALL_CODECS:
            raise var.error(f"unknown codec '{name}'", f"{var.name}=<codec>[,<codec>...] such as ulaw, alaw, g722 or all")
        if var.name.lower() == "allow":
            add = [c for c in (KNOWN_CODECS if base == "all" else (base,)) if c in KNOWN_CODECS]
            for codec in add:
                if codec not in codecs:
                    codecs.append(codec)
        else:
            codecs = [] if base == "all" else [c for c in codecs if c != base]
    return tuple(codecs)


@dataclass(frozen=True)
class Localnet:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def contains(self, host: str) -> bool:
        try:
            return ipaddress.ip_address(host) in self.network
        except ValueError:
            return False


@dataclass(frozen=True)
class Registration:
    """``register => [transport://]user[@domain][:secret[:authuser]]@host[:port][/extension][~expiry]``"""

    transport: str
    user: str
    domain: str
    secret: str
    authuser: str
    host: str
    port: int
    extension: str
    expiry: int
    filename: str
    lineno: int

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}/{self.user}"


def parse_register(var: ConfigVariable, default_expiry: int) -> Registration:
    expected = "register => [transport://]user[@domain][:secret[:authuser]]@host[:port][/extension][~expiry]"
    text = var.value.strip()
    transport = "udp"
    if "://" in text:
        transport, text = text.split("://", 1)
        transport = transport.lower()
        if transport not in ("udp", "tcp", "tls"):
            raise var.error(f"unknown transport '{transport}' in register line", expected)
    expiry = default_expiry
    if "~" in text:
        text, exp = text.rsplit("~", 1)
        if not exp.isdigit():
            raise var.error(f"bad expiry '{exp}' in register line", expected)
        expiry = int(exp)
    at = text.rfind("@")
    if at < 0:
        raise var.error("register line has no '@host'", expected)
    userpart, hostpart = text[:at], text[at + 1:]
    extension = ""
    if "/" in hostpart:
        hostpart, extension = hostpart.split("/", 1)
    host, _, port_s = hostpart.partition(":")
    if not host:
        raise var.error("register line has no host", expected)
    if port_s and not port_s.isdigit():
        raise var.error(f"bad port '{port_s}' in register line", expected)
    user, _, rest = userpart.partition(":")
    secret, _, authuser = rest.partition(":")
    user, _, domain = user.partition("@")
    if not user:
        raise var.error("register line has no user", expected)
    return Registration(transport, user, domain or host, secret, authuser or user, host,
                        int(port_s) if port_s else 5060, extension or user, expiry,
                        var.filename, var.lineno)


@dataclass(frozen=True)
class SipGeneral:
    bindaddr: str = "0.0.0.0"
    bindport: int = 5060
    transports: tuple[str, ...] = ("udp",)
    tcpenable: bool = False
    tlsenable: bool = False
    tlscertfile: str = ""
    tlsprivatekey: str = ""
    tlscafile: str = ""
    tlsport: int = 5061
    context: str = "default"
    allowguest: bool = True
    alwaysauthreject: bool = True
    realm: str = "asterisk"
    useragent: str = "hookflash"
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    dtmfmode: str = "rfc2833"
    externip: str = ""
    localnets: tuple[Localnet, ...] = ()
    qualifyfreq: int = 60
    rtcachefriends: bool = False
    rtupdate: bool = True
    rtsavesysname: bool = False
    rtautoclear: int = 0  # seconds; 0 = off
    ignoreregexpire: bool = False
    accept_outofcall_message: bool = False
    outofcall_message_context: str = ""
    auth_message_requests: bool = True
    defaultexpiry: int = 120
    minexpiry: int = 60
    maxexpiry: int = 3600
    directmedia: bool = False
    nat: str = "force_rport"
    timert1: int = 500
    timerb: int = 32000
    registrations: tuple[Registration, ...] = ()
    mohinterpret: str = "default"
    language: str = "en"


@dataclass(frozen=True)
class SipPeerConfig:
    name: str
    type: str = "friend"
    host: str = "dynamic"
    port: int = 5060
    secret: str = ""
    md5secret: str = ""
    remotesecret: str = ""
    defaultuser: str = ""
    fromuser: str = ""
    fromdomain: str = ""
    context: str = "default"
    callerid_name: str = ""
    callerid_num: str = ""
    mailbox: tuple[str, ...] = ()
    qualify: int = 0  # ms; 0 = off
    nat: str = "force_rport"
    directmedia: bool = False
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    dtmfmode: str = "rfc2833"
    insecure: frozenset[str] = frozenset()
    transport: str = "udp"
    call_limit: int = 0
    language: str = "en"
    accountcode: str = ""
    outofcall_message_context: str = ""
    setvars: tuple[tuple[str, str], ...] = ()
    filename: str = ""
    lineno: int = 0

    @property
    def is_dynamic(self) -> bool:
        return self.host.lower() == "dynamic"

    @property
    def auth_user(self) -> str:
        return self.defaultuser or self.name


def _callerid(text: str) -> tuple[str, str]:
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].partition("<")
        return name.strip().strip('"'), num.strip()
    if text.replace("+", "").isdigit():
        return "", text
    return text.strip('"'), ""


def _peer(section: ConfigSection, general: SipGeneral) -> SipPeerConfig:
    peer = SipPeerConfig(section.name, context=general.context, codecs=general.codecs,
                         dtmfmode=general.dtmfmode, nat=general.nat, directmedia=general.directmedia,
                         language=general.language, filename=section.filename, lineno=section.lineno)
    values: dict[str, object] = {}
    codecs = peer.codecs
    setvars: list[tuple[str, str]] = []
    for var in section.variables:
        key = var.name.lower()
        value = var.value.strip()
        if key == "type":
            if value.lower() not in ("friend", "peer", "user"):
                raise var.error(f"unknown peer type '{value}'", "type=friend, type=peer or type=user")
            values["type"] = value.lower()
        elif key in ("host",):
            values["host"] = value
        elif key == "port":
            values["port"] = as_int(var, 1, 65535)
        elif key in ("secret", "md5secret", "remotesecret", "defaultuser", "fromuser", "fromdomain",
                     "context", "language", "accountcode", "outofcall_message_context"):
            values[key] = value
        elif key == "username":
            values.setdefault("defaultuser", value)
        elif key == "callerid":
            values["callerid_name"], values["callerid_num"] = _callerid(value)
        elif key == "mailbox":
            values["mailbox"] = tuple(m.strip() for m in value.split(",") if m.strip())
        elif key == "qualify":
            low = value.lower()
            values["qualify"] = 2000 if low in BOOL_TRUE else 0 if low in BOOL_FALSE else as_int(var, 0)
        elif key == "nat":
            values["nat"] = value.lower()
        elif key in ("directmedia", "canreinvite"):
            values["directmedia"] = value.lower() not in BOOL_FALSE
        elif key in ("allow", "disallow"):
            codecs = apply_codecs(codecs, var)
        elif key == "dtmfmode":
            if value.lower() not in DTMF_MODES:
                raise var.error(f"unknown dtmfmode '{value}'", "dtmfmode=rfc2833, info, inband or auto")
            values["dtmfmode"] = value.lower()
        elif key == "insecure":
            values["insecure"] = frozenset(v.strip().lower() for v in value.split(","))
        elif key == "transport":
            first = value.split(",")[0].strip().lower()
            if first not in ("udp", "tcp", "tls", "ws", "wss"):
                raise var.error(f"unknown transport '{value}'", "transport=udp, tcp or tls")
            values["transport"] = first
        elif key == "call-limit":
            values["call_limit"] = as_int(var, 0)
        elif key == "setvar":
            name, eq, val = value.partition("=")
            if not eq:
                raise var.error(f"setvar without '=': '{value}'", "setvar=NAME=value")
            setvars.append((name.strip(), val))
        elif key not in IGNORED and key not in _GENERAL_KEYS:
            raise var.error(f"unknown option '{var.name}' in peer [{section.name}]",
                            "an option of chan_sip's sip.conf (see docs)")
    if setvars:
        values["setvars"] = tuple(setvars)
    return replace(peer, codecs=codecs, **values)  # type: ignore[arg-type]


_GENERAL_KEYS = {
    "bindaddr", "bindport", "udpbindaddr", "tcpenable", "tlsenable", "tlscertfile", "tlsprivatekey",
    "tlscafile", "tlscapath", "transport", "context", "allowguest", "alwaysauthreject", "realm",
    "useragent", "allow", "disallow", "dtmfmode", "externip", "externaddr", "externhost",
    "externrefresh", "localnet", "qualifyfreq", "rtcachefriends", "rtupdate",
    "accept_outofcall_message", "outofcall_message_context", "auth_message_requests",
    "defaultexpiry", "minexpiry", "maxexpiry", "directmedia", "canreinvite", "nat", "timert1",
    "timerb", "register", "mohinterpret", "language", "qualify", "insecure",
}


def _general(section: ConfigSection | None) -> SipGeneral:
    general = SipGeneral()
    if section is None:
        return general
    values: dict[str, object] = {}
    codecs = general.codecs
    registrations: list[ConfigVariable] = []
    localnets: list[Localnet] = []
    transports: list[str] = []
    for var in section.variables:
        key = var.name.lower()
        value = var.value.strip()
        if key == "bindaddr":
            values["bindaddr"] = value
        elif key == "udpbindaddr":
            host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
            values["bindaddr"] = host or value
            if port:
                values["bindport"] = as_int(ConfigVariable(var.name, port, var.filename, var.lineno), 1, 65535)
        elif key == "bindport":
            values["bindport"] = as_int(var, 1, 65535)
        elif key == "tlsbindaddr":
            host, _, port = value.rpartition(":")
            if port.isdigit():
                values["tlsport"] = as_int(ConfigVariable(var.name, port, var.filename, var.lineno), 1, 65535)
        elif key == "transport":
            for t in value.split(","):
                t = t.strip().lower()
                if t not in ("udp", "tcp", "tls", "ws", "wss"):
                    raise var.error(f"unknown transport '{t}'", "transport=udp[,tcp[,tls]]")
                transports.append(t)
        elif key in ("tcpenable", "tlsenable", "allowguest", "alwaysauthreject", "rtcachefriends",
                     "rtupdate", "accept_outofcall_message", "auth_message_requests", "rtsavesysname",
                     "ignoreregexpire"):
            values[key] = as_bool(var)
        elif key == "rtautoclear":
            low = value.lower()
            values[key] = 120 if low in BOOL_TRUE else 0 if low in BOOL_FALSE else as_int(var, 0)
        elif key in ("directmedia", "canreinvite"):
            values["directmedia"] = value.lower() not in BOOL_FALSE
        elif key in ("tlscertfile", "tlsprivatekey", "tlscafile", "context", "realm", "useragent",
                     "outofcall_message_context", "mohinterpret", "language"):
            values[key] = value
        elif key in ("externip", "externaddr", "externhost"):
            values["externip"] = value
        elif key == "localnet":
            try:
                localnets.append(Localnet(ipaddress.ip_network(value, strict=False)))
            except ValueError:
                raise var.error(f"bad localnet '{value}'", "localnet=192.168.0.0/255.255.0.0 or 10.0.0.0/8") from None
        elif key in ("allow", "disallow"):
            codecs = apply_codecs(codecs, var)
        elif key == "dtmfmode":
            if value.lower() not in DTMF_MODES:
                raise var.error(f"unknown dtmfmode '{value}'", "dtmfmode=rfc2833, info, inband or auto")
            values["dtmfmode"] = value.lower()
        elif key in ("qualifyfreq", "defaultexpiry", "minexpiry", "maxexpiry", "timert1", "timerb"):
            values[key] = as_int(var, 1)
        elif key == "nat":
            values["nat"] = value.lower()
        elif key == "register":
            registrations.append(var)
        elif key not in IGNORED and key not in _GENERAL_KEYS:
            raise var.error(f"unknown option '{var.name}' in [general]", "an option of chan_sip's sip.conf")
    if transports:
        values["transports"] = tuple(dict.fromkeys(transports))
    general = replace(general, codecs=codecs, localnets=tuple(localnets), **values)  # type: ignore[arg-type]
    regs = tuple(parse_register(v, general.defaultexpiry) for v in registrations)
    return replace(general, registrations=regs)


@dataclass(frozen=True)
class SipConfig:
    general: SipGeneral
    peers: dict[str, SipPeerConfig] = field(default_factory=dict)


def parse_sip_conf(conf: ConfigFile | None) -> SipConfig:
    if conf is None:
        return SipConfig(SipGeneral())
    general_sections = [s for s in conf.sections if s.name.lower() == "general" and not s.is_template]
    merged = general_sections[0] if general_sections else None
    if len(general_sections) > 1:
        for extra in general_sections[1:]:
            merged.variables.extend(extra.variables)  # type: ignore[union-attr]
    general = _general(merged)
    peers: dict[str, SipPeerConfig] = {}
    for section in conf.sections:
        if section.is_template or section.name.lower() in ("general", "authentication"):
            continue
        peers[section.name] = _peer(section, general)
    return SipConfig(general, peers)


@dataclass(frozen=True)
class RtpConfig:
    rtpstart: int = 10000
    rtpend: int = 20000


def parse_rtp_conf(conf: ConfigFile | None) -> RtpConfig:
    if conf is None:
        return RtpConfig()
    start, end = 10000, 20000
    for section in conf.sections_named("general"):
        for var in section.variables:
            if var.name.lower() == "rtpstart":
                start = as_int(var, 1024, 65534)
            elif var.name.lower() == "rtpend":
                end = as_int(var, 1025, 65535)
    if end <= start:
        raise ConfigError(conf.filename, 0, f"rtpend ({end}) must be above rtpstart ({start})",
                          "rtpstart=10000 and rtpend=20000")
    return RtpConfig(start, end)


def iter_peers(config: SipConfig) -> Iterable[SipPeerConfig]:
    return config.peers.values()
