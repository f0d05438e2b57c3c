"""Codec registry and transcoding.

``get_codec("ulaw")``, ``get_codec("PCMU")`` and ``get_codec(0)`` all return a
*new* ``Pcmu`` instance (codecs may hold state, so each call/direction owns one).
Names are Asterisk's ``allow=`` names; SDP encoding names and static payload
types are accepted too.
"""

from __future__ import annotations

from .base import Codec
from .g711 import Pcma, Pcmu, alaw_to_ulaw, ulaw_to_alaw
from .g722 import G722
from .opus import Opus
from .slin import Slin

__all__ = [
    "CODECS",
    "G722",
    "Opus",
    "Codec",
    "CodecError",
    "Pcma",
    "Pcmu",
    "Slin",
    "Transcoder",
    "codec_class",
    "get_codec",
]


class CodecError(LookupError):
    """No codec by that name or payload type."""


CODECS: dict[str, type[Codec]] = {c.name: c for c in (Pcmu, Pcma, G722, Slin, Opus)}
_ALIASES: dict[str, type[Codec]] = {
    **CODECS,
    **{c.encoding.lower(): c for c in CODECS.values()},
    "g711u": Pcmu, "g711a": Pcma, "slin8": Slin,
}
_BY_PT: dict[int, type[Codec]] = {
    c.payload_type: c for c in CODECS.values() if c.payload_type is not None
}


def codec_class(name_or_pt: str | int) -> type[Codec]:
    if isinstance(name_or_pt, int):
        cls = _BY_PT.get(name_or_pt)
    else:
        cls = _ALIASES.get(name_or_pt.strip().lower())
    if cls is None:
        raise CodecError(f"unknown codec {name_or_pt!r}")
    return cls


def get_codec(name_or_pt: str | int) -> Codec:
    """A fresh codec instance for an allow= name, SDP encoding name or static PT."""
    return codec_class(name_or_pt)()


class Transcoder:
    """Converts payloads of one codec into another (one direction, own state).

    mu-law <-> A-law goes through a 256-byte translate table; everything else
    decodes to 8 kHz slin and encodes again.
    """

    def __init__(self, src: str | int | Codec, dst: str | int | Codec) -> None:
        self.src = src if isinstance(src, Codec) else get_codec(src)
        self.dst = dst if isinstance(dst, Codec) else get_codec(dst)
        pair = (self.src.name, self.dst.name)
        if pair == ("ulaw", "alaw"):
            self.convert = ulaw_to_alaw  # type: ignore[method-assign]
        elif pair == ("alaw", "ulaw"):
            self.convert = alaw_to_ulaw  # type: ignore[method-assign]
        elif pair[0] == pair[1]:
            self.convert = _identity  # type: ignore[method-assign]

    def convert(self, payload: bytes) -> bytes:
        return self.dst.encode(self.src.decode(payload))

    def __call__(self, payload: bytes) -> bytes:
        return self.convert(payload)

    def __repr__(self) -> str:
        return f"<Transcoder {self.src.name}->{self.dst.name}>"


def _identity(payload: bytes) -> bytes:
    return payload
