"""Festival's server protocol, sans-IO, and a client with time limits.

The client sends Scheme expressions; the server answers each top-level expression with
blocks ``WV\\n<wave>ft_StUfF_key`` (a waveform) or ``LP\\n<lisp>ft_StUfF_key`` (a printed
value), then ``OK\\n``, or ``ER\\n`` on an error.

The text goes into a Scheme string: :func:`scheme_string` escapes ``\\`` and ``"`` (and
turns control characters into spaces), so whatever a caller, a calendar or a mail put
in the text is *spoken*, never evaluated. Asterisk inserts it unescaped: a ``"`` in the
text ends the string and the rest runs as Scheme on the Festival host (which can run
shell commands). That is the bug fixed here.
"""

from __future__ import annotations

import asyncio
import re

__all__ = ["DEFAULT_COMMAND", "FestivalError", "FestivalReply", "build_command", "scheme_string", "synthesize"]

DEFAULT_COMMAND = "(tts_textasterisk \"%s\" 'file)(quit)\\n"
KEY = b"ft_StUfF_key"
MAX_WAVE = 64 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FestivalError(Exception):
    """The server is away, too slow, refused the text (ER) or sent something else."""


def scheme_string(text: str) -> str:
    """The inside of a Scheme string literal that reads back as ``text``."""
    text = _CONTROL.sub(" ", text)
    return text.replace("\\", "\\\\").replace('"', '\\"')


def unescape_template(template: str) -> str:
    """festivalcommand's escapes, as app_festival reads them: ``\\n`` and ``\\xHH``."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt == "n":
                out.append("\n")
                i += 2
                continue
            if nxt == "x" and i + 3 < len(template) + 1 and re.fullmatch(r"[0-9A-Fa-f]{2}", template[i + 2:i + 4]):
                out.append(chr(int(template[i + 2:i + 4], 16)))
                i += 4
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def build_command(template: str, text: str) -> bytes:
    """festivalcommand with ``%s`` replaced by the escaped text (only the first ``%s``)."""
    command = unescape_template(template or DEFAULT_COMMAND)
    head, found, tail = command.partition("%s")
    command = head + scheme_string(text) + tail if found else command
    if not command.endswith("\n"):
        command += "\n"
    return command.encode("utf-8", "replace")


class FestivalReply:
    """Feed it bytes; it yields ('WV', wave), ('LP', text), ('OK', b''), ('ER', b'')."""

    def __init__(self, max_bytes: int = MAX_WAVE) -> None:
        self.buffer = bytearray()
        self.tag: bytes | None = None
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buffer += data
        events: list[tuple[str, bytes]] = []
        while True:
            if self.tag is None:
                if len(self.buffer) < 3:
                    break
                tag = bytes(self.buffer[:3])
                del self.buffer[:3]
                if tag in (b"OK\n", b"ER\n"):
                    events.append((tag[:2].decode(), b""))
                    continue
                if tag not in (b"WV\n", b"LP\n"):
                    raise FestivalError(f"unexpected reply {tag!r} from the Festival server")
                self.tag = tag
            end = self.buffer.find(KEY)
            if end < 0:
                if len(self.buffer) > self.max_bytes:
                    raise FestivalError(f"reply larger than {self.max_bytes} bytes")
                break
            payload = bytes(self.buffer[:end])
            del self.buffer[:end + len(KEY)]
            events.append((self.tag[:2].decode(), payload))
            self.tag = None
        return events


async def synthesize(host: str, port: int, command: bytes, *, connect_timeout: float = 2.0,
                     read_timeout: float = 5.0, total_timeout: float = 30.0) -> bytes:
    """Send the command; the first waveform the server returns (RIFF/NIST bytes).
    FestivalError when the server cannot be reached, stalls, errs or sends garbage."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise FestivalError(f"cannot connect to Festival at {host}:{port}: {exc or 'timed out'}") from None
    try:
        async def talk() -> bytes:
            writer.write(command)
            await writer.drain()
            parser = FestivalReply()
            wave: bytes | None = None
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), read_timeout)
                except asyncio.TimeoutError:
                    raise FestivalError(f"Festival at {host}:{port} sent nothing for {read_timeout:g} s") from None
                if not data:
                    break
                for kind, payload in parser.feed(data):
                    if kind == "WV" and wave is None:
                        wave = payload
                    elif kind == "ER":
                        raise FestivalError("the Festival server answered ER (error)")
                    elif kind == "OK" and wave is not None:
                        return wave
            if wave is None:
                raise FestivalError(f"Festival at {host}:{port} closed the connection without a waveform")
            return wave

        try:
            return await asyncio.wait_for(talk(), total_timeout)
        except asyncio.TimeoutError:
            raise FestivalError(f"Festival at {host}:{port} took more than {total_timeout:g} s") from None
        except (OSError, ConnectionError) as exc:
            raise FestivalError(f"Festival at {host}:{port}: {exc}") from None
    finally:
        writer.close()
