"""``xmpp.conf`` as res_xmpp reads it: ``[general]`` and one section per client.

Every option of ``../shared/ASTERISK-REFERENCE.md`` 3.1 is read; a value that is not
what the option takes (a yes/no that is neither, a port that is not a number, an unknown
``status`` or ``auth_policy``, a client without ``username``, ``secret`` or
``serverhost``) is a :class:`~hookflash.conf.ConfigError` naming file and line, where
Asterisk logs and drops the client. hookflash's own options: ``cafile`` (a CA file to
verify the server with; otherwise the system store, honouring ``SSL_CERT_FILE`` and
``SSL_CERT_DIR``), ``receipts`` (XEP-0184 delivery receipts, default yes).

``type=component`` (XEP-0114) is refused with a clear message: hookflash connects as a
client only (a component needs a server-side secret and a domain of its own, and every
example in the chapter is a client).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hookflash.conf import ConfigError
from hookflash.conf.parser import ConfigFile, ConfigVariable, parse_bool

__all__ = ["STATUSES", "XmppClientConfig", "XmppConfig", "XmppGeneral", "parse_xmpp_conf"]

STATUSES = {"available": "", "online": "", "chat": "chat", "chatty": "chat", "away": "away",
            "xa": "xa", "xaway": "xa", "dnd": "dnd", "invisible": "unavailable",
            "unavailable": "unavailable"}


@dataclass(frozen=True, slots=True)
class XmppGeneral:
    debug: bool = False
    autoprune: bool = False
    autoregister: bool = True
    collection_nodes: bool = False
    pubsub_autocreate: bool = False
    auth_policy: str = "accept"


@dataclass(frozen=True, slots=True)
class XmppClientConfig:
    name: str
    username: str
    secret: str = field(default="", repr=False)
    serverhost: str = ""
    port: int = 5222
    usetls: bool = True
    usesasl: bool = True
    forceoldssl: bool = False
    priority: int = 1
    status: str = "available"
    statusmessage: str = "Online and Available"
    timeout: int = 5
    sendtodialplan: bool = False
    context: str = "default"
    pubsub_node: str = ""
    distribute_events: bool = False
    buddies: tuple[str, ...] = ()
    keepalive: bool = True
    debug: bool = False
    autoprune: bool = False
    autoregister: bool = True
    auth_policy: str = "accept"
    cafile: str = ""
    receipts: bool = True
    filename: str = ""
    lineno: int = 0

    @property
    def bare_jid(self) -> str:
        return self.username.split("/", 1)[0]

    @property
    def resource(self) -> str:
        return self.username.split("/", 1)[1] if "/" in self.username else ""

    @property
    def show(self) -> str:
        """The presence ``show`` value for ``status``."""
        return STATUSES.get(self.status.lower(), "")


@dataclass(frozen=True, slots=True)
class XmppConfig:
    general: XmppGeneral = field(default_factory=XmppGeneral)
    clients: dict[str, XmppClientConfig] = field(default_factory=dict)  # key: lower name


_BOOLS = {"debug", "autoprune", "autoregister", "collection_nodes", "pubsub_autocreate", "usetls", "usesasl",
          "forceoldssl", "sendtodialplan", "distribute_events", "keepalive", "receipts"}
_JID = re.compile(r"^[^@/\s]+@[^@/\s]+(/.+)?$")


def _bool(var: ConfigVariable) -> bool:
    try:
        return parse_bool(var.value)
    except ValueError:
        raise var.error(f"{var.name} value '{var.value}' is not a yes/no value",
                        f"'{var.name}=yes' or '{var.name}=no'") from None


def _int(var: ConfigVariable, low: int, high: int) -> int:
    text = var.value.strip()
    if not re.fullmatch(r"-?\d+", text) or not low <= int(text) <= high:
        raise var.error(f"{var.name} value '{var.value}' is not a number from {low} to {high}",
                        f"'{var.name}=<number>'")
    return int(text)


def _policy(var: ConfigVariable) -> str:
    value = var.value.strip().lower()
    if value not in ("accept", "deny"):
        raise var.error(f"auth_policy '{var.value}' is not known", "'auth_policy=accept' or 'auth_policy=deny'")
    return value


def parse_xmpp_conf(conf: ConfigFile | None) -> XmppConfig:
    if conf is None:
        return XmppConfig()
    general: dict[str, object] = {}
    for section in conf.sections_named("general"):
        for var in section.variables:
            key = var.name.lower()
            if key in ("debug", "autoprune", "autoregister", "collection_nodes", "pubsub_autocreate"):
                general[key] = _bool(var)
            elif key == "auth_policy":
                general[key] = _policy(var)
    gen = XmppGeneral(**general)  # type: ignore[arg-type]
    clients: dict[str, XmppClientConfig] = {}
    for section in conf.sections:
        if section.is_template or section.name.lower() == "general":
            continue
        values: dict[str, object] = {"debug": gen.debug, "autoprune": gen.autoprune,
                                     "autoregister": gen.autoregister, "auth_policy": gen.auth_policy}
        buddies: list[str] = []
        kind = "client"
        first = section.variables[0] if section.variables else None
        for var in section.variables:
            key = var.name.lower()
            value = var.value.strip()
            if key == "type":
                kind = value.lower()
                if kind not in ("client", "component"):
                    raise var.error(f"type '{value}' is not known", "'type=client' or 'type=component'")
                if kind == "component":
                    raise var.error("type=component (XEP-0114) is not supported by hookflash",
                                    "'type=client' (connect as a user of the XMPP server)")
            elif key in _BOOLS:
                values[key] = _bool(var)
            elif key == "port":
                values[key] = _int(var, 1, 65535)
            elif key == "priority":
                values[key] = _int(var, -128, 127)
            elif key == "timeout":
                values[key] = _int(var, 1, 86400)
            elif key == "status":
                if value.lower() not in STATUSES:
                    raise var.error(f"status '{value}' is not known",
                                    "one of " + ", ".join(sorted(STATUSES)))
                values[key] = value.lower()
            elif key == "statusmessage":
                values[key] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
            elif key == "buddy":
                if not _JID.match(value):
                    raise var.error(f"buddy '{value}' is not a JID", "'buddy=user@example.com'")
                buddies.append(value)
            elif key == "auth_policy":
                values[key] = _policy(var)
            elif key in ("username", "secret", "serverhost", "context", "pubsub_node", "cafile"):
                values[key] = value
            elif key in ("refresh_token", "oauth_clientid", "oauth_secret"):
                raise var.error(f"{key}: Google OAuth2 login is not supported",
                                "'secret=<password>' (Google no longer offers XMPP)")
        where = (first.filename, first.lineno) if first is not None else (conf.filename, 0)
        username = str(values.get("username", ""))
        if not username or not _JID.match(username):
            raise ConfigError(where[0], where[1], f"client [{section.name}] has no valid username",
                              "'username=user@example.com[/resource]'")
        if not values.get("secret"):
            raise ConfigError(where[0], where[1], f"client [{section.name}] has no secret", "'secret=<password>'")
        if not values.get("serverhost"):
            raise ConfigError(where[0], where[1], f"client [{section.name}] has no serverhost",
                              "'serverhost=xmpp.example.com'")
        clients[section.name.lower()] = XmppClientConfig(
            name=section.name, buddies=tuple(buddies), filename=where[0], lineno=where[1],
            **values)  # type: ignore[arg-type]
    return XmppConfig(gen, clients)
