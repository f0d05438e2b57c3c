"""Peers at run time: where they are (registrations), whether they answer (qualify),
how many calls they have; and the registrar's AstDB persistence (family
``SIP/Registry``, value ``host:port:expiry:username:contact`` as chan_sip keeps it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hookflash.sip.config import SipPeerConfig


@dataclass
class PeerState:
    config: SipPeerConfig
    addr: tuple[str, int] | None = None  # where requests go
    contact: str = ""  # registered Contact URI
    expires_at: float = 0.0  # wall clock; 0 = not registered
    useragent: str = ""
    lastms: int = -1  # -1 unknown, 0 unreachable
    qualify_sent: float = 0.0
    calls: int = 0
    registered_user: str = ""
    transport: str = ""  # how it registered (udp, tcp, tls); "" = its configured transport
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    def __post_init__(self) -> None:
        if not self.config.is_dynamic:
            self.addr = (self.config.host, self.config.port)

    @property
    def registered(self) -> bool:
        return self.expires_at > time.time()

    def reachable_addr(self) -> tuple[str, int] | None:
        if self.config.is_dynamic:
            return self.addr if self.registered else None
        return self.addr

    def status(self) -> str:
        if not self.config.qualify:
            return "Unmonitored"
        if self.lastms < 0:
            return "UNKNOWN"
        if self.lastms == 0:
            return "UNREACHABLE"
        if self.lastms > self.config.qualify:
            return f"LAGGED ({self.lastms} ms)"
        return f"OK ({self.lastms} ms)"

    def online(self) -> bool:
        return self.reachable_addr() is not None and self.lastms != 0

    def registry_value(self) -> str:
        assert self.addr is not None
        return f"{self.addr[0]}:{self.addr[1]}:{int(self.expires_at - time.time())}:" \
               f"{self.registered_user}:{self.contact}"

    def restore(self, value: str, saved_at: float) -> bool:
        """Load ``host:port:expiry:username:contact`` (contact may hold ':')."""
        parts = value.split(":", 4)
        if len(parts) < 5 or not parts[1].isdigit() or not parts[2].lstrip("-").isdigit():
            return False
        expiry = int(parts[2])
        if saved_at + expiry <= time.time():
            return False
        self.addr = (parts[0], int(parts[1]))
        self.expires_at = saved_at + expiry
        self.registered_user = parts[3]
        self.contact = parts[4]
        return True
